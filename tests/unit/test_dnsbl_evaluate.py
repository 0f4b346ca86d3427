"""The dnsbl evaluator on plain data: list health from the RFC 5782 §5 probes, results, status."""

from __future__ import annotations

from typing import Any

import dns.rdata
import pytest

from mailcheck.checks.dnsbl import evaluate_dnsbl
from mailcheck.checks.dnsbl_catalogue import build_list
from mailcheck.checks.dnsbl_lists import BlockList
from mailcheck.checks.dnsbl_verdict import (
    DnsblObservation,
    DnsblTarget,
    Health,
    ListLookup,
    ListProbe,
    judge_list,
)
from mailcheck.dns import DnsAnswer, Nameserver, Outcome
from mailcheck.model import CheckResult, Severity, Status

LAB = (Nameserver("127.0.0.1", 5354),)
SPAMHAUS_LIKE = {
    "codes": {"127.0.0.2": "SBL", "127.0.0.10": {"meaning": "PBL", "advice": "Use a relay."}},
    "refused": {"127.255.255.254": "query refused: public resolver"},
    "public_resolvers": False,
    "delist": "https://bl.example/lookup?ip={ip}",
}
MX = DnsblTarget("192.0.2.30", True, ("MX mx1.example.com",))


def blocklist(zone: str = "bl.example", **fields: Any) -> BlockList:
    return build_list({"zone": zone, "name": zone.split(".")[0].upper(), **SPAMHAUS_LIKE, **fields})


def a(name: str, *codes: str, outcome: Outcome = Outcome.NXDOMAIN) -> DnsAnswer:
    if codes:
        records = tuple(dns.rdata.from_text("IN", "A", c) for c in codes)
        return DnsAnswer(name, "A", Outcome.ANSWER, records, server="127.0.0.1:5354")
    return DnsAnswer(name, "A", outcome, server="127.0.0.1:5354", detail="")


def txt(name: str, text: str) -> DnsAnswer:
    record = dns.rdata.from_text("IN", "TXT", f'"{text}"')
    return DnsAnswer(name, "TXT", Outcome.ANSWER, (record,))


def probe(
    bl: BlockList,
    listed: DnsAnswer | None = None,
    unlisted: DnsAnswer | None = None,
    apex: DnsAnswer | None = None,
) -> ListProbe:
    """A probe; by default a healthy one (127.0.0.2 listed, 127.0.0.1 not)."""
    return ListProbe(
        bl,
        listed if listed is not None else a(f"2.0.0.127.{bl.zone}.", "127.0.0.2"),
        unlisted if unlisted is not None else a(f"1.0.0.127.{bl.zone}."),
        apex,
    )


def lookup(bl: BlockList, *codes: str, target: DnsblTarget = MX, **kw: Any) -> ListLookup:
    name = bl.query_name(target.value) + "."
    answer = a(name, *codes, **kw)
    reason = txt(name, f"listed on {bl.zone}") if codes else None
    return ListLookup(target, bl.zone, answer, reason)


def evaluate(
    probes: list[ListProbe], lookups: list[ListLookup], resolvers: Any = LAB
) -> CheckResult:
    targets = tuple(dict.fromkeys(lk.target for lk in lookups))
    obs = DnsblObservation(resolvers, tuple(probes), tuple(lookups), targets)
    return evaluate_dnsbl(obs, tuple(p.blocklist for p in probes))


def codes(result: CheckResult) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in result.findings]


# ---------------------------------------------------------------- listings and status


def test_listing_on_a_list_that_affects_delivery_fails() -> None:
    bl = blocklist()
    result = evaluate([probe(bl)], [lookup(bl, "127.0.0.2")])
    assert codes(result) == [("dnsbl.listed", Severity.ERROR)]
    assert result.status is Status.FAIL
    finding = result.findings[0]
    assert "192.0.2.30 (MX mx1.example.com) is listed on BL (bl.example): SBL" in finding.message
    assert "listed on bl.example" in finding.message  # the TXT reason
    assert "https://bl.example/lookup?ip=192.0.2.30" in finding.remedy
    assert result.data["results"] == [
        {
            "ip": "192.0.2.30",
            "sources": ["MX mx1.example.com"],
            "zone": "bl.example",
            "name": "BL",
            "status": "listed",
            "codes": ["127.0.0.2"],
            "meanings": ["SBL"],
            "reason": "listed on bl.example",
            "delist_url": "https://bl.example/lookup?ip=192.0.2.30",
        }
    ]
    assert result.data["lists"][0]["status"] == "ok"


def test_a_code_with_advice_replaces_the_usual_remedy() -> None:
    bl = blocklist()
    result = evaluate([probe(bl)], [lookup(bl, "127.0.0.10")])
    assert result.findings[0].remedy == "Use a relay."


def test_listing_on_a_minor_list_is_a_warning() -> None:
    bl = blocklist(affects_delivery=False)
    result = evaluate([probe(bl)], [lookup(bl, "127.0.0.2")])
    assert codes(result) == [("dnsbl.listed-minor", Severity.WARNING)]
    assert result.status is Status.WARNING
    assert "Never pay to be delisted" in result.findings[0].remedy


def test_clean_everywhere_passes_with_a_quiet_table() -> None:
    one, two = blocklist("one.example"), blocklist("two.example")
    domain = DnsblTarget("example.com", False)
    dbl = blocklist("dbl.example", kind="domain")
    result = evaluate(
        [probe(one), probe(two), probe(dbl, a("test.dbl.example.", "127.0.1.2"), a("x."))],
        [lookup(one), lookup(two), lookup(dbl, target=domain)],
    )
    assert result.findings == () and result.status is Status.PASS
    assert result.facts is not None
    assert result.facts.rows == (
        ("192.0.2.30 (MX mx1.example.com)", "ONE, TWO", "clean"),
        ("example.com", "DBL", "clean"),
    )
    assert result.data["results"][2]["domain"] == "example.com"


def test_listed_rows_come_first_delivery_lists_before_minor_ones() -> None:
    minor, major = blocklist("minor.example", affects_delivery=False), blocklist()
    other = DnsblTarget("192.0.2.31", True)
    result = evaluate(
        [probe(minor), probe(major)],
        [lookup(minor, "127.0.0.2"), lookup(major), lookup(major, "127.0.0.2", target=other)],
    )
    assert [f.code for f in result.findings] == ["dnsbl.listed", "dnsbl.listed-minor"]
    assert result.facts is not None
    assert list(result.facts.rows) == [
        ("192.0.2.31", "BL", "listed: SBL\nhttps://bl.example/lookup?ip=192.0.2.31"),
        (
            "192.0.2.30 (MX mx1.example.com)",
            "MINOR",
            "listed (minor): SBL\nhttps://bl.example/lookup?ip=192.0.2.30",
        ),
        ("192.0.2.30 (MX mx1.example.com)", "BL", "clean"),
    ]


# ---------------------------------------------------------------- list health (RFC 5782 §5)


def test_a_refusal_code_is_never_a_listing() -> None:
    refusing, good = blocklist("refusing.example"), blocklist()
    everything = a("x.", "127.255.255.254")
    result = evaluate(
        [probe(refusing, everything, everything), probe(good)],
        [lookup(refusing, "127.255.255.254"), lookup(good)],
    )
    assert codes(result) == [("dnsbl.refused", Severity.WARNING)]
    assert "refuses queries from your resolver" in result.findings[0].message
    assert "127.255.255.254" in result.findings[0].message
    assert [r["status"] for r in result.data["results"]] == ["refused", "clean"]
    assert result.data["results"][0]["meanings"] == ["query refused: public resolver"]
    assert result.status is Status.WARNING


def test_refusal_wins_over_broken() -> None:
    bl = blocklist()
    everything = a("x.", "127.255.255.254")
    assert judge_list(probe(bl, everything, everything)).health is Health.REFUSED


def test_a_list_that_lists_127_0_0_1_is_broken_and_ignored() -> None:
    wild, good = blocklist("wild.example"), blocklist()
    result = evaluate(
        [probe(wild, unlisted=a("1.0.0.127.wild.example.", "127.0.0.2")), probe(good)],
        [lookup(wild, "127.0.0.2"), lookup(good)],
    )
    assert codes(result) == [("dnsbl.list-broken", Severity.WARNING)]
    assert "lists 127.0.0.1" in result.findings[0].message
    assert [r["status"] for r in result.data["results"]] == ["broken", "clean"]


@pytest.mark.parametrize(
    ("apex", "words"),
    [
        (None, "does not list its test entry 127.0.0.2"),
        (a("bl.example.", outcome=Outcome.NXDOMAIN), "its zone does not exist any more"),
        (a("bl.example.", outcome=Outcome.NODATA), "its zone still exists"),
        (a("bl.example.", outcome=Outcome.TIMEOUT), "could not be determined"),
    ],
)
def test_a_list_without_its_test_entry_is_dead(apex: DnsAnswer | None, words: str) -> None:
    dead, good = blocklist(), blocklist("good.example")
    result = evaluate(
        [probe(dead, a("2.0.0.127.bl.example."), apex=apex), probe(good)],
        [lookup(dead, "127.0.0.2"), lookup(good)],
    )
    assert codes(result) == [("dnsbl.list-dead", Severity.WARNING)]
    assert words in result.findings[0].message
    assert result.data["results"][0]["status"] == "dead"


def test_a_list_without_a_positive_test_entry_cannot_be_dead() -> None:
    bl = blocklist(test_listed="")
    verdict = judge_list(ListProbe(bl, None, a("1.0.0.127.bl.example.")))
    assert verdict.health is Health.OK


def test_an_unreachable_list_is_unknown_never_clean() -> None:
    slow, minor, good = (
        blocklist("slow.example"),
        blocklist("m.example", affects_delivery=False),
        blocklist(),
    )
    timeout = a("x.", outcome=Outcome.TIMEOUT)
    result = evaluate(
        [probe(slow, timeout, timeout), probe(minor, timeout, timeout), probe(good)],
        [lookup(slow), lookup(minor), lookup(good)],
    )
    assert codes(result) == [
        ("dnsbl.list-unreachable", Severity.WARNING),
        ("dnsbl.list-unreachable", Severity.INFO),  # a minor list: worth knowing only
    ]
    assert "no answer in time" in result.findings[0].message
    assert [r["status"] for r in result.data["results"]] == ["error", "error", "clean"]
    assert result.status is Status.WARNING


def test_one_failed_lookup_on_a_healthy_list() -> None:
    bl = blocklist()
    other = DnsblTarget("192.0.2.31", True)
    result = evaluate(
        [probe(bl)],
        [lookup(bl), lookup(bl, target=other, outcome=Outcome.SERVFAIL)],
    )
    assert codes(result) == [("dnsbl.list-unreachable", Severity.WARNING)]
    assert "could not be checked for 192.0.2.31: the resolver" in result.findings[0].message
    assert "SERVFAIL" in result.findings[0].message


def test_when_no_list_can_be_checked_one_finding_says_so() -> None:
    lists = [blocklist(f"l{n}.example") for n in range(5)]
    refused = a("x.", outcome=Outcome.REFUSED)
    result = evaluate([probe(bl, refused, refused) for bl in lists], [lookup(bl) for bl in lists])
    assert codes(result) == [("dnsbl.unchecked", Severity.ERROR)]
    finding = result.findings[0]
    assert finding.indeterminate and result.status is Status.ERROR
    assert finding.message.startswith("None of the 5 blocklists could be checked")
    assert "5 lists (l0.example, l1.example, ...): the resolver 127.0.0.1:5354 refused" in (
        finding.message
    )
    assert len(finding.evidence["lists"]) == 5


# ---------------------------------------------------------------- the resolver, nothing to do


def test_a_public_resolver_is_warned_about_first() -> None:
    bl = blocklist()
    google = (Nameserver("8.8.8.8"),)
    result = evaluate([probe(bl)], [lookup(bl, "127.0.0.2")], resolvers=google)
    assert codes(result) == [
        ("dnsbl.public-resolver", Severity.WARNING),
        ("dnsbl.listed", Severity.ERROR),
    ]
    assert "8.8.8.8:53 (Google Public DNS)" in result.findings[0].message
    assert result.findings[0].evidence["refusing_lists"] == ["bl.example"]


def test_a_public_resolver_with_lists_that_accept_it_is_only_info() -> None:
    bl = blocklist(public_resolvers=True)
    result = evaluate([probe(bl)], [lookup(bl)], resolvers=(Nameserver("1.1.1.1"),))
    assert codes(result) == [("dnsbl.public-resolver", Severity.INFO)]
    assert result.status is Status.PASS


def test_nothing_to_look_up_is_skipped() -> None:
    obs = DnsblObservation(LAB, (), (), (DnsblTarget("2001:db8::1", True),))
    result = evaluate_dnsbl(obs, (blocklist(families=[4]),))
    assert codes(result) == [("dnsbl.nothing-to-check", Severity.INFO)]
    assert "hold only IPv4 addresses" in result.findings[0].message
    assert result.status is Status.SKIPPED
    assert result.data == {
        "resolvers": ["127.0.0.1:5354"],
        "lists": [],
        "results": [],
        "skipped": [],
        "retired": [],
    }


def test_a_healthy_list_that_refused_every_lookup_is_unchecked_too() -> None:
    bl = blocklist()
    result = evaluate([probe(bl)], [lookup(bl, "127.255.255.254")])
    assert codes(result) == [("dnsbl.unchecked", Severity.ERROR)]
    finding = result.findings[0]
    assert finding.message.startswith("The blocklist could not be checked")
    assert "127.255.255.254" in finding.message
    assert finding.remedy.startswith("Ask through your own recursive resolver")
