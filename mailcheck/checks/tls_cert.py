"""Judging an MX host's certificate chain the way verifying (PKIX) senders do. Pure.

`judge_chain` takes the chain a server sent (DER, leaf first) and answers separately each
question a sender's single "verification failed" hides: does it chain to a trusted root,
does it name the MX host, is it within its dates, is the intermediate missing, is it
self-signed, is the key weak, is it signed with SHA-1. `cert_findings` turns the verdict
into findings whose severity depends on whether any sender is required to verify (MTA-STS
enforce) and whether DANE-EE already authenticates the server.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import (
    Criticality,
    DNSName,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)

from mailcheck.checks.tls_cert_findings import cert_findings

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
    "subject_text",
    "verify_to_anchors",
]

SYSTEM_CA_FILE = Path("/etc/ssl/certs/ca-certificates.crt")
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


@dataclass(frozen=True)
class CertInfo:
    """What one certificate of a served chain says about itself."""

    cert: x509.Certificate
    """The parsed certificate (for verification; not part of the JSON)."""
    subject: str
    """The subject, RFC 4514 text."""
    issuer: str
    """The issuer, RFC 4514 text."""
    common_names: tuple[str, ...]
    """The subject's CN values (names only count when there is no SAN, RFC 6125 §6.4.4)."""
    sans: tuple[str, ...]
    """The subjectAltName dNSNames, in order."""
    not_before: datetime
    """Start of validity, UTC."""
    not_after: datetime
    """End of validity, UTC."""
    key_type: str
    """`RSA`, `EC`, `Ed25519`, `Ed448`, `DSA` or `unknown`."""
    key_bits: int
    """The key size in bits (0 when unknown)."""
    signature_hash: str
    """The hash of the issuer's signature (`sha256`, `sha1`...), empty for Ed25519/Ed448."""
    self_signed: bool
    """Issuer equals subject and the certificate's own key checks its signature."""
    is_ca: bool
    """basicConstraints says CA."""
    spki_sha256: str
    """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (what `3 1 1` pins)."""
    spki_der: bytes
    """The DER SubjectPublicKeyInfo (TLSA selector 1); empty when the key is unreadable."""
    der: bytes
    """The certificate, DER (TLSA selector 0)."""

    @property
    def key(self) -> str:
        """The key as a person reads it, e.g. `RSA 2048`."""
        return f"{self.key_type} {self.key_bits}" if self.key_bits else self.key_type

    def to_json(self, depth: int) -> dict[str, Any]:
        """One served certificate as the JSON report shows it."""
        return {
            "depth": depth,
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": list(self.sans),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "key": self.key,
            "signature_hash": self.signature_hash,
            "self_signed": self.self_signed,
            "spki_sha256": self.spki_sha256,
        }


@dataclass(frozen=True)
class ParsedChain:
    """A served chain, parsed certificate by certificate; what cannot be read is a problem."""

    certs: tuple[CertInfo | None, ...]
    """One entry per certificate sent, leaf first; None where it could not be decoded."""
    problems: tuple[str, ...]
    """Why some certificate (or part of one) could not be read."""

    @property
    def leaf(self) -> CertInfo | None:
        """The server's own certificate, if it was sent and readable."""
        return self.certs[0] if self.certs else None

    @property
    def others(self) -> tuple[x509.Certificate, ...]:
        """The readable certificates after the leaf (the intermediates a verifier may use)."""
        return tuple(c.cert for c in self.certs[1:] if c is not None)


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
    """The full check passes: trusted chain, within dates, names the host (MTA-STS, `secure`)."""
    chain_trusted: bool
    """The chain builds to a trusted root, dates and name aside."""
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
            "not_after": _iso(leaf.not_after) if leaf else None,
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


def parse_chain(chain_der: Sequence[bytes]) -> ParsedChain:
    """Parse every certificate a server sent; garbage becomes a problem, never an exception."""
    certs: list[CertInfo | None] = []
    problems: list[str] = []
    for depth, der in enumerate(chain_der):
        info, problem = _parse_one(der)
        certs.append(info)
        if problem:
            problems.append(f"certificate at depth {depth}: {problem}")
    return ParsedChain(tuple(certs), tuple(problems))


def judge_chain(
    chain_der: Sequence[bytes],
    host: str,
    *,
    now: datetime,
    roots: Sequence[x509.Certificate],
) -> ChainVerdict:
    """Judge a served chain (DER, leaf first) for MX host `host` against trusted `roots`."""
    host = host.rstrip(".").lower()
    now = aware_utc(now)
    chain = parse_chain(chain_der)
    leaf = chain.leaf
    if leaf is None:
        reason = "the server sent no certificate" if not chain_der else chain.problems[0]
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
    """The chain `leaf` builds to one of `anchors` (and the error when it builds none).

    With `names`, the full server check (webpki policy, the name must be in the SAN); with
    None, trust alone: any key usage, no name, CN-only certificates allowed. An anchor may be
    an intermediate CA (DANE-TA): cryptography's verifier takes any certificate as a root.
    """
    if not anchors:
        return (), "no trusted root certificates to verify against"
    try:
        builder = PolicyBuilder().store(Store(list(anchors))).time(at)
        if names is None:
            built = builder.extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca().may_be_present(
                    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
                ),
                ee_policy=ExtensionPolicy.webpki_defaults_ee()
                .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
                .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None),
            )
            client = built.build_client_verifier().verify(leaf, list(intermediates))
            return tuple(client.chain), ""
        error = ""
        for name in names:
            try:
                verifier = builder.build_server_verifier(DNSName(name))
                return tuple(verifier.verify(leaf, list(intermediates))), ""
            except Exception as exc:  # noqa: BLE001 - any verifier failure is a verdict
                error = error or _short(exc)
        return (), error
    except Exception as exc:  # noqa: BLE001 - bad input to the verifier is a verdict too
        return (), _short(exc)


def name_matches(info: CertInfo, host: str) -> bool:
    """Whether the certificate names `host` (RFC 6125 §6.4; RFC 7672 §3.2.3 for SMTP).

    SAN dNSNames when there are any, else the CN; a wildcard is a whole leftmost label and
    covers exactly one label (`*.tls.test` covers `a.tls.test`, not `a.b.tls.test`).
    """
    wanted = host.rstrip(".").lower()
    presented = info.sans or info.common_names
    return any(_name_covers(p.rstrip(".").lower(), wanted) for p in presented)


def load_roots(ca_file: Path | None) -> tuple[x509.Certificate, ...]:
    """The trusted roots: `ca_file` (PEM), else the system store, else certifi's bundle.

    Raises ValueError with a one-line message when the file is missing, unreadable or holds
    no certificate (the CLI turns it into exit status 2).
    """
    if ca_file is None:
        ca_file = SYSTEM_CA_FILE
        if not ca_file.is_file():
            try:
                import certifi
            except ImportError as exc:
                raise ValueError(
                    f"no system CA store at {SYSTEM_CA_FILE} and certifi is not installed; "
                    "pass --ca-file"
                ) from exc
            ca_file = Path(certifi.where())
    try:
        data = ca_file.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read CA file {ca_file}: {exc.strerror or exc}") from exc
    roots = _load_certificates(data)
    if not roots:
        raise ValueError(f"CA file {ca_file} holds no readable certificate")
    return roots


def subject_text(cert: x509.Certificate) -> str:
    """The subject as RFC 4514 text, never an exception."""
    try:
        return cert.subject.rfc4514_string()
    except Exception:  # noqa: BLE001 - a name we cannot print is still a certificate
        return "(unprintable subject)"


def aware_utc(when: datetime) -> datetime:
    """Naive times are taken as UTC (certificate dates are UTC and aware)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _load_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    marker = b"-----BEGIN CERTIFICATE-----"
    if marker not in data:
        try:
            return (x509.load_der_x509_certificate(data),)
        except ValueError:
            return ()
    found = []
    with warnings.catch_warnings():
        # Some roots in system bundles have negative serials: cryptography warns, we trust.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in data.split(marker)[1:]:
            try:
                found.append(x509.load_pem_x509_certificate(marker + block))
            except ValueError:
                continue  # one bad entry in a bundle must not hide the others
    return tuple(found)


def _parse_one(der: bytes) -> tuple[CertInfo | None, str]:
    try:
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        common_names = tuple(
            str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        )
    except Exception as exc:  # noqa: BLE001 - undecodable input is data
        return None, f"not a decodable X.509 certificate ({_short(exc)})"
    problems = []
    sans: tuple[str, ...] = ()
    is_ca = False
    try:
        extensions = cert.extensions
    except Exception as exc:  # noqa: BLE001
        problems.append(f"extensions unreadable ({_short(exc)})")
    else:
        for ext in extensions:
            if isinstance(ext.value, x509.SubjectAlternativeName):
                sans = tuple(ext.value.get_values_for_type(x509.DNSName))
            elif isinstance(ext.value, x509.BasicConstraints):
                is_ca = ext.value.ca
    key_type, key_bits, spki = "unknown", 0, b""
    try:
        key = cert.public_key()
        key_type, key_bits = _describe_key(key)
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception as exc:  # noqa: BLE001
        problems.append(f"public key unreadable ({_short(exc)})")
    try:
        algorithm = cert.signature_hash_algorithm
        signature_hash = algorithm.name if algorithm is not None else ""
    except Exception:  # noqa: BLE001 - an unknown algorithm is still a certificate
        signature_hash = cert.signature_algorithm_oid.dotted_string
    info = CertInfo(
        cert=cert,
        subject=subject,
        issuer=issuer,
        common_names=common_names,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
        key_type=key_type,
        key_bits=key_bits,
        signature_hash=signature_hash,
        self_signed=_signed_by_itself(cert),
        is_ca=is_ca,
        spki_sha256=hashlib.sha256(spki).hexdigest() if spki else "",
        spki_der=spki,
        der=der,
    )
    return info, "; ".join(problems)


def _describe_key(key: object) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return "unknown", 0


def _signed_by_itself(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except InvalidSignature:
        return False  # same name as its issuer, but another key signed it
    except Exception:  # noqa: BLE001
        # SHA-1 and other legacy signatures cannot be checked here; the names say enough.
        return True
    return True


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


def _short(exc: BaseException) -> str:
    """The verifier's one-line reason, without its prefixes and object dumps."""
    text = str(exc).split(" (encountered processing", 1)[0].strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    text = text.removeprefix("validation failed: ").removeprefix("candidates exhausted: ")
    if text.startswith("all candidates exhausted"):
        return "no chain to a trusted root could be built from the certificates sent"
    return text


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
