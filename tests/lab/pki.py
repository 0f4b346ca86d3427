"""The lab PKI: a root CA, an intermediate CA and leaf certificates, made in-process.

Every TLS test uses it. Certificates are made with `cryptography` (no openssl CLI, no
faketime): an expired certificate is just one whose dates lie in the past. Keys are fresh for
every LabPki and written next to the certificates (mode 0644: test-only material, readable by a
lab Postfix running as another user).

    pki = LabPki(tmp_path)
    good = pki.issue("good", ["mx1.tls.test", "mail.tls.test"])
    good.chain_path          # what a server sends: leaf + intermediate, PEM
    good.tlsa(3, 1, 1)       # "3 1 1 <sha256 of the leaf's SPKI>"
    pki.ca_file              # the root alone, for --ca-file
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa2048", "rsa1024"]
Issuer = Literal["intermediate", "root", "self"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ROOT_NAME = "Mailcheck Lab Root CA"
INTERMEDIATE_NAME = "Mailcheck Lab Intermediate CA"
CA_NOT_BEFORE = datetime(2019, 1, 1, tzinfo=UTC)
"""CAs are valid from long before any "expired" test leaf, as a real CA would be."""

# DER of the AlgorithmIdentifier OIDs (content octets only): same length, so a SHA-256 RSA
# certificate can be turned into a SHA-1 one by swapping bytes and re-signing.
_SHA256_RSA_OID = bytes.fromhex("2a864886f70d01010b")  # 1.2.840.113549.1.1.11
_SHA1_RSA_OID = bytes.fromhex("2a864886f70d010105")  # 1.2.840.113549.1.1.5


@dataclass(frozen=True)
class LabCert:
    """One certificate of the lab PKI, its files and the digests TLSA records pin."""

    name: str
    """The file stem, e.g. `good` for good.crt / good.key / good.chain.pem."""
    cert_path: Path
    """The certificate alone, PEM."""
    key_path: Path
    """Its private key, PEM (PKCS#8, unencrypted)."""
    chain_path: Path
    """What a server is configured to send, PEM, leaf first."""
    der: bytes
    """The certificate, DER."""
    chain_der: tuple[bytes, ...]
    """What the server sends, DER, leaf first."""
    spki_sha256: str
    """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex (TLSA x 1 1)."""
    spki_sha512: str
    """SHA-512 of the DER SubjectPublicKeyInfo, lowercase hex (TLSA x 1 2)."""
    cert_sha256: str
    """SHA-256 of the whole certificate, lowercase hex (TLSA x 0 1)."""

    def tlsa(self, usage: int, selector: int, mtype: int) -> str:
        """The TLSA record data pinning this certificate, e.g. `3 1 1 ab12...`."""
        cert = x509.load_der_x509_certificate(self.der)
        if selector == 0:
            data = self.der
        elif selector == 1:
            data = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            raise ValueError(f"selector {selector} is neither 0 (cert) nor 1 (SPKI)")
        if mtype == 0:
            digest = data.hex()
        elif mtype == 1:
            digest = hashlib.sha256(data).hexdigest()
        elif mtype == 2:
            digest = hashlib.sha512(data).hexdigest()
        else:
            raise ValueError(f"matching type {mtype} is not 0, 1 or 2")
        return f"{usage} {selector} {mtype} {digest}"


@dataclass(frozen=True)
class _Made:
    """A certificate with the key that signed for it (kept to issue from or reuse)."""

    cert: x509.Certificate
    """The certificate."""
    key: PrivateKey
    """Its private key."""


class LabPki:
    """A root CA and an intermediate CA in `directory`, issuing leaf certificates on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._made: dict[str, _Made] = {}
        far = datetime.now(UTC) + timedelta(days=3650)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_cert = _build(
            _name(ROOT_NAME), _name(ROOT_NAME), root_key, root_key,
            CA_NOT_BEFORE, far, ca_path_length=1,
        )  # fmt: skip
        self._made["root"] = _Made(root_cert, root_key)
        self.root = self._write("root", root_cert, root_key, ())
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter_cert = _build(
            _name(INTERMEDIATE_NAME), root_cert.subject, inter_key, root_key,
            CA_NOT_BEFORE, far, ca_path_length=0, issuer_key_public=root_key.public_key(),
        )  # fmt: skip
        self._made["intermediate"] = _Made(inter_cert, inter_key)
        self.intermediate = self._write("intermediate", inter_cert, inter_key, ())
        self.ca_file = self.root.cert_path

    def issue(
        self,
        name: str,
        sans: Sequence[str],
        *,
        issuer: Issuer = "intermediate",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key_type: KeyType = "ec",
        key_of: str | None = None,
        with_chain: bool = True,
        signature_hash: Literal["sha256", "sha1"] = "sha256",
        cn_only: bool = False,
        with_aki: bool = True,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.SERVER_AUTH,),
    ) -> LabCert:
        """A leaf with these SAN dNSNames (CN = the first; no SAN at all when `sans` is empty).

        Valid from one day ago for 90 days unless dates are given. `key_of` reuses the private
        key of an earlier certificate (a renewal); otherwise a new key of `key_type` is made.
        `signature_hash="sha1"` needs an RSA signing key (the lab CAs are EC), so use it with
        `issuer="self"` and an RSA key_type; cryptography will not sign with SHA-1 itself, so the
        certificate is re-signed by hand. For leaves of the kind private CAs issue: `cn_only`
        names `sans[0]` in the CN alone, with no subjectAltName; `with_aki=False` leaves out
        the Authority Key Identifier; `eku` is the extendedKeyUsage (None: no such extension).
        """
        if name in self._made:
            raise ValueError(f"a certificate named {name!r} was already issued")
        now = datetime.now(UTC)
        start = not_before or now - timedelta(days=1)
        end = not_after or start + timedelta(days=90)
        if key_of is not None:
            key = self._made[key_of].key
        else:
            key = _new_key(key_type)
        if cn_only and not sans:
            raise ValueError("cn_only needs the name for the CN in `sans`")
        subject = _name(sans[0] if sans else name)
        if issuer == "self":
            signing_key, issuer_name = key, subject
        else:
            signing_key = self._made[issuer].key
            issuer_name = self._made[issuer].cert.subject
        cert = _build(
            subject, issuer_name, key, signing_key, start, end,
            sans=() if cn_only else sans,
            issuer_key_public=signing_key.public_key() if with_aki else None,
            eku=eku,
        )  # fmt: skip
        if signature_hash == "sha1":
            cert = _resign_sha1(cert, signing_key)
        self._made[name] = _Made(cert, key)
        chain: tuple[x509.Certificate, ...] = ()
        if issuer == "intermediate" and with_chain:
            chain = (self._made["intermediate"].cert,)
        return self._write(name, cert, key, chain)

    def _write(
        self,
        name: str,
        cert: x509.Certificate,
        key: PrivateKey,
        chain: tuple[x509.Certificate, ...],
    ) -> LabCert:
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        chain_path = self.directory / f"{name}.chain.pem"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path.write_bytes(pem)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o644)  # test-only key; a lab server running as another user reads it
        served = (cert, *chain)
        chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in served))
        der = cert.public_bytes(serialization.Encoding.DER)
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return LabCert(
            name=name,
            cert_path=cert_path,
            key_path=key_path,
            chain_path=chain_path,
            der=der,
            chain_der=tuple(c.public_bytes(serialization.Encoding.DER) for c in served),
            spki_sha256=hashlib.sha256(spki).hexdigest(),
            spki_sha512=hashlib.sha512(spki).hexdigest(),
            cert_sha256=hashlib.sha256(der).hexdigest(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mailcheck Lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    bits = 2048 if key_type == "rsa2048" else 1024
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _build(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    signing_key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
    *,
    sans: Sequence[str] = (),
    ca_path_length: int | None = None,
    issuer_key_public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.SERVER_AUTH,),
) -> x509.Certificate:
    is_ca = ca_path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key_public is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key_public), critical=False
        )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
            )
    return builder.sign(signing_key, hashes.SHA256())


def _resign_sha1(cert: x509.Certificate, signing_key: PrivateKey) -> x509.Certificate:
    """The same certificate signed with SHA-1 (RSA only; the OIDs have equal lengths)."""
    if not isinstance(signing_key, rsa.RSAPrivateKey):
        raise ValueError("a SHA-1 lab certificate needs an RSA signing key (key_type rsa*)")
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes.replace(_SHA256_RSA_OID, _SHA1_RSA_OID)
    signature = signing_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    # RSA signatures are as long as the modulus, so every DER length stays the same.
    swapped = der.replace(_SHA256_RSA_OID, _SHA1_RSA_OID).replace(cert.signature, signature)
    return x509.load_der_x509_certificate(swapped)
