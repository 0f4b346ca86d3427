"""Reading the domains of a batch: one per line, or a zone file; order kept, duplicates once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.rdataclass
import dns.rdatatype
import dns.zone
import idna

from mailcheck.targets import parse_domain


@dataclass(frozen=True)
class BatchEntry:
    """One domain to check."""

    domain: str
    """The domain in A-labels (what is looked up and reported)."""
    unicode: str | None
    """The U-label form when the domain is internationalized, else None."""
    line: int
    """Where it was first given (1-based)."""


@dataclass(frozen=True)
class BatchInput:
    """What a batch input yielded."""

    entries: tuple[BatchEntry, ...]
    """Valid domains, in input order, each once."""
    duplicates: tuple[tuple[str, int], ...]
    """(domain, line) of repeated entries, reported once each."""
    invalid: tuple[tuple[int, str], ...]
    """(line, reason) of entries that are not domains."""


def read_batch(text: str) -> BatchInput:
    """Domains from a list (comments `#`, blanks ignored) or from an RFC 1035 zone file."""
    if _looks_like_zone(text):
        return _from_names(_zone_names(text))
    names = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            names.append((number, line))
    return _from_names(names)


def _looks_like_zone(text: str) -> bool:
    upper = text.upper()
    return "$ORIGIN" in upper or " SOA " in upper or "\tSOA\t" in upper


def _zone_names(text: str) -> list[tuple[int, str]]:
    """Names with MX records, and the origin: the mail domains a zone file describes."""
    try:
        zone = dns.zone.from_text(text, relativize=False, check_origin=False)
    except (dns.exception.DNSException, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable zone file: {exc}") from None
    names = [zone.origin.to_text()] if zone.origin is not None else []
    names += [
        name.to_text()
        for name, node in zone.nodes.items()
        if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.MX)
    ]
    return [(0, n) for n in dict.fromkeys(names)]


def _from_names(names: Iterable[tuple[int, str]]) -> BatchInput:
    entries: dict[str, BatchEntry] = {}
    duplicates: list[tuple[str, int]] = []
    invalid: list[tuple[int, str]] = []
    for number, name in names:
        try:
            domain = parse_domain(name)
        except ValueError as exc:
            invalid.append((number, str(exc)))
            continue
        if domain in entries:
            duplicates.append((domain, number))
            continue
        entries[domain] = BatchEntry(domain, _unicode(domain), number)
    return BatchInput(tuple(entries.values()), tuple(duplicates), tuple(invalid))


def _unicode(domain: str) -> str | None:
    if "xn--" not in domain:
        return None
    try:
        return idna.decode(domain)
    except idna.IDNAError:
        return None
