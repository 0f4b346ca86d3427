"""check_host() edge cases that need no DNS answer: identities, limits, matching, selection."""

from __future__ import annotations

import asyncio
import ipaddress

import dns.rdata
import pytest

from mailcheck.checks.spf_eval import SpfResult, check_host, check_identity, select_records
from mailcheck.checks.spf_macro import client_address
from mailcheck.checks.spf_parse import parse_spf
from mailcheck.checks.spf_terms import EvalState, Stop, match_term
from mailcheck.dns import DnsAnswer, DnsClient, DnsConfig, Outcome


def _offline() -> DnsClient:
    """A client with no resolver: any lookup it is asked ends at once as Outcome.ERROR."""
    return DnsClient(DnsConfig(()))


def _txt(*records: tuple[str, ...]) -> DnsAnswer:
    rdatas = tuple(
        dns.rdata.from_text("IN", "TXT", " ".join(f'"{s}"' for s in strings)) for strings in records
    )
    return DnsAnswer("example.com.", "TXT", Outcome.ANSWER, rdatas)


@pytest.mark.parametrize(
    ("sender", "helo", "reason"),
    [
        ("foo@[192.0.2.1]", "mx.example.com", "domain literal"),
        ("lyme@" + "a" * 64 + ".example.com", None, "longer than 63"),
        ("lyme@A...example.com", None, "empty label"),
        ("", "A2345678", "not a multi-label"),
        ("", "[192.0.2.1]", "domain literal"),
    ],
)
def test_malformed_identities_are_none_without_any_lookup(
    sender: str, helo: str | None, reason: str
) -> None:
    client = _offline()
    result = asyncio.run(check_identity(client, "192.0.2.1", sender, helo))
    assert result.result is SpfResult.NONE
    assert reason in result.reason
    assert client.summary().queries == 0


def test_a_failed_lookup_is_temperror_never_none() -> None:
    result = asyncio.run(check_host(_offline(), "192.0.2.1", "example.com", "a@example.com"))
    assert result.result is SpfResult.TEMPERROR
    assert "TXT lookup of example.com" in result.reason


def test_the_client_must_be_an_address() -> None:
    with pytest.raises(ValueError):
        asyncio.run(check_host(_offline(), "mail.example.com", "example.com", "a@example.com"))


def test_sender_without_local_part_is_postmaster() -> None:
    result = asyncio.run(check_identity(_offline(), "192.0.2.1", "@example.net", None))
    assert (result.domain, result.sender) == ("example.net", "postmaster@example.net")
    default = asyncio.run(check_identity(_offline(), "192.0.2.1", None, None, "example.org"))
    assert default.sender == "postmaster@example.org"


def test_record_selection_joins_strings_and_ignores_the_rest() -> None:
    answer = _txt(
        ("v=spf1 ip4:", "192.0.2.5 -all"),
        ("v=spf10",),
        ("",),
        ("google-site-verification=x",),
        ("V=SPF1",),
    )
    assert select_records(answer) == ("v=spf1 ip4:192.0.2.5 -all", "V=SPF1")
    assert select_records(DnsAnswer("x.", "TXT", Outcome.NXDOMAIN)) == ()


def test_non_ascii_octets_survive_selection_to_be_reported() -> None:
    answer = _txt(("v=spf1 a:\\195\\169xample.com -all",))
    (record,) = select_records(answer)
    assert not parse_spf(record).valid


def test_limits_count_in_order() -> None:
    state = EvalState(_offline(), ipaddress.ip_address("192.0.2.1"), "a@example.com", "h")
    assert all(state.count_lookup(f"a:{i}") is None for i in range(10))
    stop = state.count_lookup("a:eleven")
    assert isinstance(stop, Stop) and stop.result is SpfResult.PERMERROR
    void = DnsAnswer("gone.example.com.", "A", Outcome.NXDOMAIN)
    assert state.count_void(void, "a:gone") is None
    assert state.count_void(void, "a:gone") is None
    third = state.count_void(void, "a:gone")
    assert isinstance(third, Stop) and "more than 2 void lookups" in third.reason


@pytest.mark.parametrize(
    ("client", "term", "matches"),
    [
        ("192.0.2.5", "ip4:192.0.2.0/24", True),
        ("::ffff:192.0.2.5", "ip4:192.0.2.0/24", True),  # IPv4-mapped is IPv4 (§5)
        ("::ffff:192.0.2.5", "ip6:::ffff:192.0.2.5", False),
        ("2001:db8::1", "ip4:0.0.0.0/0", False),
        ("2001:db8::1", "ip6:2001:db8::/32", True),
        ("192.0.2.5", "ip6:::/0", False),
        ("192.0.2.5", "all", True),
    ],
)
def test_address_mechanisms_need_no_dns(client: str, term: str, matches: bool) -> None:
    state = EvalState(_offline(), client_address(client), "a@example.com", "h")
    (mech,) = parse_spf(f"v=spf1 {term}").mechanisms
    assert asyncio.run(match_term(state, mech, "example.com")) is matches
    assert state.lookups == 0


def test_an_invalid_target_name_matches_nothing_without_a_query() -> None:
    client = _offline()
    state = EvalState(client, ipaddress.ip_address("192.0.2.1"), "a@example.com", "h")
    (mech,) = parse_spf("v=spf1 a:mail.example...com").mechanisms
    assert asyncio.run(match_term(state, mech, "example.com")) is False
    assert (state.lookups, state.voids, client.summary().queries) == (1, 0, 0)
