"""The blocklist catalogue: the shipped lists, per-list decoding of answers, config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcheck.checks.dnsbl_catalogue import load_lists, public_resolver, shipped_catalogue
from mailcheck.checks.dnsbl_lists import (
    AnswerKind,
    BlockList,
    ListKind,
    ListStatus,
    address_label,
    normalize_zone,
)
from tests.conftest import ROOT

LAB_LISTS = ROOT / "fixtures" / "dnsbl" / "lab-lists.toml"


def by_zone(*zones: str) -> dict[str, BlockList]:
    return {bl.zone: bl for bl in load_lists(None, zones)}


# ---------------------------------------------------------------- the shipped catalogue


def test_default_lists_are_the_curated_active_ones() -> None:
    active = {bl.zone: bl for bl in load_lists(None, ())}
    for zone in (
        "zen.spamhaus.org",
        "dbl.spamhaus.org",
        "b.barracudacentral.org",
        "bl.spamcop.net",
        "dnsbl-1.uceprotect.net",
        "psbl.surriel.com",
        "bl.mailspike.net",
        "dnsbl.dronebl.org",
        "multi.surbl.org",
        "multi.uribl.com",
    ):
        assert zone in active
    assert all(bl.status is ListStatus.ACTIVE and bl.known for bl in active.values())
    # Lists that shut down or list the whole internet are never asked by default.
    for zone in ("dnsbl.sorbs.net", "rhsbl.sorbs.net", "dnsbl.ahbl.org", "dnsbl.njabl.org"):
        assert zone not in active
        assert by_zone(zone)[zone].status is ListStatus.RETIRED
    # MXToolbox's distinction: a UCEPROTECT level 2/3 listing is not a Spamhaus SBL listing.
    assert active["zen.spamhaus.org"].affects_delivery
    assert not active["dnsbl-2.uceprotect.net"].affects_delivery
    assert not active["dnsbl-3.uceprotect.net"].affects_delivery
    assert not active["zen.spamhaus.org"].public_resolvers
    assert active["b.barracudacentral.org"].registration
    assert active["dbl.spamhaus.org"].kind is ListKind.DOMAIN
    assert active["zen.spamhaus.org"].families == {4, 6}


def test_every_shipped_list_is_valid_and_has_a_name() -> None:
    catalogue = shipped_catalogue()
    lists = load_lists(None, tuple(catalogue.entries))
    assert len(lists) == len(catalogue.entries) > 30
    assert all(bl.name and bl.name != bl.zone for bl in lists)
    assert all(bl.test_unlisted for bl in lists)
    assert all(bl.notes for bl in lists if bl.status is ListStatus.RETIRED)


def test_optional_lists_are_asked_only_when_named() -> None:
    assert "sbl.spamhaus.org" not in {bl.zone for bl in load_lists(None, ())}
    sbl = by_zone("sbl.spamhaus.org")["sbl.spamhaus.org"]
    assert sbl.status is ListStatus.OPTIONAL and sbl.name == "Spamhaus SBL"
    assert sbl.decode("127.255.255.254").kind is AnswerKind.REFUSED  # `like` ZEN


# ---------------------------------------------------------------- asking and decoding


def test_query_names_follow_rfc_5782() -> None:
    zen = by_zone("zen.spamhaus.org")["zen.spamhaus.org"]
    assert zen.query_name("192.0.2.99") == "99.2.0.192.zen.spamhaus.org"  # §2.1
    assert zen.query_name("2001:db8:1:2:3:4:567:89ab") == (  # §2.4: nibbles
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"
    )
    # §5's IPv6 test entry ::FFFF:7F00:2, all 32 nibbles (not turned into 127.0.0.2)
    assert address_label("::ffff:7f00:2") == "2.0.0.0.0.0.f.7.f.f.f.f" + ".0" * 20
    dbl = by_zone("dbl.spamhaus.org")["dbl.spamhaus.org"]
    assert dbl.query_name("Example.COM.") == "example.com.dbl.spamhaus.org"  # §3
    assert dbl.query_name(dbl.test_listed) == "dbltest.com.dbl.spamhaus.org"
    assert dbl.query_name(dbl.test_unlisted) == "invalid.dbl.spamhaus.org"


def test_test_entries_by_kind_and_family() -> None:
    lists = by_zone("zen.spamhaus.org", "multi.uribl.com", "bl.ipv6.spameatingmonkey.net")
    assert (lists["zen.spamhaus.org"].test_listed, lists["zen.spamhaus.org"].test_unlisted) == (
        "127.0.0.2",
        "127.0.0.1",
    )
    assert lists["multi.uribl.com"].test_unlisted == "invalid"
    assert lists["bl.ipv6.spameatingmonkey.net"].test_listed == "::ffff:7f00:2"


def test_applies_to_kind_and_family() -> None:
    lists = by_zone("zen.spamhaus.org", "bl.spamcop.net", "dbl.spamhaus.org")
    assert lists["zen.spamhaus.org"].applies_to("2001:db8::1", True)
    assert not lists["bl.spamcop.net"].applies_to("2001:db8::1", True)
    assert not lists["bl.spamcop.net"].applies_to("example.com", False)
    assert lists["dbl.spamhaus.org"].applies_to("example.com", False)
    assert not lists["dbl.spamhaus.org"].applies_to("192.0.2.1", True)


@pytest.mark.parametrize(
    ("zone", "answer", "kind", "meaning"),
    [
        ("zen.spamhaus.org", "127.0.0.2", AnswerKind.LISTED, "SBL"),
        ("zen.spamhaus.org", "127.0.0.6", AnswerKind.LISTED, "XBL"),  # a range .4-.7
        ("zen.spamhaus.org", "127.0.0.10", AnswerKind.LISTED, "PBL (ISP"),
        ("zen.spamhaus.org", "127.255.255.254", AnswerKind.REFUSED, "public or open resolver"),
        ("zen.spamhaus.org", "127.255.255.255", AnswerKind.REFUSED, "too many queries"),
        ("zen.spamhaus.org", "127.255.255.252", AnswerKind.REFUSED, "typo"),
        ("zen.spamhaus.org", "127.0.0.77", AnswerKind.LISTED, "does not document"),
        ("zen.spamhaus.org", "192.0.2.1", AnswerKind.INVALID, "outside 127.0.0.0/8"),
        ("dbl.spamhaus.org", "127.0.1.255", AnswerKind.REFUSED, "IP address was asked"),
        ("dbl.spamhaus.org", "127.0.1.4", AnswerKind.LISTED, "phishing"),
        # The same value 127.0.0.1 is a refusal on URIBL and a listing class on DroneBL.
        ("multi.uribl.com", "127.0.0.1", AnswerKind.REFUSED, "query refused"),
        ("dnsbl.dronebl.org", "127.0.0.1", AnswerKind.LISTED, "class 1"),
        ("multi.uribl.com", "127.0.0.14", AnswerKind.LISTED, "black: a spam domain; grey"),
        ("multi.surbl.org", "127.0.0.1", AnswerKind.REFUSED, "access blocked"),
        ("multi.surbl.org", "127.0.0.3", AnswerKind.REFUSED, "access blocked"),  # bit 1 set
        ("multi.surbl.org", "127.0.0.24", AnswerKind.LISTED, "PH: phishing; MW: malware"),
        ("multi.surbl.org", "127.0.0.32", AnswerKind.LISTED, "bit 32 (undocumented)"),
        ("bl.mailspike.net", "127.0.0.11", AnswerKind.LISTED, "L4"),
    ],
)
def test_answers_are_decoded_per_list(
    zone: str, answer: str, kind: AnswerKind, meaning: str
) -> None:
    decoded = by_zone(zone)[zone].decode(answer)
    assert decoded.kind is kind
    assert meaning in decoded.meaning
    assert decoded.code == answer


def test_pbl_codes_carry_their_own_advice() -> None:
    zen = by_zone("zen.spamhaus.org")["zen.spamhaus.org"]
    assert "policy, not a sign of abuse" in zen.decode("127.0.0.11").advice
    assert zen.decode("127.0.0.2").advice == ""


def test_delist_url_fills_the_placeholder() -> None:
    lists = by_zone("bl.spamcop.net", "zen.spamhaus.org")
    assert lists["bl.spamcop.net"].delist_url("192.0.2.1").endswith("ip=192.0.2.1")
    assert lists["zen.spamhaus.org"].delist_url("192.0.2.1") == "https://check.spamhaus.org/"


# ---------------------------------------------------------------- --dnsbl and config files


def test_named_zones_replace_the_defaults_in_the_order_given() -> None:
    lists = load_lists(None, ("bl.spamcop.net.", "ZEN.spamhaus.org", "bl.spamcop.net"))
    assert [bl.zone for bl in lists] == ["bl.spamcop.net", "zen.spamhaus.org"]


def test_an_unknown_zone_gets_a_generic_entry() -> None:
    (generic,) = load_lists(None, ("rbl.example.net",))
    assert not generic.known and generic.name == "rbl.example.net"
    assert generic.kind is ListKind.IP and generic.affects_delivery
    assert generic.decode("127.0.0.2").kind is AnswerKind.LISTED
    assert generic.decode("127.0.0.200").kind is AnswerKind.LISTED
    assert generic.decode("127.255.255.254").kind is AnswerKind.REFUSED  # never a listing
    assert generic.test_listed == "127.0.0.2"


def test_a_config_file_changes_and_adds_lists(tmp_path: Path) -> None:
    config = tmp_path / "lists.toml"
    config.write_text(
        '[[list]]\nzone = "zen.spamhaus.org"\naffects_delivery = false\n\n'
        '[[list]]\nzone = "all.spamrats.com"\nstatus = "active"\n\n'
        '[[list]]\nzone = "bl.spamcop.net"\nstatus = "optional"\n\n'
        '[[list]]\nzone = "abc123.zen.dq.spamhaus.net"\nlike = "zen.spamhaus.org"\n'
        'name = "Spamhaus ZEN (DQS)"\n'
    )
    lists = {bl.zone: bl for bl in load_lists(config, ())}
    assert not lists["zen.spamhaus.org"].affects_delivery
    assert lists["zen.spamhaus.org"].codes  # only the named field changed
    assert "all.spamrats.com" in lists and "bl.spamcop.net" not in lists
    dqs = lists["abc123.zen.dq.spamhaus.net"]
    assert dqs.name == "Spamhaus ZEN (DQS)" and dqs.operator == "Spamhaus"
    assert not dqs.affects_delivery  # `like` copies ZEN as this file left it
    assert dqs.decode("127.255.255.254").kind is AnswerKind.REFUSED
    assert list(lists)[-1] == "abc123.zen.dq.spamhaus.net"  # added lists come last


def test_defaults_false_asks_only_the_config_lists() -> None:
    lists = load_lists(LAB_LISTS, ())
    assert [bl.zone for bl in lists] == ["zen.bl.test", "dbl.bl.test", "minor.bl.test"]
    named = load_lists(LAB_LISTS, ("wild.bl.test", "zen.spamhaus.org"))
    assert [bl.name for bl in named] == ["Lab wildcard list", "Spamhaus ZEN"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[list]\n", "not valid TOML"),
        ("colour = 1\n", "unknown setting 'colour'"),
        ("defaults = 1\n", "`defaults` must be true or false"),
        ("[[list]]\nname = 'x'\n", "`zone` is required"),
        ("[[list]]\nzone = 'not a zone'\n", "is not a blocklist zone"),
        ("[[list]]\nzone = 'x.example'\ncolour = 'red'\n", "unknown field 'colour'"),
        ("[[list]]\nzone = 'x.example'\nkind = 'url'\n", "`kind` must be one of ip, domain"),
        (
            "[[list]]\nzone = 'x.example'\naffects_delivery = 'yes'\n",
            "`affects_delivery` must be true or false",
        ),
        ("[[list]]\nzone = 'x.example'\nfamilies = [5]\n", "`families` must list 4, 6"),
        ("[[list]]\nzone = 'x.example'\ncodes = { '10.0.0.1' = 'x' }\n", "127.0.0.0/8"),
        ("[[list]]\nzone = 'x.example'\ncodes = { 'two' = 'x' }\n", "not an address, range"),
        ("[[list]]\nzone = 'x.example'\ncodes = { '127.0.0.2' = 3 }\n", "needs a meaning"),
        ("[[list]]\nzone = 'x.example'\nbits = { '3' = 'x' }\n", "one bit value"),
        ("[[list]]\nzone = 'x.example'\nlike = 'nowhere.example'\n", "no list describes"),
        ("[[list]]\nzone = 'x.example'\ntest_listed = 'test'\n", "is not an address"),
        ("[[list]]\nzone = 'x.example'\ntest_unlisted = ''\n", "cannot be empty"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "lists.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match="lists.toml") as raised:
        load_lists(config, ())
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_config_file_or_a_bad_zone_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the DNSBL config file .*missing.toml"):
        load_lists(tmp_path / "missing.toml", ())
    with pytest.raises(ValueError, match="is not a blocklist zone"):
        load_lists(None, ("192.0.2.1 bad",))
    with pytest.raises(ValueError, match="is not a blocklist zone"):
        normalize_zone("localhost")


def test_well_known_public_resolvers() -> None:
    assert public_resolver("8.8.8.8") == "Google Public DNS"
    assert public_resolver("2001:4860:4860:0:0:0:0:8888") == "Google Public DNS"
    assert public_resolver("1.1.1.1") and public_resolver("9.9.9.9")
    assert public_resolver("208.67.222.222") and public_resolver("2620:fe::fe")
    assert public_resolver("127.0.0.1") is None
    assert public_resolver("not an address") is None
