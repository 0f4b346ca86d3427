"""TLSA records and DANE matching (RFC 7672, RFC 7671) against chains from the lab PKI."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from mailcheck.checks.dane import (
    DaneVerdict,
    TlsaOutcome,
    TlsaRecord,
    dane_findings,
    match_tlsa,
)
from mailcheck.checks.tls_cert import cert_findings, judge_chain, load_roots, parse_chain
from mailcheck.model import Finding, Severity
from tests.lab.pki import LabCert, LabPki

HOST = "mx1.tls.test"
NOW = datetime.now(UTC)
T = TlsaRecord.from_text


@dataclass(frozen=True)
class Lab:
    pki: LabPki
    certs: dict[str, LabCert]

    def __getitem__(self, name: str) -> LabCert:
        return self.certs[name]

    @property
    def inter(self) -> LabCert:
        return self.pki.intermediate


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    pki = LabPki(tmp_path_factory.mktemp("pki"))
    long_ago = NOW - timedelta(days=400)
    certs = {
        "good": pki.issue("good", [HOST]),
        "renewed": pki.issue("renewed", [HOST], key_of="good"),
        "rollover": pki.issue("rollover", [HOST]),
        "expired": pki.issue(
            "expired", [HOST], not_before=long_ago, not_after=long_ago + timedelta(days=100)
        ),
        "wrongname": pki.issue("wrongname", ["wrong.example.net"]),
        "selfsigned": pki.issue("selfsigned", [HOST], issuer="self"),
        "leafonly": pki.issue("leafonly", [HOST], with_chain=False),
        "wildcard": pki.issue("wildcard", ["*.tls.test"]),
        "rsa1024": pki.issue("rsa1024", [HOST], key_type="rsa1024"),
        # Leaves as private CAs issue them, which OpenSSL (Postfix, Exim) accepts for DANE-TA.
        "cnonly": pki.issue("cnonly", [HOST], cn_only=True),
        "cnonly-wrong": pki.issue("cnonly-wrong", ["wrong.example.net"], cn_only=True),
        "noaki": pki.issue("noaki", [HOST], with_aki=False),
        "noeku": pki.issue("noeku", [HOST], eku=None),
        "clientonly": pki.issue("clientonly", [HOST], eku=[ExtendedKeyUsageOID.CLIENT_AUTH]),
    }
    return Lab(pki, certs)


def match(records: list[TlsaRecord], cert: LabCert, *names: str) -> DaneVerdict:
    return match_tlsa(records, cert.chain_der, names or (HOST,), now=NOW)


def outcomes(verdict: DaneVerdict) -> list[tuple[str, int | None]]:
    return [(r.outcome.value, r.depth) for r in verdict.results]


def findings(
    verdict: DaneVerdict | None,
    records: list[TlsaRecord],
    *,
    secure: bool = True,
    starttls: bool = True,
) -> tuple[Finding, ...]:
    return dane_findings(HOST, 25, verdict, records, tlsa_secure=secure, starttls_ok=starttls)


def codes(found: tuple[Finding, ...]) -> list[str]:
    return [f.code for f in found]


# --- TLSA records -----------------------------------------------------------------------


def test_record_from_text(lab: Lab) -> None:
    rec = T(lab["good"].tlsa(3, 1, 1))
    assert (rec.usage, rec.selector, rec.mtype) == (3, 1, 1)
    assert rec.data.hex() == lab["good"].spki_sha256
    assert rec.usable and not rec.malformed and rec.problems == ()
    assert rec.text == lab["good"].tlsa(3, 1, 1)
    spaced = T(f"3 1 1 {lab['good'].spki_sha256[:32]} {lab['good'].spki_sha256[32:].upper()}")
    assert spaced == rec


def test_record_from_dnspython_rdata(lab: Lab) -> None:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, lab["good"].tlsa(2, 1, 2))
    rec = TlsaRecord.from_rdata(rdata)
    assert (rec.usage, rec.selector, rec.mtype) == (2, 1, 2) and rec.usable
    assert rec.data.hex() == lab["good"].spki_sha512
    odd = TlsaRecord.from_rdata(object())
    assert odd.malformed and not odd.usable


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3 1 1 " + "ab" * 33, "33 bytes, but a SHA-256 digest is 32"),
        ("3 1 1 " + "ab" * 31, "31 bytes"),
        ("3 1 2 " + "ab" * 32, "a SHA-512 digest is 64"),
        ("3 2 1 " + "ab" * 32, "unknown selector 2"),
        ("3 1 3 " + "ab" * 32, "unknown matching type 3"),
        ("4 1 1 " + "ab" * 32, "unknown certificate usage 4"),
        ("3 1 0", "no certificate association data"),
        ("3 1 1 xyz", "presentation format"),
        ("three one one ab", "presentation format"),
        ("", "presentation format"),
    ],
)
def test_malformed_records(text: str, problem: str) -> None:
    rec = T(text)
    assert rec.malformed and not rec.usable
    assert any(problem in p for p in rec.problems), rec.problems


@pytest.mark.parametrize("usage", [0, 1])
def test_pkix_usages_are_unusable_not_malformed(lab: Lab, usage: int) -> None:
    rec = T(lab["good"].tlsa(usage, 1, 1))
    assert rec.pkix_usage and not rec.usable and not rec.malformed
    assert "unusable" in rec.problems[0]


# --- DANE-EE(3) -------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "mtype"), [(1, 1), (1, 2), (1, 0), (0, 1), (0, 2), (0, 0)])
def test_dane_ee_all_encodings(lab: Lab, selector: int, mtype: int) -> None:
    verdict = match([T(lab["good"].tlsa(3, selector, mtype))], lab["good"])
    assert outcomes(verdict) == [("match", 0)]
    assert verdict.dane_ee_ok


@pytest.mark.parametrize("name", ["expired", "selfsigned", "wrongname", "rsa1024"])
def test_dane_ee_ignores_names_dates_and_issuer(lab: Lab, name: str) -> None:
    # RFC 7672 §3.1.1: only the key counts (ptf-dane-expired-ee, ptf-dane-selfsigned-ee).
    verdict = match([T(lab[name].tlsa(3, 1, 1))], lab[name])
    assert outcomes(verdict) == [("match", 0)]
    assert codes(findings(verdict, [*verdict.records])) == ["dane.match", "dane.no-rollover"]


def test_renewal_with_the_same_key_keeps_3_1_1_but_breaks_3_0_1(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1)), T(lab["good"].tlsa(3, 0, 1))]
    verdict = match(records, lab["renewed"])
    assert [r.outcome for r in verdict.results] == [TlsaOutcome.MATCH, TlsaOutcome.MISMATCH]


def test_key_rollover_without_new_record_is_a_mismatch(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1))]
    verdict = match(records, lab["rollover"])
    assert verdict.matched is None and outcomes(verdict) == [("mismatch", None)]
    assert verdict.leaf_spki_sha256 == lab["rollover"].spki_sha256
    found = findings(verdict, records)
    assert codes(found) == ["dane.mismatch"]
    (mismatch,) = found
    assert mismatch.severity is Severity.ERROR and "defer" in mismatch.message
    assert lab["rollover"].spki_sha256 in mismatch.message
    # The remedy is the exact record to publish for the key the server now uses.
    assert f"_25._tcp.{HOST}. IN TLSA {lab['rollover'].tlsa(3, 1, 1)}" in mismatch.remedy
    assert mismatch.rfc


def test_rollover_done_right_matches_the_new_key(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1)), T(lab["rollover"].tlsa(3, 1, 1))]
    verdict = match(records, lab["rollover"])
    assert outcomes(verdict) == [("mismatch", None), ("match", 0)]
    assert verdict.matched is not None and verdict.matched.record == records[1]
    assert codes(findings(verdict, records)) == ["dane.match"]  # no dane.no-rollover


def test_dane_ee_record_of_the_intermediate_says_so(lab: Lab) -> None:
    verdict = match([T(lab.inter.tlsa(3, 1, 1))], lab["good"])
    assert outcomes(verdict) == [("mismatch", None)]
    assert "depth 1" in verdict.results[0].detail


# --- DANE-TA(2) -------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "mtype"), [(1, 1), (1, 2), (0, 1)])
def test_dane_ta_matches_the_intermediate_at_depth_1(lab: Lab, selector: int, mtype: int) -> None:
    verdict = match([T(lab.inter.tlsa(2, selector, mtype))], lab["good"])
    assert outcomes(verdict) == [("match", 1)]
    assert not verdict.dane_ee_ok
    assert "verifier" in verdict.results[0].detail  # says how the chain was checked


def test_dane_ta_leaf_expired(lab: Lab) -> None:
    records = [T(lab.inter.tlsa(2, 1, 1))]
    verdict = match(records, lab["expired"])
    assert outcomes(verdict) == [("ta-expired", 1)]
    assert codes(findings(verdict, records)) == ["dane.ta-expired"]


def test_dane_ta_wrong_name(lab: Lab) -> None:
    records = [T(lab.inter.tlsa(2, 1, 1))]
    verdict = match(records, lab["wrongname"])
    assert outcomes(verdict) == [("ta-name-mismatch", 1)]
    found = findings(verdict, records)
    assert codes(found) == ["dane.ta-name-mismatch"]
    assert "wrong.example.net" in found[0].message


def test_dane_ta_reference_names(lab: Lab) -> None:
    records = [T(lab.inter.tlsa(2, 1, 1))]
    # RFC 7672 §3.2.2: any of the reference names will do (TLSA base domain, MX host).
    assert outcomes(match(records, lab["good"], "tls.test", HOST)) == [("match", 1)]
    assert outcomes(match(records, lab["wildcard"], "a.tls.test")) == [("match", 1)]
    assert outcomes(match(records, lab["wildcard"], "a.b.tls.test")) == [("ta-name-mismatch", 1)]


@pytest.mark.parametrize("name", ["cnonly", "noaki", "noeku"])
def test_dane_ta_accepts_what_openssl_accepts(lab: Lab, name: str) -> None:
    # RFC 7672 §3.2.3: the CN counts when there is no SAN; no AKI and no EKU are fine for
    # OpenSSL, whatever the web PKI profile says.
    records = [T(lab.inter.tlsa(2, 1, 1))]
    verdict = match(records, lab[name])
    assert outcomes(verdict) == [("match", 1)], verdict.results[0].detail
    assert verdict.dane_ta_ok
    assert codes(findings(verdict, records)) == ["dane.match"]
    if name == "cnonly":
        assert "(in its CN)" in verdict.results[0].detail


def test_dane_ta_cn_only_wrong_name_says_where_it_looked(lab: Lab) -> None:
    verdict = match([T(lab.inter.tlsa(2, 1, 1))], lab["cnonly-wrong"])
    assert outcomes(verdict) == [("ta-name-mismatch", 1)]
    detail = verdict.results[0].detail
    assert "Common Name (it has no subjectAltName) is wrong.example.net" in detail
    assert f"does not cover {HOST}" in detail


def test_dane_ta_client_only_eku_is_a_wrong_purpose_not_a_name_mismatch(lab: Lab) -> None:
    records = [T(lab.inter.tlsa(2, 1, 1))]
    verdict = match(records, lab["clientonly"])
    assert outcomes(verdict) == [("ta-wrong-purpose", 1)] and not verdict.dane_ta_ok
    detail = verdict.results[0].detail
    assert f"names {HOST}" in detail and "clientAuth, without serverAuth" in detail
    assert "Postfix" in detail and "unsupported certificate purpose" in detail
    (found,) = findings(verdict, records)
    assert found.code == "dane.ta-wrong-purpose" and found.severity is Severity.ERROR
    assert "defer" in found.message and "RFC 5280" in found.rfc
    assert lab["clientonly"].tlsa(3, 1, 1) in found.remedy
    assert findings(verdict, records, secure=False)[0].severity is Severity.WARNING
    # DANE-EE does not look at the purpose (RFC 7672 §3.1.1).
    with_ee = [*records, T(lab["clientonly"].tlsa(3, 1, 1))]
    assert codes(findings(match(with_ee, lab["clientonly"]), with_ee)) == ["dane.match"]


def test_dane_ta_not_in_a_leaf_only_chain(lab: Lab) -> None:
    # RFC 7671 §5.2.2: a TA published as a digest must be sent (ptf-dane-leafonly-ta).
    records = [T(lab.inter.tlsa(2, 1, 1))]
    verdict = match(records, lab["leafonly"])
    assert outcomes(verdict) == [("ta-not-in-chain", None)]
    assert "only its own certificate" in verdict.results[0].detail
    found = findings(verdict, records)
    assert codes(found) == ["dane.ta-not-in-chain"]
    assert "intermediate" in found[0].remedy


def test_dane_ta_root_digest_needs_the_root_sent(lab: Lab) -> None:
    verdict = match([T(lab.pki.root.tlsa(2, 1, 1))], lab["good"])
    assert outcomes(verdict) == [("ta-not-in-chain", None)]
    assert "root" in verdict.results[0].detail


def test_dane_ta_root_published_in_full_need_not_be_sent(lab: Lab) -> None:
    verdict = match([T(lab.pki.root.tlsa(2, 0, 0))], lab["good"])
    assert outcomes(verdict) == [("match", None)]
    assert "published in DNS" in verdict.results[0].detail


def test_dane_ta_record_of_the_leaf_is_not_a_ta(lab: Lab) -> None:
    verdict = match([T(lab["good"].tlsa(2, 1, 1))], lab["good"])
    assert outcomes(verdict) == [("ta-not-in-chain", None)]
    assert "server's own certificate" in verdict.results[0].detail


def test_dane_ta_of_another_ca_in_the_chain(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A CA certificate that is sent and matches, but did not issue the leaf.
    other = LabPki(tmp_path_factory.mktemp("other"))
    chain = (lab["good"].der, other.intermediate.der)
    verdict = match_tlsa([T(other.intermediate.tlsa(2, 1, 1))], chain, [HOST], now=NOW)
    assert outcomes(verdict) == [("ta-no-path", 1)]
    assert codes(findings(verdict, [*verdict.records])) == ["dane.mismatch"]


def test_ee_or_ta_either_suffices(lab: Lab) -> None:
    records = [T(lab["rollover"].tlsa(3, 1, 1)), T(lab.inter.tlsa(2, 1, 1))]
    verdict = match(records, lab["good"])
    assert outcomes(verdict) == [("mismatch", None), ("match", 1)]
    assert codes(findings(verdict, records)) == ["dane.match"]


# --- findings ---------------------------------------------------------------------------


def test_match_is_info_and_names_the_record(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1)), T(lab["rollover"].tlsa(3, 1, 1))]
    (found,) = findings(match(records, lab["good"]), records)
    assert found.code == "dane.match" and found.severity is Severity.INFO
    assert "depth 0" in found.message and found.evidence["matched"]["depth"] == 0


def test_no_rollover_when_only_the_current_key_is_pinned(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1)), T(lab["good"].tlsa(3, 1, 2))]
    found = findings(match(records, lab["good"]), records)
    assert codes(found) == ["dane.match", "dane.no-rollover"]
    assert found[1].severity is Severity.WARNING
    with_ta = [T(lab["good"].tlsa(3, 1, 1)), T(lab.inter.tlsa(2, 1, 1))]
    assert codes(findings(match(with_ta, lab["good"]), with_ta)) == ["dane.match"]


def test_full_certificate_selector_warns(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 0, 1)), T(lab["rollover"].tlsa(3, 1, 1))]
    found = findings(match(records, lab["good"]), records)
    assert codes(found) == ["dane.match", "dane.full-cert-selector"]
    assert found[1].severity is Severity.WARNING and "3 1 1" in found[1].remedy


def test_only_pkix_usages_means_no_dane(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(1, 1, 1)), T(lab["good"].tlsa(0, 1, 1))]
    verdict = match(records, lab["good"])
    assert verdict.matched is None and verdict.usable == ()
    assert outcomes(verdict) == [("unusable", None), ("unusable", None)]
    found = findings(verdict, records)
    assert codes(found) == ["dane.usage-unusable"]
    assert found[0].severity is Severity.ERROR and "No usable TLSA record" in found[0].message
    assert lab["good"].tlsa(3, 1, 1) in found[0].remedy


def test_unusable_next_to_a_good_record_is_a_warning(lab: Lab) -> None:
    records = [
        T(lab["good"].tlsa(3, 1, 1)),
        T(lab["good"].tlsa(1, 1, 1)),
        T(lab["good"].tlsa(3, 1, 1) + "00"),
    ]
    found = findings(match(records, lab["good"]), records)
    assert codes(found) == [
        "dane.match",
        "dane.usage-unusable",
        "dane.malformed",
        "dane.no-rollover",
    ]
    assert [f.severity for f in found[1:3]] == [Severity.WARNING, Severity.WARNING]


def test_only_malformed_records(lab: Lab) -> None:
    # The 33-byte SHA-256 of the research fixture (ptf-dane-malformed).
    records = [T(lab["good"].tlsa(3, 1, 1) + "00")]
    found = findings(match(records, lab["good"]), records)
    assert codes(found) == ["dane.malformed"]
    assert found[0].severity is Severity.ERROR and "33 bytes" in found[0].message


def test_tlsa_without_starttls(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1))]
    found = findings(None, records, starttls=False)
    assert codes(found) == ["dane.no-starttls", "dane.no-rollover"]
    assert found[0].severity is Severity.ERROR and "_25._tcp." + HOST in found[0].message


def test_record_findings_without_a_chain(lab: Lab) -> None:
    # STARTTLS was not refused, but no chain was seen (the host was unreachable): the
    # findings about the records alone still come out, and none claims what the server sends.
    good = lab["good"]
    cases = [
        ([T(good.tlsa(1, 1, 1))], ["dane.usage-unusable"], Severity.ERROR),
        ([T(good.tlsa(3, 1, 1) + "00")], ["dane.malformed"], Severity.ERROR),
        ([T(good.tlsa(3, 0, 1))], ["dane.full-cert-selector", "dane.no-rollover"], None),
        ([T(good.tlsa(3, 1, 1))], ["dane.no-rollover"], None),
        ([T(good.tlsa(3, 1, 1)), T(lab["rollover"].tlsa(3, 1, 1))], [], None),
        ([T(good.tlsa(3, 1, 1)), T(lab.inter.tlsa(2, 1, 1))], [], None),
    ]
    for records, expected, first in cases:
        found = findings(None, records)
        assert codes(found) == expected, records
        if first is not None:
            assert found[0].severity is first
        for f in found:
            assert "dane" not in f.evidence and "current" not in f.message
    (rollover,) = findings(None, [T(good.tlsa(3, 1, 1))])
    assert "no certificate was seen" in rollover.message
    assert rollover.severity is Severity.WARNING


def test_unsigned_records_turn_errors_into_warnings(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1))]
    found = findings(match(records, lab["rollover"]), records, secure=False)
    assert codes(found) == ["dane.mismatch"]
    assert found[0].severity is Severity.WARNING and "not DNSSEC-signed" in found[0].message
    assert findings(None, records, secure=False, starttls=False)[0].severity is Severity.WARNING


def test_unsigned_match_does_not_claim_authentication(lab: Lab) -> None:
    # Senders ignore unsigned TLSA records: the match is a fact about the records, not DANE.
    records = [T(lab["good"].tlsa(3, 1, 1)), T(lab["rollover"].tlsa(3, 1, 1))]
    verdict = match(records, lab["good"])
    (signed,) = findings(verdict, records)
    (unsigned,) = findings(verdict, records, secure=False)
    assert signed.code == unsigned.code == "dane.match"
    assert signed.severity is unsigned.severity is Severity.INFO
    assert "authenticated by DANE" in signed.message
    assert "authenticated by DANE" not in unsigned.message
    assert "not DNSSEC-signed" in unsigned.message and "does not authenticate" in unsigned.message
    assert unsigned.evidence["tlsa_secure"] is False
    assert unsigned.evidence["matched"] == signed.evidence["matched"]


@pytest.mark.parametrize(
    "records",
    [
        ["3 1 1 " + "ab" * 33],  # dane.malformed alone
        ["1 1 1 " + "ab" * 32],  # dane.usage-unusable alone
        ["1 1 1 " + "ab" * 32, "3 1 1 " + "ab" * 33],  # both, nothing usable
    ],
)
def test_unusable_records_follow_the_signing(lab: Lab, records: list[str]) -> None:
    tlsa = [T(r) for r in records]
    verdict = match(tlsa, lab["good"])
    signed = findings(verdict, tlsa)
    unsigned = findings(verdict, tlsa, secure=False)
    assert codes(signed) == codes(unsigned)
    assert {f.severity for f in signed} == {Severity.ERROR}
    assert {f.severity for f in unsigned} == {Severity.WARNING}
    for f in unsigned:
        assert "not DNSSEC-signed" in f.message and "DANE defer mail" not in f.message


def test_unsigned_failures_do_not_say_senders_defer_now(lab: Lab) -> None:
    cases = [
        ([T(lab["good"].tlsa(3, 1, 1))], lab["rollover"], True),  # dane.mismatch
        ([T(lab.inter.tlsa(2, 1, 1))], lab["leafonly"], True),  # dane.ta-not-in-chain
        ([T(lab["good"].tlsa(3, 1, 1))], lab["good"], False),  # dane.no-starttls
    ]
    for records, cert, starttls in cases:
        verdict = match(records, cert) if starttls else None
        signed = findings(verdict, records, starttls=starttls)[0]
        unsigned = findings(verdict, records, secure=False, starttls=starttls)[0]
        assert signed.code == unsigned.code and signed.severity is Severity.ERROR
        assert "defer" in signed.message and "not DNSSEC-signed" not in signed.message
        assert unsigned.severity is Severity.WARNING
        assert "not DNSSEC-signed" in unsigned.message and "ignore them today" in unsigned.message
        assert "right now" not in unsigned.message and "so they defer" not in unsigned.message


def test_every_matching_record_is_named_and_flags_agree(lab: Lab) -> None:
    # Both a DANE-TA and a DANE-EE record match: `matched` is the first (as published and
    # shown in the table), `dane.match` names both, and each flag says which usages matched.
    records = [T(lab.inter.tlsa(2, 1, 1)), T(lab["good"].tlsa(3, 1, 1))]
    verdict = match(records, lab["good"])
    assert [r.depth for r in verdict.matches] == [1, 0]
    assert verdict.matched is verdict.matches[0] and verdict.matched.record.usage == 2
    assert verdict.dane_ee_ok and verdict.dane_ta_ok
    (found,) = findings(verdict, records)
    assert found.code == "dane.match"
    assert all(f"'{r.text[:37]}" in found.message for r in records)
    assert [m["usage"] for m in found.evidence["matches"]] == [2, 3]
    assert found.evidence["matched"]["usage"] == 2
    ta_only = match([T(lab.inter.tlsa(2, 1, 1))], lab["good"])
    assert ta_only.dane_ta_ok and not ta_only.dane_ee_ok
    ee_only = match([T(lab["good"].tlsa(3, 1, 1))], lab["good"])
    assert ee_only.dane_ee_ok and not ee_only.dane_ta_ok
    none = match([T(lab["rollover"].tlsa(3, 1, 1))], lab["good"])
    assert none.matches == () and none.matched is None
    assert not (none.dane_ee_ok or none.dane_ta_ok)


def test_dane_ta_match_and_the_certificate_findings_agree(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A leaf from a CA the trusted roots do not know, pinned by a DANE-TA record: PKIX
    # senders refuse it, DANE senders deliver, and both findings say so.
    private = LabPki(tmp_path_factory.mktemp("private"))
    leaf = private.issue("private", [HOST])
    chain = parse_chain(leaf.chain_der)
    records = [T(private.intermediate.tlsa(2, 1, 1))]
    verdict = match_tlsa(records, chain, [HOST], now=NOW)
    assert verdict.dane_ta_ok and not verdict.dane_ee_ok
    (matched,) = findings(verdict, records)
    assert matched.code == "dane.match" and "authenticated by DANE" in matched.message
    pkix = judge_chain(chain, HOST, now=NOW, roots=load_roots(lab.pki.ca_file))
    assert not pkix.chain_trusted
    (untrusted,) = cert_findings(
        HOST,
        "127.0.0.1",
        pkix,
        pkix_required=False,
        dane_ee_ok=verdict.dane_ee_ok,
        dane_ta_ok=verdict.dane_ta_ok,
    )
    assert untrusted.code == "tls.cert-untrusted"
    assert "DANE-TA) do not" not in untrusted.message
    assert "DANE-TA TLSA record" in untrusted.message and "still deliver" in untrusted.message


def test_a_parsed_chain_matches_like_its_der(lab: Lab) -> None:
    records = [
        T(lab["good"].tlsa(3, 1, 1)),
        T(lab.inter.tlsa(2, 1, 1)),
        T(lab.pki.root.tlsa(2, 0, 0)),
        T(lab["rollover"].tlsa(3, 0, 1)),
    ]
    for chain in (lab["good"].chain_der, lab["leafonly"].chain_der, [b"garbage"], []):
        by_der = match_tlsa(records, chain, [HOST], now=NOW)
        by_parsed = match_tlsa(records, parse_chain(chain), [HOST], now=NOW)
        assert by_parsed == by_der


def test_no_records_no_findings(lab: Lab) -> None:
    assert findings(match([], lab["good"]), []) == ()


def test_every_finding_is_complete(lab: Lab) -> None:
    cases = [
        ([T(lab["good"].tlsa(3, 1, 1))], lab["rollover"]),
        ([T(lab.inter.tlsa(2, 1, 1))], lab["leafonly"]),
        ([T(lab["good"].tlsa(1, 1, 1)), T("3 1 1 00")], lab["good"]),
    ]
    for records, cert in cases:
        for f in findings(match(records, cert), records):
            assert f.check == "tls" and f.code.startswith("dane.")
            assert f.remedy and f.rfc and f.evidence["tlsa_owner"] == f"_25._tcp.{HOST}"
            json.dumps(f.to_json())


# --- bad input is data ------------------------------------------------------------------


@pytest.mark.parametrize("chain", [[], [b"garbage"], [b"garbage", b"more garbage"]])
def test_garbage_chains_never_raise(lab: Lab, chain: list[bytes]) -> None:
    records = [
        T(lab["good"].tlsa(3, 1, 1)),
        T(lab.inter.tlsa(2, 1, 1)),
        T(lab.pki.root.tlsa(2, 0, 0)),
        T("3 1 1 zz"),
    ]
    verdict = match_tlsa(records, chain, [HOST], now=NOW)
    assert verdict.matched is None and verdict.leaf_spki_sha256 == ""
    assert len(verdict.results) == 4
    json.dumps(verdict.to_json())
    found = findings(verdict, records)
    assert "dane.mismatch" in codes(found) and "dane.malformed" in codes(found)


def test_full_certificate_record_matches_even_unparseable_leaf_bytes() -> None:
    digest = hashlib.sha256(b"garbage").hexdigest()
    verdict = match_tlsa([T(f"3 0 1 {digest}")], [b"garbage"], [HOST], now=NOW)
    assert outcomes(verdict) == [("match", 0)]


def test_garbage_ta_published_in_full(lab: Lab) -> None:
    verdict = match([T("2 0 0 " + "30" * 40)], lab["leafonly"])
    assert outcomes(verdict) == [("ta-not-in-chain", None)]


def test_verdict_json(lab: Lab) -> None:
    records = [T(lab["good"].tlsa(3, 1, 1)), T(lab["good"].tlsa(0, 1, 1))]
    out = match(records, lab["good"]).to_json()
    json.dumps(out)
    assert [r["outcome"] for r in out["tlsa"]] == ["match", "unusable"]
    assert out["matched"]["depth"] == 0 and out["matched"]["usage"] == 3
    assert out["leaf_spki_sha256"] == lab["good"].spki_sha256 and out["usable"] == 1
    assert match([T(lab["rollover"].tlsa(3, 1, 1))], lab["good"]).to_json()["matched"] is None
