"""One DNS blocklist: how to ask it, and what its answers mean.

The lists themselves are data (mailcheck/data/dnsbl-lists.toml, read by dnsbl_catalogue).
Answers are decoded per list, because the same value means different things on different
lists (RFC 5782 §2.1 leaves the codes to each operator): 127.0.0.1 is a refusal on URIBL and a
listing class on DroneBL.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# A zone nobody described: any 127.0.0.x answer is a listing, and 127.255.255.x is the range
# Spamhaus and Validity use for refusals (treating those as listings is a classic bug).
GENERIC_CODES = {"127.0.0.0/24": "listed"}
GENERIC_REFUSED = {"127.255.255.0/24": "query refused (127.255.255.x is the usual refusal code)"}


class ListKind(enum.StrEnum):
    """What a list holds."""

    IP = "ip"
    """Addresses, asked as reversed octets or nibbles (RFC 5782 §2.1, §2.4)."""
    DOMAIN = "domain"
    """Domain names, asked as `<domain>.<zone>` (RFC 5782 §3)."""


class ListStatus(enum.StrEnum):
    """Whether mailcheck asks a list."""

    ACTIVE = "active"
    """Asked by default."""
    OPTIONAL = "optional"
    """Known, but asked only when named with --dnsbl (or made active in a config file)."""
    RETIRED = "retired"
    """Shut down or listing the whole internet: never asked."""


class AnswerKind(enum.StrEnum):
    """What one A record of a blocklist answer says."""

    LISTED = "listed"
    """A listing code."""
    REFUSED = "refused"
    """The list refused the query: nothing is known about the address."""
    INVALID = "invalid"
    """Not a 127.0.0.0/8 address: the resolver rewrote the answer (RFC 5782 §2.1)."""


@dataclass(frozen=True)
class CodeRule:
    """One answer value (or range of values) and what it means on a list."""

    low: int
    """The first address of the range, as an integer."""
    high: int
    """The last address of the range, as an integer."""
    meaning: str
    """What the answer means, for people."""
    advice: str = ""
    """What to do about a listing with this code, when it differs from the usual remedy."""

    def matches(self, value: int) -> bool:
        """True when the answer lies in this rule's range."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Decoded:
    """One A record of a blocklist answer, decoded for its list."""

    code: str
    """The answer as given, e.g. `127.0.0.2`."""
    kind: AnswerKind
    """Listing, refusal or garbage."""
    meaning: str
    """What it means on this list."""
    advice: str = ""
    """The list's advice for this code, if it has one."""


@dataclass(frozen=True)
class BlockList:
    """One DNS blocklist: how to ask it and how to read its answers."""

    zone: str
    """The zone asked, lower case, without the trailing dot."""
    name: str
    """The list's name, for people."""
    kind: ListKind = ListKind.IP
    """Addresses or domain names."""
    operator: str = ""
    """Who runs it."""
    families: frozenset[int] = frozenset({4})
    """IP versions an ip list holds (4, 6)."""
    status: ListStatus = ListStatus.ACTIVE
    """Whether it is asked by default."""
    affects_delivery: bool = True
    """Many receivers reject or score down mail for a listing on it."""
    registration: str = ""
    """What the operator asks of users; empty when it is free for anyone."""
    public_resolvers: bool = True
    """False when it refuses queries that come through public resolvers."""
    query_service: str = ""
    """What to use instead of the public mirrors."""
    delist: str = ""
    """Lookup or delisting page; `{ip}` and `{domain}` are replaced."""
    codes: tuple[CodeRule, ...] = ()
    """Listing codes, narrowest range first."""
    bits: tuple[tuple[int, str], ...] = ()
    """For bit-encoded lists (RFC 5782 §2.3): last-octet bit and its meaning."""
    refused: tuple[CodeRule, ...] = ()
    """Answers that mean "query refused", narrowest range first."""
    refused_bits: tuple[tuple[int, str], ...] = ()
    """Bits that mean "query refused" on a bit-encoded list."""
    test_listed: str = ""
    """The RFC 5782 §5 entry that must be listed; empty: not probed."""
    test_unlisted: str = ""
    """The RFC 5782 §5 entry that must not be listed."""
    notes: str = ""
    """Anything else worth knowing."""
    known: bool = True
    """False for the generic entry of a zone nobody described."""

    def applies_to(self, target: str, is_address: bool) -> bool:
        """Whether this list holds targets like this one (kind, and family for addresses)."""
        if self.kind is ListKind.DOMAIN:
            return not is_address
        return is_address and ipaddress.ip_address(target).version in self.families

    def query_name(self, target: str) -> str:
        """The name to ask for a target: reversed address or domain, then the zone."""
        if self.kind is ListKind.DOMAIN:
            return f"{target.rstrip('.').lower()}.{self.zone}"
        return f"{address_label(target)}.{self.zone}"

    def delist_url(self, target: str) -> str:
        """The lookup or delisting page for a target, placeholders filled."""
        return self.delist.replace("{ip}", target).replace("{domain}", target)

    def decode(self, answer: str) -> Decoded:
        """What one A record of an answer means on this list."""
        try:
            address = ipaddress.IPv4Address(answer)
        except ValueError:
            return Decoded(answer, AnswerKind.INVALID, "not an IPv4 address")
        if address not in LOOPBACK:
            # RFC 5782 §2.1: answers are 127.0.0.0/8 codes, never addresses to use.
            return Decoded(answer, AnswerKind.INVALID, "outside 127.0.0.0/8: not a list answer")
        value = int(address)
        last = value & 0xFF
        in_bit_space = value >> 8 == 0x7F0000  # bit-encoded answers are 127.0.0.x
        for rule in self.refused:
            if rule.matches(value):
                return Decoded(answer, AnswerKind.REFUSED, rule.meaning)
        refusing = [m for bit, m in self.refused_bits if in_bit_space and last & bit]
        if refusing:
            return Decoded(answer, AnswerKind.REFUSED, "; ".join(refusing))
        for rule in self.codes:
            if rule.matches(value):
                return Decoded(answer, AnswerKind.LISTED, rule.meaning, rule.advice)
        if self.bits and in_bit_space and last:
            # RFC 5782 §2.3: a bit-encoded list sets one bit of the last octet per sublist.
            known = dict(self.bits)
            meanings = [
                known.get(1 << n, f"bit {1 << n} (undocumented)")
                for n in range(8)
                if last & (1 << n)
            ]
            return Decoded(answer, AnswerKind.LISTED, "; ".join(meanings))
        return Decoded(answer, AnswerKind.LISTED, "listed (a code this list does not document)")


def address_label(ip: str) -> str:
    """An address reversed: octets for IPv4 (RFC 5782 §2.1), nibbles for IPv6 (RFC 5782 §2.4)."""
    return ipaddress.ip_address(ip).reverse_pointer.rsplit(".", 2)[0]


def normalize_zone(text: str) -> str:
    """A zone as lower case without the trailing dot; ValueError when it is not a DNS name."""
    zone = text.strip().rstrip(".").lower()
    labels = zone.split(".")
    if len(labels) < 2 or len(zone) > 200 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{text!r} is not a blocklist zone (a DNS name such as zen.spamhaus.org)")
    return zone
