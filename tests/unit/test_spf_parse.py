"""The SPF record grammar (RFC 7208 §4.5, §4.6.1, §5, §6, §7.1) on plain text."""

from __future__ import annotations

import ipaddress

import pytest

from mailcheck.checks.spf_parse import (
    Macro,
    is_lookalike,
    is_spf_record,
    parse_domain_spec,
    parse_macro_string,
    parse_spf,
    printable,
)


def test_a_full_record_parses_every_kind_of_term() -> None:
    record = parse_spf(
        "v=spf1 +a -mx:mail.example.com/24//64 ~ptr ?ip4:192.0.2.0/24 ip6:2001:db8::/32 "
        "include:_spf.example.net exists:%{i}.bl.example.org redirect=x.example.com "
        "exp=explain.%{d} rp=10"
    )
    assert record.valid
    assert [(m.qualifier, m.name) for m in record.mechanisms] == [
        ("+", "a"),
        ("-", "mx"),
        ("~", "ptr"),
        ("?", "ip4"),
        ("+", "ip6"),
        ("+", "include"),
        ("+", "exists"),
    ]
    mx = record.mechanisms[1]
    assert (mx.domain_text, mx.cidr4, mx.cidr6) == ("mail.example.com", 24, 64)
    assert record.mechanisms[3].network == ipaddress.ip_network("192.0.2.0/24")
    assert [m.name for m in record.modifiers] == ["redirect", "exp", "rp"]
    assert record.redirect is not None and record.redirect.value == "x.example.com"
    assert not record.mechanisms[6].domain_spec.is_static  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("term", "fragment"),
    [
        ("moo", "unknown mechanism 'moo'"),
        ("-all.", "unknown mechanism 'all.'"),
        ("-all:foo", "all takes no argument"),
        ("-all/8", "all takes no argument"),
        ("a/33", "invalid IPv4 prefix length /33"),
        ("a//129", "invalid IPv6 prefix length /129"),
        ("a/24/64", "invalid IPv4 prefix length /64"),
        ("mx:example.com/032", "invalid IPv4 prefix length /032"),
        ("ip4:1.2.3", "is not an IPv4 address"),
        ("ip4:192.0.2.300", "is not an IPv4 address"),
        ("ip4:1.2.3.4//32", "invalid prefix length //32"),
        ("ip4:1.2.3.4:8080", "is not an IPv4 address"),
        ("ip6::CAFE::BABE", "is not an IPv6 address"),
        ("ip6:fe80::1%eth0", "is not an IPv6 address"),
        ("ip6:::1/129", "invalid prefix length /129"),
        ("ip4", "ip4 needs ':'"),
        ("include", "include needs ':'"),
        ("exists", "exists needs ':'"),
        ("include:", "empty domain-spec"),
        ("a:", "empty domain-spec"),
        ("ptr/0", "unexpected '/0' after ptr"),
        ("a:museum", "does not end in a valid top-level label"),
        ("a:museum.", "does not end in a valid top-level label"),
        ("a:111.222.33.44", "does not end in a valid top-level label"),
        ("a:example.-com", "does not end in a valid top-level label"),
        ("a:example.com:8080", "does not end in a valid top-level label"),
        ("include:ip5.example.com/24", "does not end in a valid top-level label"),
        ("exists:%(ir).bl.example.com", "invalid macro at '%(ir).bl"),
        ("exists:foo%.bl.example.com", "invalid macro"),
        ("a:%{a}.example.com", "unknown macro letter 'a'"),
        ("a:%{d0}.example.com", "keeps zero parts"),
        ("exp=%{r}.example.com", "allowed only in explanation text"),
        ("redirect=", "empty domain-spec"),
        ("redirect=-all", "does not end in a valid top-level label"),
        ("exp=", "empty domain-spec"),
        ("foo=%abc", "invalid macro"),
        ("redirect:example.com", "unknown mechanism 'redirect'"),
        ("1up=foo", "unknown mechanism '1up=foo'"),
        ("=all", "unknown mechanism '=all'"),
        ("moo.cow/far_out=man:dog/cat", "unknown mechanism 'moo.cow'"),
        ("a:ctrl.example.com\rptr", "character '\\x0d' is not allowed"),
        ("\x80a:example.net", "unknown mechanism '\\x80a'"),
    ],
)
def test_every_syntax_problem_names_the_term(term: str, fragment: str) -> None:
    record = parse_spf(f"v=spf1 {term} -all")
    assert not record.valid
    problem = record.problems[0]
    assert problem.term == term
    assert fragment in problem.message
    assert record.text[problem.offset : problem.offset + len(term)] == term


@pytest.mark.parametrize(
    "term",
    [
        "a:foo:bar/baz.example.com",
        "a:foo.example.xn--zckzah",
        "a:mail.example...com",  # valid syntax; evaluation treats the name as non-existent
        "mx:%{d}/24",
        "a:%{H}.bar",
        "exists:%{i}.%{l2r-}.user.%{d2}",
        "a:macro%%percent%_%_space%-url-space.example.com",
        "moo.cow-far_out=man:dog/cat",
        "default=+",
        "ip6:::1.1.1.1/0",
        "ip6:Cafe:Babe:8000::/33",
        "REDIRECT=example.com",
        "ptr:example.Com",
    ],
)
def test_valid_terms(term: str) -> None:
    assert parse_spf(f"v=spf1 {term}").valid


def test_duplicate_modifiers_are_their_own_problem() -> None:
    record = parse_spf("v=spf1 redirect=a.example.com -all redirect=b.example.com")
    assert [(p.code, p.term) for p in record.problems] == [
        ("duplicate-modifier", "redirect=b.example.com")
    ]


def test_record_selection() -> None:
    assert is_spf_record("v=spf1")
    assert is_spf_record("V=SpF1 -all")
    assert not is_spf_record("v=spf10")
    assert not is_spf_record("v=spf1mx")
    assert not is_spf_record(" v=spf1 -all")
    assert is_lookalike("v=spf10 -all")
    assert is_lookalike(" v=spf1 -all")
    assert is_lookalike("v = spf1 -all")
    assert is_lookalike("spf1 mx -all")
    assert not is_lookalike("v=spf1 -all")
    assert not is_lookalike("google-site-verification=abc")


def test_terms_after_all_and_spaces() -> None:
    record = parse_spf("v=spf1  a   -all mx ")
    assert [m.text for m in record.reached] == ["a", "-all"]
    assert [m.text for m in record.unreached] == ["mx"]
    assert [m.offset for m in record.mechanisms] == [8, 12, 17]


def test_not_a_record() -> None:
    assert parse_spf("v=spf2 -all").problems[0].message.startswith("the record does not start")


def test_macro_string_tokens() -> None:
    parsed = parse_macro_string("%{ir}.%{v}._spf.%{D2}%%%_%-")
    assert not isinstance(parsed, str)
    assert parsed.tokens == (
        Macro("i", None, True, ""),
        ".",
        Macro("v", None, False, ""),
        "._spf.",
        Macro("D", 2, False, ""),
        "% %20",
    )
    assert parsed.ends_with_macro
    assert parsed.letters == frozenset("ivd")
    explanation = parse_macro_string("%{c} is not %{r} at %{t}", explanation=True)
    assert not isinstance(explanation, str)
    assert isinstance(parse_macro_string("two  spaces"), str)  # a space only in explanations


def test_domain_spec_is_static_only_with_d() -> None:
    static = parse_domain_spec("_spf.%{d2}")
    dynamic = parse_domain_spec("%{l}._spf.%{d}")
    assert not isinstance(static, str) and static.is_static
    assert not isinstance(dynamic, str) and not dynamic.is_static


def test_printable_escapes_control_and_non_ascii() -> None:
    assert printable("a\x00b\xefc\r") == "a\\x00b\\xefc\\x0d"


def test_huge_and_hostile_records_do_not_raise() -> None:
    huge = "v=spf1 " + " ".join(f"a:h{i}.example.com" for i in range(5000)) + " -all"
    assert len(parse_spf(huge).mechanisms) == 5001
    hostile = "v=spf1 " + "%{" * 1000 + " \x00\xff ip4:" + "9" * 500 + " a:" + "x." * 300 + "com"
    assert len(parse_spf(hostile).problems) == 3
