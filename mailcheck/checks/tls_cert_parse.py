"""Reading certificates: served chains (DER) into CertInfo, CA bundles into roots. Pure.

Nothing here judges: `parse_chain` records what each certificate of a served chain says about
itself (names, dates, key, signature hash) and turns what cannot be read into problems, never
exceptions. mailcheck.checks.tls_cert verifies and judges the parsed chain.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

__all__ = [
    "CertInfo",
    "ParsedChain",
    "aware_utc",
    "error_text",
    "iso_time",
    "load_roots",
    "parse_chain",
    "subject_text",
]

SYSTEM_CA_FILE = Path("/etc/ssl/certs/ca-certificates.crt")


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
            "not_before": iso_time(self.not_before),
            "not_after": iso_time(self.not_after),
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
    der: tuple[bytes, ...]
    """The certificates as sent, DER, leaf first (also those that could not be decoded)."""

    @property
    def leaf(self) -> CertInfo | None:
        """The server's own certificate, if it was sent and readable."""
        return self.certs[0] if self.certs else None

    @property
    def others(self) -> tuple[x509.Certificate, ...]:
        """The readable certificates after the leaf (the intermediates a verifier may use)."""
        return tuple(c.cert for c in self.certs[1:] if c is not None)


def parse_chain(chain_der: Sequence[bytes]) -> ParsedChain:
    """Parse every certificate a server sent; garbage becomes a problem, never an exception."""
    certs: list[CertInfo | None] = []
    problems: list[str] = []
    for depth, der in enumerate(chain_der):
        info, problem = _parse_one(der)
        certs.append(info)
        if problem:
            problems.append(f"certificate at depth {depth}: {problem}")
    return ParsedChain(tuple(certs), tuple(problems), tuple(chain_der))


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


def iso_time(when: datetime) -> str:
    """A certificate date as the JSON report shows it, `2025-01-31T12:00:00Z`."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def error_text(exc: BaseException) -> str:
    """cryptography's (or its verifier's) one-line reason, without prefixes and object dumps."""
    text = str(exc).split(" (encountered processing", 1)[0].strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    text = text.removeprefix("validation failed: ").removeprefix("candidates exhausted: ")
    if text.startswith("all candidates exhausted"):
        return "no chain to a trusted root could be built from the certificates sent"
    return text


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
        return None, f"not a decodable X.509 certificate ({error_text(exc)})"
    problems = []
    sans: tuple[str, ...] = ()
    is_ca = False
    try:
        extensions = cert.extensions
    except Exception as exc:  # noqa: BLE001
        problems.append(f"extensions unreadable ({error_text(exc)})")
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
        problems.append(f"public key unreadable ({error_text(exc)})")
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
