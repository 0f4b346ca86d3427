"""Host facts of a live configuration judged from plain data: resolv.conf for DANE, and the
identity findings that need no DNS answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.config import parse_config
from mailcheck.postfix.host import HostFacts
from mailcheck.postfix.identity import IdentityObservation, identity_dns_findings
from mailcheck.postfix.resolvers import (
    GLIBC_DEFAULT,
    ResolverFacts,
    dane_resolver_findings,
    read_resolv_conf,
)

DANE = "smtp_tls_security_level = dane\nsmtp_dns_support_level = dnssec\n"


def resolv(tmp_path: Path, text: str) -> ResolverFacts:
    path = tmp_path / "resolv.conf"
    path.write_text(text)
    return read_resolv_conf(str(path))


def test_loopback_resolvers_are_told_apart_from_remote_ones(tmp_path: Path) -> None:
    local = resolv(tmp_path, "# unbound\nnameserver 127.0.0.1\nnameserver ::1\noptions edns0\n")
    assert local.nameservers == ("127.0.0.1", "::1") and local.remote == ()
    remote = resolv(tmp_path, "search example.org\nnameserver 127.0.0.53\nnameserver 9.9.9.9\n")
    assert remote.remote == ("9.9.9.9",)
    assert resolv(tmp_path, "nameserver fe80::1%eth0\n").remote == ("fe80::1",)


def test_no_nameserver_line_means_this_host(tmp_path: Path) -> None:
    facts = resolv(tmp_path, "search example.org\nnameserver not-an-address\n")
    assert facts.nameservers == (GLIBC_DEFAULT,) and not facts.error


def test_unreadable_resolv_conf_is_data(tmp_path: Path) -> None:
    facts = read_resolv_conf(str(tmp_path / "missing"))
    assert facts.error.startswith("cannot read") and facts.nameservers == ()
    [found] = dane_resolver_findings("dane-only", facts)
    assert found.code == "postfix.dane-resolver-unknown" and found.indeterminate


@pytest.mark.parametrize(
    ("nameservers", "code", "severity"),
    [
        (("127.0.0.1",), "postfix.dane-resolver-local", "info"),
        (("127.0.0.1", "192.0.2.53"), "postfix.dane-resolver-remote", "warning"),
    ],
)
def test_dane_resolver_findings(nameservers: tuple[str, ...], code: str, severity: str) -> None:
    [found] = dane_resolver_findings("dane", ResolverFacts("/etc/resolv.conf", nameservers))
    assert (found.code, found.severity.value) == (code, severity)
    # It never claims to know whether the resolver validates.
    assert "cannot tell" in found.message or "can only tell" in found.message
    assert not found.indeterminate


def test_resolvers_matter_only_for_dane_levels() -> None:
    remote = ResolverFacts("/etc/resolv.conf", ("192.0.2.53",))
    for level in ("none", "may", "encrypt", "verify", "secure"):
        assert dane_resolver_findings(level, remote) == []


def test_audit_with_host_facts() -> None:
    cfg = parse_config(DANE, "")
    remote = ResolverFacts("/etc/resolv.conf", ("192.0.2.53",))
    host = HostFacts(remote, identity_skipped="no DNS resolver is configured")
    result = evaluate_postfix(cfg, host)
    codes = {f.code for f in result.findings}
    assert {"postfix.dane-resolver-remote", "postfix.identity-unchecked"} <= codes
    assert "postfix.dane-without-dnssec" not in codes
    assert result.data["resolv_conf"] == {
        "path": "/etc/resolv.conf",
        "nameservers": ["192.0.2.53"],
        "remote": ["192.0.2.53"],
        "error": "",
    }
    assert result.data["identity"] is None and result.data["live"] is False
    # Saved files get no host facts: nothing about resolv.conf or identity.
    bare = evaluate_postfix(cfg)
    assert not {f.code for f in bare.findings} & {
        "postfix.dane-resolver-remote",
        "postfix.identity-unchecked",
    }
    assert bare.data["resolv_conf"] is None


def test_identity_timeout_is_indeterminate() -> None:
    host = HostFacts(identity_skipped="timed out", identity_timed_out=True)
    [found] = [f for f in evaluate_postfix(parse_config("", ""), host).findings if f.indeterminate]
    assert found.code == "postfix.identity-unchecked"


def test_no_outbound_address_asks_for_ip() -> None:
    obs = IdentityObservation("mx1.good.test", "mx1.good.test", (), (), ())
    [found] = identity_dns_findings(obs)
    assert found.code == "postfix.outbound-address-unknown" and "--ip" in found.remedy
