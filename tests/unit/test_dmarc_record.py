"""The pure DMARC record parser."""

from __future__ import annotations

import pytest

from mailcheck.checks.dmarc import walk_domains
from mailcheck.checks.dmarc_record import is_dmarc_record, parse_dmarc_record


def test_a_complete_record() -> None:
    record = parse_dmarc_record(
        "v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s; aspf=r; fo=1:d; psd=n; t=n; "
        "rua=mailto:a@example.com,mailto:b@reports.example.net!10m; ruf=mailto:f@example.com;"
    )
    assert record.problems == ()
    assert (record.policy, record.subdomain_policy, record.nonexistent_policy) == (
        "reject",
        "quarantine",
        "reject",
    )
    assert [u.domain for u in record.rua] == ["example.com", "reports.example.net"]
    assert record.rua[1].size_limit == "10m"
    assert record.tags_json()["adkim"] == {"value": "s", "explicit": True}


def test_defaults_and_fallbacks() -> None:
    record = parse_dmarc_record("v=DMARC1;p=quarantine")
    assert record.problems == ()
    assert record.subdomain_policy == "quarantine" and record.nonexistent_policy == "quarantine"
    assert record.tags_json()["aspf"] == {"value": "r", "explicit": False}


@pytest.mark.parametrize(
    ("text", "code", "tag"),
    [
        ("v=DMARC1; p=block", "dmarc.invalid-value", "p"),
        ("v=DMARC1; p=none; sp=maybe", "dmarc.invalid-value", "sp"),
        ("v=DMARC1; p=none; adkim=x", "dmarc.invalid-value", "adkim"),
        ("v=DMARC1; p=none; fo=2", "dmarc.invalid-value", "fo"),
        ("v=DMARC1; p=none; pct=150", "dmarc.invalid-value", "pct"),
        ("v=DMARC1; p=none; psd=maybe", "dmarc.invalid-value", "psd"),
        ("v=DMARC1; rua=mailto:r@example.com", "dmarc.missing-policy", "p"),
        ("v=DMARC1; p=none; p=reject", "dmarc.duplicate-tag", "p"),
        ("v=DMARC1 p=reject", "dmarc.syntax", "v"),
        ("v=DMARC1; p=none; junk", "dmarc.syntax", "v"),
        ("v=DMARC1; p=none; rua=dmarc@example.com", "dmarc.invalid-uri", "rua"),
        ("p=none; v=DMARC1", "dmarc.syntax", "v"),
    ],
)
def test_each_defect_names_its_tag(text: str, code: str, tag: str) -> None:
    problems = parse_dmarc_record(text).problems
    assert (code, tag) in {(p.code, p.tag) for p in problems}, problems


@pytest.mark.parametrize(
    "text", ["", ";;;", "v=", "=x", "v=DMARC1; p=\u00e9t\u00e9", "v=DMARC1; " + "x=" * 5000]
)
def test_garbage_never_raises(text: str) -> None:
    parse_dmarc_record(text)


def test_is_dmarc_record() -> None:
    assert is_dmarc_record("v=DMARC1; p=none")
    assert is_dmarc_record("v=DMARC1")
    assert not is_dmarc_record("v=spf1 -all")
    assert not is_dmarc_record("p=none; v=DMARC1")
    assert not is_dmarc_record("v=DMARC10; p=none")


def test_walk_domains() -> None:
    assert walk_domains("a.b.example.com") == (
        "a.b.example.com",
        "b.example.com",
        "example.com",
        "com",
    )
    long = ".".join(f"l{i}" for i in range(10)) + ".example.com"
    walked = walk_domains(long)
    # RFC 9989 §4.10: the domain, then at most 7 further names, starting with 7 labels.
    assert len(walked) == 8
    assert walked[1].count(".") == 6
    assert walked[-1] == "com"
