"""What the MTA-STS gatherer saw: TXT lookups, the policy host's addresses, the HTTPS fetch.

Frozen facts with no verdicts (those are in `mta_sts`), plus the JSON form of the check's
`mta_sts` and `tls_rpt` data objects.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailcheck.checks.mta_sts_record import (
    StsPolicy,
    StsRecord,
    TlsRptRecord,
    covering_patterns,
    is_sts_candidate,
    is_tlsrpt_candidate,
    join_txt,
    parse_sts_policy,
    parse_sts_record,
    parse_tlsrpt_record,
)
from mailcheck.dns import DnsAnswer

POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.2
MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.3 suggests senders cap policy bodies at 64 KiB


class FetchStep(enum.StrEnum):
    """Where fetching the policy stopped."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    HTTP = "http"


@dataclass(frozen=True)
class FetchAttempt:
    """One failed try to fetch the policy from one address."""

    address: str
    """The policy host address tried."""
    step: FetchStep
    """The step that failed: TCP connect, TLS handshake, or the HTTP exchange."""
    detail: str
    """What went wrong, in the library's or server's words."""
    timed_out: bool
    """True when the step ran out of time rather than failing outright."""
    cert_invalid: bool
    """True when the TLS failure was the certificate's PKIX verification."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "address": self.address,
            "step": self.step.value,
            "detail": self.detail,
            "timed_out": self.timed_out,
            "cert_invalid": self.cert_invalid,
        }


@dataclass(frozen=True)
class PolicyResponse:
    """The HTTP response of the policy host (redirects are never followed, RFC 8461 §3.3)."""

    address: str
    """The address that answered."""
    status: int
    """The HTTP status code."""
    reason: str
    """The reason phrase."""
    content_type: str | None
    """The Content-Type header as sent."""
    location: str | None
    """The Location header (redirects)."""
    body: str | None
    """The body, content codings undone and decoded as UTF-8, for a 200 response within the
    size cap; else None."""
    body_bytes: int
    """Bytes of body read as sent, before undoing content codings (stops just past the cap)."""
    oversize: bool
    """True when the body, as sent or once decoded, is larger than MAX_POLICY_BYTES."""
    content_encoding: str | None = None
    """The Content-Encoding header as sent (mailcheck asks for `identity`)."""
    decode_error: str | None = None
    """Why the content codings could not be undone (then `body` is None)."""

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case (`text/plain`)."""
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @property
    def content_codings(self) -> tuple[str, ...]:
        """The content codings applied to the body, in order, `identity` left out."""
        return content_codings(self.content_encoding)


def content_codings(header: str | None) -> tuple[str, ...]:
    """The codings a Content-Encoding header lists, lower case, in the order applied, without
    `identity` (RFC 9110 §8.4)."""
    codings = (c.strip(" \t").lower() for c in (header or "").split(","))
    return tuple(c for c in codings if c and c != "identity")


@dataclass(frozen=True)
class PolicyFetch:
    """Looking up the policy host and fetching the policy from it."""

    host: str
    """`mta-sts.<domain>`, the name the certificate must be valid for."""
    url: str
    """The policy URL."""
    a: DnsAnswer
    """The A lookup of the policy host."""
    aaaa: DnsAnswer
    """The AAAA lookup of the policy host."""
    attempts: tuple[FetchAttempt, ...]
    """Failed tries, in order (empty when the first address answered)."""
    response: PolicyResponse | None
    """The HTTP response, when one was received."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """IPv4 then IPv6 addresses of the policy host."""
        return self.a.addresses() + self.aaaa.addresses()


@dataclass(frozen=True)
class MtaStsObservation:
    """What DNS and the policy host say about a domain's MTA-STS and TLS-RPT."""

    domain: str
    """The mail domain (the Policy Domain), lower case, no trailing dot."""
    sts_txt: DnsAnswer
    """The TXT lookup of `_mta-sts.<domain>`."""
    tlsrpt_txt: DnsAnswer
    """The TXT lookup of `_smtp._tls.<domain>`."""
    fetch: PolicyFetch | None
    """The policy fetch; None when no TXT record begins with `v=STSv1`."""
    record: StsRecord | None = field(init=False, repr=False, compare=False)
    """The MTA-STS TXT record, parsed, when there is exactly one (computed)."""
    tlsrpt: TlsRptRecord | None = field(init=False, repr=False, compare=False)
    """The TLS-RPT record, parsed, when there is exactly one (computed)."""
    policy: StsPolicy | None = field(init=False, repr=False, compare=False)
    """The policy file as fetched and parsed (possibly invalid); None when none was read
    (computed)."""

    def __post_init__(self) -> None:
        # Parsed here, once: the verdicts read these many times, and a policy may be 64 KiB.
        sts, tlsrpt = self.sts_texts, self.tlsrpt_texts
        object.__setattr__(self, "record", parse_sts_record(sts[0]) if len(sts) == 1 else None)
        object.__setattr__(
            self, "tlsrpt", parse_tlsrpt_record(tlsrpt[0]) if len(tlsrpt) == 1 else None
        )
        response = self.fetch.response if self.fetch else None
        body = response.body if response is not None and response.status == 200 else None
        object.__setattr__(self, "policy", None if body is None else parse_sts_policy(body))

    @property
    def sts_texts(self) -> tuple[str, ...]:
        """The `_mta-sts` TXT records that begin with `v=STSv1` (RFC 8461 §3.1)."""
        return tuple(t for t in map(join_txt, self.sts_txt.txt_strings()) if is_sts_candidate(t))

    @property
    def tlsrpt_texts(self) -> tuple[str, ...]:
        """The `_smtp._tls` TXT records that begin with `v=TLSRPTv1` (RFC 8460 §3)."""
        texts = map(join_txt, self.tlsrpt_txt.txt_strings())
        return tuple(t for t in texts if is_tlsrpt_candidate(t))

    @property
    def applied_policy(self) -> StsPolicy | None:
        """The policy senders apply: one valid TXT record and a valid policy served with 200.

        The Content-Type is not required here: senders only SHOULD check it (RFC 8461 §3.3),
        and for deliverability the safe assumption is that some sender applies the policy.
        """
        record, policy = self.record, self.policy
        if record is None or not record.valid or policy is None or not policy.valid:
            return None
        return policy

    def mta_sts_json(self, mx_hosts: Sequence[str] = ()) -> dict[str, Any]:
        """The `mta_sts` object of the check's data."""
        record, policy, fetch = self.record, self.policy, self.fetch
        response = fetch.response if fetch else None
        applied = self.applied_policy
        return {
            "txt": {
                "name": self.sts_txt.name,
                "outcome": self.sts_txt.outcome.value,
                "records": list(self.sts_texts),
                "id": record.id if record else None,
                "valid": bool(record and record.valid),
                "problems": [p.to_json() for p in record.problems] if record else [],
            },
            "fetch": None
            if fetch is None
            else {
                "url": fetch.url,
                "host": fetch.host,
                "addresses": list(fetch.addresses),
                "attempts": [a.to_json() for a in fetch.attempts],
                "status": response.status if response else None,
                "content_type": response.content_type if response else None,
                "content_encoding": response.content_encoding if response else None,
                "location": response.location if response else None,
                "bytes": response.body_bytes if response else None,
            },
            "policy": policy.to_json() if policy else None,
            "applied": applied is not None,
            "mode": applied.mode.value if applied and applied.mode else None,
            "coverage": [
                {"host": h, "patterns": list(covering_patterns(policy.mx, h))} for h in mx_hosts
            ]
            if policy
            else [],
        }

    def tls_rpt_json(self) -> dict[str, Any]:
        """The `tls_rpt` object of the check's data."""
        record = self.tlsrpt
        return {
            "name": self.tlsrpt_txt.name,
            "outcome": self.tlsrpt_txt.outcome.value,
            "records": list(self.tlsrpt_texts),
            "rua": list(record.rua) if record else [],
            "valid": bool(record and record.valid),
            "problems": [p.to_json() for p in record.problems] if record else [],
        }

    def to_json(self, mx_hosts: Sequence[str] = ()) -> dict[str, Any]:
        """Both objects, as `{"mta_sts": ..., "tls_rpt": ...}`."""
        return {"mta_sts": self.mta_sts_json(mx_hosts), "tls_rpt": self.tls_rpt_json()}
