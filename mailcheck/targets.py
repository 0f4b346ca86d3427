"""Validating what the user asks about: mail domains, host names and IP addresses.

Each parser returns the normal form or raises ValueError with a one-line reason that the CLI
prints as it is (exit code 2).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import idna

_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def parse_domain(text: str) -> str:
    """A mail domain as lower-case ASCII (A-labels) without the trailing dot.

    RFC 5321 §2.3.5: a domain in SMTP is a fully qualified name of LDH labels; IDNs are
    accepted in U-label form and converted with IDNA 2008 (RFC 5891).
    """
    name = text.strip()
    if not name:
        raise ValueError("the domain is empty")
    if _is_ip(name.strip("[]")):
        raise ValueError(f"{text!r} is an IP address, not a domain")
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"{text!r} is not a valid internationalized domain: {exc}") from None
    name = name.lower()
    labels = name.split(".")
    if any(label == "" for label in labels):
        raise ValueError(f"{text!r} is not a valid domain: it has an empty label")
    if len(labels) < 2:
        raise ValueError(f"{text!r} is not a fully qualified domain (it needs at least one dot)")
    if len(name) > 253:
        raise ValueError(f"{text!r} is not a valid domain: longer than 253 characters")
    for label in labels:
        if not _LDH_LABEL.match(label):
            raise ValueError(
                f"{text!r} is not a valid domain: label {label!r} must be 1-63 letters, digits "
                "or inner hyphens"
            )
    return name


_SELECTOR_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def parse_selector(text: str) -> str:
    """A DKIM selector (RFC 6376 §3.1: dot-separated labels), lower case."""
    selector = text.strip().strip(".").lower()
    labels = selector.split(".")
    if not selector or not all(_SELECTOR_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{text!r} is not a DKIM selector: use the s= value of a DKIM-Signature header "
            "(letters, digits, '-', '_' and dots)"
        )
    return selector


def parse_ip(text: str) -> str:
    """An IP address in canonical form; IPv4-mapped IPv6 becomes IPv4 (RFC 4291 §2.5.5.2)."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def is_ip(text: str) -> bool:
    """True when the text is an IPv4 or IPv6 address."""
    return _is_ip(text.strip().strip("[]"))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# RFC 5737 / RFC 3849 documentation ranges: examples and the test lab use them, so they are not
# called unreachable, although no mail server on the internet has one.
_DOCUMENTATION = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def non_public_reason(text: str) -> str | None:
    """Why no sender on the internet can reach this address, or None when one can.

    Loopback, RFC 1918 private space, carrier-grade NAT (RFC 6598), link-local, unique local
    (RFC 4193), unspecified and multicast addresses are unreachable from the internet.
    """
    address = ipaddress.ip_address(text)
    if any(address in net for net in _DOCUMENTATION):
        return None
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (address in ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT space (RFC 6598)"),
        (address.is_private, "a private address (RFC 1918 / RFC 4193)"),
    )
    return next((why for hit, why in checks if hit), None)


@dataclass(frozen=True)
class HostPort:
    """A `HOST`, `HOST:PORT`, `[HOST]`, `[HOST]:PORT` or bare IPv6 target, split and checked."""

    host: str
    """An address (canonical) or a fully qualified name (parse_ip / parse_domain)."""
    port: int | None
    """The port given, if any."""
    bracketed: bool
    """`[HOST]` was written: Postfix's "no MX lookup"."""


_BRACKETED = re.compile(r"\[(?P<host>[^\]]+)\](?::(?P<port>[^:]*))?")


def parse_host_port(text: str) -> HostPort:
    """Split and check a host with an optional port; raise ValueError with a one-line message.

    A bare IPv6 address is a host (its colons are not a port); a port goes with brackets.
    """
    text = text.strip()
    bracketed = _BRACKETED.fullmatch(text)
    port_text: str | None = None
    if bracketed:
        name, port_text = bracketed.group("host"), bracketed.group("port")
    elif text.count(":") == 1:
        name, port_text = text.split(":")
    else:
        name = text
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: invalid port {port_text!r}")
        port = int(port_text)
    host = parse_ip(name) if is_ip(name) else parse_domain(name)
    return HostPort(host, port, bracketed is not None)
