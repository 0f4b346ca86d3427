"""MTA-STS and TLS-RPT gathered for real: the lab DNS server (sts.test) and the HTTPS policy host.

Every scenario of fixtures/zones/sts.test.zone is fetched through the run's DnsClient and the
policy host of tests/lab/https_policy.py on 127.0.0.60, with the lab PKI's root as the trust
store, then judged against the domain's real MX hosts.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcheck.checks.mta_sts import MtaStsObservation, StsMode, evaluate_mta_sts
from mailcheck.checks.mta_sts_fetch import Roots, gather_mta_sts, policy_context
from mailcheck.checks.mx import gather_mx
from mailcheck.dns import DnsClient, DnsConfig, Nameserver
from mailcheck.model import Finding, Status, status_of
from tests.lab.dnsserver import LabHandle
from tests.lab.https_policy import (
    ADDRESS,
    BOMB_BYTES,
    DEAD_ADDRESS,
    PolicyHost,
    encoded_reply,
)
from tests.lab.pki import LabPki

TIMEOUT = 2.0
"""Per-address bound for the fetch; the `slow` scenario uses a smaller one."""


@pytest.fixture(scope="module")
def policy_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyHost]:
    with PolicyHost(LabPki(tmp_path_factory.mktemp("mta-sts-pki"))) as host:
        yield host


@pytest.fixture
def config(lab: LabHandle) -> DnsConfig:
    return DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.5, retries=0)


def gather(
    config: DnsConfig,
    host: PolicyHost,
    domain: str,
    *,
    roots: Roots | None = None,
    timeout: float = TIMEOUT,
) -> tuple[MtaStsObservation, tuple[Finding, ...]]:
    async def run() -> tuple[MtaStsObservation, tuple[Finding, ...]]:
        dns = DnsClient(config)
        mx = await gather_mx(dns, domain)
        obs = await gather_mta_sts(
            dns, domain, port=host.port, roots=roots or host.ca_file, timeout=timeout
        )
        return obs, evaluate_mta_sts(obs, [h.host for h in mx.hosts])

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("domain", "expected", "status"),
    [
        ("good.sts.test", {"mta-sts.ok", "tls-rpt.ok"}, Status.PASS),
        ("redirect.sts.test", {"mta-sts.redirect", "tls-rpt.missing"}, Status.FAIL),
        ("notfound.sts.test", {"mta-sts.http-status", "tls-rpt.missing"}, Status.FAIL),
        ("badct.sts.test", {"mta-sts.content-type", "tls-rpt.ok"}, Status.WARNING),
        (
            "nomatch.sts.test",
            {"mta-sts.mx-not-covered", "mta-sts.pattern-unused", "tls-rpt.ok"},
            Status.FAIL,
        ),
        ("testing.sts.test", {"mta-sts.policy-syntax", "tls-rpt.ok"}, Status.FAIL),
        (
            "short.sts.test",
            {"mta-sts.testing", "mta-sts.short-max-age", "tls-rpt.ok"},
            Status.WARNING,
        ),
        ("none.sts.test", {"mta-sts.mode-none", "tls-rpt.missing"}, Status.WARNING),
        ("syntax.sts.test", {"mta-sts.policy-syntax", "tls-rpt.missing"}, Status.FAIL),
        ("twotxt.sts.test", {"mta-sts.txt-multiple", "tls-rpt.missing"}, Status.FAIL),
        ("badtxt.sts.test", {"mta-sts.txt-syntax", "tls-rpt.missing"}, Status.FAIL),
        ("nohost.sts.test", {"mta-sts.fetch-failed", "tls-rpt.missing"}, Status.FAIL),
        ("dnsfail.sts.test", {"mta-sts.fetch-failed", "dns.servfail"}, Status.ERROR),
        ("txtfail.sts.test", {"dns.servfail", "tls-rpt.missing"}, Status.ERROR),
        ("refused.sts.test", {"mta-sts.fetch-failed", "tls-rpt.missing"}, Status.FAIL),
        ("wrongcert.sts.test", {"mta-sts.policy-cert-invalid", "tls-rpt.missing"}, Status.FAIL),
        ("big.sts.test", {"mta-sts.fetch-failed", "tls-rpt.missing"}, Status.FAIL),
        ("badrua.sts.test", {"mta-sts.ok", "tls-rpt.syntax"}, Status.WARNING),
        ("plain.sts.test", {"mta-sts.none", "tls-rpt.missing"}, Status.PASS),
    ],
)
def test_scenarios(
    config: DnsConfig, policy_host: PolicyHost, domain: str, expected: set[str], status: Status
) -> None:
    _obs, findings = gather(config, policy_host, domain)
    assert {f.code for f in findings} == expected
    assert status_of(findings) is status


def test_good_policy_is_fetched_by_name_from_the_lab_address(
    config: DnsConfig, policy_host: PolicyHost, lab: LabHandle
) -> None:
    before = len(policy_host.requests)
    obs, _ = gather(config, policy_host, "good.sts.test")
    assert obs.fetch is not None and obs.fetch.response is not None
    assert obs.fetch.response.address == ADDRESS
    # SNI and Host name the policy host, so the certificate was checked against the name
    # (it has no IP address in it), and the address came from the lab DNS server.
    request = policy_host.requests[before]
    assert request.sni == "mta-sts.good.sts.test"
    assert request.host == f"mta-sts.good.sts.test:{policy_host.port}"
    assert request.target == "/.well-known/mta-sts.txt"
    assert any(q.qname == "mta-sts.good.sts.test." and q.qtype == "A" for q in lab.query_log)
    policy = obs.applied_policy
    assert policy is not None and policy.mode is StsMode.ENFORCE
    assert policy.covers("a.mx.good.sts.test") and policy.line_ending == "CRLF"
    assert obs.record is not None and obs.record.id == "20250101T000000"  # two strings joined


def test_redirect_is_not_followed(config: DnsConfig, policy_host: PolicyHost) -> None:
    before = len(policy_host.requests)
    obs, findings = gather(config, policy_host, "redirect.sts.test")
    redirect = next(f for f in findings if f.code == "mta-sts.redirect")
    assert redirect.evidence["location"] == "https://www.redirect.sts.test/mta-sts.txt"
    assert [r.sni for r in policy_host.requests[before:]] == ["mta-sts.redirect.sts.test"]
    assert obs.policy is None


def test_uncovered_mx_hosts_are_the_checkdmarc_blind_spots(
    config: DnsConfig, policy_host: PolicyHost
) -> None:
    _obs, findings = gather(config, policy_host, "nomatch.sts.test")
    uncovered = {f.evidence["host"] for f in findings if f.code == "mta-sts.mx-not-covered"}
    # checkdmarc matches both: an unanchored suffix, and a wildcard over two labels.
    assert uncovered == {"mx1.nomatch.sts.test", "a.b.mx.nomatch.sts.test"}
    unused = next(f for f in findings if f.code == "mta-sts.pattern-unused")
    assert unused.evidence["unused"] == ["mail.example.net", "x1.nomatch.sts.test"]


def test_lf_policy_with_too_large_max_age(config: DnsConfig, policy_host: PolicyHost) -> None:
    obs, findings = gather(config, policy_host, "testing.sts.test")
    assert obs.policy is not None and obs.policy.line_ending == "LF"
    assert obs.policy.mode is StsMode.TESTING
    syntax = next(f for f in findings if f.code == "mta-sts.policy-syntax")
    assert [p["where"] for p in syntax.evidence["problems"]] == ["max_age"]
    assert obs.applied_policy is None


def test_syntax_errors_are_named(config: DnsConfig, policy_host: PolicyHost) -> None:
    _obs, findings = gather(config, policy_host, "syntax.sts.test")
    syntax = next(f for f in findings if f.code == "mta-sts.policy-syntax")
    problems = {(p["where"], p["fatal"]) for p in syntax.evidence["problems"]}
    assert problems == {("version", True), ("mode", True), ("line 3", False), ("line 4", False)}


def test_wrong_certificate_name(config: DnsConfig, policy_host: PolicyHost) -> None:
    obs, findings = gather(config, policy_host, "wrongcert.sts.test")
    assert obs.fetch is not None
    [attempt] = obs.fetch.attempts
    assert attempt.cert_invalid and attempt.step.value == "tls"
    assert "mta-sts.wrongcert.sts.test" in attempt.detail  # "Hostname mismatch, ..."


def test_untrusted_root_is_a_certificate_failure(
    config: DnsConfig, policy_host: PolicyHost, tmp_path: Path
) -> None:
    other = LabPki(tmp_path)  # a different root: the lab host's chain does not lead to it
    _obs, findings = gather(config, policy_host, "good.sts.test", roots=other.ca_file)
    invalid = next(f for f in findings if f.code == "mta-sts.policy-cert-invalid")
    assert "local issuer" in invalid.evidence["detail"]


def test_ready_ssl_context_is_used(config: DnsConfig, policy_host: PolicyHost) -> None:
    context = ssl.create_default_context(cafile=str(policy_host.ca_file))
    _obs, findings = gather(config, policy_host, "good.sts.test", roots=context)
    assert "mta-sts.ok" in {f.code for f in findings}


def test_unreadable_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load CA file"):
        policy_context(tmp_path / "missing.pem")


def test_slow_server_is_bounded_by_the_timeout(config: DnsConfig, policy_host: PolicyHost) -> None:
    started = time.monotonic()
    obs, findings = gather(config, policy_host, "slow.sts.test", timeout=0.4)
    assert time.monotonic() - started < 3.0
    assert obs.fetch is not None
    [attempt] = obs.fetch.attempts
    assert attempt.timed_out and attempt.step.value == "http"
    failed = next(f for f in findings if f.code == "mta-sts.fetch-failed")
    assert failed.evidence["timed_out"] is True and not failed.indeterminate


def test_connection_refused(config: DnsConfig, policy_host: PolicyHost) -> None:
    obs, findings = gather(config, policy_host, "refused.sts.test")
    assert obs.fetch is not None
    [attempt] = obs.fetch.attempts
    assert (attempt.address, attempt.step.value) == (DEAD_ADDRESS, "connect")
    assert "refused" in attempt.detail.lower()


def test_oversized_policy_is_cut_off(config: DnsConfig, policy_host: PolicyHost) -> None:
    obs, _ = gather(config, policy_host, "big.sts.test")
    assert obs.fetch is not None and obs.fetch.response is not None
    assert obs.fetch.response.oversize and obs.fetch.response.body is None


def test_dns_failures_are_indeterminate(config: DnsConfig, policy_host: PolicyHost) -> None:
    _obs, findings = gather(config, policy_host, "dnsfail.sts.test")
    fetch_failed = next(f for f in findings if f.code == "mta-sts.fetch-failed")
    assert fetch_failed.indeterminate and fetch_failed.evidence["step"] == "dns"
    _obs, findings = gather(config, policy_host, "nohost.sts.test")
    absent = next(f for f in findings if f.code == "mta-sts.fetch-failed")
    assert not absent.indeterminate


def test_no_fetch_without_an_sts_record(config: DnsConfig, policy_host: PolicyHost) -> None:
    before = len(policy_host.requests)
    obs, _ = gather(config, policy_host, "plain.sts.test")
    assert obs.fetch is None
    assert len(policy_host.requests) == before


def test_bare_tlsrpt_address(config: DnsConfig, policy_host: PolicyHost) -> None:
    obs, findings = gather(config, policy_host, "badrua.sts.test")
    syntax = next(f for f in findings if f.code == "tls-rpt.syntax")
    assert "mailto:tlsrpt@badrua.sts.test" in syntax.message
    assert obs.to_json()["tls_rpt"]["valid"] is False


def encoded_host(tmp_path: Path, name: str) -> PolicyHost:
    """A policy host serving `encoded_reply(name)` for good.sts.test (whose TXT announces it)."""
    return PolicyHost(LabPki(tmp_path), {"good": encoded_reply(name)})


def test_gzip_bomb_is_refused_in_bounded_memory_and_time(config: DnsConfig, tmp_path: Path) -> None:
    with encoded_host(tmp_path, "bomb") as host:
        tracemalloc.start()
        try:
            started = time.monotonic()
            obs, findings = gather(config, host, "good.sts.test")
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # A few hundred bytes that expand to 64 MiB: httpx alone would decode all of it at once.
    assert peak < BOMB_BYTES // 8, f"peak {peak >> 20} MiB"
    assert elapsed < TIMEOUT
    assert obs.fetch is not None and obs.fetch.response is not None
    response = obs.fetch.response
    assert response.content_encoding == "gzip, gzip" and response.body_bytes < 1024
    assert response.oversize and response.body is None and obs.policy is None
    assert {f.code for f in findings} == {"mta-sts.fetch-failed", "tls-rpt.ok"}
    failed = next(f for f in findings if f.code == "mta-sts.fetch-failed")
    assert failed.evidence["step"] == "http" and failed.evidence["content_encoding"] == "gzip, gzip"
    assert "decompressed" in failed.message and not failed.indeterminate
    assert status_of(findings) is Status.FAIL


def test_gzip_policy_is_decompressed_and_flagged(config: DnsConfig, tmp_path: Path) -> None:
    with encoded_host(tmp_path, "gzip") as host:
        obs, findings = gather(config, host, "good.sts.test")
    assert {f.code for f in findings} == {"mta-sts.content-encoding", "tls-rpt.ok"}
    assert status_of(findings) is Status.WARNING
    policy = obs.applied_policy
    assert policy is not None and policy.mode is StsMode.ENFORCE
    assert policy.covers("a.mx.good.sts.test")


def test_unsupported_content_coding_is_a_failed_fetch(config: DnsConfig, tmp_path: Path) -> None:
    with encoded_host(tmp_path, "brotli") as host:
        obs, findings = gather(config, host, "good.sts.test")
    assert {f.code for f in findings} == {"mta-sts.fetch-failed", "tls-rpt.ok"}
    failed = next(f for f in findings if f.code == "mta-sts.fetch-failed")
    assert failed.evidence["content_encoding"] == "br" and "br" in failed.evidence["detail"]
    assert obs.policy is None
