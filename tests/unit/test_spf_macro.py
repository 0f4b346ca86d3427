"""Macro expansion (RFC 7208 §7), with the RFC's own examples (§7.4)."""

from __future__ import annotations

import ipaddress

import pytest

from mailcheck.checks.spf_macro import (
    MacroContext,
    client_address,
    expand,
    malformed_domain,
    query_name,
    split_sender,
)
from mailcheck.checks.spf_parse import parse_macro_string

RFC_CTX = MacroContext(
    ipaddress.ip_address("192.0.2.3"), "strong-bad@email.example.com", "email.example.com", "mx"
)


def _expand(text: str, ctx: MacroContext = RFC_CTX, explanation: bool = False) -> str:
    parsed = parse_macro_string(text, explanation=explanation)
    assert not isinstance(parsed, str), parsed
    return expand(parsed, ctx)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ],
)
def test_rfc_7208_section_7_4_examples(macro: str, expected: str) -> None:
    assert _expand(macro) == expected


def test_ipv6_example_and_upper_case_url_escaping() -> None:
    ctx = MacroContext(
        ipaddress.ip_address("2001:db8::cb01"),
        "strong-bad@email.example.com",
        "email.example.com",
        "h",
    )
    assert _expand("%{ir}.%{v}._spf.%{d2}", ctx) == (
        "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com"
    )
    assert _expand("%{c}", ctx, explanation=True) == "2001:db8::cb01"
    odd = MacroContext(RFC_CTX.ip, "~jack&jill=up-a_b3.c@example.com", "example.com", "h")
    assert _expand("%{L}", odd) == "~jack%26jill%3Dup-a_b3.c"
    assert _expand("%%%_%-") == "% %20"
    assert _expand("%{p}") == "unknown"  # not computed: the evaluator supplies it
    assert _expand("%{r}", explanation=True) == "unknown"
    assert _expand("%{t}", explanation=True).isdigit()


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    assert client_address("::ffff:192.0.2.3") == ipaddress.ip_address("192.0.2.3")
    assert client_address("2001:db8::1") == ipaddress.ip_address("2001:db8::1")
    with pytest.raises(ValueError):
        client_address("not-an-ip")


def test_query_name_truncates_on_the_left_and_refuses_non_names() -> None:
    long = ".".join(["abcdefghij"] * 30) + ".example.com"
    name = query_name(long)
    assert name is not None and len(name) <= 254 and name.endswith(".example.com.")
    assert query_name("mail.example...com") is None
    assert query_name("a" * 64 + ".example.com") is None
    assert query_name("") is None
    assert query_name("caf\xe9.example") is None
    assert query_name("a b\\c.example.com.") == "a\\032b\\\\c.example.com."
    assert query_name("OEMCOMPUTER") == "OEMCOMPUTER."


@pytest.mark.parametrize(
    ("domain", "problem"),
    [
        ("example.com", None),
        ("example.com.", None),
        ("_spf.example.com", None),
        ("A2345678", "not a multi-label domain name"),
        ("[1.2.3.5]", "a domain literal is not a domain name"),
        ("A...example.com", "the domain has an empty label"),
        ("a" * 64 + ".example.com", "a label is longer than 63 octets"),
        ("foo bar.example.com", "the domain has characters a host name cannot have"),
        ("1.2.3.4", "the domain is an IP address, not a name"),
        ("", "the domain is empty"),
        ("exämple.com", "the domain is not ASCII"),
    ],
)
def test_malformed_domains_give_none(domain: str, problem: str | None) -> None:
    assert malformed_domain(domain) == problem


def test_identities() -> None:
    assert split_sender("user@example.com", "mx.example.net") == (
        "example.com",
        "user@example.com",
    )
    assert split_sender("", "mx.example.net") == ("mx.example.net", "postmaster@mx.example.net")
    assert split_sender("@example.net", None) == ("example.net", "postmaster@example.net")
    assert split_sender("example.net", None) == ("example.net", "postmaster@example.net")
    assert split_sender("a@b@example.org", None) == ("example.org", "a@b@example.org")
