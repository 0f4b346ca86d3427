"""The dnsbl check against the lab's blocklists (fixtures/zones/*.bl.test.zone).

The lists are described by fixtures/dnsbl/lab-lists.toml; the default lists are real zones the
lab does not serve (it answers REFUSED), which one test relies on. The check is not registered
in the engine yet, so the tests run it directly on a CheckContext.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailcheck.checks.base import CheckContext
from mailcheck.checks.dnsbl import DnsblCheck, check_dnsbl
from mailcheck.dns import DnsClient, DnsConfig, Nameserver
from mailcheck.model import CheckResult, Severity, Status
from tests.conftest import ROOT
from tests.lab.dnsserver import LabHandle

LAB_LISTS = ROOT / "fixtures" / "dnsbl" / "lab-lists.toml"


def run_dnsbl(
    config: DnsConfig,
    domain: str | None = None,
    ips: tuple[str, ...] = (),
    zones: tuple[str, ...] = (),
    lists: Path | None = LAB_LISTS,
) -> CheckResult:
    """Run the dnsbl check on its own against the lab."""
    ctx = CheckContext(dns=DnsClient(config), domain=domain, ips=ips, dnsbl_zones=zones)
    return asyncio.run(check_dnsbl(ctx, lists))


def codes(result: CheckResult) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in result.findings]


def statuses(result: CheckResult) -> dict[tuple[str, str], str]:
    return {(r.get("ip") or r["domain"], r["zone"]): r["status"] for r in result.data["results"]}


def asked(lab: LabHandle, name: str) -> int:
    return sum(1 for q in lab.query_log if q.qname == name and q.qtype == "A")


# ---------------------------------------------------------------- a whole domain


def test_a_clean_domain_passes(lab_config: DnsConfig) -> None:
    result = run_dnsbl(lab_config, "good.test")
    assert result.findings == () and result.status is Status.PASS
    assert statuses(result) == {
        ("192.0.2.10", "zen.bl.test"): "clean",
        ("192.0.2.10", "minor.bl.test"): "clean",
        ("2001:db8::10", "zen.bl.test"): "clean",  # minor.bl.test holds IPv4 only
        ("192.0.2.11", "zen.bl.test"): "clean",
        ("192.0.2.11", "minor.bl.test"): "clean",
        ("good.test", "dbl.bl.test"): "clean",
    }
    assert [(x["zone"], x["status"]) for x in result.data["lists"]] == [
        ("zen.bl.test", "ok"),
        ("dbl.bl.test", "ok"),
        ("minor.bl.test", "ok"),
    ]
    assert result.facts is not None
    assert result.facts.rows[-1] == ("good.test", "Lab DBL", "clean")


def test_a_listed_domain_fails_with_each_listing(lab: LabHandle, lab_config: DnsConfig) -> None:
    lab.reset_log()
    result = run_dnsbl(lab_config, "broken.test")
    assert codes(result) == [
        ("dnsbl.listed", Severity.ERROR),  # 192.0.2.30: SBL
        ("dnsbl.listed", Severity.ERROR),  # 192.0.2.32: PBL
        ("dnsbl.listed", Severity.ERROR),  # broken.test on the domain list
        ("dnsbl.listed-minor", Severity.WARNING),  # 192.0.2.33 on a list few receivers use
    ]
    assert result.status is Status.FAIL
    sbl, pbl, dbl, minor = result.findings
    assert "192.0.2.30 (MX mx1.broken.test) is listed on Lab ZEN (zen.bl.test): SBL" in sbl.message
    assert "Listed in the lab SBL: spam source" in sbl.message  # the TXT reason
    assert sbl.remedy.endswith("ask for removal at https://zen.bl.test/192.0.2.30.")
    assert "PBL" in pbl.message and "policy, not a sign of abuse" in pbl.remedy
    assert dbl.evidence["domain"] == "broken.test" and dbl.rfc == "RFC 5782 §3"
    assert "https://dbl.bl.test/broken.test" in dbl.remedy
    assert "192.0.2.33 (MX mxalias.broken.test)" in minor.message
    assert result.facts is not None
    assert [row[2] for row in result.facts.rows[:4]] == [
        "listed: SBL\nhttps://zen.bl.test/192.0.2.30",  # listed rows first
        "listed: PBL (Spamhaus maintained)\nhttps://zen.bl.test/192.0.2.32",
        "listed: spam domain (low reputation)\nhttps://dbl.bl.test/broken.test",
        "listed (minor): level 3\nhttps://minor.bl.test/192.0.2.33",
    ]
    assert result.facts.rows[4:6] == (
        ("192.0.2.30 (MX mx1.broken.test)", "Lab minor", "clean"),
        ("192.0.2.31 (MX mx2.broken.test)", "Lab ZEN, Lab minor", "clean"),
    )
    # Each list's test entries are asked once per run, however many targets it has.
    assert asked(lab, "2.0.0.127.zen.bl.test.") == 1
    assert asked(lab, "1.0.0.127.zen.bl.test.") == 1
    assert asked(lab, "test.dbl.bl.test.") == 1 and asked(lab, "invalid.dbl.bl.test.") == 1
    # TXT only where A answered.
    txt = {q.qname for q in lab.query_log if q.qtype == "TXT" and q.qname.endswith("bl.test.")}
    assert "30.2.0.192.zen.bl.test." in txt and "31.2.0.192.zen.bl.test." not in txt


def test_the_registrable_domain_is_checked_on_domain_lists(lab_config: DnsConfig) -> None:
    result = run_dnsbl(lab_config, "sub.broken.test", zones=("dbl.bl.test",))
    assert statuses(result) == {
        ("sub.broken.test", "dbl.bl.test"): "clean",
        ("broken.test", "dbl.bl.test"): "listed",
    }
    assert "broken.test (registrable domain of sub.broken.test)" in result.findings[0].message


def test_a_bit_encoded_domain_list(lab_config: DnsConfig) -> None:
    result = run_dnsbl(lab_config, "broken.test", zones=("uri.bl.test",))
    assert codes(result) == [("dnsbl.listed", Severity.ERROR)]
    assert result.data["results"][0]["meanings"] == [
        "black: a spam domain; grey: a bulk-mail domain (some of its mail is solicited)"
    ]
    assert result.data["results"][0]["delist_url"] is None


# ---------------------------------------------------------------- addresses


def test_addresses_ipv6_several_codes_refusal_and_rewritten_answers(
    lab: LabHandle, lab_config: DnsConfig
) -> None:
    lab.reset_log()
    ips = ("2001:db8::bad", "192.0.2.99", "192.0.2.98", "192.0.2.97", "10.0.0.1")
    result = run_dnsbl(lab_config, ips=ips, zones=("zen.bl.test",))
    assert codes(result) == [
        ("dnsbl.non-public-address", Severity.INFO),
        ("dnsbl.listed", Severity.ERROR),
        ("dnsbl.listed", Severity.ERROR),
        ("dnsbl.refused", Severity.WARNING),
        ("dnsbl.list-unreachable", Severity.WARNING),
    ]
    assert statuses(result) == {
        ("2001:db8::bad", "zen.bl.test"): "listed",
        ("192.0.2.99", "zen.bl.test"): "listed",
        ("192.0.2.98", "zen.bl.test"): "refused",  # 127.255.255.255 is never a listing
        ("192.0.2.97", "zen.bl.test"): "error",  # an answer outside 127.0.0.0/8
    }
    # RFC 5782 §2.4: IPv6 addresses are asked as 32 reversed nibbles.
    nibbles = "d.a.b." + "0." * 21 + "8.b.d.0.1.0.0.2.zen.bl.test."
    assert asked(lab, nibbles) == 1
    v6, several = result.data["results"][:2]
    assert v6["reason"] == "Lab SBL: IPv6 spam source"
    assert several["codes"] == ["127.0.0.3", "127.0.0.4"] or several["codes"] == [
        "127.0.0.4",
        "127.0.0.3",
    ]
    assert several["reason"] == "Lab CSS and XBL: a compromised sender"  # two strings joined
    refused, rewritten = result.findings[3:]
    assert "could not be checked for 192.0.2.98" in refused.message
    assert "127.255.255.255 (query refused: too many queries" in refused.message
    assert "192.0.2.1, outside 127.0.0.0/8" in rewritten.message
    assert result.data["skipped"] == [
        {"ip": "10.0.0.1", "sources": [], "reason": "a private address (RFC 1918 / RFC 4193)"}
    ]
    assert "10.0.0.1" not in str(lab.query_log)


def test_sending_addresses_and_mx_addresses_are_both_checked(lab_config: DnsConfig) -> None:
    result = run_dnsbl(lab_config, "good.test", ips=("192.0.2.30", "192.0.2.10"))
    labels = [f.evidence["sources"] for f in result.findings]
    assert codes(result) == [("dnsbl.listed", Severity.ERROR)]
    assert labels == [["--ip"]]
    sources = {r["ip"]: r["sources"] for r in result.data["results"] if "ip" in r}
    assert sources["192.0.2.10"] == ["MX mx1.good.test", "--ip"]


# ---------------------------------------------------------------- lists that misbehave


@pytest.mark.parametrize(
    ("zone", "code", "status", "words"),
    [
        ("refuse.bl.test", "dnsbl.refused", "refused", "answered 127.255.255.254"),
        ("wild.bl.test", "dnsbl.list-broken", "broken", "lists 127.0.0.1 (127.0.0.2)"),
        ("slow.bl.test", "dnsbl.list-unreachable", "error", "no answer in time"),
        ("dead.bl.test", "dnsbl.list-dead", "dead", "its zone still exists"),
        ("gone.bl.test", "dnsbl.list-dead", "dead", "its zone does not exist any more"),
    ],
)
def test_a_list_that_misbehaves_is_named_and_never_clean(
    lab_config: DnsConfig, zone: str, code: str, status: str, words: str
) -> None:
    result = run_dnsbl(lab_config, ips=("192.0.2.30", "192.0.2.31"), zones=("zen.bl.test", zone))
    assert [f.code for f in result.findings] == ["dnsbl.listed", code]
    finding = result.findings[1]
    assert zone in finding.message and words in finding.message
    assert finding.evidence["zone"] == zone
    assert statuses(result)[("192.0.2.30", zone)] == status
    assert statuses(result)[("192.0.2.31", zone)] == status  # not "clean"
    assert statuses(result)[("192.0.2.31", "zen.bl.test")] == "clean"
    listing = next(x for x in result.data["lists"] if x["zone"] == zone)
    assert listing["status"] == status and listing["why"]


def test_when_no_list_answers_one_finding_and_status_error(lab_config: DnsConfig) -> None:
    zones = ("refuse.bl.test", "wild.bl.test", "slow.bl.test", "dead.bl.test", "gone.bl.test")
    result = run_dnsbl(lab_config, "broken.test", zones=zones)
    assert codes(result) == [("dnsbl.unchecked", Severity.ERROR)]
    assert result.status is Status.ERROR
    message = result.findings[0].message
    assert message.startswith("None of the 5 blocklists could be checked")
    for zone in zones:
        assert zone in message
    assert "clean" not in {r["status"] for r in result.data["results"]}


def test_the_default_lists_against_the_lab(lab: LabHandle, lab_config: DnsConfig) -> None:
    """The lab serves none of the real zones: REFUSED for all, summed up in one finding."""
    lab.reset_log()
    result = run_dnsbl(lab_config, "good.test", lists=None)
    assert codes(result) == [("dnsbl.unchecked", Severity.ERROR)]
    assert result.status is Status.ERROR
    assert "refused the queries (DNS REFUSED)" in result.findings[0].message
    assert {x["status"] for x in result.data["lists"]} == {"error"}
    assert "zen.spamhaus.org" in {x["zone"] for x in result.data["lists"]}
    assert asked(lab, "2.0.0.127.zen.spamhaus.org.") == 1


def test_a_retired_list_is_named_and_not_asked(lab: LabHandle, lab_config: DnsConfig) -> None:
    lab.reset_log()
    result = run_dnsbl(lab_config, ips=("192.0.2.31",), zones=("dnsbl.ahbl.org", "zen.bl.test"))
    assert codes(result) == [("dnsbl.list-retired", Severity.WARNING)]
    assert "2015-01-01" in result.findings[0].message
    assert result.data["retired"] == ["dnsbl.ahbl.org"]
    assert not any("ahbl" in q.qname for q in lab.query_log)


# ---------------------------------------------------------------- resolver, config, the class


def test_a_public_resolver_is_warned_about(lab: LabHandle) -> None:
    # The lab is asked first and answers everything here, so 8.8.8.8 is never contacted.
    config = DnsConfig(
        (Nameserver(lab.host, lab.port), Nameserver("8.8.8.8")), timeout=0.5, retries=0
    )
    result = run_dnsbl(config, ips=("192.0.2.31",), zones=("zen.bl.test",))
    assert codes(result) == [("dnsbl.public-resolver", Severity.WARNING)]
    assert "8.8.8.8:53 (Google Public DNS)" in result.findings[0].message
    assert result.data["resolvers"] == [lab.address, "8.8.8.8:53"]


def test_nothing_to_check(lab_config: DnsConfig) -> None:
    result = run_dnsbl(lab_config, ips=("2001:db8::10",), zones=("minor.bl.test",))
    assert codes(result) == [("dnsbl.nothing-to-check", Severity.INFO)]
    assert result.status is Status.SKIPPED
    result = run_dnsbl(lab_config, "nomail.test", zones=("minor.bl.test",))
    assert codes(result) == [("dnsbl.nothing-to-check", Severity.INFO)]


def test_a_bad_config_file_is_a_finding(lab_config: DnsConfig, tmp_path: Path) -> None:
    config = tmp_path / "lists.toml"
    config.write_text("[[list]]\nzone = 'x.example'\nkind = 'url'\n")
    result = run_dnsbl(lab_config, "good.test", lists=config)
    assert codes(result) == [("dnsbl.config-invalid", Severity.ERROR)]
    assert result.status is Status.ERROR and result.findings[0].indeterminate
    assert "lists.toml: list x.example: `kind` must be one of" in result.findings[0].message


def test_the_check_class_with_an_unknown_zone(lab_config: DnsConfig) -> None:
    """`--dnsbl` naming a zone nobody described: any 127.0.0.x answer is a listing."""
    ctx = CheckContext(dns=DnsClient(lab_config), ips=("192.0.2.30",), dnsbl_zones=("zen.bl.test",))
    check = DnsblCheck()
    assert check.name == "dnsbl" and check.description
    result = asyncio.run(check.run(ctx))
    assert codes(result) == [("dnsbl.listed", Severity.ERROR)]
    assert result.data["lists"][0]["known"] is False
    assert result.data["results"][0]["meanings"] == ["listed"]
