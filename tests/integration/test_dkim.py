"""The dkim check against the lab: fixtures/zones/dkim.test.zone has one selector per case.

The check is not registered in the engine yet, so most tests run it directly on a
CheckContext; one runs it through the engine with a registry override.
"""

from __future__ import annotations

import asyncio

import pytest

from mailcheck.checks import CheckName
from mailcheck.checks.base import CheckContext
from mailcheck.checks.dkim import DkimCheck, common_selectors
from mailcheck.dns import DnsClient, DnsConfig, Nameserver
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import CheckResult, Severity, Status
from tests.lab.dnsserver import LabHandle

PROBED = len(common_selectors()) + 2  # plus selector1-/selector2-<domain-with-dashes>


def run_dkim(config: DnsConfig, domain: str | None, *selectors: str) -> CheckResult:
    """Run the dkim check on its own against the lab."""
    ctx = CheckContext(dns=DnsClient(config), domain=domain, dkim_selectors=selectors)
    return asyncio.run(DkimCheck().run(ctx))


def codes(result: CheckResult) -> list[str]:
    return [f.code for f in result.findings]


def selector_data(result: CheckResult, selector: str) -> dict[str, object]:
    return next(s for s in result.data["selectors"] if s["selector"] == selector)


# ---------------------------------------------------------------- one finding code per selector


@pytest.mark.parametrize(
    ("selector", "expected", "status"),
    [
        ("rsa2048", [], Status.PASS),
        ("rsa4096", [("dkim.key-over-2048", Severity.INFO)], Status.PASS),
        ("ed25519", [("dkim.ed25519", Severity.INFO)], Status.PASS),
        ("rsa1024", [("dkim.key-under-2048", Severity.WARNING)], Status.WARNING),
        ("rsa512", [("dkim.key-too-short", Severity.ERROR)], Status.FAIL),
        ("pkcs1", [("dkim.key-pkcs1", Severity.WARNING)], Status.WARNING),
        ("revoked", [("dkim.revoked", Severity.ERROR)], Status.FAIL),
        ("testing", [("dkim.testing", Severity.WARNING)], Status.WARNING),
        ("sha1", [("dkim.sha1-only", Severity.ERROR)], Status.FAIL),
        ("tlsrpt", [("dkim.service-not-email", Severity.ERROR)], Status.FAIL),
        ("badbase64", [("dkim.key-invalid", Severity.ERROR)], Status.FAIL),
        ("garbage", [("dkim.key-invalid", Severity.ERROR)], Status.FAIL),
        ("unknownk", [("dkim.unknown-key-type", Severity.ERROR)], Status.FAIL),
        ("nop", [("dkim.no-p-tag", Severity.ERROR)], Status.FAIL),
        ("syntax", [("dkim.syntax", Severity.ERROR)], Status.FAIL),
        ("badversion", [("dkim.bad-version", Severity.ERROR)], Status.FAIL),
        ("tworecords", [("dkim.multiple-records", Severity.ERROR)], Status.FAIL),
        ("spf", [("dkim.not-a-key", Severity.ERROR)], Status.FAIL),
        ("esp", [("dkim.cname", Severity.INFO)], Status.PASS),
        ("dangling", [("dkim.dangling-cname", Severity.ERROR)], Status.FAIL),
        ("nosuch", [("dkim.selector-missing", Severity.ERROR)], Status.FAIL),
        ("cnamefail", [("dns.servfail", Severity.ERROR)], Status.ERROR),
    ],
)
def test_named_selector(
    lab_config: DnsConfig, selector: str, expected: list[tuple[str, Severity]], status: Status
) -> None:
    result = run_dkim(lab_config, "dkim.test", selector)
    assert [(f.code, f.severity) for f in result.findings] == expected
    assert result.status is status
    assert result.data["discovered"] is False and result.data["probed"] == 1
    assert [s["selector"] for s in result.data["selectors"]] == [selector]
    for finding in result.findings:
        assert selector in finding.message
        assert finding.evidence["selector"] == selector


def test_key_split_into_two_strings_is_joined(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "rsa2048")
    data = selector_data(result, "rsa2048")
    assert data["found"] is True and data["key_type"] == "rsa" and data["key_bits"] == 2048
    assert data["testing"] is False and data["revoked"] is False and data["cname"] == []
    record = str(data["record"])
    assert record.startswith("v=DKIM1; k=rsa; p=MIIB") and " " not in record.split("p=")[1]
    assert result.facts is not None
    assert result.facts.rows == (("rsa2048", "rsa 2048", "-", "-"),)


def test_every_named_selector_is_listed_even_when_missing(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "rsa2048", "nosuch")
    assert codes(result) == ["dkim.selector-missing"]
    assert selector_data(result, "nosuch") == {
        "selector": "nosuch",
        "found": False,
        "outcome": "nxdomain",
        "key_type": None,
        "key_bits": None,
        "testing": False,
        "revoked": False,
        "record": None,
        "cname": [],
    }
    assert result.data["domainkey"] == "nodata"


def test_revoked_key_beside_a_usable_one_is_a_warning(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "revoked", "rsa2048")
    assert [(f.code, f.severity) for f in result.findings] == [("dkim.revoked", Severity.WARNING)]
    assert "rsa2048" in result.findings[0].message
    assert selector_data(result, "revoked")["revoked"] is True
    assert result.status is Status.WARNING


def test_ed25519_alone_asks_for_an_rsa_key_too(lab_config: DnsConfig) -> None:
    alone = run_dkim(lab_config, "dkim.test", "ed25519").findings[0]
    assert "sign with an RSA key too" in alone.message and alone.remedy
    paired = run_dkim(lab_config, "dkim.test", "ed25519", "rsa2048").findings[0]
    assert "rsa2048" in paired.message and not paired.remedy
    data = selector_data(run_dkim(lab_config, "dkim.test", "ed25519"), "ed25519")
    assert (data["key_type"], data["key_bits"]) == ("ed25519", None)


def test_key_delegated_to_an_esp_by_cname(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "esp")
    data = selector_data(result, "esp")
    assert data["found"] is True and data["key_bits"] == 2048
    assert data["cname"] == ["dkim1.customer.esp.test"]
    assert result.findings[0].evidence["cname"] == ["dkim1.customer.esp.test"]
    assert result.facts is not None
    assert result.facts.rows == (("esp", "rsa 2048", "-", "dkim1.customer.esp.test"),)


def test_dangling_cname_means_no_key_is_published(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "dangling")
    finding = result.findings[0]
    assert "gone.customer.esp.test" in finding.message and "does not exist" in finding.message
    assert finding.evidence["outcome"] == "nxdomain"
    data = selector_data(result, "dangling")
    assert data["found"] is False and data["cname"] == ["gone.customer.esp.test"]


def test_garbage_bytes_are_a_finding_not_a_traceback(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "garbage")
    record = str(selector_data(result, "garbage")["record"])
    assert "\ufffd" in record and "\x1b" in record  # kept as published for machines
    assert all("\x1b" not in f.message for f in result.findings)  # escaped for people


def test_two_txt_records_are_both_in_the_evidence(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "dkim.test", "tworecords")
    assert len(result.findings[0].evidence["records"]) == 2
    assert selector_data(result, "tworecords")["record"] is None


# ---------------------------------------------------------------- lookups that fail


def test_timeout_is_unknown_not_missing(lab: LabHandle) -> None:
    config = DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.3, retries=0)
    result = run_dkim(config, "x.timeout.test", "s1")
    assert codes(result) == ["dns.timeout"]
    assert result.findings[0].indeterminate
    assert result.findings[0].evidence["selector"] == "s1"
    assert result.status is Status.ERROR
    assert selector_data(result, "s1")["outcome"] == "timeout"
    assert result.data["domainkey"] == "timeout"  # a hint only: no finding of its own


def test_timeouts_while_probing_are_one_finding_and_never_not_found(lab: LabHandle) -> None:
    config = DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.3, retries=0)
    result = run_dkim(config, "x.timeout.test")
    assert codes(result) == ["dns.timeout"]
    assert len(result.findings[0].evidence["failed_selectors"]) == PROBED
    assert result.status is Status.ERROR
    assert result.data["selectors"] == []


# ---------------------------------------------------------------- discovery


def test_good_domain_is_found_by_probing(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "good.test")
    assert result.status is Status.PASS and result.findings == ()
    assert result.data["probed"] == PROBED and result.data["discovered"] is True
    assert [s["selector"] for s in result.data["selectors"]] == ["selector1"]
    assert selector_data(result, "selector1")["key_bits"] == 2048


def test_broken_domain_shows_warnings(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "broken.test")
    assert codes(result) == ["dkim.key-under-2048", "dkim.testing"]
    assert result.status is Status.WARNING


def test_microsoft_365_selectors_and_domain_derived_pattern(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "m365.dkim.test")
    assert [s["selector"] for s in result.data["selectors"]] == [
        "selector1",
        "selector2-m365-dkim-test",
    ]
    assert selector_data(result, "selector1")["cname"] == [
        "selector1-m365-dkim-test._domainkey.tenant.esp.test"
    ]
    assert codes(result) == ["dkim.cname"]
    assert result.status is Status.PASS


def test_no_domainkey_at_all_is_not_found(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "nomx.test")
    assert codes(result) == ["dkim.not-found"]
    finding = result.findings[0]
    assert finding.severity is Severity.WARNING and not finding.indeterminate
    assert f"the {PROBED} selectors" in finding.message
    assert "does not prove" in finding.message and "--dkim-selector" in finding.remedy
    assert finding.evidence["domainkey"] == "nxdomain" and finding.evidence["probed"] == PROBED
    assert result.data == {
        "selectors": [],
        "probed": PROBED,
        "discovered": True,
        "domainkey": "nxdomain",
    }
    assert result.facts is None
    assert result.status is Status.WARNING


def test_domainkey_exists_but_no_common_selector_matches(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, "hidden.dkim.test")
    assert [(f.code, f.severity) for f in result.findings] == [
        ("dkim.selector-unknown", Severity.INFO)
    ]
    assert "--dkim-selector" in result.findings[0].remedy
    assert result.data["domainkey"] == "nodata"
    assert result.status is Status.SKIPPED  # no key to judge
    named = run_dkim(lab_config, "hidden.dkim.test", "x7q9")
    assert named.status is Status.PASS and named.findings == ()


def test_probing_asks_every_selector_once_with_the_microsoft_pattern(
    lab_config: DnsConfig,
) -> None:
    client = DnsClient(lab_config)
    ctx = CheckContext(dns=client, domain="hidden.dkim.test")
    asyncio.run(DkimCheck().run(ctx))
    asked = [t["name"] for t in client.summary(with_trace=True).trace]
    assert len(asked) == PROBED + 1 == len(set(asked))
    assert "_domainkey.hidden.dkim.test." in asked
    assert "selector1-hidden-dkim-test._domainkey.hidden.dkim.test." in asked
    assert "google._domainkey.hidden.dkim.test." in asked


def test_no_domain_is_skipped(lab_config: DnsConfig) -> None:
    result = run_dkim(lab_config, None)
    assert result.status is Status.SKIPPED and result.findings == ()


# ---------------------------------------------------------------- through the engine


def test_runs_through_the_engine_with_the_target_selectors(lab_config: DnsConfig) -> None:
    target = Target(label="dkim.test", domain="dkim.test", dkim_selectors=("rsa1024",))
    options = RunOptions(checks=(CheckName.DKIM,))
    report = asyncio.run(run_target(target, lab_config, options))
    (result,) = report.checks
    assert result.check == "dkim"
    assert codes(result) == ["dkim.key-under-2048"]
    assert report.dns.queries == 2  # the selector and _domainkey


def test_dmarc_reads_the_dkim_facts_of_the_same_run(lab_config: DnsConfig) -> None:
    target = Target(label="nospf.test", domain="nospf.test")
    both = asyncio.run(
        run_target(target, lab_config, RunOptions(checks=(CheckName.DKIM, CheckName.DMARC)))
    )
    dmarc = next(c for c in both.checks if c.check == "dmarc")
    assert dmarc.data["alignment"] == {"spf_record": False, "dkim_key": False}
    assert "no DKIM key was found" in dmarc.findings[0].message
    keys = [t for t in both.dns.trace if t["name"].endswith("._domainkey.nospf.test.")]
    assert len(keys) == len({t["name"] for t in keys})  # probed once, shared by both checks
