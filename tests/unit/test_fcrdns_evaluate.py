"""evaluate_ip on plain observations: the pure half of the fcrdns check."""

from __future__ import annotations

import dns.rdata

from mailcheck.checks.fcrdns import ForwardLookup, IpObservation, evaluate_ip
from mailcheck.dns import DnsAnswer, Outcome


def _ptr(*names: str) -> DnsAnswer:
    records = tuple(dns.rdata.from_text("IN", "PTR", n) for n in names)
    return DnsAnswer("7.2.0.192.in-addr.arpa.", "PTR", Outcome.ANSWER, records)


def _forward(name: str, *addresses: str, outcome: Outcome = Outcome.ANSWER) -> ForwardLookup:
    records = tuple(dns.rdata.from_text("IN", "A", a) for a in addresses)
    return ForwardLookup(name, DnsAnswer(name, "A", outcome, records))


def test_too_many_ptr_names() -> None:
    names = [f"n{i:02d}.example.test." for i in range(12)]
    forward = tuple(_forward(n, "192.0.2.7") for n in names[:10])
    findings = evaluate_ip(IpObservation("192.0.2.7", ("--ip",), _ptr(*names), forward))
    assert [f.code for f in findings] == ["fcrdns.too-many-ptr"]
    assert len(findings[0].evidence["ptr"]) == 12


def test_confirmed_by_any_name() -> None:
    obs = IpObservation(
        "192.0.2.7",
        ("--ip",),
        _ptr("a.example.test.", "b.example.test."),
        (_forward("a.example.test.", "192.0.2.99"), _forward("b.example.test.", "192.0.2.7")),
    )
    assert obs.confirming == ("b.example.test.",)
    assert [f.code for f in evaluate_ip(obs)] == ["fcrdns.multiple-ptr"]


def test_forward_timeout_without_confirmation_is_unknown() -> None:
    obs = IpObservation(
        "192.0.2.7",
        ("--ip",),
        _ptr("mail.example.test."),
        (_forward("mail.example.test.", outcome=Outcome.TIMEOUT),),
    )
    findings = evaluate_ip(obs)
    assert [f.code for f in findings] == ["dns.timeout"]
    assert findings[0].indeterminate


def test_ipv6_without_ptr_mentions_gmail_rule() -> None:
    ptr = DnsAnswer("x.ip6.arpa.", "PTR", Outcome.NXDOMAIN)
    findings = evaluate_ip(IpObservation("2001:db8::7", ("--ip",), ptr, ()))
    assert [f.code for f in findings] == ["fcrdns.no-ptr"]
    assert "IPv6" in findings[0].message
