"""Judging an MX host's certificate chain the way verifying (PKIX) senders do. Pure.

`judge_chain` takes the chain a server sent (DER, leaf first, or already parsed by
`parse_chain`) and answers separately each question a sender's single "verification failed"
hides: does it chain to a trusted root, does it name the MX host, is it within its dates, is
the intermediate missing, is it self-signed, is the key weak, is it signed with SHA-1.
`cert_findings` turns the verdict into findings whose severity depends on whether any sender
is required to verify (MTA-STS enforce) and whether DANE already authenticates the server.
Reading certificates (CertInfo, parse_chain, load_roots) is in tls_cert_parse; its public
names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    DNSName,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
)

from mailcheck.checks.tls_cert_findings import cert_findings
from mailcheck.checks.tls_cert_parse import (
    CertInfo,
    ParsedChain,
    aware_utc,
    error_text,
    iso_time,
    load_roots,
    parse_chain,
    subject_text,
)

__all__ = [
    "aware_utc",
    "CertInfo",
    "ChainVerdict",
    "ParsedChain",
    "cert_findings",
    "judge_chain",
    "load_roots",
    "name_matches",
    "parse_chain",
    "purpose_error",
    "subject_text",
    "verify_to_anchors",
]

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def _ca_may_sign(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    # RFC 5280 §4.2.1.3: a CA's keyUsage, when present, must allow signing certificates.
    # Absent, OpenSSL takes basicConstraints alone; so do we.
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("the CA's keyUsage does not allow keyCertSign")


# The webpki defaults, less the CA/Browser Forum profile's demands that OpenSSL does not make
# (AKI on every certificate, keyUsage on every CA); `_TRUST_*` also drop the name and purpose.
_ANY = Criticality.AGNOSTIC
_SERVER_CA = (
    ExtensionPolicy.webpki_defaults_ca()
    .may_be_present(x509.AuthorityKeyIdentifier, _ANY, None)
    .may_be_present(x509.KeyUsage, _ANY, _ca_may_sign)
)
_SERVER_EE = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.AuthorityKeyIdentifier, _ANY, None
)
_TRUST_CA = _SERVER_CA.may_be_present(x509.ExtendedKeyUsage, _ANY, None)
_TRUST_EE = _SERVER_EE.may_be_present(x509.ExtendedKeyUsage, _ANY, None).may_be_present(
    x509.SubjectAlternativeName, _ANY, None
)
_SERVER_USAGES = frozenset(
    {
        ExtendedKeyUsageOID.SERVER_AUTH,
        x509.ObjectIdentifier("2.16.840.1.113730.4.1"),  # Netscape Server Gated Crypto
        x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),  # Microsoft Server Gated Crypto
    }
)
_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


@dataclass(frozen=True)
class ChainVerdict:
    """How a verifying sender judges one served chain for one MX host name."""

    host: str
    """The MX host name the certificate must name."""
    chain: ParsedChain
    """The served chain."""
    checked_at: datetime
    """The time the dates were judged at."""
    pkix_valid: bool
    """The full check for the MX host passes: trusted, dated, host in the SAN, EKU (MTA-STS)."""
    chain_trusted: bool
    """The chain builds to a trusted root (no AKI needed, as in OpenSSL); dates, name, EKU aside."""
    trust_error: str
    """The verifier's reason when the full check fails (empty when it passed)."""
    path: tuple[str, ...]
    """Subjects of the chain the verifier built, leaf to root (empty when it built none)."""
    name_matches: bool
    """The certificate names the host (RFC 6125: SAN dNSNames, CN only without SAN)."""
    self_signed: bool
    """The leaf signed itself and is not a trusted root."""
    missing_issuer: str
    """When the chain stops below a root: the issuer the server should have sent, else empty."""
    expired: tuple[int, ...]
    """Depths of served certificates past their notAfter."""
    not_yet_valid: tuple[int, ...]
    """Depths of served certificates before their notBefore."""
    days_left: int | None
    """Whole days until the leaf expires (negative once expired); None without a leaf."""
    weak_keys: tuple[int, ...]
    """Depths of certificates with RSA < 2048 or EC < 256 bit keys (or DSA)."""
    sha1: tuple[int, ...]
    """Depths of certificates signed with SHA-1 (or MD5), self-signed CAs aside."""

    @property
    def leaf(self) -> CertInfo | None:
        """The server's own certificate, if readable."""
        return self.chain.leaf

    @property
    def missing_intermediate(self) -> bool:
        """The chain stops below a root: an intermediate the server should send is missing."""
        return bool(self.missing_issuer)

    def to_json(self) -> dict[str, Any]:
        """The verdict as the JSON report shows it."""
        leaf = self.leaf
        return {
            "host": self.host,
            "subject": leaf.subject if leaf else None,
            "issuer": leaf.issuer if leaf else None,
            "sans": list(leaf.sans) if leaf else [],
            "not_after": iso_time(leaf.not_after) if leaf else None,
            "days_left": self.days_left,
            "pkix_valid": self.pkix_valid,
            "chain_trusted": self.chain_trusted,
            "name_matches": self.name_matches,
            "self_signed": self.self_signed,
            "missing_intermediate": self.missing_intermediate,
            "missing_issuer": self.missing_issuer or None,
            "expired": bool(self.expired),
            "weak_key_depths": list(self.weak_keys),
            "sha1_depths": list(self.sha1),
            "trust_error": self.trust_error or None,
            "path": list(self.path),
            "chain": [
                c.to_json(depth) if c else {"depth": depth, "unreadable": True}
                for depth, c in enumerate(self.chain.certs)
            ],
            "problems": list(self.chain.problems),
        }


def judge_chain(
    chain: ParsedChain | Sequence[bytes],
    host: str,
    *,
    now: datetime,
    roots: Sequence[x509.Certificate],
) -> ChainVerdict:
    """Judge a served chain for MX host `host` against trusted `roots`.

    `chain` is what `parse_chain` made of the served certificates, or their DER (leaf first),
    parsed here; a caller that also matches TLSA records parses once and passes the result.
    """
    host = host.rstrip(".").lower()
    now = aware_utc(now)
    if not isinstance(chain, ParsedChain):
        chain = parse_chain(chain)
    leaf = chain.leaf
    if leaf is None:
        reason = "the server sent no certificate" if not chain.der else chain.problems[0]
        return ChainVerdict(
            host=host,
            chain=chain,
            checked_at=now,
            pkix_valid=False,
            chain_trusted=False,
            trust_error=reason,
            path=(),
            name_matches=False,
            self_signed=False,
            missing_issuer="",
            expired=(),
            not_yet_valid=(),
            days_left=None,
            weak_keys=(),
            sha1=(),
        )
    built, error = verify_to_anchors(leaf.cert, chain.others, roots, (host,), now)
    trusted_path = built
    if not built:
        # The verifier gives one reason; ask again without the name and at a time inside the
        # certificates' dates, so "untrusted" is told apart from "wrong name" and "expired".
        trusted_path, _ = verify_to_anchors(
            leaf.cert, chain.others, roots, None, _time_within_dates(chain, now)
        )
    served = [(d, c) for d, c in enumerate(chain.certs) if c is not None]
    root_subjects = {r.subject for r in roots}
    self_signed = leaf.self_signed and leaf.cert.subject not in root_subjects
    return ChainVerdict(
        host=host,
        chain=chain,
        checked_at=now,
        pkix_valid=bool(built),
        chain_trusted=bool(trusted_path),
        trust_error=error,
        path=tuple(subject_text(c) for c in (built or trusted_path)),
        name_matches=name_matches(leaf, host),
        self_signed=self_signed,
        missing_issuer=(
            "" if trusted_path or self_signed else _missing_issuer(chain, root_subjects)
        ),
        expired=tuple(d for d, c in served if now > c.not_after),
        not_yet_valid=tuple(d for d, c in served if now < c.not_before),
        days_left=(leaf.not_after - now) // timedelta(days=1),
        weak_keys=tuple(d for d, c in served if _weak_key(c)),
        sha1=tuple(
            d
            for d, c in served
            if c.signature_hash in ("sha1", "md5") and not (d > 0 and c.self_signed)
        ),
    )


def verify_to_anchors(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    names: Sequence[str] | None,
    at: datetime,
) -> tuple[tuple[x509.Certificate, ...], str]:
    """The chain `leaf` builds to one of `anchors`, leaf first (and the error when it builds none).

    With `names`, the full server check: webpki rules for the name (in the SAN) and the
    extended key usage (serverAuth). With None, trust alone: signatures, dates, basicConstraints,
    any key usage, no name (CN-only certificates allowed). Neither requires what OpenSSL,
    Go and Windows never look for (an Authority Key Identifier, a CA's keyUsage), so a
    private CA's certificates are not refused for the CA/Browser Forum profile alone. An anchor
    may be an intermediate CA (DANE-TA): cryptography's verifier takes any CA as a root.
    """
    if not anchors:
        return (), "no trusted root certificates to verify against"
    try:
        builder = PolicyBuilder().store(Store(list(anchors))).time(at)
        if names is None:
            trust = builder.extension_policies(ca_policy=_TRUST_CA, ee_policy=_TRUST_EE)
            client = trust.build_client_verifier().verify(leaf, list(intermediates))
            return tuple(client.chain), ""
        server = builder.extension_policies(ca_policy=_SERVER_CA, ee_policy=_SERVER_EE)
        error = ""
        for name in names:
            try:
                verifier = server.build_server_verifier(DNSName(name))
                return tuple(verifier.verify(leaf, list(intermediates))), ""
            except Exception as exc:  # noqa: BLE001 - any verifier failure is a verdict
                error = error or error_text(exc)
        return (), error
    except Exception as exc:  # noqa: BLE001 - bad input to the verifier is a verdict too
        return (), error_text(exc)


def purpose_error(cert: x509.Certificate) -> str:
    """What OpenSSL refuses in `cert`'s extendedKeyUsage for a TLS server's chain, else "".

    OpenSSL checks every certificate below the trust anchor for the `sslserver` purpose (a
    TLS client's default, Postfix and Exim included): an EKU, when present, must list
    serverAuth or SGC; anyExtendedKeyUsage alone does not do (RFC 5280 §4.2.1.12).
    """
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return ""
    except Exception as exc:  # noqa: BLE001 - an unreadable extension is a reason too
        return f"an unreadable extendedKeyUsage ({error_text(exc)})"
    usages = list(ext.value)
    if any(u in _SERVER_USAGES for u in usages):
        return ""
    shown = ", ".join(_USAGE_NAMES.get(u, u.dotted_string) for u in usages) or "nothing"
    return f"extendedKeyUsage {shown}, without serverAuth"


def name_matches(info: CertInfo, host: str) -> bool:
    """Whether the certificate names `host` (RFC 6125 §6.4; RFC 7672 §3.2.3 for SMTP).

    SAN dNSNames when there are any, else the CN; a wildcard is a whole leftmost label and
    covers exactly one label (`*.tls.test` covers `a.tls.test`, not `a.b.tls.test`).
    """
    wanted = host.rstrip(".").lower()
    presented = info.sans or info.common_names
    return any(_name_covers(p.rstrip(".").lower(), wanted) for p in presented)


def _weak_key(info: CertInfo) -> bool:
    if info.key_type == "RSA":
        return info.key_bits < MIN_RSA_BITS
    if info.key_type == "EC":
        return info.key_bits < MIN_EC_BITS
    return info.key_type == "DSA"  # no modern TLS stack accepts DSA certificates


def _name_covers(pattern: str, host: str) -> bool:
    if not pattern or not host:
        return False
    if not pattern.startswith("*."):
        return pattern == host
    # RFC 6125 §6.4.3: the wildcard is the whole leftmost label and matches one label only.
    # Like OpenSSL, require two labels after it, so `*.com` covers nothing.
    rest = pattern[2:]
    first, _, host_rest = host.partition(".")
    return "*" not in rest and rest.count(".") >= 1 and bool(first) and host_rest == rest


def _time_within_dates(chain: ParsedChain, now: datetime) -> datetime:
    """`now` moved into the served certificates' common validity (or the leaf's)."""
    served = [c for c in chain.certs if c is not None]
    start, end = max(c.not_before for c in served), min(c.not_after for c in served)
    if start > end and chain.leaf is not None:
        start, end = chain.leaf.not_before, chain.leaf.not_after
    return min(max(now, start), end)


def _missing_issuer(chain: ParsedChain, root_subjects: set[x509.Name]) -> str:
    """The leaf's issuer when the server sent no certificate for it and it is not a root.

    Only the leaf-alone case is named: when the server does send CA certificates, a chain
    that still stops short most likely ends at a root the store lacks (untrusted), not at a
    forgotten intermediate.
    """
    leaf = chain.leaf
    if leaf is None or leaf.self_signed or leaf.cert.issuer in root_subjects:
        return ""
    sent = {c.cert.subject for c in chain.certs[1:] if c is not None}
    return "" if leaf.cert.issuer in sent else leaf.issuer
