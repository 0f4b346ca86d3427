"""Reading the blocklist catalogue: the shipped lists, a user config file, and --dnsbl zones.

The shipped file (mailcheck/data/dnsbl-lists.toml) and a config file share one format: a
[[list]] table per list. A config entry for a known zone changes only the fields it names; one
with `like = "<zone>"` starts from another list's definition; `defaults = false` stops asking
the shipped lists unless named. Zones named with --dnsbl replace the active lists.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from mailcheck.checks.dnsbl_lists import (
    GENERIC_CODES,
    GENERIC_REFUSED,
    LOOPBACK,
    BlockList,
    CodeRule,
    ListKind,
    ListStatus,
    normalize_zone,
)

T = TypeVar("T")
R = TypeVar("R")
LISTS_FILE = "dnsbl-lists.toml"

_FIELDS = {
    "zone": str,
    "name": str,
    "operator": str,
    "kind": str,
    "families": list,
    "status": str,
    "affects_delivery": bool,
    "registration": str,
    "public_resolvers": bool,
    "query_service": str,
    "delist": str,
    "codes": dict,
    "bits": dict,
    "refused": dict,
    "refused_bits": dict,
    "test_listed": str,
    "test_unlisted": str,
    "notes": str,
    "like": str,
}


_TYPE_WORDS = {str: "a string", bool: "true or false", list: "a list", dict: "a table"}


@dataclass(frozen=True)
class Catalogue:
    """Raw list entries by zone, in file order, with the file's other settings."""

    entries: Mapping[str, Mapping[str, Any]]
    """Zone → the entry's fields (merged over its `like`, not yet validated)."""
    defaults: bool = True
    """False when a config file says the shipped lists are not asked by default."""
    public_resolvers: Mapping[str, str] = field(default_factory=dict)
    """Public resolver address → who runs it (shipped file only)."""


def parse_catalogue(
    text: str, source: str, base: Mapping[str, Mapping[str, Any]], shipped: bool = False
) -> Catalogue:
    """Parse a list file; entries merge over `base` (same zone, or `like`). ValueError if bad."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML ({exc})") from None
    allowed = {"list", "defaults"} | ({"public_resolvers"} if shipped else set())
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{source}: unknown setting {unknown[0]!r} (known: {sorted(allowed)})")
    defaults = data.get("defaults", True)
    if not isinstance(defaults, bool):
        raise ValueError(f"{source}: `defaults` must be true or false")
    raw_lists = data.get("list", [])
    if not isinstance(raw_lists, list) or not all(isinstance(e, dict) for e in raw_lists):
        raise ValueError(f"{source}: lists must be [[list]] tables")
    known: dict[str, Mapping[str, Any]] = dict(base)
    entries: dict[str, Mapping[str, Any]] = {}
    for number, entry in enumerate(raw_lists, 1):
        zone = entry.get("zone")
        where = f"{source}: list {number}"
        if not isinstance(zone, str):
            raise ValueError(f"{where}: `zone` is required")
        zone = _within(where, normalize_zone, zone)
        where = f"{source}: list {zone}"
        for key, value in entry.items():
            expected = _FIELDS.get(key)
            if expected is None:
                raise ValueError(f"{where}: unknown field {key!r}")
            if not isinstance(value, expected):
                raise ValueError(f"{where}: `{key}` must be {_TYPE_WORDS[expected]}")
        like = entry.get("like")
        if like is not None:
            like = _within(where, normalize_zone, like)
            if like not in known:
                raise ValueError(f"{where}: `like` names {like}, which no list describes")
            start = {k: v for k, v in known[like].items() if k not in ("status", "like")}
        else:
            start = dict(known.get(zone, {}))
        merged = {**start, **entry, "zone": zone}
        _within(where, build_list, merged)  # report mistakes now, naming the file
        known[zone] = entries[zone] = merged
    public = data.get("public_resolvers", {})
    if not isinstance(public, dict):
        raise ValueError(f"{source}: `public_resolvers` must be a table")
    resolvers = {str(ipaddress.ip_address(k)): str(v) for k, v in public.items()}
    return Catalogue(entries, defaults, resolvers)


def _within(where: str, parse: Callable[[T], R], value: T) -> R:
    """Call `parse(value)`; a ValueError gets `where` in front of its message."""
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def build_list(entry: Mapping[str, Any]) -> BlockList:
    """A BlockList from an entry's fields, with the defaults for those it leaves out."""
    zone = str(entry["zone"])
    kind = _enum(ListKind, entry.get("kind", "ip"), "kind")
    status = _enum(ListStatus, entry.get("status", "active"), "status")
    families = frozenset(entry.get("families", [4]))
    if not families or not families <= {4, 6}:
        raise ValueError("`families` must list 4, 6 or both")
    bits = _bits(entry.get("bits", {}), "bits")
    codes = _rules(entry.get("codes", {} if bits else GENERIC_CODES), "codes")
    refused = _rules(entry.get("refused", GENERIC_REFUSED), "refused")
    if kind is ListKind.DOMAIN:
        listed, unlisted = "test", "invalid"  # RFC 5782 §5 (the RFC 2606 reserved names)
    elif 4 in families:
        listed, unlisted = "127.0.0.2", "127.0.0.1"  # RFC 5782 §5
    else:
        listed, unlisted = "::ffff:7f00:2", "::ffff:7f00:1"  # RFC 5782 §5, IPv6 lists
    test_listed = str(entry.get("test_listed", listed))
    test_unlisted = str(entry.get("test_unlisted", unlisted))
    if kind is ListKind.IP:
        for point in (p for p in (test_listed, test_unlisted) if p):
            try:
                ipaddress.ip_address(point)
            except ValueError:
                raise ValueError(f"test entry {point!r} of an ip list is not an address") from None
    if not test_unlisted:
        raise ValueError("`test_unlisted` cannot be empty: it is how a broken list shows")
    return BlockList(
        zone=zone,
        name=str(entry.get("name", zone)),
        kind=kind,
        operator=str(entry.get("operator", "")),
        families=families,
        status=status,
        affects_delivery=bool(entry.get("affects_delivery", True)),
        registration=str(entry.get("registration", "")),
        public_resolvers=bool(entry.get("public_resolvers", True)),
        query_service=str(entry.get("query_service", "")),
        delist=str(entry.get("delist", "")),
        codes=codes,
        bits=bits,
        refused=refused,
        refused_bits=_bits(entry.get("refused_bits", {}), "refused_bits"),
        test_listed=test_listed,
        test_unlisted=test_unlisted,
        notes=str(entry.get("notes", "")),
        known=bool(entry.get("known", True)),
    )


def _enum(kind: type[enum.StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ValueError(f"`{name}` must be one of {choices}, not {value!r}") from None


def _rules(table: Mapping[str, Any], name: str) -> tuple[CodeRule, ...]:
    rules = []
    for key, value in table.items():
        low, high = _code_range(key, name)
        if isinstance(value, str):
            rules.append(CodeRule(low, high, value))
        elif isinstance(value, dict) and isinstance(value.get("meaning"), str):
            if set(value) - {"meaning", "advice"}:
                raise ValueError(f"`{name}` entry {key!r} takes only meaning and advice")
            rules.append(CodeRule(low, high, value["meaning"], str(value.get("advice", ""))))
        else:
            raise ValueError(f"`{name}` entry {key!r} needs a meaning")
    return tuple(sorted(rules, key=lambda r: r.high - r.low))  # narrowest range wins


def _code_range(key: str, name: str) -> tuple[int, int]:
    try:
        if "/" in key:
            net = ipaddress.IPv4Network(key)
            low, high = int(net.network_address), int(net.broadcast_address)
        else:
            first, _, last = key.partition("-")
            low = int(ipaddress.IPv4Address(first.strip()))
            high = int(ipaddress.IPv4Address(last.strip())) if last else low
    except ValueError:
        raise ValueError(f"`{name}` key {key!r} is not an address, range or network") from None
    if high < low or ipaddress.IPv4Address(low) not in LOOPBACK:
        raise ValueError(f"`{name}` key {key!r} must lie in 127.0.0.0/8")
    return low, high


def _bits(table: Mapping[str, Any], name: str) -> tuple[tuple[int, str], ...]:
    out = []
    for key, value in table.items():
        if not key.isdigit() or int(key) not in (1, 2, 4, 8, 16, 32, 64, 128):
            raise ValueError(f"`{name}` key {key!r} must be one bit value, 1 to 128")
        if not isinstance(value, str):
            raise ValueError(f"`{name}` entry {key!r} needs a meaning")
        out.append((int(key), value))
    return tuple(sorted(out))


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The lists shipped with mailcheck (package data, read once per process)."""
    text = resources.files("mailcheck.data").joinpath(LISTS_FILE).read_text(encoding="utf-8")
    return parse_catalogue(text, LISTS_FILE, {}, shipped=True)


def generic_list(zone: str) -> BlockList:
    """The entry of a zone nobody described: 127.0.0.x is listed, and it counts for delivery."""
    return build_list({"zone": zone, "name": zone, "known": False})


def load_lists(config_path: Path | None, zones: tuple[str, ...]) -> tuple[BlockList, ...]:
    """The lists to ask: `zones` if given (else the active ones), as the config file describes.

    Raises ValueError with a one-line reason for an unreadable or invalid config file or zone.
    A retired list is returned only when named in `zones` (the check reports and skips it).
    Loaded once per config file version: a batch asks for them once per domain.
    """
    try:
        version = config_path.stat().st_mtime_ns if config_path is not None else None
    except OSError:
        version = None  # the read below says why
    return _load_lists(config_path, tuple(zones), version)


@functools.lru_cache(maxsize=16)
def _load_lists(
    config_path: Path | None, zones: tuple[str, ...], version: int | None
) -> tuple[BlockList, ...]:
    """load_lists' work; `version` (the config file's mtime) only keys the cache."""
    shipped = shipped_catalogue()
    entries: dict[str, Mapping[str, Any]] = dict(shipped.entries)
    chosen = [z for z, e in shipped.entries.items() if e.get("status", "active") == "active"]
    if config_path is not None:
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"cannot read the DNSBL config file {config_path}: {reason}") from None
        config = parse_catalogue(text, str(config_path), entries)
        entries.update(config.entries)
        if not config.defaults:
            chosen = []
        chosen += [z for z in config.entries if z not in chosen]
    if zones:
        named = dict.fromkeys(normalize_zone(z) for z in zones)
        return tuple(build_list(entries[z]) if z in entries else generic_list(z) for z in named)
    lists = (build_list(entries[z]) for z in chosen)
    return tuple(bl for bl in lists if bl.status is ListStatus.ACTIVE)


def public_resolver(host: str) -> str | None:
    """Who runs a well-known public resolver at this address, or None."""
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        return None
    return shipped_catalogue().public_resolvers.get(address)
