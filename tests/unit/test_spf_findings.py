"""The SPF judgement on plain observations: trees built by hand, no DNS."""

from __future__ import annotations

import dns.rdata

from mailcheck.checks.spf import MxEvaluation, evaluate_spf, fact_tree, node_json
from mailcheck.checks.spf_audit import SpfNode, SpfObservation, TermLookup
from mailcheck.checks.spf_eval import SpfEvaluation, SpfResult
from mailcheck.checks.spf_parse import parse_spf
from mailcheck.dns import DnsAnswer, Outcome
from mailcheck.model import Status


def _txt(name: str, *records: tuple[str, ...]) -> DnsAnswer:
    rdatas = tuple(
        dns.rdata.from_text("IN", "TXT", " ".join(f'"{s}"' for s in strings)) for strings in records
    )
    return DnsAnswer(f"{name}.", "TXT", Outcome.ANSWER if rdatas else Outcome.NODATA, rdatas)


def _node(domain: str, *strings: str, **kw: object) -> SpfNode:
    text = "".join(strings)
    fields: dict[str, object] = {
        "txt": _txt(domain, strings),
        "records": (text,),
        "strings": tuple(s.encode() for s in strings),
        "record": parse_spf(text),
    }
    fields.update(kw)
    return SpfNode(domain, **fields)  # type: ignore[arg-type]


def _codes(obs: SpfObservation, **kw: object) -> list[str]:
    return [f.code for f in evaluate_spf(obs, **kw).findings]  # type: ignore[arg-type]


def _eval(result: SpfResult, ip: str = "192.0.2.9") -> SpfEvaluation:
    return SpfEvaluation(ip, "example.com", "postmaster@example.com", None, result, "why")


def test_a_good_record_passes() -> None:
    obs = SpfObservation("example.com", _node("example.com", "v=spf1 ip4:192.0.2.1 -all"))
    result = evaluate_spf(obs, dmarc="reject")
    assert (result.status, result.findings) == (Status.PASS, ())
    assert result.data["record"] == "v=spf1 ip4:192.0.2.1 -all"
    assert (result.data["dns_lookups"], result.data["void_lookups"]) == (0, 0)


def test_no_record_is_none_and_a_lookalike_is_named() -> None:
    root = SpfNode(
        "example.com",
        txt=_txt("example.com", ("v=spf10 -all",)),
        error="none",
        lookalikes=("v=spf10 -all",),
    )
    assert _codes(SpfObservation("example.com", root)) == ["spf.lookalike", "spf.none"]


def test_policy_of_everyone() -> None:
    plus = SpfObservation("example.com", _node("example.com", "v=spf1 +all"))
    assert _codes(plus) == ["spf.plus-all"]
    neutral = SpfObservation("example.com", _node("example.com", "v=spf1 ip4:192.0.2.1 ?all"))
    assert _codes(neutral) == ["spf.neutral-all"]
    noall = SpfObservation("example.com", _node("example.com", "v=spf1 ip4:192.0.2.1"))
    assert _codes(noall) == ["spf.no-all"]
    wide = SpfObservation("example.com", _node("example.com", "v=spf1 ip4:0.0.0.0/1 -all"))
    assert _codes(wide) == ["spf.wide-range"]
    assert evaluate_spf(wide).status is Status.FAIL


def test_plus_all_matters_only_where_a_pass_passes_the_domain() -> None:
    through_plus = _node("vendor.example", "v=spf1 +all", via="include:vendor.example")
    through_minus = _node(
        "vendor.example", "v=spf1 +all", via="-include:vendor.example", authorizing=False, top=False
    )
    for child, expected in ((through_plus, ["spf.plus-all"]), (through_minus, [])):
        root = _node("example.com", "v=spf1 include:vendor.example -all", children=(child,))
        assert _codes(SpfObservation("example.com", root)) == expected


def test_softfail_advice_depends_on_dmarc() -> None:
    obs = SpfObservation("example.com", _node("example.com", "v=spf1 ip4:192.0.2.1 ~all"))
    enforcing = evaluate_spf(obs, dmarc="reject").findings[0]
    assert enforcing.code == "spf.softfail-advice" and "lets DMARC decide" in enforcing.message
    alone = evaluate_spf(obs, dmarc=None).findings[0]
    assert "Without an enforcing DMARC policy" in alone.message
    assert evaluate_spf(obs).status is Status.PASS  # advice, never a warning


def test_strings_size_and_join() -> None:
    joined = _node("example.com", "v=spf1 ip4:192.0.2.1", "include:x.example -all")
    assert _codes(SpfObservation("example.com", joined)) == ["spf.string-join"]
    huge = _node("example.com", "v=spf1 ip4:192.0.2.1 -all", strings=(b"v" * 300,))
    assert _codes(SpfObservation("example.com", huge)) == ["spf.string-too-long"]
    provider = _node("vendor.example", "v=spf1 ip4:192.0.2.1 -all", strings=(b"v" * 300,))
    root = _node("example.com", "v=spf1 include:vendor.example -all", children=(provider,))
    assert _codes(SpfObservation("example.com", root)) == []  # not the domain's to fix


def test_evaluations_and_cross_checks() -> None:
    obs = SpfObservation("example.com", _node("example.com", "v=spf1 ip4:192.0.2.1 -all"))
    evaluations = (
        _eval(SpfResult.PASS, "192.0.2.1"),
        _eval(SpfResult.SOFTFAIL),
        _eval(SpfResult.PERMERROR),
        _eval(SpfResult.TEMPERROR),
    )
    mx = (MxEvaluation("mx.example.com", _eval(SpfResult.FAIL, "192.0.2.20")),)
    result = evaluate_spf(obs, evaluations, mx)
    assert [f.code for f in result.findings] == [
        "spf.unauthorized-mx",
        "spf.unauthorized-ip",
        "spf.ip-permerror",
        "spf.ip-temperror",
    ]
    assert result.status is Status.FAIL
    assert result.data["evaluation"]["ip"] == "192.0.2.1"
    assert [e["result"] for e in result.data["evaluations"]] == [
        "pass",
        "softfail",
        "permerror",
        "temperror",
    ]
    assert result.data["mx_evaluations"][0]["host"] == "mx.example.com"
    assert result.facts is not None and len(result.facts.rows) == 5


def test_tree_json_and_fact_tree() -> None:
    gone = DnsAnswer("gone.example.com.", "A", Outcome.NXDOMAIN)
    gone6 = DnsAnswer("gone.example.com.", "AAAA", Outcome.NXDOMAIN)
    record = "v=spf1 a:gone.example.com exists:%{i}.bl.example.com redirect=r.example.com"
    parsed = parse_spf(record)
    mechs = parsed.mechanisms
    lookups = (
        TermLookup(mechs[0].text, "a", "gone.example.com", False, (gone, gone6), mechs[0]),
        TermLookup(mechs[1].text, "exists", None, True, (), mechs[1]),
        TermLookup("redirect=r.example.com", "redirect", "r.example.com", False),
    )
    child = _node("r.example.com", "v=spf1 -all", via="redirect=r.example.com")
    root = _node("example.com", record, lookups=lookups, children=(child,))
    obs = SpfObservation("example.com", root)
    tree = node_json(root)
    assert (tree["lookups"], tree["lookups_total"], tree["void_lookups"]) == (3, 3, 1)
    assert [t["term"] for t in tree["terms"]] == [m.text for m in mechs] + [
        "redirect=r.example.com"
    ]
    assert tree["terms"][0]["void"] is True and tree["terms"][1]["void"] is None
    assert tree["children"][0]["via"] == "redirect=r.example.com"
    people = fact_tree(root)
    assert "[lookups 3, total 3; void 1]" in people.label
    assert [c.label for c in people.children][:2] == [
        "a:gone.example.com: void (nxdomain)",
        "exists:%{i}.bl.example.com: depends on the connecting host",
    ]
    result = evaluate_spf(obs)
    assert result.data["void_lookups_worst_case"] == 2
    assert [f.code for f in result.findings] == ["spf.void-lookup", "spf.ip-dependent"]
