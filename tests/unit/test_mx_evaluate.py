"""evaluate_mx on plain observations, no DNS: the pure half of the mx check."""

from __future__ import annotations

import dns.rdata

from mailcheck.checks.mx import MxHost, MxObservation, evaluate_mx
from mailcheck.dns import DnsAnswer, Outcome
from mailcheck.model import Severity, Status


def _a(name: str, *addresses: str, chain: tuple[str, ...] = ()) -> DnsAnswer:
    if not addresses:
        return DnsAnswer(name, "A", Outcome.NODATA)
    records = tuple(dns.rdata.from_text("IN", "A", a) for a in addresses)
    return DnsAnswer(name, "A", Outcome.ANSWER, records, chain)


def _none(name: str, outcome: Outcome = Outcome.NODATA) -> DnsAnswer:
    return DnsAnswer(name, "AAAA", outcome)


def _obs(*hosts: MxHost, implicit: bool = False) -> MxObservation:
    mx = DnsAnswer("example.test.", "MX", Outcome.NODATA if implicit else Outcome.ANSWER)
    return MxObservation("example.test", mx, hosts, implicit)


def test_one_working_host_passes() -> None:
    host = MxHost(10, "mx.example.test", _a("mx.example.test.", "192.0.2.1"), _none("mx"))
    result = evaluate_mx(_obs(host))
    assert result.status is Status.PASS
    assert result.facts is not None and result.facts.rows == (
        ("10", "mx.example.test", "192.0.2.1"),
    )


def test_only_host_unresolvable_is_an_error() -> None:
    host = MxHost(10, "mx.example.test", _a("mx.example.test."), _none("mx", Outcome.NXDOMAIN))
    result = evaluate_mx(_obs(host))
    assert [(f.code, f.severity) for f in result.findings] == [
        ("mx.host-unresolvable", Severity.ERROR)
    ]
    assert result.status is Status.FAIL


def test_failed_address_lookup_is_indeterminate() -> None:
    timed_out = DnsAnswer("mx.example.test.", "A", Outcome.TIMEOUT, server="127.0.0.1:53")
    host = MxHost(10, "mx.example.test", timed_out, _none("mx"))
    result = evaluate_mx(_obs(host))
    assert [f.code for f in result.findings] == ["dns.timeout"]
    assert result.findings[0].indeterminate
    assert result.status is Status.ERROR


def test_a_proven_error_outranks_an_unknown() -> None:
    timed_out = DnsAnswer("mx1.example.test.", "A", Outcome.TIMEOUT)
    literal = MxHost(20, "192.0.2.9", None, None)
    result = evaluate_mx(_obs(MxHost(10, "mx1.example.test", timed_out, _none("mx1")), literal))
    assert {f.code for f in result.findings} == {"dns.timeout", "mx.ip-literal"}
    assert result.status is Status.FAIL


def test_cname_host_is_a_warning_naming_the_target() -> None:
    aliased = _a("mx.example.test.", "192.0.2.1", chain=("real.example.test.",))
    result = evaluate_mx(_obs(MxHost(10, "mx.example.test", aliased, _none("mx"))))
    assert [f.code for f in result.findings] == ["mx.cname"]
    assert "real.example.test" in result.findings[0].remedy
    assert result.data["hosts"][0]["cname"] == ["real.example.test."]


def test_implicit_mx_with_an_address_warns() -> None:
    host = MxHost(0, "example.test", _a("example.test.", "192.0.2.5"), _none("example.test"))
    result = evaluate_mx(_obs(host, implicit=True))
    assert [f.code for f in result.findings] == ["mx.implicit"]
    assert result.data["implicit"] is True
