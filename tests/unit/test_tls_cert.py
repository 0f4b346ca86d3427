"""Certificate judgement (PKIX) of served chains made by the lab PKI: each cause told apart."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailcheck.checks.tls_cert import (
    ChainVerdict,
    cert_findings,
    judge_chain,
    load_roots,
    name_matches,
    parse_chain,
    purpose_error,
    verify_to_anchors,
)
from mailcheck.model import Finding, Severity
from tests.lab.pki import LabCert, LabPki

HOST = "mx1.tls.test"
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Lab:
    pki: LabPki
    roots: tuple[x509.Certificate, ...]
    certs: dict[str, LabCert]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    pki = LabPki(tmp_path_factory.mktemp("pki"))
    long_ago = NOW - timedelta(days=400)
    certs = {
        "good": pki.issue("good", [HOST, "mail.tls.test"]),
        "expired": pki.issue(
            "expired", [HOST], not_before=long_ago, not_after=long_ago + timedelta(days=100)
        ),
        "wrongname": pki.issue("wrongname", ["wrong.example.net"]),
        "selfsigned": pki.issue("selfsigned", [HOST], issuer="self"),
        "leafonly": pki.issue("leafonly", [HOST], with_chain=False),
        "byroot": pki.issue("byroot", [HOST], issuer="root"),
        "rsa1024": pki.issue("rsa1024", [HOST], key_type="rsa1024"),
        "rsa2048": pki.issue("rsa2048", [HOST], key_type="rsa2048"),
        "wildcard": pki.issue("wildcard", ["*.tls.test"]),
        "sha1": pki.issue("sha1", [HOST], issuer="self", key_type="rsa2048", signature_hash="sha1"),
        "cnonly": pki.issue("cnonly", []),
        "expiring": pki.issue("expiring", [HOST], not_after=NOW + timedelta(days=5, hours=1)),
        "notyet": pki.issue("notyet", [HOST], not_before=NOW + timedelta(days=2)),
        "noaki": pki.issue("noaki", [HOST], with_aki=False),
        "clientonly": pki.issue("clientonly", [HOST], eku=[ExtendedKeyUsageOID.CLIENT_AUTH]),
    }
    return Lab(pki, load_roots(pki.ca_file), certs)


def judge(lab: Lab, name: str, host: str = HOST) -> ChainVerdict:
    return judge_chain(lab.certs[name].chain_der, host, now=NOW, roots=lab.roots)


def codes(findings: tuple[Finding, ...]) -> list[str]:
    return [f.code for f in findings]


def findings(verdict: ChainVerdict, *, pkix: bool = False, ee: bool = False) -> tuple[Finding, ...]:
    return cert_findings(HOST, "127.0.0.1", verdict, pkix_required=pkix, dane_ee_ok=ee)


def test_good_chain_passes_everything(lab: Lab) -> None:
    v = judge(lab, "good")
    assert (v.pkix_valid, v.chain_trusted, v.name_matches) == (True, True, True)
    assert not (v.self_signed or v.missing_intermediate or v.expired or v.weak_keys or v.sha1)
    assert v.days_left in (88, 89)  # 90 days from a day ago, read at some time of day
    assert len(v.path) == 3 and "Root CA" in v.path[-1]
    assert findings(v) == ()


def test_second_san_matches_too(lab: Lab) -> None:
    assert judge(lab, "good", "MAIL.tls.test.").pkix_valid


def test_expired_is_trusted_but_expired(lab: Lab) -> None:
    v = judge(lab, "expired")
    assert not v.pkix_valid and v.chain_trusted and v.name_matches
    assert v.expired == (0,) and v.days_left is not None and v.days_left < -299
    found = findings(v)
    assert codes(found) == ["tls.cert-expired"]
    assert "days ago" in found[0].message and found[0].severity is Severity.WARNING


def test_wrong_name_is_a_name_mismatch_only(lab: Lab) -> None:
    v = judge(lab, "wrongname")
    assert v.chain_trusted and not v.name_matches and not v.pkix_valid
    found = findings(v)
    assert codes(found) == ["tls.cert-name-mismatch"]
    assert "wrong.example.net" in found[0].message and HOST in found[0].message


def test_self_signed(lab: Lab) -> None:
    v = judge(lab, "selfsigned")
    assert v.self_signed and not v.chain_trusted and not v.missing_intermediate
    found = findings(v)
    assert codes(found) == ["tls.cert-self-signed"]
    # The remedy offers the DANE-EE alternative with the server's actual key.
    assert f"3 1 1 {lab.certs['selfsigned'].spki_sha256}" in found[0].remedy


def test_leaf_only_chain_names_the_missing_intermediate(lab: Lab) -> None:
    v = judge(lab, "leafonly")
    assert not v.chain_trusted and v.missing_intermediate
    assert "Mailcheck Lab Intermediate CA" in v.missing_issuer
    found = findings(v)
    assert codes(found) == ["tls.cert-missing-intermediate"]
    assert found[0].evidence["missing_issuer"] == v.missing_issuer


def test_leaf_issued_by_the_root_needs_no_intermediate(lab: Lab) -> None:
    v = judge(lab, "byroot")
    assert v.pkix_valid and not v.missing_intermediate


def test_chain_to_an_unknown_root_is_untrusted_not_missing_intermediate(
    lab: Lab, tmp_path: Path
) -> None:
    # Another lab root of the same name: the verifier finds it and says the signature is wrong.
    other = LabPki(tmp_path)
    v = judge_chain(lab.certs["good"].chain_der, HOST, now=NOW, roots=load_roots(other.ca_file))
    assert not v.chain_trusted and not v.missing_intermediate and not v.self_signed
    found = findings(v)
    assert codes(found) == ["tls.cert-untrusted"]
    assert "signature does not match" in found[0].message
    # The system store knows no such root at all.
    v = judge_chain(lab.certs["good"].chain_der, HOST, now=NOW, roots=load_roots(None))
    assert not v.chain_trusted and not v.missing_intermediate
    found = findings(v)
    assert codes(found) == ["tls.cert-untrusted"]
    assert "no chain to a trusted root" in found[0].message


def test_weak_rsa_key(lab: Lab) -> None:
    v = judge(lab, "rsa1024")
    assert v.weak_keys == (0,)
    found = findings(v)
    assert codes(found) == ["tls.cert-weak-key"]
    assert "RSA 1024" in found[0].message
    assert judge(lab, "rsa2048").weak_keys == ()


def test_sha1_signature(lab: Lab) -> None:
    v = judge(lab, "sha1")
    assert v.sha1 == (0,)
    assert v.leaf is not None and v.leaf.signature_hash == "sha1"
    assert codes(findings(v)) == ["tls.cert-self-signed", "tls.cert-sha1"]


def test_wildcard_covers_exactly_one_label(lab: Lab) -> None:
    assert judge(lab, "wildcard", "a.tls.test").pkix_valid
    deep = judge(lab, "wildcard", "a.b.tls.test")
    assert not deep.name_matches and deep.chain_trusted
    assert codes(findings(deep)) == ["tls.cert-name-mismatch"]
    assert not judge(lab, "wildcard", "tls.test").name_matches


@pytest.mark.parametrize(
    ("sans", "cns", "host", "expected"),
    [
        (["*.tls.test"], [], "a.tls.test", True),
        (["*.tls.test"], [], "a.b.tls.test", False),
        (["*.tls.test"], [], "tls.test", False),
        (["*.test"], [], "a.test", False),  # no wildcard right under a TLD
        (["a*.tls.test"], [], "ab.tls.test", False),  # partial wildcards are not honoured
        (["MX1.TLS.TEST."], [], "mx1.tls.test", True),
        (["other.tls.test"], ["mx1.tls.test"], "mx1.tls.test", False),  # CN ignored with SAN
        ([], ["mx1.tls.test"], "mx1.tls.test", True),  # CN counts without SAN
        ([], [], "mx1.tls.test", False),
    ],
)
def test_name_matching_rules(
    lab: Lab, sans: list[str], cns: list[str], host: str, expected: bool
) -> None:
    leaf = parse_chain([lab.certs["good"].der]).leaf
    assert leaf is not None
    assert name_matches(replace(leaf, sans=tuple(sans), common_names=tuple(cns)), host) is expected


def test_cn_only_certificate_is_named_but_fails_the_strict_check(lab: Lab) -> None:
    v = judge(lab, "cnonly", "cnonly")
    assert v.chain_trusted and v.name_matches and not v.pkix_valid
    found = findings(v)
    assert codes(found) == ["tls.cert-untrusted"]
    assert "subjectAltName" in found[0].message


def test_no_authority_key_identifier_is_trusted_like_openssl_does(lab: Lab) -> None:
    # The CA/Browser Forum profile wants an AKI; OpenSSL, Go and Windows build chains
    # without one, so neither trust nor the server check depends on it.
    v = judge(lab, "noaki")
    assert (v.pkix_valid, v.chain_trusted, v.name_matches) == (True, True, True)
    assert findings(v) == ()


def test_client_only_eku_is_trusted_but_not_valid_for_a_server(lab: Lab) -> None:
    v = judge(lab, "clientonly")
    assert v.chain_trusted and v.name_matches and not v.pkix_valid
    assert "EKU" in v.trust_error
    assert codes(findings(v)) == ["tls.cert-untrusted"]


@pytest.mark.parametrize(
    ("usages", "refused"),
    [
        (None, False),
        ([ExtendedKeyUsageOID.SERVER_AUTH], False),
        ([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH], False),
        ([x509.ObjectIdentifier("2.16.840.1.113730.4.1")], False),  # Netscape SGC
        ([ExtendedKeyUsageOID.CLIENT_AUTH], True),
        ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], True),  # not enough for OpenSSL
    ],
)
def test_purpose_error_follows_openssl(
    lab: Lab, usages: list[x509.ObjectIdentifier] | None, refused: bool
) -> None:
    name = "eku-" + "-".join(u.dotted_string for u in usages or ())
    cert = x509.load_der_x509_certificate(lab.pki.issue(name, [HOST], eku=usages).der)
    problem = purpose_error(cert)
    assert bool(problem) is refused
    if usages == [ExtendedKeyUsageOID.CLIENT_AUTH]:
        assert problem == "extendedKeyUsage clientAuth, without serverAuth"


def _private_ca(key_usage: x509.KeyUsage | None) -> tuple[x509.Certificate, x509.Certificate]:
    """A private root (with this keyUsage, or none) and a leaf it issued for HOST."""
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )

    def cert(cn: str, key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Private CA")]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    root = cert("Private CA", ca_key, True)
    if key_usage is not None:
        root = root.add_extension(key_usage, critical=True)
    leaf = cert(HOST, leaf_key, False).add_extension(
        x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False
    )
    return root.sign(ca_key, hashes.SHA256()), leaf.sign(ca_key, hashes.SHA256())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def test_a_ca_without_key_usage_is_a_ca_by_basic_constraints() -> None:
    # OpenSSL takes basicConstraints alone when a CA has no keyUsage (a private CA often has
    # none); a keyUsage that is present must still allow keyCertSign (RFC 5280 §4.2.1.3).
    root, leaf = _private_ca(None)
    for names in (None, [HOST]):
        path, error = verify_to_anchors(leaf, [], [root], names, NOW)
        assert len(path) == 2 and error == ""
    root, leaf = _private_ca(_key_usage(cert_sign=False))
    path, error = verify_to_anchors(leaf, [], [root], None, NOW)
    assert path == () and "keyCertSign" in error
    root, leaf = _private_ca(_key_usage(cert_sign=True))
    assert verify_to_anchors(leaf, [], [root], None, NOW)[0]


def test_expiring_is_always_a_warning(lab: Lab) -> None:
    v = judge(lab, "expiring")
    assert v.pkix_valid and v.days_left == 5
    found = findings(v, pkix=True)
    assert codes(found) == ["tls.cert-expiring"]
    assert found[0].severity is Severity.WARNING


def test_not_yet_valid(lab: Lab) -> None:
    v = judge(lab, "notyet")
    assert v.not_yet_valid == (0,) and not v.expired
    assert codes(findings(v)) == ["tls.cert-not-yet-valid"]


def test_severity_follows_the_mta_sts_requirement(lab: Lab) -> None:
    v = judge(lab, "selfsigned")
    (opportunistic,) = findings(v)
    (required,) = findings(v, pkix=True)
    (with_dane,) = findings(v, ee=True)
    assert opportunistic.severity is Severity.WARNING and required.severity is Severity.ERROR
    assert "DANE-EE senders do not look" in opportunistic.message
    assert "verify'/'secure'" in opportunistic.message and "MTA-STS" in opportunistic.message
    assert "enforce" in required.message
    assert "DANE senders still deliver" in with_dane.message
    for f in (opportunistic, required, with_dane):
        assert f.check == "tls" and f.remedy and f.rfc
        assert f.evidence["host"] == HOST and f.evidence["ip"] == "127.0.0.1"


def test_a_matching_dane_ta_record_is_named_instead_of_listing_dane_ta_as_refusing(
    lab: Lab,
) -> None:
    # A private CA pinned by a signed DANE-TA record: public roots fail, DANE senders deliver.
    (plain,) = findings(judge(lab, "selfsigned"))
    (with_ta,) = cert_findings(
        HOST, "", judge(lab, "selfsigned"), pkix_required=False, dane_ee_ok=False, dane_ta_ok=True
    )
    assert "DANE-TA) do not" in plain.message
    assert "DANE-TA" in with_ta.message and "DANE-TA) do not" not in with_ta.message
    assert "DANE senders still deliver" in with_ta.message
    assert with_ta.severity is plain.severity  # the severity is the PKIX senders' policy


def test_a_parsed_chain_judges_like_its_der(lab: Lab) -> None:
    # Callers that match TLSA records too parse a served chain once and pass it in.
    for name in ("good", "leafonly", "selfsigned", "expired"):
        der = lab.certs[name].chain_der
        parsed = parse_chain(der)
        assert parsed.der == tuple(der)
        by_der = judge_chain(der, HOST, now=NOW, roots=lab.roots)
        by_parsed = judge_chain(parsed, HOST, now=NOW, roots=lab.roots)
        assert by_parsed.chain is parsed
        assert by_parsed.to_json() == by_der.to_json()
    for garbage in ([], [b"garbage"]):
        empty = judge_chain(parse_chain(garbage), HOST, now=NOW, roots=lab.roots)
        assert empty.trust_error == judge_chain(garbage, HOST, now=NOW, roots=lab.roots).trust_error


def test_public_names_stay_importable_from_tls_cert() -> None:
    import mailcheck.checks.tls_cert as tls_cert
    import mailcheck.checks.tls_cert_parse as tls_cert_parse

    for name in tls_cert.__all__:
        assert hasattr(tls_cert, name), name
    for name in ("CertInfo", "ParsedChain", "parse_chain", "load_roots", "aware_utc"):
        assert getattr(tls_cert, name) is getattr(tls_cert_parse, name)


@pytest.mark.parametrize(
    "chain",
    [
        [b"garbage"],
        [b""],
        [b"\x30\x82\x01\x00" + b"\x00" * 10],  # a DER header promising more than there is
    ],
)
def test_undecodable_leaf_is_data(lab: Lab, chain: list[bytes]) -> None:
    v = judge_chain(chain, HOST, now=NOW, roots=lab.roots)
    assert v.leaf is None and not v.pkix_valid and v.days_left is None
    assert v.chain.problems and "depth 0" in v.chain.problems[0]
    found = findings(v, pkix=True)
    assert codes(found) == ["tls.cert-malformed"] and found[0].severity is Severity.ERROR
    json.dumps(v.to_json())


def test_truncated_leaf_is_data(lab: Lab) -> None:
    der = lab.certs["good"].der
    v = judge_chain([der[: len(der) // 2]], HOST, now=NOW, roots=lab.roots)
    assert codes(findings(v)) == ["tls.cert-malformed"]


def test_no_certificate_at_all(lab: Lab) -> None:
    v = judge_chain([], HOST, now=NOW, roots=lab.roots)
    found = findings(v)
    assert codes(found) == ["tls.cert-malformed"]
    assert "sent no certificate" in found[0].message


def test_garbage_instead_of_the_intermediate(lab: Lab) -> None:
    v = judge_chain([lab.certs["good"].der, b"junk"], HOST, now=NOW, roots=lab.roots)
    assert v.leaf is not None and v.chain.certs[1] is None
    assert codes(findings(v)) == ["tls.cert-malformed", "tls.cert-missing-intermediate"]


def test_naive_time_is_utc(lab: Lab) -> None:
    naive = NOW.replace(tzinfo=None)
    assert judge_chain(lab.certs["good"].chain_der, HOST, now=naive, roots=lab.roots).pkix_valid


def test_json_shape(lab: Lab) -> None:
    out = judge(lab, "good").to_json()
    json.dumps(out)
    for key in ("subject", "issuer", "sans", "not_after", "days_left", "chain_trusted"):
        assert key in out
    assert out["name_matches"] is True and out["sans"] == [HOST, "mail.tls.test"]
    assert [c["depth"] for c in out["chain"]] == [0, 1]
    assert out["chain"][0]["spki_sha256"] == lab.certs["good"].spki_sha256
    assert out["not_after"].endswith("Z")


def test_load_roots_from_file_and_bundle(lab: Lab, tmp_path: Path) -> None:
    assert [r.subject for r in lab.roots] == [
        x509.load_der_x509_certificate(lab.pki.root.der).subject
    ]
    bundle = tmp_path / "bundle.pem"
    broken = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    bundle.write_bytes(broken + lab.pki.ca_file.read_bytes())
    assert len(load_roots(bundle)) == 1  # a bad entry does not hide the good one
    der = tmp_path / "root.der"
    der.write_bytes(lab.pki.root.der)
    assert len(load_roots(der)) == 1


def test_load_roots_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"hello")
    for path, text in (
        (tmp_path / "missing.pem", "cannot read CA file"),
        (tmp_path, "cannot read CA file"),
        (empty, "holds no readable certificate"),
        (garbage, "holds no readable certificate"),
    ):
        with pytest.raises(ValueError, match=text) as info:
            load_roots(path)
        assert "\n" not in str(info.value)


def test_system_store_loads() -> None:
    roots = load_roots(None)
    assert len(roots) > 10
