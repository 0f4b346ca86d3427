"""Fixture-lab DNS server: serves zone files over real UDP and TCP on loopback.

The mailcheck client treats it as a recursive resolver, so answers look like a
resolver's (RA set, CNAME chains followed across lab zones), while the data
comes only from the ``*.zone`` files in one directory.  A ``BEHAVIOURS`` file
there makes whole subtrees misbehave (servfail, refused, timeout, formerr, truncate), or
answers their TLSA queries with a record no parser accepts (malformed-tlsa).

Library use: ``LabDnsServer`` (asyncio) or ``run_in_thread`` (sync tests).
CLI: ``python -m tests.lab.dnsserver --zones DIR [--ready-file PATH] ...``
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import errno
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
from dns.message import Message
from dns.name import Name
from dns.node import Node
from dns.rdataset import Rdataset
from dns.rdatatype import RdataType
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.SOA import SOA
from dns.rrset import RRset

EDNS_PAYLOAD = 1232  # what we advertise; the DNS Flag Day 2020 value
MAX_CNAME_HOPS = 8
BEHAVIOURS = frozenset({"servfail", "refused", "timeout", "formerr", "truncate", "malformed-tlsa"})
HARMLESS = (None, "truncate", "malformed-tlsa")
"""Behaviours under which a name still resolves normally (for the other record types)."""
MALFORMED_TLSA = bytes((3, 1, 1)) + bytes(range(33))
"""DANE-EE SPKI SHA-256 with 33 octets of digest: a record no parser accepts (RFC 6698 §2.1)."""
_ORIGIN_RE = re.compile(r"^\$ORIGIN\s+(\S+)", re.IGNORECASE)
_IN = dns.rdataclass.IN
T = TypeVar("T")


@dataclass(frozen=True)
class QueryRecord:
    """One received query, as seen by the server."""

    proto: str  # "udp" or "tcp"
    qname: str  # lowercase, absolute ("mx.good.test.")
    qtype: str  # "MX", "TXT", "TYPE65534", ...
    do_bit: bool
    at: float  # time.monotonic() on arrival


# ---------------------------------------------------------------- loading


def zone_origin(path: Path) -> Name:
    """The file's first ``$ORIGIN``, else its name minus ``.zone``."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if m := _ORIGIN_RE.match(line):
                return dns.name.from_text(m.group(1))
    return dns.name.from_text(path.name.removesuffix(".zone"))


@dataclass
class LabZone:
    """A loaded zone plus every name that exists in it (empty non-terminals too)."""

    zone: dns.zone.Zone
    names: set[Name] = field(default_factory=set)
    nsec_owners: list[Name] = field(default_factory=list)
    """Owners of NSEC records in canonical order (RFC 4034 §6.1); empty if unsigned."""

    def __post_init__(self) -> None:
        origin = self.origin
        self.nsec_owners = sorted(
            name
            for name, node in self.zone.nodes.items()
            if node.get_rdataset(_IN, dns.rdatatype.NSEC) is not None
        )
        for name in self.zone.nodes:
            # Ancestors of a name exist even without records (RFC 8020, RFC 4592).
            while name not in self.names and name != origin:
                self.names.add(name)
                name = name.parent()
        self.names.add(origin)

    @property
    def origin(self) -> Name:
        assert self.zone.origin is not None  # always set: we load with an origin
        return self.zone.origin

    def lookup(self, name: Name) -> tuple[bool, Node | None]:
        """(name exists, node answering for it), the node possibly from a wildcard."""
        node = self.zone.get_node(name)
        if node is not None or name in self.names:
            return True, node
        encloser = name.parent()
        while encloser not in self.names:  # stops at the origin at the latest
            encloser = encloser.parent()
        return False, self.zone.get_node(Name(("*",)).concatenate(encloser))

    def closest_encloser(self, name: Name) -> Name:
        """The longest existing ancestor of a name that does not exist."""
        encloser = name.parent()
        while encloser not in self.names:
            encloser = encloser.parent()
        return encloser

    def nsec_for(self, name: Name) -> Name | None:
        """The owner of the NSEC that matches or covers ``name``, None if the zone is unsigned."""
        if not self.nsec_owners:
            return None
        # The last owner at or before the name; before the first owner wraps to the last.
        return self.nsec_owners[bisect.bisect_right(self.nsec_owners, name) - 1]


def load_zones(zone_dir: Path) -> dict[Name, LabZone]:
    """Every ``*.zone`` file in ``zone_dir``, keyed by origin."""
    if not zone_dir.is_dir():  # a typo in a Makefile should not yield an all-REFUSED lab
        raise ValueError(f"{zone_dir}: not a directory")
    zones: dict[Name, LabZone] = {}
    for path in sorted(zone_dir.glob("*.zone")):
        origin = zone_origin(path)
        try:
            zone = dns.zone.from_file(str(path), origin=origin, relativize=False)
        except dns.exception.DNSException as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if origin in zones:
            raise ValueError(f"{path}: a second zone for {origin}")
        zones[origin] = LabZone(zone)
    return zones


def load_behaviours(zone_dir: Path) -> dict[Name, str]:
    """Parse the optional ``BEHAVIOURS``: ``<name> <behaviour>`` lines, ``#`` comments."""
    path = zone_dir / "BEHAVIOURS"
    result: dict[Name, str] = {}
    if not path.exists():
        return result
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or words[1].lower() not in BEHAVIOURS:
            raise ValueError(f"{path}:{lineno}: expected '<name> <{'|'.join(sorted(BEHAVIOURS))}>'")
        result[dns.name.from_text(words[0])] = words[1].lower()
    return result


def _closest(name: Name, table: dict[Name, T]) -> T | None:
    """The entry for ``name`` or its nearest ancestor in ``table``."""
    while name not in table:
        if name == dns.name.root:
            return None
        name = name.parent()
    return table[name]


# ---------------------------------------------------------------- answering


@dataclass
class Resolution:
    rcode: dns.rcode.Rcode
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)


def _add(out: list[RRset], owner: Name, node: Node, rds: Rdataset, do: bool) -> None:
    """Append ``rds`` under ``owner`` (the query name for wildcards), plus its RRSIG if DO."""
    sig = node.get_rdataset(_IN, dns.rdatatype.RRSIG, rds.rdtype) if do else None
    for found in (rds, sig):
        if found is not None:
            rrset = RRset(owner, found.rdclass, found.rdtype, found.covers)
            rrset.update(found)
            out.append(rrset)


@dataclass
class Resolver:
    """Answers from lab data the way a (non-validating) recursive resolver would."""

    zones: dict[Name, LabZone]
    behaviours: dict[Name, str]

    def behaviour(self, name: Name) -> str | None:
        return _closest(name, self.behaviours)

    def zone_for(self, name: Name, qtype: RdataType) -> LabZone | None:
        lab = _closest(name, self.zones)
        if lab is not None and qtype == dns.rdatatype.DS and lab.origin == name != dns.name.root:
            # DS lives on the parent side of a zone cut, when the parent is in the lab.
            return _closest(name.parent(), self.zones) or lab
        return lab

    def resolve(self, qname: Name, qtype: RdataType, do: bool) -> Resolution:
        chain: list[RRset] = []
        proofs: list[RRset] = []  # NSECs for wildcard expansions along the chain
        name = qname
        for _ in range(MAX_CNAME_HOPS + 1):
            # A CNAME into a broken or non-lab name fails, as it would upstream.
            if name != qname and self.behaviour(name) not in HARMLESS:
                return Resolution(dns.rcode.SERVFAIL)
            lab = self.zone_for(name, qtype)
            if lab is None:
                return Resolution(dns.rcode.SERVFAIL if chain else dns.rcode.REFUSED)
            exists, node = lab.lookup(name)
            # Signed zones prove what is missing with NSEC (RFC 4035 §3.1.3): the name's own
            # NSEC, or the one covering it, and for a name that does not exist also the one
            # for the wildcard that did or could have matched it.
            wildcard = None if exists else Name(("*",)).concatenate(lab.closest_encloser(name))
            if node is None:
                rcode = dns.rcode.NOERROR if exists else dns.rcode.NXDOMAIN
                denial = _nsecs(lab, [name, wildcard], do)
                return Resolution(rcode, chain, self._soa(lab, do) + proofs + denial)
            rds = node.get_rdataset(_IN, qtype)
            cname = None if rds is not None else node.get_rdataset(_IN, dns.rdatatype.CNAME)
            if rds is None and cname is None:  # NODATA: the name's or wildcard's NSEC says so
                denial = _nsecs(lab, [name, wildcard], do)
                return Resolution(dns.rcode.NOERROR, chain, self._soa(lab, do) + proofs + denial)
            if wildcard is not None:  # a wildcard expansion: prove no closer match exists
                proofs += _nsecs(lab, [name], do)
            if rds is not None:
                _add(chain, name, node, rds, do)
                return Resolution(dns.rcode.NOERROR, chain, proofs)
            assert cname is not None
            _add(chain, name, node, cname, do)
            name = cast(CNAME, cname[0]).target
        return Resolution(dns.rcode.SERVFAIL)  # CNAME loop or chain too long

    @staticmethod
    def _soa(lab: LabZone, do: bool) -> list[RRset]:
        node = lab.zone.find_node(lab.origin)
        out: list[RRset] = []
        _add(out, lab.origin, node, node.find_rdataset(_IN, dns.rdatatype.SOA), do)
        # Negative-caching TTL is min(SOA TTL, SOA MINIMUM) (RFC 2308 section 3).
        out[0].ttl = min(out[0].ttl, cast(SOA, out[0][0]).minimum)
        return out


def _nsecs(lab: LabZone, names: list[Name | None], do: bool) -> list[RRset]:
    """The NSEC records, with their RRSIGs, that match or cover each name (once each)."""
    out: list[RRset] = []
    if not do:
        return out
    found = (lab.nsec_for(n) for n in names if n is not None)
    owners = dict.fromkeys(o for o in found if o is not None)
    for owner in owners:
        node = lab.zone.find_node(owner)
        _add(out, owner, node, node.find_rdataset(_IN, dns.rdatatype.NSEC), do)
    return out


def _formerr_from_header(wire: bytes) -> bytes | None:
    """FORMERR for an unparseable query, if at least its header is readable."""
    if len(wire) < 12:
        return None
    qid, flags = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return None
    flags = dns.flags.QR | (flags & (0x7800 | dns.flags.RD)) | dns.rcode.FORMERR  # keep opcode
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


# ---------------------------------------------------------------- server


class LabDnsServer:
    """asyncio DNS server on one UDP + TCP port serving the zones in ``zone_dir``."""

    def __init__(
        self,
        zone_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_ms: float = 0.0,
        *,
        on_query: Callable[[QueryRecord], None] | None = None,
    ) -> None:
        self.zone_dir = Path(zone_dir)
        self.host = host
        self.delay_ms = delay_ms
        self.query_log: list[QueryRecord] = []
        self._on_query = on_query
        self._requested_port = port
        self._port = 0
        self._resolver = Resolver({}, {})
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        return self._port

    def reset_log(self) -> None:
        self.query_log.clear()  # in place: handles share this very list

    async def start(self) -> None:
        """Load the zones, then bind UDP and TCP on the same port."""
        self._resolver = Resolver(load_zones(self.zone_dir), load_behaviours(self.zone_dir))
        loop = asyncio.get_running_loop()
        attempts = 1 if self._requested_port else 20
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self._requested_port)
            )
            # Bursts of concurrent queries (benchmarks) overflow the default receive buffer.
            udp.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            port: int = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError as exc:
                udp.close()  # the kernel's free UDP port is taken for TCP: try another
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                continue
            self._udp, self._port = udp, port
            return

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._udp = self._tcp = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # One task per query so that delays overlap instead of queueing.
        task = asyncio.get_running_loop().create_task(_logged(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _answer_udp(self, wire: bytes, addr: Any, udp: asyncio.DatagramTransport) -> None:
        reply = await self._respond(wire, "udp")
        if reply is not None and not udp.is_closing():
            udp.sendto(reply, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        pending: list[asyncio.Task[None]] = []
        try:
            while True:
                try:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                pending = [t for t in pending if not t.done()]
                pending.append(self._spawn(self._answer_tcp(wire, writer)))
            # The client may half-close after sending; still deliver delayed answers.
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer_tcp(self, wire: bytes, writer: asyncio.StreamWriter) -> None:
        reply = await self._respond(wire, "tcp")
        if reply is not None and not writer.is_closing():
            writer.write(len(reply).to_bytes(2, "big") + reply)
            with contextlib.suppress(ConnectionError):  # the client left: nobody to tell
                await writer.drain()

    async def _respond(self, wire: bytes, proto: str) -> bytes | None:
        """The wire reply to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return _formerr_from_header(wire)
        if query.flags & dns.flags.QR:
            return None  # never answer responses: avoids reflection loops
        behaviour = None
        do = bool(query.ednsflags & dns.flags.DO)
        if len(query.question) == 1:
            q = query.question[0]
            qname, qtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
            record = QueryRecord(proto, qname, qtype, do, time.monotonic())
            self.query_log.append(record)
            if self._on_query is not None:
                self._on_query(record)
            behaviour = self._resolver.behaviour(q.name)
        if behaviour == "timeout":
            return None  # drop: the client must give up on its own
        try:
            reply = self._render(self._build(query, behaviour, do), query, proto, behaviour)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            fail = dns.message.make_response(query, recursion_available=True)
            fail.set_rcode(dns.rcode.SERVFAIL)
            reply = fail.to_wire()
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000)
        return reply

    def _build(self, query: Message, behaviour: str | None, do: bool) -> Message:
        response = dns.message.make_response(
            query, recursion_available=True, our_payload=EDNS_PAYLOAD
        )
        response.flags |= query.flags & dns.flags.CD  # resolvers echo CD; AD is never set
        if query.edns >= 0:
            response.want_dnssec(do)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        elif behaviour in ("servfail", "refused", "formerr"):
            response.set_rcode(dns.rcode.from_text(behaviour))
        elif query.question[0].rdclass != _IN:
            response.set_rcode(dns.rcode.REFUSED)
        elif dns.rdatatype.is_metatype(query.question[0].rdtype):
            response.set_rcode(dns.rcode.NOTIMP)  # ANY, AXFR, IXFR: out of scope
        elif behaviour == "malformed-tlsa" and query.question[0].rdtype == dns.rdatatype.TLSA:
            # Raw rdata: dnspython refuses to build a TLSA with a wrong digest length.
            bad = dns.rdata.GenericRdata(_IN, dns.rdatatype.TLSA, MALFORMED_TLSA)
            response.answer = [dns.rrset.from_rdata(query.question[0].name, 300, bad)]
            response.flags |= dns.flags.AA
        else:
            q = query.question[0]
            result = self._resolver.resolve(q.name, q.rdtype, do)
            response.set_rcode(result.rcode)
            response.answer, response.authority = result.answer, result.authority
            if result.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                response.flags |= dns.flags.AA
        return response

    @staticmethod
    def _render(response: Message, query: Message, proto: str, behaviour: str | None) -> bytes:
        if proto == "tcp":
            # dnspython would cap the reply at the query's EDNS payload; TCP has no such limit.
            return response.to_wire(max_size=65535)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        if behaviour != "truncate":
            with contextlib.suppress(dns.exception.TooBig):
                return response.to_wire(max_size=limit)
        # Too big for UDP: TC with empty sections tells the client to retry over TCP.
        response.flags |= dns.flags.TC
        response.answer, response.authority, response.additional = [], [], []
        return response.to_wire()


async def _logged(coro: Coroutine[Any, Any, None]) -> None:
    """Run one query's task; a bug in it is reported, never fatal to the server."""
    try:
        await coro
    except Exception:
        traceback.print_exc(file=sys.stderr)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: LabDnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not isinstance: selector transports don't subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.server._spawn(self.server._answer_udp(data, addr, self.transport))


# ---------------------------------------------------------------- thread runner


class LabHandle:
    """A started server running on its own event loop in a daemon thread."""

    def __init__(self, server: LabDnsServer, stop: Callable[[], None], thread: threading.Thread):
        self.server = server
        self.host, self.port, self.query_log = server.host, server.port, server.query_log
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        self.address = f"{bracketed}:{self.port}"
        self._request_stop = stop
        self._thread = thread

    def reset_log(self) -> None:
        self.server.reset_log()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._request_stop()
            self._thread.join(timeout=10)

    def __enter__(self) -> LabHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_in_thread(
    zone_dir: Path, host: str = "127.0.0.1", port: int = 0, delay_ms: float = 0.0
) -> LabHandle:
    """Start a server in a daemon thread; returns once both sockets are bound."""
    return serve_in_thread(LabDnsServer(zone_dir, host, port, delay_ms))


def serve_in_thread(server: LabDnsServer, name: str = "lab-dns") -> LabHandle:
    """Run a built server (a subclass too) in a daemon thread, once both sockets are bound."""
    ready: Future[Callable[[], None]] = Future()

    async def serve() -> None:
        stop_event = asyncio.Event()
        try:
            await server.start()
        except BaseException as exc:
            ready.set_exception(exc)  # re-raised in the caller's thread
            return
        loop = asyncio.get_running_loop()

        def request_stop() -> None:  # called from the caller's thread
            loop.call_soon_threadsafe(stop_event.set)

        ready.set_result(request_stop)
        try:
            await stop_event.wait()
        finally:
            await server.stop()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name=name, daemon=True)
    thread.start()
    return LabHandle(server, ready.result(timeout=30), thread)


# ---------------------------------------------------------------- CLI


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers see no file or the whole file, never half of it


async def _serve_cli(args: argparse.Namespace) -> int:
    stop_event = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop_event.set)
    ready_file: Path | None = args.ready_file
    if ready_file is not None:
        ready_file.unlink(missing_ok=True)  # a stale file would announce a dead port
    log: TextIO | None = None
    if args.query_log is not None:
        log = open(args.query_log, "a", encoding="utf-8", buffering=1)  # line-buffered: tail -f

    def on_query(r: QueryRecord) -> None:
        if log is not None:
            log.write(f"{r.proto} {r.qname} {r.qtype} {int(r.do_bit)}\n")

    server = LabDnsServer(args.zones, args.host, args.port, args.delay_ms, on_query=on_query)
    try:
        await server.start()
        print(f"lab dns: serving {args.zones} on {args.host} port {server.port}", file=sys.stderr)
        if ready_file is not None:
            _write_atomically(ready_file, f"{server.port}\n")
        await stop_event.wait()
    finally:
        await server.stop()
        if log is not None:
            log.close()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.dnsserver", description=__doc__)
    parser.add_argument("--zones", type=Path, required=True, help="directory of *.zone files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay every answer")
    parser.add_argument("--ready-file", type=Path, help="gets the port once both sockets are bound")
    parser.add_argument("--query-log", type=Path, help="append 'proto qname qtype do' per query")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_serve_cli(args))
    except (OSError, ValueError) as exc:
        print(f"lab dns: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
