"""Parsing what users type: domains, addresses, resolvers, check lists."""

from __future__ import annotations

import pytest

from mailcheck.checks import CheckName
from mailcheck.cli_tls import TlsTarget, parse_tls_target
from mailcheck.dns import Nameserver, parse_nameserver
from mailcheck.engine import parse_check_list
from mailcheck.targets import HostPort, non_public_reason, parse_domain, parse_host_port, parse_ip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  mail.example.org ", "mail.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_parse_domain_normalises(text: str, expected: str) -> None:
    assert parse_domain(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("bad..name", "empty label"),
        ("", "empty"),
        ("localhost", "fully qualified"),
        ("-bad.example", "label '-bad'"),
        ("under_score.example", "label 'under_score'"),
        ("a" * 64 + ".example", "1-63"),
        ("192.0.2.1", "IP address"),
        ("[2001:db8::1]", "IP address"),
        (".".join(["abcdefghi"] * 26), "253"),
    ],
)
def test_parse_domain_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        parse_domain(text)


def test_parse_ip_canonical_and_mapped() -> None:
    assert parse_ip("2001:DB8:0::1") == "2001:db8::1"
    assert parse_ip("::ffff:192.0.2.7") == "192.0.2.7"
    assert parse_ip("[2001:db8::1]") == "2001:db8::1"
    with pytest.raises(ValueError, match="not an IP address"):
        parse_ip("192.0.2.300")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", Nameserver("192.0.2.53", 53)),
        ("127.0.0.1:5354", Nameserver("127.0.0.1", 5354)),
        ("2001:db8::53", Nameserver("2001:db8::53", 53)),
        ("[::1]:5354", Nameserver("::1", 5354)),
        ("[2001:db8::53]", Nameserver("2001:db8::53", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    "text", ["1.2.3", "ns.example.com", "127.0.0.1:0", "127.0.0.1:70000", "[::1]x", "[::1]:"]
)
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="malformed nameserver"):
        parse_nameserver(text)


def test_nameserver_text_form_round_trips() -> None:
    for text in ("127.0.0.1:5354", "[::1]:5354"):
        assert str(parse_nameserver(text)) == text


def test_parse_check_list() -> None:
    assert parse_check_list("fcrdns, MX") == (CheckName.FCRDNS, CheckName.MX)
    with pytest.raises(ValueError, match="unknown check 'spam'"):
        parse_check_list("mx,spam")
    with pytest.raises(ValueError, match="at least one"):
        parse_check_list(" , ")


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("10.1.2.3", "private"),
        ("192.168.0.25", "private"),
        ("172.16.5.5", "private"),
        ("127.0.0.1", "loopback"),
        ("100.64.1.1", "carrier-grade"),
        ("169.254.1.1", "link-local"),
        ("fd00::25", "private"),
        ("fe80::1", "link-local"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
    ],
)
def test_non_public_addresses(ip: str, why: str) -> None:
    reason = non_public_reason(ip)
    assert reason is not None and why in reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "2a00:1450::1", "192.0.2.10", "2001:db8::10"])
def test_public_and_documentation_addresses(ip: str) -> None:
    assert non_public_reason(ip) is None


@pytest.mark.parametrize(
    ("text", "host", "port", "bracketed"),
    [
        ("mx.example.org", "mx.example.org", None, False),
        ("mx.example.org:2525", "mx.example.org", 2525, False),
        ("[mx.example.org]", "mx.example.org", None, True),
        ("[2001:DB8::1]:25", "2001:db8::1", 25, True),
        ("2001:db8::1", "2001:db8::1", None, False),
        ("192.0.2.1:587", "192.0.2.1", 587, False),
    ],
)
def test_host_port_targets(text: str, host: str, port: int | None, bracketed: bool) -> None:
    assert parse_host_port(text) == HostPort(host, port, bracketed)


@pytest.mark.parametrize("text", ["mx.example.org:0", "mx.example.org:x", "[::1]:", "a b:25"])
def test_bad_host_port_targets(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


def test_tls_targets_keep_postfixs_no_mx_brackets() -> None:
    assert parse_tls_target("example.org") == TlsTarget("example.org", domain="example.org")
    assert parse_tls_target("[mx.example.org]").host == "mx.example.org"
    assert parse_tls_target("192.0.2.1:2525") == TlsTarget("192.0.2.1", ip="192.0.2.1", port=2525)
