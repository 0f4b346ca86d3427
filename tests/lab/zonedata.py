"""Serving the `zonedata` of an RFC 7208 test-suite scenario from a lab DNS server.

`write_zone_dir` turns one scenario's zonedata into a root zone file (so every name the suite
uses, under any TLD, is answered authoritatively: absent names are NXDOMAIN) plus a `DROPS`
file; `run_scenario_server` starts a lab server that also honours DROPS. The conventions are
those of the suite's reference driver (pyspf's testspf.py):

- an `SPF` entry is also served as TXT, unless the name has a `TXT` entry of its own;
- `TXT: NONE` (or any `TYPE: NONE`) means no record of that type;
- `TIMEOUT` makes the server drop queries for the name's types that have no records;
- a name starting with `error.` that the scenario does not define times out.

A TXT record with no strings at all (`SPF: [ ]`) is left out: no zone file can hold one.

DROPS is what tests/lab/dnsserver.py's BEHAVIOURS cannot say (per name *and* type, exact name
rather than subtree, a name prefix), so the server here is a subclass that drops those
queries before handing everything else to the unchanged lab server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rdatatype

from tests.lab.dnsserver import LabDnsServer, LabHandle, serve_in_thread

ROOT_HEADER = """$ORIGIN .
$TTL 300
@ IN SOA ns1.lab.test. hostmaster.lab.test. 2026112101 3600 600 604800 300
@ IN NS ns1.lab.test.
"""
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_DROPS = "DROPS"


def zone_name(name: str) -> str:
    """A name in zone-file syntax: absolute, every unusual character as \\DDD."""
    labels = name.rstrip(".").split(".")
    return "".join(
        "".join(c if c in _SAFE_NAME else f"\\{b:03d}" for c in label for b in _octets(c)) + "."
        for label in labels
    )


def _octets(char: str) -> bytes:
    # The suite writes octets as "\xEF": code points below 256 are those octets.
    return bytes([ord(char)]) if ord(char) < 256 else char.encode("utf-8")


def txt_rdata(value: str | list[str]) -> str:
    """TXT rdata in zone-file syntax: each string quoted, octets outside ASCII as \\DDD."""
    strings = [value] if isinstance(value, str) else list(value)
    return " ".join(
        '"'
        + "".join(
            chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\{b:03d}"
            for c in s
            for b in _octets(c)
        )
        + '"'
        for s in strings
    )


@dataclass(frozen=True)
class Drops:
    """Queries the scenario server must not answer."""

    timeouts: Mapping[str, frozenset[str]]
    """Name (absolute, lower case) → the types it answers; any other type times out."""
    defined: frozenset[str]
    """Every name the scenario defines (absolute, lower case)."""

    def drop(self, qname: str, qtype: str) -> bool:
        """Should the query go unanswered?"""
        if qname in self.timeouts:
            return qtype not in self.timeouts[qname]
        return qname.startswith("error.") and qname not in self.defined

    def to_text(self) -> str:
        """The DROPS file: `name TYPE,TYPE` (answered types; `-` for none), `name defined`."""
        lines = [f"{n} {','.join(sorted(t)) or '-'}" for n, t in sorted(self.timeouts.items())]
        return "\n".join(lines + [f"{n} defined" for n in sorted(self.defined)]) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Drops:
        """Read a DROPS file."""
        timeouts: dict[str, frozenset[str]] = {}
        defined: set[str] = set()
        for line in text.splitlines():
            name, what = line.rsplit(" ", 1)
            if what == "defined":
                defined.add(name)
            else:
                timeouts[name] = frozenset() if what == "-" else frozenset(what.split(","))
        return cls(timeouts, frozenset(defined))


def _key(name: str) -> str:
    return dns.name.from_text(zone_name(name)).to_text().lower()


def write_zone_dir(zonedata: Mapping[str, list[Any]], directory: Path) -> Drops:
    """Write the scenario's records as `root.zone` and its DROPS file; return the drops."""
    records: list[str] = []
    timeouts: dict[str, frozenset[str]] = {}
    for name, entries in zonedata.items():
        owner = zone_name(name)
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        types: set[str] = set()
        for entry in entries:
            if entry == "TIMEOUT":
                timeouts[_key(name)] = frozenset()
                continue
            for rtype, value in entry.items():
                if value == "NONE" or value == []:
                    # A TXT record without strings cannot be served: RFC 1035 §3.3.14 wants
                    # one or more, and zone parsers (dnspython's too) refuse it.
                    continue
                served = [rtype] + (["TXT"] if rtype == "SPF" and not has_txt else [])
                for rdtype in served:
                    types.add(rdtype)
                    records.append(f"{owner} IN {rdtype} {_rdata(rdtype, value)}")
        if _key(name) in timeouts:
            timeouts[_key(name)] = frozenset(types)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "root.zone").write_text(ROOT_HEADER + "\n".join(records) + "\n", "utf-8")
    drops = Drops(timeouts, frozenset(_key(n) for n in zonedata))
    (directory / _DROPS).write_text(drops.to_text(), "utf-8")
    return drops


def _rdata(rdtype: str, value: Any) -> str:
    if rdtype in ("TXT", "SPF"):
        return txt_rdata(value)
    if rdtype == "MX":
        preference, host = value
        return f"{int(preference)} {zone_name(host) if host else '.'}"
    if rdtype in ("PTR", "CNAME"):
        return zone_name(str(value))
    return str(value)  # A, AAAA


class ScenarioDnsServer(LabDnsServer):
    """The lab server, plus the queries a scenario's DROPS file says to leave unanswered."""

    drops = Drops({}, frozenset())

    async def start(self) -> None:
        """Read DROPS, then start as the lab server does."""
        path = self.zone_dir / _DROPS
        if path.exists():
            self.drops = Drops.from_text(path.read_text("utf-8"))
        await super().start()

    async def _respond(self, wire: bytes, proto: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - the lab server answers garbage itself
            return await super()._respond(wire, proto)
        if len(query.question) == 1:
            question = query.question[0]
            qname = question.name.to_text().lower()
            if self.drops.drop(qname, dns.rdatatype.to_text(question.rdtype)):
                return None
        return await super()._respond(wire, proto)


def run_scenario_server(zone_dir: Path) -> LabHandle:
    """Start a ScenarioDnsServer in a daemon thread."""
    return serve_in_thread(ScenarioDnsServer(zone_dir), "spf-suite-dns")
