"""Verdicts on fetching the MTA-STS policy (RFC 8461 §3.3), with no I/O: the policy host's
addresses, the connection, the certificate, and the HTTP reply (status, size, content coding,
media type). The policy's content is judged in `mta_sts`.
"""

from __future__ import annotations

import functools
from typing import Any

from mailcheck.checks.mta_sts_observation import (
    MAX_POLICY_BYTES,
    POLICY_PATH,
    FetchStep,
    MtaStsObservation,
    PolicyFetch,
    PolicyResponse,
)
from mailcheck.model import Finding, Severity

CHECK = "tls"

_finding = functools.partial(Finding, CHECK)
"""A finding of the tls check: Finding without its first argument."""

_UNCOMPRESSED = (
    "Serve mta-sts.txt uncompressed: turn compression (gzip, brotli) off for it, or at least "
    "honour `Accept-Encoding: identity`."
)


_STEP_TEXT = {
    FetchStep.DNS: "looking up",
    FetchStep.CONNECT: "connecting to",
    FetchStep.TLS: "the TLS handshake with",
    FetchStep.HTTP: "the HTTP exchange with",
}


def judge_fetch(obs: MtaStsObservation) -> list[Finding]:
    """Findings on fetching the policy: DNS, connection, TLS, and the HTTP reply itself.

    The policy's own syntax is judged by the caller, from `obs.policy`.
    """
    fetch = obs.fetch
    if fetch is None:
        return []
    response = fetch.response
    evidence: dict[str, Any] = {
        "url": fetch.url,
        "host": fetch.host,
        "addresses": list(fetch.addresses),
        "attempts": [a.to_json() for a in fetch.attempts],
    }
    if response is None:
        return [_unfetched(obs, fetch, evidence)]
    evidence |= {"address": response.address, "status": response.status}
    if 300 <= response.status < 400:
        return [
            _finding(
                "mta-sts.redirect",
                Severity.ERROR,
                f"{fetch.url} answers {response.status} {response.reason}, redirecting to "
                f"{response.location or '(no Location)'}: senders must not follow redirects, "
                "so they see no MTA-STS policy.",
                evidence | {"location": response.location},
                remedy=(
                    f"Serve the policy file itself at {fetch.url} with status 200 (a hosting "
                    "or CDN rule that redirects to another name or path is the usual cause)."
                ),
                rfc="RFC 8461 §3.3",
            )
        ]
    if response.status != 200:
        return [
            _finding(
                "mta-sts.http-status",
                Severity.ERROR,
                f"{fetch.url} answers HTTP {response.status} {response.reason}: only 200 "
                "counts, so senders ignore the MTA-STS TXT record.",
                evidence,
                remedy=f"Put the policy file at {POLICY_PATH} on {fetch.host}, served with 200.",
                rfc="RFC 8461 §3.3",
            )
        ]
    codings = response.content_codings
    if codings:
        evidence["content_encoding"] = response.content_encoding
    if response.oversize:
        size = f"more than {MAX_POLICY_BYTES // 1024} KiB"
        what = f"a {', '.join(codings)} body of {size} decompressed" if codings else size
        return [
            _finding(
                "mta-sts.fetch-failed",
                Severity.ERROR,
                f"{fetch.url} sends {what}: senders stop reading and ignore the policy.",
                evidence | {"step": FetchStep.HTTP.value, "bytes": response.body_bytes},
                remedy="Serve only the policy file, uncompressed: a handful of `key: value` lines.",
                rfc="RFC 8461 §3.3",
            )
        ]
    if response.decode_error is not None:
        return [_undecodable(fetch, response, evidence)]
    findings: list[Finding] = []
    if codings:
        findings.append(
            _finding(
                "mta-sts.content-encoding",
                Severity.WARNING,
                f"{fetch.url} is sent compressed (Content-Encoding: {response.content_encoding}) "
                "although the request accepted only identity: senders whose HTTP client does "
                "not decompress see binary data instead of the policy and ignore it. mailcheck "
                "decompressed it to judge the policy.",
                evidence | {"bytes": response.body_bytes},
                remedy=_UNCOMPRESSED,
                rfc="RFC 9110 §12.5.3",
            )
        )
    if response.media_type != "text/plain":
        findings.append(
            _finding(
                "mta-sts.content-type",
                Severity.WARNING,
                f"{fetch.url} is served as {response.content_type or '(no Content-Type)'!s}, "
                "not text/plain: senders that check it, as RFC 8461 recommends, ignore the "
                "policy.",
                evidence | {"content_type": response.content_type},
                remedy="Make the web server send `Content-Type: text/plain` for mta-sts.txt.",
                rfc="RFC 8461 §3.3",
            )
        )
    return findings


def _undecodable(fetch: PolicyFetch, response: PolicyResponse, evidence: dict[str, Any]) -> Finding:
    return _finding(
        "mta-sts.fetch-failed",
        Severity.ERROR,
        f"{fetch.url} sends the policy with Content-Encoding {response.content_encoding}, "
        f"although the request accepted only identity, and it cannot be undone "
        f"({response.decode_error}): senders that cannot undo it either ignore the policy.",
        evidence | {"step": FetchStep.HTTP.value, "detail": response.decode_error},
        remedy=_UNCOMPRESSED,
        rfc="RFC 8461 §3.3, RFC 9110 §12.5.3",
    )


def _unfetched(obs: MtaStsObservation, fetch: PolicyFetch, evidence: dict[str, Any]) -> Finding:
    if not fetch.addresses:
        failed = [a for a in (fetch.a, fetch.aaaa) if a.outcome.is_failure]
        lookups = {"a": fetch.a.evidence(), "aaaa": fetch.aaaa.evidence()}
        if failed:
            return _finding(
                "mta-sts.fetch-failed",
                Severity.ERROR,
                f"The address lookup of the policy host {fetch.host} failed "
                f"({', '.join(f'{a.rdtype} {a.outcome.value}' for a in failed)}): whether "
                "senders can fetch the MTA-STS policy could not be determined.",
                evidence | {"step": FetchStep.DNS.value, "lookups": lookups},
                remedy="Run again; if it persists, check the DNS of the policy host.",
                rfc="RFC 8461 §3.3",
                indeterminate=True,
            )
        return _finding(
            "mta-sts.fetch-failed",
            Severity.ERROR,
            f"The policy host {fetch.host} has no address (A {fetch.a.outcome.value}, AAAA "
            f"{fetch.aaaa.outcome.value}): senders cannot fetch the policy the TXT record "
            "announces, so they ignore it.",
            evidence | {"step": FetchStep.DNS.value, "lookups": lookups},
            remedy=(
                f"Publish A/AAAA records for {fetch.host} pointing at a web server that serves "
                "the policy over HTTPS, or delete the _mta-sts TXT record."
            ),
            rfc="RFC 8461 §3.3",
        )
    bad_cert = next((a for a in fetch.attempts if a.cert_invalid), None)
    if bad_cert is not None:
        return _finding(
            "mta-sts.policy-cert-invalid",
            Severity.ERROR,
            f"The HTTPS certificate of the policy host {fetch.host} ({bad_cert.address}) is not "
            f"valid for it: {bad_cert.detail}. Senders must verify it, so they ignore the policy.",
            evidence | {"step": FetchStep.TLS.value, "detail": bad_cert.detail},
            remedy=(
                f"Serve a certificate from a public CA that names {fetch.host} (a wildcard "
                f"*.{obs.domain} covers it too), with its intermediate certificates, and renew "
                "it before it expires."
            ),
            rfc="RFC 8461 §3.3",
        )
    last = fetch.attempts[-1] if fetch.attempts else None
    step = last.step if last else FetchStep.CONNECT
    what = (
        f"{_STEP_TEXT[step]} {last.address} "
        + ("timed out" if last.timed_out else f"failed ({last.detail})")
        if last
        else "no address could be tried"
    )
    tried = f" ({len(fetch.attempts)} addresses tried)" if len(fetch.attempts) > 1 else ""
    return _finding(
        "mta-sts.fetch-failed",
        Severity.ERROR,
        f"The MTA-STS policy of {obs.domain} could not be fetched from {fetch.url}: "
        f"{what}{tried}. Senders without a cached copy deliver as if there were no policy.",
        evidence | {"step": step.value, "timed_out": bool(last and last.timed_out)},
        remedy=(
            f"Make {fetch.host} answer HTTPS on port 443 from the internet, promptly, and "
            f"serve the policy at {POLICY_PATH}."
        ),
        rfc="RFC 8461 §3.3",
    )
