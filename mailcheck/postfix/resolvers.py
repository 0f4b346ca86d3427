"""DANE needs a validating resolver: what resolv.conf tells about the one Postfix uses.

Postfix does not validate DNSSEC itself: with `smtp_dns_support_level = dnssec` it asks the
resolvers of resolv.conf for the AD bit and trusts it (postconf(5)). A stub may trust the AD
bit only from a resolver it trusts over a secure channel (RFC 4035 §4.9.3), which in practice
means one on this host. mailcheck can tell only whether resolv.conf lists loopback resolvers
or remote ones; it cannot tell whether any of them validates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailcheck.model import Finding, Severity
from mailcheck.postfix.rules import finding

RESOLV_CONF = "/etc/resolv.conf"
RESOLV_CONF_LIMIT = 64 * 1024
GLIBC_DEFAULT = "127.0.0.1"
"""resolv.conf(5): with no nameserver line, the C library asks the name server on this host."""
DANE_LEVELS = ("dane", "dane-only")


@dataclass(frozen=True)
class ResolverFacts:
    """The nameserver lines of one resolv.conf."""

    path: str
    """The file read."""
    nameservers: tuple[str, ...]
    """The nameserver addresses in file order; GLIBC_DEFAULT when the file lists none."""
    error: str = ""
    """Why the file could not be read; empty when it was."""

    @property
    def remote(self) -> tuple[str, ...]:
        """The nameservers not on this host (not loopback)."""
        return tuple(ns for ns in self.nameservers if not _loopback(ns))


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False  # not an address: resolv.conf(5) ignores it, and so do we


def read_resolv_conf(path: str = RESOLV_CONF) -> ResolverFacts:
    """The nameserver lines of resolv.conf (resolv.conf(5): `nameserver ADDRESS`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(RESOLV_CONF_LIMIT)
    except OSError as exc:
        return ResolverFacts(path, (), f"cannot read {path}: {exc.strerror or exc}")
    servers: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                servers.append(str(ipaddress.ip_address(words[1].split("%")[0])))
            except ValueError:
                continue
    return ResolverFacts(path, tuple(servers) or (GLIBC_DEFAULT,))


def dane_resolver_findings(level: str, facts: ResolverFacts) -> list[Finding]:
    """For smtp_tls_security_level dane/dane-only: which kind of resolver Postfix asks."""
    if level not in DANE_LEVELS:
        return []
    scope = (
        "mailcheck can only tell whether resolv.conf lists resolvers on this host or remote "
        "ones, not whether they validate DNSSEC"
    )
    chroot = (
        " If smtp runs chrooted, its copy in the queue directory (etc/resolv.conf) is the one "
        "it reads: keep it the same."
    )
    evidence = {"resolv_conf": facts.path, "nameservers": list(facts.nameservers)}
    if facts.error:
        return [
            finding(
                "postfix.dane-resolver-unknown",
                Severity.WARNING,
                f"smtp_tls_security_level = {level}, and {facts.error}: whether Postfix asks "
                "a resolver on this host could not be determined.",
                {**evidence, "error": facts.error},
                "Make resolv.conf readable and list a validating resolver on this host.",
                "RFC 4035 §4.9.3",
                indeterminate=True,
            )
        ]
    if facts.remote:
        return [
            finding(
                "postfix.dane-resolver-remote",
                Severity.WARNING,
                f"smtp_tls_security_level = {level}, and {facts.path} lists resolvers not on "
                f"this host ({', '.join(facts.remote)}): Postfix trusts their DNSSEC verdict "
                "across the network, and if they do not validate, TLSA records are ignored "
                f"and DANE silently becomes `may`. Note that {scope}.",
                {**evidence, "remote": list(facts.remote)},
                "Run a validating resolver on this host (e.g. unbound) and list only "
                "nameserver 127.0.0.1 (and ::1) in resolv.conf." + chroot,
                "RFC 4035 §4.9.3, RFC 7672 §2.1",
            )
        ]
    return [
        finding(
            "postfix.dane-resolver-local",
            Severity.INFO,
            f"smtp_tls_security_level = {level}, and {facts.path} lists only resolvers on this "
            f"host ({', '.join(facts.nameservers)}). DANE works if that resolver validates "
            f"DNSSEC (unbound does by default); {scope}.",
            evidence,
            "Check that it validates: from this host, `dig +dnssec` of a signed name (e.g. "
            "ietf.org) must show the `ad` flag." + chroot,
            "RFC 7672 §2.1",
        )
    ]
