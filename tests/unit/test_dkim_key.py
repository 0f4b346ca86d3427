"""DKIM key records parsed and judged from plain strings: no DNS (mailcheck.checks.dkim_key)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailcheck.checks.dkim import common_selectors, normalize_selectors, probe_selectors
from mailcheck.checks.dkim_key import (
    KeyFault,
    KeyFormat,
    KeyKind,
    KeyRecord,
    join_txt_strings,
    judge_key,
    parse_key_record,
    parse_tag_list,
    printable,
)
from mailcheck.model import Severity

RFC8463_ED25519 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def rsa_key(bits: int, pkcs1: bool = False) -> str:
    """The base64 of an RSA public key with a modulus of exactly `bits` bits.

    Any odd modulus makes a public key cryptography loads, so sizes it refuses to generate
    (512) or that take long (8192) cost nothing.
    """
    modulus = (1 << (bits - 1)) | (0x5DEECE66D << 8) | 1
    key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    fmt = (
        serialization.PublicFormat.PKCS1
        if pkcs1
        else serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER, fmt)).decode()


def faults(record: KeyRecord) -> list[str]:
    return [f.code.value for f in record.faults]


def codes(record: KeyRecord) -> list[tuple[str, Severity]]:
    evidence = {"selector": "s1"}
    return [(f.code, f.severity) for f in judge_key(record, "DKIM selector s1", evidence)]


# ---------------------------------------------------------------- TXT strings and tag lists


def test_strings_of_one_record_are_joined_with_no_separator() -> None:
    assert join_txt_strings((b"v=DKIM1; p=MIIB", b"IjAN")) == "v=DKIM1; p=MIIBIjAN"


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    assert join_txt_strings((b"p=\xff\xfe\x00",)) == "p=\ufffd\ufffd\x00"


def test_tag_list_allows_whitespace_and_a_trailing_semicolon() -> None:
    tags, error = parse_tag_list(" v = DKIM1 ;\tk=rsa;  p=AB CD ; ")
    assert error is None
    assert tags == (("v", "DKIM1"), ("k", "rsa"), ("p", "AB CD"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("v=DKIM1; k=rsa; garbage", "`garbage` is not a tag=value pair"),
        ("v=DKIM1;; p=AB", "empty tag"),
        ("v=DKIM1; =AB", "has no tag name"),
        ("v=DKIM1; 1k=rsa; p=AB", "`1k` is not a valid tag name"),
        ("v=DKIM1; p=AB; p=CD", "the tag `p=` appears twice"),
        ("   ", "it is empty"),
    ],
)
def test_tag_list_errors_say_why(text: str, reason: str) -> None:
    tags, error = parse_tag_list(text)
    assert tags == ()
    assert error is not None and reason in error


# ---------------------------------------------------------------- versions and non-DKIM records


def test_a_record_starting_with_another_v_is_not_a_dkim_record() -> None:
    record = parse_key_record("v=spf1 include:_spf.example.com -all")
    assert record.kind is KeyKind.NOT_DKIM
    assert record.faults == ()


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (f"k=rsa; v=DKIM1; p={rsa_key(2048)}", "`v=` is not the first tag"),
        (f"v=DKIM2; p={rsa_key(2048)}", "`v=DKIM2` is not `v=DKIM1`"),
        (f"v=dkim1; p={rsa_key(2048)}", "`v=dkim1` is not `v=DKIM1`"),  # compared exactly
    ],
)
def test_bad_versions(text: str, detail: str) -> None:
    record = parse_key_record(text)
    assert record.kind is KeyKind.KEY
    assert faults(record) == ["dkim.bad-version"]
    assert record.faults[0].detail == detail


def test_v_is_optional() -> None:
    record = parse_key_record(f"k=rsa; p={rsa_key(2048)}")
    assert record.faults == () and record.key_bits == 2048


def test_syntax_error_mentions_quotes_left_in_by_the_zone_file() -> None:
    record = parse_key_record('"v=DKIM1; k=rsa; p=AB\\" \\"CD"')
    assert faults(record) == ["dkim.syntax"]
    assert "quote" in record.faults[0].detail


# ---------------------------------------------------------------- keys


def test_rsa_2048_spki_with_whitespace_inside_the_base64() -> None:
    key = rsa_key(2048)
    folded = f"{key[:100]} \t{key[100:300]}\r\n {key[300:]}"  # FWS, RFC 6376 §3.6.1
    record = parse_key_record(f"v=DKIM1; k=rsa; p={folded}")
    assert record.faults == ()
    assert (record.key_format, record.key_bits, record.key_type) == (KeyFormat.SPKI, 2048, "rsa")
    assert record.has_key and record.usable and not record.revoked
    assert codes(record) == []


def test_real_rsa_key_from_cryptography() -> None:
    public = rsa.generate_private_key(65537, 1024).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = parse_key_record(f"p={base64.b64encode(der).decode()}")
    assert record.key_bits == 1024
    assert codes(record) == [("dkim.key-under-2048", Severity.WARNING)]


def test_bare_pkcs1_key_is_accepted_with_a_warning() -> None:
    record = parse_key_record(f"v=DKIM1; p={rsa_key(2048, pkcs1=True)}")
    assert record.faults == ()
    assert (record.key_format, record.key_bits) == (KeyFormat.PKCS1, 2048)
    assert codes(record) == [("dkim.key-pkcs1", Severity.WARNING)]


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        (512, [("dkim.key-too-short", Severity.ERROR)]),
        (1023, [("dkim.key-too-short", Severity.ERROR)]),
        (1024, [("dkim.key-under-2048", Severity.WARNING)]),
        (1536, [("dkim.key-under-2048", Severity.WARNING)]),
        (2048, []),
        (3072, [("dkim.key-over-2048", Severity.INFO)]),
        (4096, [("dkim.key-over-2048", Severity.INFO)]),
        (8192, [("dkim.key-over-2048", Severity.WARNING)]),
    ],
)
def test_rsa_key_sizes(bits: int, expected: list[tuple[str, Severity]]) -> None:
    record = parse_key_record(f"v=DKIM1; p={rsa_key(bits)}")
    assert record.key_bits == bits
    assert codes(record) == expected
    assert record.usable is (bits >= 1024)


def test_ed25519_raw_key_of_rfc_8463() -> None:
    record = parse_key_record(f"v=DKIM1; k=ed25519; p={RFC8463_ED25519}")
    assert record.faults == ()
    assert (record.key_type, record.key_format, record.key_bits) == ("ed25519", KeyFormat.RAW, None)
    assert record.usable
    assert codes(record) == []  # the Ed25519 note depends on the other selectors (dkim.py)


def test_ed25519_published_as_subject_public_key_info() -> None:
    spki = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    record = parse_key_record(f"k=ed25519; p={base64.b64encode(spki).decode()}")
    assert faults(record) == ["dkim.key-invalid"]
    assert "SubjectPublicKeyInfo" in record.faults[0].detail
    # The same key without k=ed25519 is read as RSA, and the detail says what it is.
    as_rsa = parse_key_record(f"p={base64.b64encode(spki).decode()}")
    assert faults(as_rsa) == ["dkim.key-invalid"]
    assert "Ed25519" in as_rsa.faults[0].detail and "k=ed25519" in as_rsa.faults[0].detail


def test_ed25519_of_the_wrong_length() -> None:
    record = parse_key_record(f"k=ed25519; p={base64.b64encode(bytes(31)).decode()}")
    assert faults(record) == ["dkim.key-invalid"]
    assert "31 bytes" in record.faults[0].detail


@pytest.mark.parametrize(
    ("public", "detail"),
    [
        ("MIGfMA0G!!not*base64", "not valid base64"),
        ("MIGf\ufffd\x00", "not valid base64"),
        ("MIGfMA0", "not valid base64"),  # bad padding
        (base64.b64encode(b"hello world").decode(), "not an RSA public key"),
    ],
)
def test_keys_that_do_not_decode(public: str, detail: str) -> None:
    record = parse_key_record(f"v=DKIM1; k=rsa; p={public}")
    assert faults(record) == ["dkim.key-invalid"]
    assert detail in record.faults[0].detail
    assert not record.has_key and not record.usable
    assert codes(record) == [("dkim.key-invalid", Severity.ERROR)]


def test_key_cut_to_one_255_character_string() -> None:
    text = ("v=DKIM1; k=rsa; p=" + rsa_key(2048))[:255]
    record = parse_key_record(text)
    assert faults(record) == ["dkim.key-invalid"]
    assert "255 characters" in record.faults[0].detail


def test_garbage_never_raises() -> None:
    for raw in (b"\x00\x01\x02", b"v=DKIM1; p=\xff" * 40, b"\x1b[31m=;;==", b"=", b";"):
        record = parse_key_record(join_txt_strings((raw,)))
        assert record.kind is KeyKind.KEY and record.faults


# ---------------------------------------------------------------- tags


def test_empty_p_is_a_revoked_key() -> None:
    for text in ("v=DKIM1; k=rsa; p=", "v=DKIM1; p= ;", "v=DKIM1; h=sha1; s=tlsrpt; k=dsa; p="):
        record = parse_key_record(text)
        assert record.revoked and not record.has_key
        assert record.faults == ()  # h=, s= and k= no longer matter
        assert codes(record) == []  # dkim.revoked depends on the other selectors (dkim.py)


def test_missing_p() -> None:
    record = parse_key_record("v=DKIM1; k=rsa; n=forgot the key")
    assert faults(record) == ["dkim.no-p-tag"]
    assert not record.revoked


def test_tag_names_are_case_sensitive() -> None:
    assert faults(parse_key_record(f"v=DKIM1; P={rsa_key(2048)}")) == ["dkim.no-p-tag"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("t=y", ["dkim.testing"]),
        ("t=y:s", ["dkim.testing"]),
        ("t = s", []),
        ("t=Y", ["dkim.testing"]),
    ],
)
def test_testing_flag(tags: str, expected: list[str]) -> None:
    record = parse_key_record(f"v=DKIM1; {tags}; p={rsa_key(2048)}")
    assert [code for code, _ in codes(record)] == expected
    assert record.testing is bool(expected)
    assert record.usable is not bool(expected)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("h=sha1", ["dkim.sha1-only"]),
        ("h=md5", ["dkim.sha1-only"]),
        ("h=sha1:sha256", []),
        ("h=SHA256", []),
        ("s=tlsrpt", ["dkim.service-not-email"]),
        ("s=email:tlsrpt", []),
        ("s=*", []),
        ("k=dsa", ["dkim.unknown-key-type"]),
        ("k=RSA", []),
    ],
)
def test_tags_that_make_receivers_ignore_a_good_key(tags: str, expected: list[str]) -> None:
    record = parse_key_record(f"v=DKIM1; {tags}; p={rsa_key(2048)}")
    assert faults(record) == expected
    assert [code for code, _ in codes(record)] == expected
    assert all(severity is Severity.ERROR for _, severity in codes(record))


def test_every_fault_has_a_dotted_code() -> None:
    assert all(f.value.startswith("dkim.") for f in KeyFault)


def test_messages_escape_control_characters_from_dns() -> None:
    assert printable("p=\x1b[31m\x00") == "p=\\x1b[31m\\x00"
    assert printable("a" * 50, 10) == "a" * 9 + "…"
    record = parse_key_record(join_txt_strings((b"v=DKIM1; \x1b[31m=x; p=AB",)))
    findings = judge_key(record, "DKIM selector s1", {})
    assert findings and "\x1b" not in findings[0].message


# ---------------------------------------------------------------- selectors to probe


def test_common_selectors_come_from_the_data_file() -> None:
    selectors = common_selectors()
    assert 35 <= len(selectors) <= 50
    assert len(set(selectors)) == len(selectors)
    for expected in ("default", "google", "selector1", "selector2", "k1", "s1", "fm1"):
        assert expected in selectors
    assert all(s == s.lower() and " " not in s and "#" not in s for s in selectors)


def test_probes_add_the_microsoft_365_domain_derived_selectors() -> None:
    probes = probe_selectors("mail.example.com")
    assert probes[-2:] == ("selector1-mail-example-com", "selector2-mail-example-com")
    assert len(probes) == len(common_selectors()) + 2


def test_named_selectors_are_normalized_in_order() -> None:
    assert normalize_selectors([" S1 ", "s2.", "s1", "", "sub.sel"]) == ("s1", "s2", "sub.sel")
