"""The fcrdns check against the lab: MX addresses, --ip senders and hosts."""

from __future__ import annotations

import asyncio

from mailcheck.checks import CheckName
from mailcheck.dns import DnsConfig
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import Report, Status
from tests.integration.helpers import codes, result, run_domain


def _by_ip(report: Report) -> dict[str, dict[str, object]]:
    return {h["ip"]: h for h in result(report, "fcrdns").data["hosts"]}


def test_good_domain_every_address_confirmed(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "good.test", ips=("192.0.2.20",))
    fcrdns = result(report, "fcrdns")
    assert fcrdns.status is Status.PASS
    hosts = _by_ip(report)
    assert set(hosts) == {"192.0.2.10", "2001:db8::10", "192.0.2.11", "192.0.2.20"}
    assert all(h["confirmed"] for h in hosts.values())
    assert hosts["2001:db8::10"]["ptr"] == ["mx1.good.test"]
    assert hosts["192.0.2.20"]["sources"] == ["--ip"]
    assert hosts["192.0.2.10"]["sources"] == ["mx mx1.good.test"]


def test_broken_domain_each_reverse_dns_fault(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "broken.test")
    fcrdns = result(report, "fcrdns")
    by_code = {f.code: f for f in fcrdns.findings}
    assert by_code["fcrdns.not-confirmed"].evidence["ip"] == "192.0.2.30"
    assert by_code["fcrdns.not-confirmed"].evidence["forward"] == {"mail.isp.test": ["192.0.2.99"]}
    assert by_code["fcrdns.no-ptr"].evidence["ip"] == "192.0.2.31"
    assert by_code["fcrdns.no-ptr"].evidence["outcome"] == "nxdomain"
    assert by_code["fcrdns.generic-ptr"].evidence["ip"] == "192.0.2.32"
    assert by_code["fcrdns.multiple-ptr"].evidence["ip"] == "192.0.2.33"
    assert fcrdns.status is Status.FAIL
    hosts = _by_ip(report)
    assert hosts["192.0.2.32"]["confirmed"] is True  # generic, but it does point back
    assert hosts["192.0.2.33"]["confirmed"] is True


def test_ptr_timeout_is_unknown_not_missing(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "slow.test")
    found = codes(report, "fcrdns")
    assert "fcrdns.no-ptr" not in found
    assert "dns.timeout" in found
    assert result(report, "fcrdns").status is Status.ERROR
    assert _by_ip(report)["192.0.2.35"]["outcome"] == "timeout"


def test_shared_mx_facts_are_looked_up_once(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "good.test")
    trace = report.dns.trace
    keys = [(t["name"], t["type"]) for t in trace]
    assert len(keys) == len(set(keys)), "a query went out twice"
    assert ("good.test.", "MX") in keys
    # mx1.good.test A is asked by mx and again by fcrdns (forward of the PTR): one query.
    assert report.dns.cache_hits >= 2


def _fcrdns_only(config: DnsConfig, target: Target) -> Report:
    options = RunOptions(checks=(CheckName.FCRDNS,))
    return asyncio.run(run_target(target, config, options))


def test_single_address_and_host_targets(lab_config: DnsConfig) -> None:
    by_ip = _fcrdns_only(lab_config, Target(label="192.0.2.31", ips=("192.0.2.31",)))
    assert codes(by_ip, "fcrdns") == ["fcrdns.no-ptr"]
    by_host = _fcrdns_only(lab_config, Target(label="mx1.good.test", hosts=("mx1.good.test",)))
    assert result(by_host, "fcrdns").status is Status.PASS
    assert set(_by_ip(by_host)) == {"192.0.2.10", "2001:db8::10"}
    missing = _fcrdns_only(lab_config, Target(label="nope.good.test", hosts=("nope.good.test",)))
    assert codes(missing, "fcrdns") == ["fcrdns.host-unresolvable"]


def test_no_addresses_is_skipped(lab_config: DnsConfig) -> None:
    report = run_domain(lab_config, "nullmx.test")
    assert result(report, "fcrdns").status is Status.SKIPPED
    assert codes(report, "fcrdns") == ["fcrdns.no-addresses"]


def test_ptr_name_that_is_an_alias(lab_config: DnsConfig) -> None:
    report = _fcrdns_only(lab_config, Target(label="192.0.2.36", ips=("192.0.2.36",)))
    assert codes(report, "fcrdns") == ["fcrdns.ptr-cname"]
    finding = result(report, "fcrdns").findings[0]
    assert finding.evidence["cname_chain"] == ["real.isp.test."]
    assert _by_ip(report)["192.0.2.36"]["confirmed"] is True
