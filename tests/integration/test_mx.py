"""The mx check against the lab's fixture domains."""

from __future__ import annotations

import pytest

from mailcheck.checks import CheckName
from mailcheck.dns import DnsConfig
from mailcheck.model import Severity, Status
from tests.integration.helpers import codes, result, run_domain

MX_ONLY = (CheckName.MX,)


def test_good_domain_passes_with_hosts_and_addresses(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "good.test", checks=MX_ONLY)
    mx = result(report, "mx")
    assert mx.status is Status.PASS
    assert mx.findings == ()
    assert mx.data["hosts"] == [
        {
            "preference": 10,
            "host": "mx1.good.test",
            "addresses": ["192.0.2.10", "2001:db8::10"],
            "cname": [],
        },
        {"preference": 20, "host": "mx2.good.test", "addresses": ["192.0.2.11"], "cname": []},
    ]


def test_broken_domain_names_every_fault(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "broken.test", checks=MX_ONLY)
    mx = result(report, "mx")
    found = codes(report, "mx")
    assert "mx.cname" in found
    assert "mx.ip-literal" in found
    assert "mx.host-unresolvable" in found
    unresolvable = next(f for f in mx.findings if f.code == "mx.host-unresolvable")
    assert unresolvable.evidence["host"] == "gone.broken.test"
    # Other MX hosts work, so a dangling one delays mail rather than stopping it.
    assert unresolvable.severity is Severity.WARNING
    assert mx.status is Status.WARNING


@pytest.mark.parametrize(
    ("domain", "code", "status"),
    [
        ("nullmx.test", "mx.null", Status.PASS),
        ("nullmixed.test", "mx.null-mixed", Status.FAIL),
        ("nomx.test", "mx.implicit", Status.WARNING),
        ("nomail.test", "mx.none", Status.FAIL),
        ("does-not-exist.good.test", "mx.nxdomain", Status.FAIL),
        ("dangling.test", "mx.host-unresolvable", Status.FAIL),
        ("x.servfail.test", "dns.servfail", Status.ERROR),
        ("x.refused.test", "dns.refused", Status.ERROR),
        ("x.timeout.test", "dns.timeout", Status.ERROR),
        ("x.formerr.test", "dns.error", Status.ERROR),
    ],
)
def test_fixture_domains(lab_config: DnsConfig, domain: str, code: str, status: Status) -> None:
    report = run_domain(lab_config, domain, checks=MX_ONLY)
    assert codes(report, "mx") == [code]
    assert result(report, "mx").status is status


def test_timeout_of_an_mx_host_is_unknown_not_missing(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "slow.test", checks=MX_ONLY)
    found = codes(report, "mx")
    assert "mx.host-unresolvable" not in found
    assert found == ["dns.timeout", "dns.timeout"]  # A and AAAA of mx.timeout.test
    finding = result(report, "mx").findings[0]
    assert finding.evidence["name"] == "mx.timeout.test."
    assert finding.indeterminate
    assert result(report, "mx").status is Status.ERROR


def test_private_mx_address_leaking_from_split_horizon(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "private.test")
    assert codes(report, "mx") == ["mx.private-address"]
    finding = result(report, "mx").findings[0]
    assert finding.severity is Severity.WARNING  # mx2 is reachable
    assert finding.evidence["addresses"] == [
        {
            "host": "mx1.private.test",
            "ip": "10.1.2.3",
            "reason": finding.evidence["addresses"][0]["reason"],
        }
    ]
    assert "fcrdns.non-public-address" in codes(report, "fcrdns")
    checked = [h["ip"] for h in result(report, "fcrdns").data["hosts"]]
    assert checked == ["192.0.2.10"]  # the private address is not looked up
    assert all("10.1.2.3" not in str(t["name"]) for t in report.dns.trace if t["type"] == "PTR")
