"""The one async DNS layer: every lookup of a run goes through one DnsClient.

It sends EDNS0 queries with the DO and AD bits set, falls back to TCP on truncation, retries
across the configured resolvers within a bounded time, caches every outcome for the run
(negative answers and failures too) and lets concurrent askers of the same name and type
share one query (single flight). Outcomes are values, never exceptions: a timeout stays a
timeout all the way into the findings, and is never mistaken for a missing record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailcheck.model import DnsSummary

DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRIES = 1
DEFAULT_CONCURRENCY = 50
EDNS_PAYLOAD = 1232  # RFC 9715 / DNS flag day 2020: avoids IP fragmentation
MAX_CNAME_HOPS = 8
MALFORMED_REPLY = "malformed reply"
"""The start of `DnsAnswer.detail` when a reply arrived but could not be parsed (FormError)."""


class Outcome(enum.StrEnum):
    """What became of one lookup."""

    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"
    """A malformed or unexpected reply (FORMERR, NOTIMP, garbage) or a network error."""

    @property
    def is_negative(self) -> bool:
        """The name or the record provably does not exist."""
        return self in (Outcome.NXDOMAIN, Outcome.NODATA)

    @property
    def is_failure(self) -> bool:
        """Nothing could be learned: the answer is unknown, not empty."""
        return self in (Outcome.SERVFAIL, Outcome.REFUSED, Outcome.TIMEOUT, Outcome.ERROR)


@dataclass(frozen=True)
class Nameserver:
    """A resolver to send queries to."""

    host: str
    """An IPv4 or IPv6 address."""
    port: int = 53
    """The UDP and TCP port."""

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_nameserver(text: str) -> Nameserver:
    """Parse `ADDR`, `ADDR:PORT`, `V6ADDR` or `[V6ADDR]:PORT`; raise ValueError with a reason."""
    spec = text.strip()
    port = 53
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed nameserver {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:] if rest else None
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
    else:
        host, port_text = spec, None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"malformed nameserver {text!r}: port must be 1-65535")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"malformed nameserver {text!r}: not an IP address") from None
    return Nameserver(str(address), port)


def system_nameservers() -> tuple[Nameserver, ...]:
    """The resolvers of /etc/resolv.conf; empty when there is none."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return ()
    servers = []
    for ns in resolver.nameservers:
        try:
            servers.append(Nameserver(str(ipaddress.ip_address(str(ns))), resolver.port))
        except ValueError:
            continue  # DoH/DoT entries are not used from resolv.conf
    return tuple(servers)


@dataclass(frozen=True)
class DnsConfig:
    """How the DNS layer behaves for one run."""

    nameservers: tuple[Nameserver, ...]
    """Resolvers, tried in order on failure."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds to wait for one reply from one resolver."""
    retries: int = DEFAULT_RETRIES
    """Further rounds over all resolvers after the first fails."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Queries in flight at once, at most."""

    @property
    def lifetime(self) -> float:
        """The bound on one lookup, all attempts included."""
        return self.timeout * (self.retries + 1) * max(1, len(self.nameservers)) + 1.0


@dataclass(frozen=True)
class DnsAnswer:
    """The outcome of one lookup, with the records when there are any."""

    name: str
    """The name asked for, absolute, lower case."""
    rdtype: str
    """The record type asked for, e.g. `MX`."""
    outcome: Outcome
    """What became of the lookup."""
    records: tuple[dns.rdata.Rdata, ...] = ()
    """The records of the asked type, after following CNAMEs."""
    cname_chain: tuple[str, ...] = ()
    """Aliases followed, in order, each the target of the one before (empty without CNAMEs)."""
    ttl: int | None = None
    """TTL of the answer rrset."""
    authenticated: bool = False
    """The resolver set the AD bit: it validated the answer with DNSSEC."""
    server: str = ""
    """The resolver that gave this outcome."""
    elapsed_ms: float = 0.0
    """Time from the first attempt to the outcome."""
    detail: str = ""
    """For failures: what went wrong, in words."""

    @property
    def canonical_name(self) -> str:
        """The name the records belong to: the last CNAME target, or the name asked for."""
        return self.cname_chain[-1] if self.cname_chain else self.name

    def texts(self) -> tuple[str, ...]:
        """The records in presentation format."""
        return tuple(r.to_text() for r in self.records)

    def addresses(self) -> tuple[str, ...]:
        """A/AAAA records as address strings."""
        return tuple(str(getattr(r, "address", "")) for r in self.records)

    def targets(self) -> tuple[str, ...]:
        """PTR/CNAME/NS targets as absolute lower-case names."""
        return tuple(str(getattr(r, "target", "")).lower() for r in self.records)

    def mx(self) -> tuple[tuple[int, str], ...]:
        """MX records as (preference, exchange) with the exchange absolute and lower case."""
        return tuple(
            (int(getattr(r, "preference", 0)), str(getattr(r, "exchange", "")).lower())
            for r in self.records
        )

    def txt_strings(self) -> tuple[tuple[bytes, ...], ...]:
        """TXT records, each as its character-strings (not joined)."""
        return tuple(tuple(getattr(r, "strings", ())) for r in self.records)

    def evidence(self) -> dict[str, Any]:
        """A JSON-ready description for a finding's evidence."""
        out: dict[str, Any] = {"name": self.name, "type": self.rdtype, "outcome": self.outcome}
        if self.server:
            out["server"] = self.server
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class _Stats:
    queries: int = 0
    cache_hits: int = 0
    replies: int = 0
    trace: list[Mapping[str, Any]] = field(default_factory=list)


def normalize_name(name: str) -> str:
    """The absolute lower-case text form of a name; raises ValueError when it is not one."""
    try:
        return dns.name.from_text(name).to_text().lower()
    except dns.exception.DNSException as exc:
        raise ValueError(f"not a DNS name: {name!r} ({exc})") from None


def reverse_name(ip: str) -> str:
    """The in-addr.arpa or ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5)."""
    return dns.reversename.from_address(ip).to_text().lower()


class DnsClient:
    """Async lookups with one cache per run, single flight, bounded concurrency and a trace."""

    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self._cache: dict[tuple[str, str, bool], asyncio.Future[DnsAnswer]] = {}
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._stats = _Stats()

    def child(self) -> DnsClient:
        """A client sharing this one's cache and concurrency bound, with its own counts.

        A batch run gives each domain a child: a name two domains share is asked once per run,
        and each domain's report still says which queries it caused.
        """
        view = DnsClient.__new__(DnsClient)
        view.config = self.config
        view._cache = self._cache
        view._semaphore = self._semaphore
        view._stats = _Stats()
        return view

    async def query(self, name: str, rdtype: str, *, cd: bool = False) -> DnsAnswer:
        """Look up `name`/`rdtype`; every outcome, failures included, is a DnsAnswer.

        `cd` sets Checking Disabled (RFC 4035 §3.2.2): a validating resolver then returns data
        it would call bogus, which tells a DNSSEC failure apart from an unreachable zone.
        """
        rdtype = rdtype.upper()
        try:
            qname = normalize_name(name)
        except ValueError as exc:
            return DnsAnswer(name, rdtype, Outcome.ERROR, detail=str(exc))
        key = (qname, rdtype, cd)
        task = self._cache.get(key)
        if task is None:
            self._stats.queries += 1
            # The lookup runs as its own task: an asker that is cancelled (a check that ran out
            # of time) does not cancel it for the others waiting on the same name and type.
            task = asyncio.ensure_future(self._resolve(qname, rdtype, cd))
            self._cache[key] = task
        else:
            self._stats.cache_hits += 1
        return await asyncio.shield(task)

    async def _resolve(self, qname: str, rdtype: str, cd: bool) -> DnsAnswer:
        async with self._semaphore:
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.config.lifetime):
                    answer, attempts, tcp = await self._ask_servers(qname, rdtype, cd)
            except TimeoutError:
                answer = DnsAnswer(
                    qname, rdtype, Outcome.TIMEOUT, detail="no answer within the lookup lifetime"
                )
                attempts, tcp = 0, False
        elapsed = round((time.monotonic() - started) * 1000, 1)
        answer = dataclasses.replace(answer, elapsed_ms=elapsed)
        self._stats.trace.append(
            {
                "name": qname,
                "type": rdtype,
                "outcome": answer.outcome.value,
                "ms": elapsed,
                "server": answer.server,
                "tcp": tcp,
                "attempts": attempts,
                "ad": answer.authenticated,
                "cd": cd,
            }
        )
        return answer

    async def _ask_servers(self, qname: str, rdtype: str, cd: bool) -> tuple[DnsAnswer, int, bool]:
        """Try every resolver, `retries + 1` rounds, until one gives a definite outcome."""
        last = DnsAnswer(qname, rdtype, Outcome.ERROR, detail="no nameserver configured")
        attempts = 0
        for _ in range(self.config.retries + 1):
            for server in self.config.nameservers:
                attempts += 1
                last, tcp = await self._ask(server, qname, rdtype, cd)
                if last.outcome in (Outcome.ANSWER, Outcome.NXDOMAIN, Outcome.NODATA):
                    return last, attempts, tcp
                if last.detail.startswith(MALFORMED_REPLY):
                    return last, attempts, tcp  # asking again gets the same bad record
        return last, attempts, False

    async def _ask(
        self, server: Nameserver, qname: str, rdtype: str, cd: bool
    ) -> tuple[DnsAnswer, bool]:
        where = str(server)
        try:
            query = dns.message.make_query(
                qname, rdtype, use_edns=0, want_dnssec=True, payload=EDNS_PAYLOAD
            )
            query.flags |= dns.flags.AD  # RFC 6840 §5.7: ask for the AD bit
            if cd:
                query.flags |= dns.flags.CD
            response, tcp = await dns.asyncquery.udp_with_fallback(
                query, server.host, timeout=self.config.timeout, port=server.port
            )
        except dns.exception.Timeout:
            timed_out = DnsAnswer(qname, rdtype, Outcome.TIMEOUT, server=where, detail="timed out")
            return timed_out, False
        except dns.exception.FormError as exc:
            # dnspython rejects a whole reply when one record in it is malformed (e.g. a TLSA
            # digest of the wrong length): the server answered, but nothing is usable.
            self._stats.replies += 1
            detail = f"{MALFORMED_REPLY}: {exc}"
            return DnsAnswer(qname, rdtype, Outcome.ERROR, server=where, detail=detail), False
        except (OSError, dns.exception.DNSException, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            return DnsAnswer(qname, rdtype, Outcome.ERROR, server=where, detail=detail), False
        self._stats.replies += 1
        return interpret_response(qname, rdtype, response, where), tcp

    def summary(self, with_trace: bool = False) -> DnsSummary:
        """Totals for the report, and the trace when asked for."""
        return DnsSummary(
            nameservers=tuple(str(s) for s in self.config.nameservers),
            queries=self._stats.queries,
            cache_hits=self._stats.cache_hits,
            replies=self._stats.replies,
            trace=tuple(self._stats.trace) if with_trace else (),
        )


_RCODE_OUTCOME = {
    dns.rcode.SERVFAIL: Outcome.SERVFAIL,
    dns.rcode.REFUSED: Outcome.REFUSED,
}


def interpret_response(
    qname: str, rdtype: str, response: dns.message.Message, server: str
) -> DnsAnswer:
    """Turn a reply into an outcome, following the CNAME chain inside the answer section."""
    rcode = response.rcode()
    ad = bool(response.flags & dns.flags.AD)
    if rcode in _RCODE_OUTCOME:
        return DnsAnswer(
            qname, rdtype, _RCODE_OUTCOME[rcode], server=server, detail=_extended_errors(response)
        )
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        detail = f"resolver answered {dns.rcode.to_text(rcode)}"
        return DnsAnswer(qname, rdtype, Outcome.ERROR, server=server, detail=detail)
    wanted = dns.rdatatype.from_text(rdtype)
    current = dns.name.from_text(qname)
    chain: list[str] = []
    for _ in range(MAX_CNAME_HOPS + 1):
        rrset = response.get_rrset(response.answer, current, dns.rdataclass.IN, wanted)
        if rrset is not None:
            return DnsAnswer(
                qname,
                rdtype,
                Outcome.ANSWER,
                tuple(rrset),
                tuple(chain),
                rrset.ttl,
                ad,
                server,
            )
        alias = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if alias is None or wanted == dns.rdatatype.CNAME:
            break
        current = next(iter(alias)).target
        chain.append(current.to_text().lower())
    else:
        detail = f"CNAME chain longer than {MAX_CNAME_HOPS}"
        return DnsAnswer(qname, rdtype, Outcome.ERROR, server=server, detail=detail)
    outcome = Outcome.NXDOMAIN if rcode == dns.rcode.NXDOMAIN else Outcome.NODATA
    return DnsAnswer(qname, rdtype, outcome, (), tuple(chain), None, ad, server)


def _extended_errors(response: dns.message.Message) -> str:
    """RFC 8914 Extended DNS Errors, e.g. "EDE 6 (DNSSEC Bogus): signature expired"."""
    parts = []
    for option in response.extended_errors():
        name = option.code.name.replace("_", " ").title() if hasattr(option.code, "name") else ""
        text = f"EDE {int(option.code)}" + (f" ({name})" if name else "")
        parts.append(text + (f": {option.text}" if option.text else ""))
    return "; ".join(parts)
