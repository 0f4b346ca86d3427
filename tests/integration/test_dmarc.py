"""The dmarc check against the lab, with checkdmarc as a differential oracle."""

from __future__ import annotations

import logging

import dns.nameserver
import pytest

from mailcheck.checks import CheckName
from mailcheck.dns import DnsConfig, Nameserver
from mailcheck.model import Status
from tests.integration.helpers import codes, result, run_domain
from tests.lab.dnsserver import LabHandle

DMARC_ONLY = (CheckName.DMARC,)


@pytest.fixture
def fast_config(lab: LabHandle) -> DnsConfig:
    return DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.3, retries=0)


@pytest.mark.parametrize(
    ("domain", "expected", "status"),
    [
        ("good.test", [], Status.PASS),
        ("dmarc.test", ["dmarc.pct", "dmarc.sp-none", "dmarc.report-unauthorized"], Status.WARNING),
        ("none.dmarc.test", ["dmarc.policy-none", "dmarc.no-rua"], Status.WARNING),
        ("multi.dmarc.test", ["dmarc.multiple"], Status.FAIL),
        ("nop.dmarc.test", ["dmarc.missing-policy"], Status.FAIL),
        ("nomx.test", ["dmarc.missing"], Status.FAIL),
        (
            "spfonly.dmarc.test",
            ["dmarc.inherited", "dmarc.pct", "dmarc.sp-none", "dmarc.report-unauthorized"],
            Status.WARNING,
        ),
        ("x.servfail.test", ["dns.servfail"], Status.ERROR),
        ("x.refused.test", ["dns.refused"], Status.ERROR),
        ("dup.dmarc.test", ["dmarc.duplicate-tag", "dmarc.policy-none"], Status.FAIL),
    ],
)
def test_fixture_domains(
    fast_config: DnsConfig, domain: str, expected: list[str], status: Status
) -> None:
    report = run_domain(fast_config, domain, checks=DMARC_ONLY)
    assert codes(report, "dmarc") == expected
    assert result(report, "dmarc").status is status


def test_invalid_record_names_each_tag_and_keeps_the_raw_record(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "bad.dmarc.test", checks=DMARC_ONLY)
    dmarc = result(report, "dmarc")
    tags = {f.evidence.get("tag") for f in dmarc.findings if f.code == "dmarc.invalid-value"}
    assert tags == {"p", "adkim"}
    assert "dmarc.invalid-uri" in codes(report, "dmarc")
    assert "dmarc.unknown-tag" in codes(report, "dmarc")
    assert dmarc.status is Status.FAIL
    assert dmarc.data["record"].startswith("v=DMARC1; p=block")
    assert dmarc.data["policy"] is None


def test_syntax_error_record_is_not_a_policy(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "syntax.dmarc.test", checks=DMARC_ONLY)
    assert "dmarc.syntax" in codes(report, "dmarc")


def test_inherited_policy_says_which_policy_applies(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "sub.dmarc.test", checks=DMARC_ONLY)
    data = result(report, "dmarc").data
    assert codes(report, "dmarc")[0] == "dmarc.inherited"
    assert (data["location"], data["policy"], data["applied_policy"]) == (
        "dmarc.test",
        "quarantine",
        "none",  # sp=none applies to an existing subdomain
    )
    gone = run_domain(fast_config, "gone.dmarc.test", checks=DMARC_ONLY)
    assert result(gone, "dmarc").data["applied_because"].startswith("np")


def test_apex_record_has_no_effect(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "apex.dmarc.test", checks=DMARC_ONLY)
    assert codes(report, "dmarc")[:2] == ["dmarc.apex-record", "dmarc.inherited"]


def test_report_authorization(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "dmarc.test", checks=DMARC_ONLY)
    unauthorized = [
        f for f in result(report, "dmarc").findings if f.code == "dmarc.report-unauthorized"
    ]
    # collector.test authorizes everybody (wildcard); unauth.test nobody; dmarc.test is internal.
    assert [f.evidence["destination"] for f in unauthorized] == ["unauth.test"]
    testing = run_domain(fast_config, "testing.dmarc.test", checks=DMARC_ONLY)
    assert "dmarc.report-unauthorized" not in codes(testing, "dmarc")  # specific record
    assert {"dmarc.testing", "dmarc.np-none", "dmarc.removed-tag"} <= set(codes(testing, "dmarc"))


def test_authorization_timeout_is_could_not_verify(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "slowauth.dmarc.test", checks=DMARC_ONLY)
    found = codes(report, "dmarc")
    assert "dmarc.report-unauthorized" not in found
    assert found.count("dns.timeout") == 2  # wildcard and specific authorization lookups
    assert result(report, "dmarc").status is Status.ERROR


def test_alignment_readiness(fast_config: DnsConfig) -> None:
    report = run_domain(fast_config, "nospf.test", checks=DMARC_ONLY)
    assert codes(report, "dmarc") == ["dmarc.cannot-pass"]
    ready = run_domain(fast_config, "dmarc.test", checks=DMARC_ONLY)
    assert result(ready, "dmarc").data["alignment"]["spf_record"] is True


ORACLE_DOMAINS = [
    "good.test",
    "dmarc.test",
    "sub.dmarc.test",
    "none.dmarc.test",
    "testing.dmarc.test",
    "nospf.test",
    "nomx.test",
]


@pytest.mark.parametrize("domain", ORACLE_DOMAINS)
def test_checkdmarc_agrees_on_location_and_policy(
    lab: LabHandle, fast_config: DnsConfig, domain: str
) -> None:
    checkdmarc_dmarc = pytest.importorskip("checkdmarc.dmarc")
    logging.getLogger("checkdmarc").setLevel(logging.CRITICAL)
    ours = result(run_domain(fast_config, domain, checks=DMARC_ONLY), "dmarc").data
    nameservers = [dns.nameserver.Do53Nameserver(lab.host, lab.port)]
    try:
        theirs = checkdmarc_dmarc.query_dmarc_record(domain, nameservers=nameservers, timeout=1.0)
    except checkdmarc_dmarc.DMARCRecordNotFound:
        assert ours["record"] is None
        return
    assert ours["location"] == theirs["location"]
    assert ours["record"] == theirs["record"]
    parsed = checkdmarc_dmarc.parse_dmarc_record(
        theirs["record"], theirs["location"], nameservers=nameservers, timeout=1.0
    )
    assert ours["policy"] == parsed["tags"]["p"]["value"]
    assert ours["tags"]["adkim"]["value"] == parsed["tags"]["adkim"]["value"]
