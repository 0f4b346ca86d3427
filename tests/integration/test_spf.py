"""The spf check against the lab: one fixture per finding, evaluations, the JSON contract."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from mailcheck.checks.base import CheckContext
from mailcheck.checks.spf import SpfCheck
from mailcheck.checks.spf_eval import check_identity
from mailcheck.dns import DnsClient, DnsConfig, Nameserver
from mailcheck.model import CheckResult, DnsSummary, Report, Status
from mailcheck.render.rich import RichRenderer
from tests.lab.dnsserver import LabHandle


@pytest.fixture
def fast_config(lab: LabHandle) -> DnsConfig:
    return DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.3, retries=0)


def run_spf(
    config: DnsConfig,
    domain: str,
    ips: tuple[str, ...] = (),
    sender: str | None = None,
    helo: str | None = None,
) -> CheckResult:
    """The spf check, as the engine would run it (it is registered separately)."""
    ctx = CheckContext(DnsClient(config), domain=domain, ips=ips, sender=sender, helo=helo)
    return asyncio.run(SpfCheck().run(ctx))


def codes(result: CheckResult) -> list[str]:
    return [f.code for f in result.findings]


@pytest.mark.parametrize(
    ("domain", "expected", "status"),
    [
        ("spf.test", [], Status.PASS),
        ("good.test", [], Status.PASS),
        ("none.spf.test", ["spf.none"], Status.WARNING),
        ("multi.spf.test", ["spf.multiple-records"], Status.FAIL),
        ("lookalike.spf.test", ["spf.lookalike", "spf.none"], Status.WARNING),
        ("join.spf.test", ["spf.lookalike", "spf.none"], Status.WARNING),
        ("strjoin.spf.test", ["spf.string-join"], Status.FAIL),
        ("long.spf.test", ["spf.record-too-long", "spf.answer-too-large"], Status.WARNING),
        ("crowded.spf.test", ["spf.answer-too-large"], Status.WARNING),
        ("syntax.spf.test", ["spf.syntax", "spf.syntax", "spf.syntax"], Status.FAIL),
        ("nonascii.spf.test", ["spf.syntax"], Status.FAIL),
        ("dupmod.spf.test", ["spf.duplicate-modifier"], Status.FAIL),
        ("badlabel.spf.test", ["spf.invalid-target"], Status.FAIL),
        ("redirect.spf.test", ["spf.redirect-ignored"], Status.WARNING),
        ("unreach.spf.test", ["spf.unreachable-terms"], Status.WARNING),
        ("unknownmod.spf.test", ["spf.unknown-modifier"], Status.PASS),
        ("limit.spf.test", ["spf.lookup-limit"], Status.FAIL),
        ("toplimit.spf.test", ["spf.lookup-limit"], Status.FAIL),
        ("redirlimit.spf.test", ["spf.lookup-limit"], Status.FAIL),
        ("void.spf.test", ["spf.void-limit"], Status.FAIL),
        ("onevoid.spf.test", ["spf.void-lookup"], Status.WARNING),
        (
            "ipdep.spf.test",
            ["spf.void-lookup", "spf.void-lookup", "spf.ip-dependent", "spf.void-limit-possible"],
            Status.WARNING,
        ),
        ("macro.spf.test", ["spf.ip-dependent"], Status.PASS),
        ("mxmany.spf.test", ["spf.mx-too-many"], Status.FAIL),
        ("loop.spf.test", ["spf.loop"], Status.FAIL),
        ("includenone.spf.test", ["spf.include-no-spf"], Status.FAIL),
        ("includegone.spf.test", ["spf.include-no-spf"], Status.FAIL),
        ("redirnone.spf.test", ["spf.redirect-no-spf"], Status.FAIL),
        ("dupinc.spf.test", ["spf.duplicate-include"], Status.PASS),
        (
            "fan.spf.test",
            ["spf.lookup-limit", "spf.duplicate-include", "spf.tree-truncated"],
            Status.FAIL,
        ),
        ("plusall.spf.test", ["spf.plus-all"], Status.FAIL),
        ("neutral.spf.test", ["spf.neutral-all"], Status.FAIL),
        ("noall.spf.test", ["spf.no-all"], Status.WARNING),
        ("wide.spf.test", ["spf.wide-range"] * 3, Status.FAIL),
        ("ptr.spf.test", ["spf.ptr", "spf.ip-dependent"], Status.WARNING),
        ("softfail.spf.test", ["spf.softfail-advice"], Status.PASS),
        ("softnone.spf.test", ["spf.softfail-advice"], Status.PASS),
        ("unauthmx.spf.test", ["spf.unauthorized-mx"], Status.WARNING),
        ("slow.spf.test", ["dns.timeout"], Status.ERROR),
        ("x.servfail.test", ["dns.servfail"], Status.ERROR),
    ],
)
def test_fixture_domains(
    fast_config: DnsConfig, domain: str, expected: list[str], status: Status
) -> None:
    result = run_spf(fast_config, domain)
    assert codes(result) == expected
    assert result.status is status


def test_counts_go_on_past_ten_inside_an_include(fast_config: DnsConfig) -> None:
    data = run_spf(fast_config, "limit.spf.test").data
    assert (data["dns_lookups"], data["void_lookups"]) == (14, 0)
    child = data["tree"]["children"][0]
    assert (child["lookups"], child["lookups_total"], data["tree"]["lookups_total"]) == (13, 13, 14)
    assert data["counts_complete"] is True
    assert run_spf(fast_config, "fan.spf.test").data["counts_complete"] is False


def test_voids_are_attributed_to_their_terms(fast_config: DnsConfig) -> None:
    data = run_spf(fast_config, "void.spf.test").data
    terms = data["tree"]["terms"]
    assert [(t["term"], t.get("void")) for t in terms] == [
        ("a:gone1.spf.test", True),
        ("a:gone2.spf.test", True),
        ("mx:gone3.spf.test", True),
        ("-all", None),
    ]


def test_the_json_contract(fast_config: DnsConfig) -> None:
    result = run_spf(fast_config, "spf.test", ips=("192.0.2.61", "203.0.113.9"))
    data = json.loads(json.dumps(result.data))
    assert data["record"] == "v=spf1 mx include:_spf.spfvendor.test -all"
    assert (data["dns_lookups"], data["void_lookups"]) == (3, 0)
    tree = data["tree"]
    assert set(tree) >= {"domain", "record", "lookups", "lookups_total", "void_lookups"}
    assert set(tree) >= {"terms", "children", "error"}
    assert [c["domain"] for c in tree["children"]] == ["_spf.spfvendor.test"]
    assert tree["children"][0]["children"][0]["domain"] == "_netblocks.spfvendor.test"
    assert data["evaluation"] == data["evaluations"][0]
    first, second = data["evaluations"]
    assert set(first) >= {"ip", "sender", "helo", "result", "explanation"}
    assert set(first) >= {"dns_lookups", "void_lookups"}
    assert (first["result"], second["result"]) == ("pass", "fail")
    assert codes(result) == ["spf.unauthorized-ip"]
    assert [m["result"] for m in data["mx_evaluations"]] == ["pass"]


def test_a_legitimate_sender_can_get_permerror_from_voids(fast_config: DnsConfig) -> None:
    """peers.md c.4: the exists: term is void for most clients, and with two more voids a
    sender listed at the end of the record gets permerror; the allow-listed one passes."""
    result = run_spf(fast_config, "ipdep.spf.test", ips=("192.0.2.62", "198.51.100.7"))
    listed, allowed = result.data["evaluations"]
    assert (listed["result"], listed["void_lookups"]) == ("permerror", 3)
    assert (allowed["result"], allowed["dns_lookups"]) == ("pass", 1)
    assert "spf.ip-permerror" in codes(result)
    assert result.status is Status.FAIL


def test_a_timeout_is_temperror_never_none(fast_config: DnsConfig) -> None:
    result = run_spf(fast_config, "slow.spf.test", ips=("192.0.2.61",))
    assert result.data["evaluation"]["result"] == "temperror"
    assert codes(result) == ["dns.timeout", "spf.ip-temperror"]
    assert result.status is Status.ERROR


def test_exp_explains_a_fail(fast_config: DnsConfig) -> None:
    evaluation = run_spf(
        fast_config, "exp.spf.test", ips=("203.0.113.9",), sender="jo@exp.spf.test"
    )
    assert evaluation.data["evaluation"]["result"] == "fail"
    assert evaluation.data["evaluation"]["explanation"] == (
        "203.0.113.9 is not one of exp.spf.test's senders, jo"
    )
    passed = run_spf(fast_config, "exp.spf.test", ips=("192.0.2.61",)).data["evaluation"]
    assert (passed["result"], passed["explanation"]) == ("pass", None)


@pytest.mark.parametrize(
    ("sender", "result"),
    [
        ("x" * 70 + "@badmacro.spf.test", "fail"),  # %{l} makes a label over 63: no match
        ("a b\\c@badmacro.spf.test", "fail"),  # a space and a backslash are label data
        ("caf\xe9@badmacro.spf.test", "fail"),
        ("user@[192.0.2.1]", "none"),  # a domain literal is not checked (§4.3)
        ("user@" + "y" * 64 + ".test", "none"),
        ("", "none"),  # a bounce without --helo checks postmaster@<nothing>
    ],
)
def test_hostile_senders_give_results_not_tracebacks(
    fast_config: DnsConfig, sender: str, result: str
) -> None:
    evaluation = asyncio.run(
        check_identity(DnsClient(fast_config), "192.0.2.61", sender, None, "badmacro.spf.test")
    )
    assert evaluation.result.value == result


def test_lookups_run_ahead_but_are_counted_in_order(lab: LabHandle, fast_config: DnsConfig) -> None:
    """The include's record is fetched while `mx` is evaluated, yet `mx` matching first means
    only one lookup is counted (RFC 7208 §4.6.4 counts evaluated terms)."""
    lab.reset_log()
    evaluation = asyncio.run(
        check_identity(DnsClient(fast_config), "192.0.2.61", None, None, "spf.test")
    )
    assert (evaluation.result.value, evaluation.dns_lookups) == ("pass", 1)
    assert evaluation.matched == "spf.test: mx"
    asked = {(q.qname, q.qtype) for q in lab.query_log}
    assert ("_spf.spfvendor.test.", "TXT") in asked


def test_the_tree_is_drawn_for_people(fast_config: DnsConfig) -> None:
    result = run_spf(fast_config, "dupinc.spf.test")
    assert result.tree is not None
    report = Report("dupinc.spf.test", "2026-01-01T00:00:00Z", 1, (result,), DnsSummary((), 0, 0))
    out = io.StringIO()
    RichRenderer(width=160).render(report, out)
    text = out.getvalue()
    assert "dupinc.spf.test: v=spf1 include:_spf.spfvendor.test" in text
    assert text.count("include:_netblocks.spfvendor.test → _netblocks.spfvendor.test") == 2
    assert "[lookups 2, total 4; void 0]" in text


@pytest.mark.parametrize("domain", ["A...example.com", "[192.0.2.1]", "a" * 64 + ".spf.test"])
def test_a_malformed_domain_is_none_like_a_receiver_says(
    fast_config: DnsConfig, domain: str
) -> None:
    ctx = CheckContext(DnsClient(fast_config), domain=domain, ips=("192.0.2.1",))
    result = asyncio.run(SpfCheck().run(ctx))
    assert codes(result) == ["spf.none"]
    assert "RFC 7208 §4.3" in result.findings[0].message
    assert result.data["evaluation"]["result"] == "none"
    assert ctx.dns.summary().queries == 0


def test_no_domain_is_skipped(fast_config: DnsConfig) -> None:
    ctx = CheckContext(DnsClient(fast_config))
    assert asyncio.run(SpfCheck().run(ctx)).status is Status.SKIPPED
