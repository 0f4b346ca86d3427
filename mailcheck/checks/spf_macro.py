"""SPF macro expansion (RFC 7208 §7) and the names it may produce, as pure functions.

The evaluator supplies the validated `p` name when a macro needs it (§7.3: it costs DNS
lookups, so it is computed only on demand); everything else comes from the identities.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass

import dns.name

from mailcheck.checks.spf_parse import Macro, MacroString

MAX_NAME_LENGTH = 253
"""RFC 7208 §7.3: longer expansions lose labels on the left."""
_LDH = re.compile(r"[A-Za-z0-9_-]+")


def client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address as SPF sees it: an IPv4-mapped IPv6 address is IPv4 (RFC 7208 §5)."""
    address = ipaddress.ip_address(ip.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class MacroContext:
    """The values macro letters expand to (RFC 7208 §7.2)."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    """<ip>, IPv4-mapped addresses already unmapped."""
    sender: str
    """<sender>: local-part@domain (postmaster@ when there was no local part)."""
    domain: str
    """<domain>: the current domain, without a trailing dot."""
    helo: str
    """The HELO/EHLO name (`unknown` when none was given)."""
    validated: str | None = None
    """The `p` value (§7.3), once computed; None when not needed yet."""
    receiver: str = "unknown"
    """The `r` value: the receiving host (explanations only)."""

    @property
    def local_part(self) -> str:
        """The `l` value."""
        return self.sender.rpartition("@")[0]

    @property
    def sender_domain(self) -> str:
        """The `o` value."""
        return self.sender.rpartition("@")[2]

    def value(self, letter: str) -> str:
        """The raw value of one macro letter (lower case)."""
        ip = self.ip
        if letter == "i":
            if isinstance(ip, ipaddress.IPv6Address):
                # RFC 7208 §7.3: dot-format nibbles, as in the RFC's own example (upper case).
                return ".".join(f"{int(ip):032X}")
            return str(ip)
        values = {
            "s": self.sender,
            "l": self.local_part,
            "o": self.sender_domain,
            "d": self.domain,
            "p": self.validated or "unknown",
            "v": "in-addr" if isinstance(ip, ipaddress.IPv4Address) else "ip6",
            "h": self.helo,
            "c": str(ip),
            "r": self.receiver,
            "t": str(int(time.time())),
        }
        return values[letter]


def expand_macro(macro: Macro, ctx: MacroContext) -> str:
    """One macro (RFC 7208 §7.3): split, reverse, keep the right-hand parts, URL-escape."""
    value = ctx.value(macro.letter.lower())
    delimiters = macro.delimiters or "."
    parts = re.split("[" + re.escape(delimiters) + "]", value)
    if macro.reverse:
        parts.reverse()
    if macro.digits is not None:
        parts = parts[-macro.digits :]
    out = ".".join(parts)
    if macro.letter.isupper():
        out = urllib.parse.quote(out, safe="")  # unreserved = ALPHA DIGIT - . _ ~ (§7.3)
    return out


def expand(macro_string: MacroString, ctx: MacroContext) -> str:
    """A macro-string with every macro replaced."""
    return "".join(t if isinstance(t, str) else expand_macro(t, ctx) for t in macro_string.tokens)


def needs_validated_name(macro_string: MacroString) -> bool:
    """The expansion uses `%{p}`, which needs DNS lookups first."""
    return "p" in macro_string.letters


def query_name(expanded: str) -> str | None:
    """The DNS name to ask for an expanded domain-spec, or None when it cannot be a name.

    RFC 7208 §7.3: more than 253 characters loses labels on the left. A result with an empty
    label, a label over 63 octets or non-ASCII text is not a name: RFC 7208 leaves the result
    undefined (the suite accepts fail or permerror), and this treats it as a name that does not
    exist, without a query.
    """
    name = expanded[:-1] if expanded.endswith(".") else expanded
    while len(name) > MAX_NAME_LENGTH and "." in name:
        name = name.split(".", 1)[1]
    if not name or len(name) > MAX_NAME_LENGTH or not name.isascii():
        return None
    labels = name.split(".")
    if any(not label or len(label) > 63 for label in labels):
        return None
    # Built from labels, not parsed: a backslash or a space in a local part is data, not an
    # escape; the text form escapes it so the DNS layer reads back exactly these labels.
    return dns.name.Name([label.encode("ascii") for label in labels] + [b""]).to_text()


def malformed_domain(domain: str) -> str | None:
    """RFC 7208 §4.3: why `domain` cannot be checked (the result is then `none`), or None."""
    name = domain[:-1] if domain.endswith(".") else domain
    if not name:
        return "the domain is empty"
    if name.startswith("["):
        return "a domain literal is not a domain name"
    if not name.isascii():
        return "the domain is not ASCII"
    labels = name.split(".")
    if len(labels) < 2:
        return "not a multi-label domain name"
    if any(not label for label in labels):
        return "the domain has an empty label"
    if any(len(label) > 63 for label in labels):
        return "a label is longer than 63 octets"
    if len(name) > MAX_NAME_LENGTH:
        return "the domain is longer than 253 octets"
    if not all(_LDH.fullmatch(label) for label in labels):
        return "the domain has characters a host name cannot have"
    if labels[-1].isdigit():
        return "the domain is an IP address, not a name"
    return None


def split_sender(sender: str, helo: str | None) -> tuple[str, str]:
    """(domain to check, <sender>) for a MAIL FROM and HELO (RFC 7208 §2.4, §4.3).

    An empty MAIL FROM (a bounce) is checked as postmaster@<HELO>; a sender without a local
    part gets `postmaster`.
    """
    if not sender:
        sender = f"postmaster@{helo or ''}"
    local, at, domain = sender.rpartition("@")
    if not at:
        local, domain = "", sender
    return domain, f"{local or 'postmaster'}@{domain}"
