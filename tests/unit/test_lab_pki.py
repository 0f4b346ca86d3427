"""The lab PKI makes the certificates the TLS tests rely on: right chains, dates, names, keys."""

from __future__ import annotations

import hashlib
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.lab.pki import INTERMEDIATE_NAME, ROOT_NAME, LabPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    return LabPki(tmp_path_factory.mktemp("pki"))


def load(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def common_name(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def test_root_and_intermediate(pki: LabPki) -> None:
    root, inter = load(pki.root.der), load(pki.intermediate.der)
    assert common_name(root.subject) == ROOT_NAME == common_name(root.issuer)
    assert common_name(inter.subject) == INTERMEDIATE_NAME
    inter.verify_directly_issued_by(root)
    assert pki.ca_file.read_bytes() == root.public_bytes(serialization.Encoding.PEM)


def test_leaf_chain_order_and_files(pki: LabPki) -> None:
    good = pki.issue("chain-good", ["mx1.tls.test", "mail.tls.test"])
    assert good.chain_der == (good.der, pki.intermediate.der)
    load(good.der).verify_directly_issued_by(load(pki.intermediate.der))
    pems = x509.load_pem_x509_certificates(good.chain_path.read_bytes())
    assert [c.public_bytes(serialization.Encoding.DER) for c in pems] == list(good.chain_der)
    assert good.cert_path.read_bytes() == pems[0].public_bytes(serialization.Encoding.PEM)
    assert stat.S_IMODE(good.key_path.stat().st_mode) == 0o644
    key = serialization.load_pem_private_key(good.key_path.read_bytes(), None)
    assert key.public_key() == load(good.der).public_key()


def test_leaf_only_chains(pki: LabPki) -> None:
    for cert in (
        pki.issue("only-nochain", ["mx.tls.test"], with_chain=False),
        pki.issue("only-root", ["mx.tls.test"], issuer="root"),
        pki.issue("only-self", ["mx.tls.test"], issuer="self"),
    ):
        assert cert.chain_der == (cert.der,)
        assert len(x509.load_pem_x509_certificates(cert.chain_path.read_bytes())) == 1


def test_self_signed_and_root_issued(pki: LabPki) -> None:
    selfsigned = load(pki.issue("ss", ["mx1.tls.test"], issuer="self").der)
    assert selfsigned.issuer == selfsigned.subject
    selfsigned.verify_directly_issued_by(selfsigned)
    by_root = load(pki.issue("byroot", ["mx1.tls.test"], issuer="root").der)
    by_root.verify_directly_issued_by(load(pki.root.der))


def test_default_and_given_dates(pki: LabPki) -> None:
    now = datetime.now(UTC)
    cert = load(pki.issue("dates", ["mx1.tls.test"]).der)
    assert abs(cert.not_valid_before_utc - (now - timedelta(days=1))) < timedelta(minutes=1)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=90)
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 31, tzinfo=UTC)
    old = load(pki.issue("old", ["mx1.tls.test"], not_before=start, not_after=end).der)
    assert (old.not_valid_before_utc, old.not_valid_after_utc) == (start, end)


def test_sans_and_common_name(pki: LabPki) -> None:
    cert = load(pki.issue("names", ["*.tls.test", "tls.test"]).der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["*.tls.test", "tls.test"]
    assert common_name(cert.subject) == "*.tls.test"
    bare = load(pki.issue("cn-only", []).der)
    assert common_name(bare.subject) == "cn-only"
    with pytest.raises(x509.ExtensionNotFound):
        bare.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_profile_options_for_private_ca_leaves(pki: LabPki) -> None:
    def ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> object:
        try:
            return cert.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    default = load(pki.issue("profile-default", ["mx1.tls.test"]).der)
    assert ext(default, x509.ExtendedKeyUsage) == x509.ExtendedKeyUsage(
        [x509.ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert ext(default, x509.AuthorityKeyIdentifier) is not None
    cn_only = load(pki.issue("profile-cn", ["mx1.tls.test"], cn_only=True).der)
    assert common_name(cn_only.subject) == "mx1.tls.test"
    assert ext(cn_only, x509.SubjectAlternativeName) is None
    no_aki = load(pki.issue("profile-noaki", ["mx1.tls.test"], with_aki=False).der)
    assert ext(no_aki, x509.AuthorityKeyIdentifier) is None
    no_aki.verify_directly_issued_by(load(pki.intermediate.der))
    client = x509.ExtendedKeyUsageOID.CLIENT_AUTH
    client_only = load(pki.issue("profile-client", ["mx1.tls.test"], eku=[client]).der)
    assert ext(client_only, x509.ExtendedKeyUsage) == x509.ExtendedKeyUsage([client])
    no_eku = load(pki.issue("profile-noeku", ["mx1.tls.test"], eku=None).der)
    assert ext(no_eku, x509.ExtendedKeyUsage) is None
    with pytest.raises(ValueError, match="cn_only"):
        pki.issue("profile-bad", [], cn_only=True)


def test_key_types_and_key_reuse(pki: LabPki) -> None:
    first = pki.issue("key-first", ["mx1.tls.test"])
    renewed = pki.issue("key-renewed", ["mx1.tls.test"], key_of="key-first")
    rolled = pki.issue("key-rolled", ["mx1.tls.test"])
    assert renewed.spki_sha256 == first.spki_sha256 and renewed.der != first.der
    assert rolled.spki_sha256 != first.spki_sha256
    assert isinstance(load(first.der).public_key(), ec.EllipticCurvePublicKey)
    weak = load(pki.issue("rsa1024", ["mx1.tls.test"], key_type="rsa1024").der).public_key()
    assert isinstance(weak, rsa.RSAPublicKey) and weak.key_size == 1024


def test_sha1_signature(pki: LabPki) -> None:
    cert = load(
        pki.issue(
            "sha1", ["mx1.tls.test"], issuer="self", key_type="rsa2048", signature_hash="sha1"
        ).der
    )
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)
    with pytest.raises(ValueError, match="RSA"):
        pki.issue("sha1-ec", ["mx1.tls.test"], signature_hash="sha1")


def test_tlsa_data(pki: LabPki) -> None:
    cert = pki.issue("tlsa", ["mx1.tls.test"])
    spki = (
        load(cert.der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert cert.tlsa(3, 1, 1) == f"3 1 1 {hashlib.sha256(spki).hexdigest()}"
    assert cert.tlsa(3, 1, 1) == f"3 1 1 {cert.spki_sha256}"
    assert cert.tlsa(2, 1, 2) == f"2 1 2 {cert.spki_sha512}"
    assert cert.tlsa(3, 0, 1) == f"3 0 1 {cert.cert_sha256}"
    assert cert.tlsa(3, 0, 0) == f"3 0 0 {cert.der.hex()}"
    assert cert.tlsa(3, 1, 0) == f"3 1 0 {spki.hex()}"
    with pytest.raises(ValueError):
        cert.tlsa(3, 2, 1)


def test_a_dozen_certificates_well_under_a_second(tmp_path: Path) -> None:
    start = time.perf_counter()
    pki = LabPki(tmp_path)
    for n in range(12):
        pki.issue(f"leaf{n}", [f"mx{n}.tls.test"])
    assert time.perf_counter() - start < 1.0
