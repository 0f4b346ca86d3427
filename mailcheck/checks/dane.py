"""DANE for SMTP: TLSA records, and whether they authenticate a served chain. Pure.

`TlsaRecord` reads a record (dnspython rdata or text) and says whether an SMTP sender can use
it. `match_tlsa` does what a DANE sender does with the usable ones and the chain a server
sent (RFC 7672 §3.1): DANE-EE(3) compares the leaf only, ignoring names and dates; DANE-TA(2)
finds the pinned CA among the certificates the server sent, then verifies the leaf up to it
with cryptography's verifier, the TA as the only trust anchor, under OpenSSL's rules rather
than the web's (no Authority Key Identifier needed), and checks what OpenSSL-based senders
check besides: a name from `names` (SAN, or CN without SAN) and an extendedKeyUsage that
allows serverAuth. Findings are made in mailcheck.checks.dane_findings.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from mailcheck.checks.tls_cert import name_matches, purpose_error, verify_to_anchors
from mailcheck.checks.tls_cert_parse import (
    CertInfo,
    ParsedChain,
    aware_utc,
    parse_chain,
    subject_text,
)

__all__ = [
    "DaneVerdict",
    "association",
    "RecordResult",
    "TlsaOutcome",
    "TlsaRecord",
    "dane_findings",
    "match_tlsa",
]

DANE_TA, DANE_EE = 2, 3
DIGEST_BYTES = {1: 32, 2: 64}
"""Matching type → digest length (RFC 6698 §2.1.3: 1 = SHA-256, 2 = SHA-512)."""


@dataclass(frozen=True)
class TlsaRecord:
    """One TLSA record as published, and why a sender could not use it."""

    usage: int
    """Certificate usage: 2 DANE-TA, 3 DANE-EE (0/1 are unusable for SMTP); -1 if unreadable."""
    selector: int
    """0 the whole certificate, 1 its SubjectPublicKeyInfo; -1 if unreadable."""
    mtype: int
    """Matching type: 0 the data itself, 1 SHA-256, 2 SHA-512; -1 if unreadable."""
    data: bytes
    """The certificate association data."""
    problems: tuple[str, ...] = ()
    """Why senders skip this record; empty when it is usable."""
    malformed: bool = False
    """Unreadable, unknown usage/selector/matching type, or a digest of the wrong length."""

    @classmethod
    def from_rdata(cls, rdata: Any) -> TlsaRecord:
        """From a dnspython TLSA rdata (attributes usage, selector, mtype, cert)."""
        try:
            usage, selector, mtype = int(rdata.usage), int(rdata.selector), int(rdata.mtype)
            data = bytes(rdata.cert)
        except (AttributeError, TypeError, ValueError):
            return cls(-1, -1, -1, b"", (f"not a TLSA record: {rdata!r:.80}",), True)
        return cls.judged(usage, selector, mtype, data)

    @classmethod
    def from_text(cls, text: str) -> TlsaRecord:
        """From presentation format, `3 1 1 ab12...` (hex may be split by spaces)."""
        fields = text.split()
        try:
            usage, selector, mtype = (int(f) for f in fields[:3])
            data = bytes.fromhex("".join(fields[3:]))
        except ValueError:
            shown = text if len(text) <= 80 else text[:77] + "..."
            problem = f"not TLSA presentation format ('usage selector mtype hex'): {shown!r}"
            return cls(-1, -1, -1, b"", (problem,), True)
        return cls.judged(usage, selector, mtype, data)

    @classmethod
    def judged(cls, usage: int, selector: int, mtype: int, data: bytes) -> TlsaRecord:
        """A record from its fields, with its problems found."""
        malformed = []
        if usage not in (0, 1, DANE_TA, DANE_EE):
            malformed.append(f"unknown certificate usage {usage}")
        if selector not in (0, 1):
            malformed.append(f"unknown selector {selector} (0 = certificate, 1 = public key)")
        if mtype not in (0, 1, 2):
            malformed.append(f"unknown matching type {mtype} (0 = full, 1 = SHA-256, 2 = SHA-512)")
        elif mtype in DIGEST_BYTES and len(data) != DIGEST_BYTES[mtype]:
            name = "SHA-256" if mtype == 1 else "SHA-512"
            malformed.append(
                f"the data is {len(data)} bytes, but a {name} digest is {DIGEST_BYTES[mtype]}"
            )
        elif not data:
            malformed.append("no certificate association data")
        problems = list(malformed)
        if usage in (0, 1):
            # RFC 7672 §3.1.3: PKIX-TA/PKIX-EE are not for SMTP; senders treat them as unusable.
            problems.append(f"usage {usage} ({'PKIX-TA' if usage == 0 else 'PKIX-EE'}) is unusable")
        return cls(usage, selector, mtype, data, tuple(problems), bool(malformed))

    @property
    def usable(self) -> bool:
        """A DANE SMTP sender uses this record."""
        return not self.problems

    @property
    def pkix_usage(self) -> bool:
        """Usage 0 or 1, which SMTP senders ignore (RFC 7672 §3.1.3)."""
        return self.usage in (0, 1)

    @property
    def text(self) -> str:
        """The record in presentation format, e.g. `3 1 1 ab12...`."""
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON report shows it."""
        return {
            "usage": self.usage,
            "selector": self.selector,
            "mtype": self.mtype,
            "data": self.data.hex(),
            "usable": self.usable,
            "problems": list(self.problems),
        }


class TlsaOutcome(enum.StrEnum):
    """What became of one record when matched against the served chain."""

    MATCH = "match"
    MISMATCH = "mismatch"
    TA_NOT_IN_CHAIN = "ta-not-in-chain"
    TA_NAME_MISMATCH = "ta-name-mismatch"
    TA_EXPIRED = "ta-expired"
    TA_NO_PATH = "ta-no-path"
    TA_WRONG_PURPOSE = "ta-wrong-purpose"
    UNUSABLE = "unusable"


@dataclass(frozen=True)
class RecordResult:
    """One record's outcome against the served chain."""

    record: TlsaRecord
    """The record."""
    outcome: TlsaOutcome
    """Matched, or why not."""
    depth: int | None
    """The chain depth it matched (0 = leaf); None when it matched none (or a TA from DNS)."""
    detail: str
    """One sentence for a person: what was compared and what was found."""

    def to_json(self) -> dict[str, Any]:
        """The record with its outcome, for the JSON report."""
        return {
            **self.record.to_json(),
            "outcome": self.outcome.value,
            "depth": self.depth,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DaneVerdict:
    """How DANE senders judge one served chain against a TLSA RRset."""

    results: tuple[RecordResult, ...]
    """One result per record, in the order published."""
    names: tuple[str, ...]
    """The reference names a DANE-TA leaf must carry (TLSA base domain, MX host)."""
    chain_length: int
    """How many certificates the server sent."""
    leaf_spki_sha256: str
    """The server's current key, as `3 1 1` would pin it (empty if the leaf is unreadable)."""
    chain_problems: tuple[str, ...] = ()
    """Certificates of the served chain that could not be read."""

    @property
    def records(self) -> tuple[TlsaRecord, ...]:
        """The records, in order."""
        return tuple(r.record for r in self.results)

    @property
    def matches(self) -> tuple[RecordResult, ...]:
        """Every record that authenticates the server, in order (a sender needs one)."""
        return tuple(r for r in self.results if r.outcome is TlsaOutcome.MATCH)

    @property
    def matched(self) -> RecordResult | None:
        """The first record that authenticates the server, if any (`dane.match` names all)."""
        return self.matches[0] if self.matches else None

    @property
    def usable(self) -> tuple[TlsaRecord, ...]:
        """The records a DANE sender uses."""
        return tuple(r for r in self.records if r.usable)

    @property
    def dane_ee_ok(self) -> bool:
        """Some DANE-EE record matched: the leaf is pinned, whatever its CA, names and dates.

        Whether it matched, not whether it counts: senders use only DNSSEC-signed records.
        """
        return any(r.record.usage == DANE_EE for r in self.matches)

    @property
    def dane_ta_ok(self) -> bool:
        """Some DANE-TA record matched: the leaf verifies (dates, name) up to a pinned CA.

        Whether it matched, not whether it counts: senders use only DNSSEC-signed records.
        """
        return any(r.record.usage == DANE_TA for r in self.matches)

    def to_json(self) -> dict[str, Any]:
        """The verdict as the JSON report shows it."""
        matched = self.matched
        return {
            "tlsa": [r.to_json() for r in self.results],
            "matched": matched.to_json() if matched else None,
            "names": list(self.names),
            "chain_length": self.chain_length,
            "leaf_spki_sha256": self.leaf_spki_sha256 or None,
            "usable": len(self.usable),
            "chain_problems": list(self.chain_problems),
        }


def match_tlsa(
    records: Sequence[TlsaRecord],
    chain: ParsedChain | Sequence[bytes],
    names: Sequence[str],
    *,
    now: datetime,
) -> DaneVerdict:
    """Match every TLSA record against the served chain, as DANE senders do.

    `chain` is what `parse_chain` made of the served certificates, or their DER (leaf first),
    parsed here. `names` are the reference identifiers for DANE-TA (RFC 7672 §3.2.2): the TLSA
    base domain and, if different, the MX host name. DANE-EE ignores them.
    """
    wanted = tuple(n.rstrip(".").lower() for n in names if n.strip("."))
    now = aware_utc(now)
    if not isinstance(chain, ParsedChain):
        chain = parse_chain(chain)
    results = []
    for record in records:
        if not record.usable:
            results.append(
                RecordResult(record, TlsaOutcome.UNUSABLE, None, "; ".join(record.problems))
            )
            continue
        try:
            if record.usage == DANE_EE:
                results.append(_match_ee(record, chain))
            else:
                results.append(_match_ta(record, chain, wanted, now))
        except Exception as exc:  # noqa: BLE001 - a certificate we cannot judge is a verdict
            detail = f"could not be matched: {type(exc).__name__}: {exc}"
            results.append(RecordResult(record, TlsaOutcome.MISMATCH, None, detail))
    leaf = chain.leaf
    return DaneVerdict(
        tuple(results), wanted, len(chain.der), leaf.spki_sha256 if leaf else "", chain.problems
    )


def association(record: TlsaRecord, cert_der: bytes, info: CertInfo | None) -> bytes | None:
    """What `record` would hold for this certificate (None if its key is unreadable)."""
    if record.selector == 0:
        data = cert_der
    elif info is not None and info.spki_der:
        data = info.spki_der
    else:
        return None
    if record.mtype == 1:
        return hashlib.sha256(data).digest()
    if record.mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def _matching_depths(record: TlsaRecord, chain: ParsedChain) -> list[int]:
    # The DER as sent, not as parsed: a `x 0 x` record can match bytes no parser accepts.
    return [
        depth
        for depth, der in enumerate(chain.der)
        if association(record, der, chain.certs[depth]) == record.data
    ]


def _match_ee(record: TlsaRecord, chain: ParsedChain) -> RecordResult:
    if not chain.der:
        return RecordResult(record, TlsaOutcome.MISMATCH, None, "the server sent no certificate")
    depths = _matching_depths(record, chain)
    if 0 in depths:
        # RFC 7672 §3.1.1: the leaf's key (or certificate) is all that counts, not its
        # names, dates or issuer.
        what = "public key" if record.selector == 1 else "certificate"
        return RecordResult(
            record, TlsaOutcome.MATCH, 0, f"DANE-EE: the server's {what} matches (depth 0)"
        )
    leaf = chain.leaf
    current = f"the server's key has SPKI SHA-256 {leaf.spki_sha256}" if leaf else "unreadable leaf"
    detail = f"DANE-EE: does not match the server's own certificate ({current})"
    if depths:
        detail += (
            f"; it matches the CA certificate at depth {depths[0]}, which DANE-EE(3) never "
            "looks at (usage 2 pins a CA)"
        )
    return RecordResult(record, TlsaOutcome.MISMATCH, None, detail)


def _match_ta(
    record: TlsaRecord,
    chain: ParsedChain,
    names: tuple[str, ...],
    now: datetime,
) -> RecordResult:
    leaf = chain.leaf
    depths = [d for d in _matching_depths(record, chain) if d > 0]
    anchors: list[tuple[int | None, x509.Certificate]] = [
        (d, c.cert) for d in depths if (c := chain.certs[d]) is not None
    ]
    if not anchors and record.selector == 0 and record.mtype == 0:
        # RFC 7671 §5.2.2: a TA published in full need not be sent by the server.
        published = parse_chain([record.data]).leaf
        if published is not None:
            anchors = [(None, published.cert)]
    if not anchors:
        sent = len(chain.der)
        detail = (
            "DANE-TA: the server sent only its own certificate, so the CA this record pins is "
            "not in the chain"
            if sent <= 1
            else f"DANE-TA: the CA this record pins is not among the {sent - 1} certificate(s) "
            "the server sent after its own (a record for a root CA needs the server to send "
            "that root too)"
        )
        if 0 in _matching_depths(record, chain):
            detail += "; it matches the server's own certificate, which DANE-TA does not pin"
        return RecordResult(record, TlsaOutcome.TA_NOT_IN_CHAIN, None, detail)
    if leaf is None:
        return RecordResult(record, TlsaOutcome.TA_NO_PATH, anchors[0][0], "unreadable leaf")
    failures = [_verify_to_ta(record, chain, depth, ta, names, now) for depth, ta in anchors]
    return next((f for f in failures if f.outcome is TlsaOutcome.MATCH), failures[0])


def _verify_to_ta(
    record: TlsaRecord,
    chain: ParsedChain,
    depth: int | None,
    ta: x509.Certificate,
    names: tuple[str, ...],
    now: datetime,
) -> RecordResult:
    leaf = chain.leaf
    assert leaf is not None
    at = f"at depth {depth}" if depth is not None else "published in DNS"
    prefix = f"DANE-TA: the CA {subject_text(ta)} {at} matches"
    # RFC 7672 §3.1.2: the PKIX checks, the TA as the only anchor. Trust here is what OpenSSL
    # (Postfix, Exim) checks, not the webpki profile: no AKI needed, and the name and the
    # purpose are checked below, the name in the CN too when there is no SAN (§3.2.3).
    path, error = verify_to_anchors(leaf.cert, chain.others, [ta], None, now)
    if not path:
        return _no_path(record, chain, depth, prefix, error, now)
    wanted = " or ".join(names) or "(no name given)"
    if not any(name_matches(leaf, n) for n in names):
        presented = ", ".join(leaf.sans or leaf.common_names) or "no names"
        where = "subjectAltName" if leaf.sans else "Common Name (it has no subjectAltName)"
        return RecordResult(
            record,
            TlsaOutcome.TA_NAME_MISMATCH,
            depth,
            f"{prefix} and the leaf chains to it, but the leaf's {where} is {presented}, "
            f"which does not cover {wanted}",
        )
    for d, cert in enumerate(path[:-1]):  # OpenSSL checks the purpose below the anchor
        if problem := purpose_error(cert):
            what = "the leaf" if d == 0 else f"the intermediate CA {subject_text(cert)}"
            return RecordResult(
                record,
                TlsaOutcome.TA_WRONG_PURPOSE,
                depth,
                f"{prefix} and the leaf chains to it and names {wanted}, but {what} has "
                f"{problem}: OpenSSL-based senders (Postfix, Exim) check the purpose on "
                "DANE-TA chains and fail with 'unsupported certificate purpose' (DANE-EE "
                "records skip this check)",
            )
    how = "CN" if not leaf.sans else "subjectAltName"
    return RecordResult(
        record,
        TlsaOutcome.MATCH,
        depth,
        f"{prefix}, and the leaf chains to it, is within its dates and names {wanted} (in "
        f"its {how}), checked with cryptography's verifier, this CA as the only trust anchor",
    )


def _no_path(
    record: TlsaRecord,
    chain: ParsedChain,
    depth: int | None,
    prefix: str,
    error: str,
    now: datetime,
) -> RecordResult:
    """Why the leaf does not verify up to the TA: dates first (RFC 7672 §3.1.2 keeps them)."""
    below = chain.certs[: (depth if depth is not None else len(chain.certs) - 1) + 1]
    for d, cert in enumerate(below):
        if cert is not None and not cert.not_before <= now <= cert.not_after:
            state = "expired on" if now > cert.not_after else "is only valid from"
            when = cert.not_after if now > cert.not_after else cert.not_before
            return RecordResult(
                record,
                TlsaOutcome.TA_EXPIRED,
                depth,
                f"{prefix}, but the certificate at depth {d} ({cert.subject}) {state} "
                f"{when:%Y-%m-%d}",
            )
    return RecordResult(
        record,
        TlsaOutcome.TA_NO_PATH,
        depth,
        f"{prefix}, but the leaf does not chain to it ({error})",
    )


# Re-exported so callers find the whole DANE judgement here; imported last because the
# findings module needs the types above.
from mailcheck.checks.dane_findings import dane_findings  # noqa: E402
