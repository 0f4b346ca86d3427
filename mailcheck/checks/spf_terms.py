"""The terms of RFC 7208 §5 other than include, the limits of §4.6.4, and prefetching.

spf_eval drives the evaluation (records, include, redirect, exp=); this module decides whether
one mechanism matches, counting lookups and void lookups as it goes. A `Stop` is a terminal
result reached inside a term (permerror past a limit, temperror on a failed lookup): a value,
not an exception, so the evaluator returns it like any other outcome.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from collections.abc import Awaitable
from dataclasses import dataclass, field

from mailcheck.checks.spf_macro import (
    MacroContext,
    client_address,
    expand,
    needs_validated_name,
    query_name,
)
from mailcheck.checks.spf_parse import MacroString, Mechanism, SpfRecord, printable
from mailcheck.dns import DnsAnswer, DnsClient, reverse_name

MAX_LOOKUPS = 10  # RFC 7208 §4.6.4: at most 10 DNS-querying terms
MAX_VOIDS = 2  # RFC 7208 §4.6.4: at most 2 void lookups
MAX_NAMES = 10  # RFC 7208 §4.6.4: at most 10 MX or PTR names per term


class SpfResult(enum.StrEnum):
    """The results of check_host() (RFC 7208 §2.6)."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


@dataclass(frozen=True)
class Stop:
    """A terminal result reached inside a term (an error, or a limit exceeded)."""

    result: SpfResult
    """permerror or temperror."""
    reason: str
    """Why, in words."""


@dataclass
class EvalState:
    """The state shared by one check_host() and every include/redirect below it."""

    dns: DnsClient
    """The run's DNS client."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    """<ip>, IPv4-mapped addresses unmapped."""
    sender: str
    """<sender>."""
    helo: str
    """The HELO name for %{h}."""
    lookups: int = 0
    """DNS-querying terms evaluated so far (§4.6.4)."""
    voids: int = 0
    """Void lookups so far (§4.6.4)."""
    trace: list[str] = field(default_factory=list)
    """What was evaluated, in order."""
    validated: dict[str, str] = field(default_factory=dict)
    """%{p} values computed, per domain."""

    @property
    def address_type(self) -> str:
        """A for an IPv4 client, AAAA for IPv6 (§5.3)."""
        return "A" if isinstance(self.ip, ipaddress.IPv4Address) else "AAAA"

    def count_lookup(self, term: str) -> Stop | None:
        """Count a DNS-querying term; past the limit the result is permerror (§4.6.4)."""
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            reason = f"more than {MAX_LOOKUPS} DNS-querying terms at {term} (§4.6.4)"
            return Stop(SpfResult.PERMERROR, reason)
        return None

    def count_void(self, answer: DnsAnswer, term: str) -> Stop | None:
        """Count a void lookup; past the limit the result is permerror (§4.6.4)."""
        self.voids += 1
        self.trace.append(f"  void lookup: {answer.name} {answer.rdtype} {answer.outcome.value}")
        if self.voids > MAX_VOIDS:
            reason = f"more than {MAX_VOIDS} void lookups at {term} (§4.6.4)"
            return Stop(SpfResult.PERMERROR, reason)
        return None


async def match_term(run: EvalState, mech: Mechanism, domain: str) -> bool | Stop:
    """Does a mechanism other than include match the client (§5)? A Stop ends evaluation."""
    if mech.name == "all":
        return True
    if mech.network is not None:
        return _contains(mech.network, run.ip)
    stop = run.count_lookup(mech.text)
    if stop is not None:
        return stop
    target = await expand_spec(run, mech.domain_spec, domain) if mech.domain_spec else domain
    name = query_name(target)
    if name is None:
        run.trace.append(f"  {printable(target)} is not a valid name: no match")
        return False
    if mech.name == "a":
        return await _match_addresses(run, mech, [name], void_answer=True)
    if mech.name == "mx":
        return await _match_mx(run, mech, name)
    if mech.name == "ptr":
        return await _match_ptr(run, mech, name)
    answer = await run.dns.query(name, "A")  # exists: always A, even for IPv6 (§5.7)
    if answer.outcome.is_failure:
        return Stop(SpfResult.TEMPERROR, f"A lookup of {answer.name} {answer.outcome.value}")
    if answer.outcome.is_negative:
        return run.count_void(answer, mech.text) or False
    return True


def _in_cidr(run: EvalState, addresses: tuple[str, ...], mech: Mechanism) -> bool:
    """Is the client inside `address/cidr` for one of the addresses (§5.3, §5.6)?"""
    v4 = isinstance(run.ip, ipaddress.IPv4Address)
    given = mech.cidr4 if v4 else mech.cidr6
    length = given if given is not None else (32 if v4 else 128)
    for text in addresses:
        network = ipaddress.ip_network(f"{text}/{length}", strict=False)
        if _contains(network, run.ip):
            return True
    return False


def _contains(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    """Membership across families is simply false (ip4 never matches an IPv6 client, §5.6)."""
    if isinstance(network, ipaddress.IPv4Network) and isinstance(ip, ipaddress.IPv4Address):
        return ip in network
    if isinstance(network, ipaddress.IPv6Network) and isinstance(ip, ipaddress.IPv6Address):
        return ip in network
    return False


async def _match_addresses(
    run: EvalState, mech: Mechanism, names: list[str], void_answer: bool
) -> bool | Stop:
    answers = await asyncio.gather(*(run.dns.query(n, run.address_type) for n in names))
    for answer in answers:
        if answer.outcome.is_failure:
            return Stop(SpfResult.TEMPERROR, f"{answer.rdtype} lookup of {answer.name} failed")
    if any(_in_cidr(run, a.addresses(), mech) for a in answers):
        return True
    if void_answer and answers and answers[0].outcome.is_negative:
        return run.count_void(answers[0], mech.text) or False
    return False


async def _match_mx(run: EvalState, mech: Mechanism, name: str) -> bool | Stop:
    answer = await run.dns.query(name, "MX")
    if answer.outcome.is_failure:
        return Stop(SpfResult.TEMPERROR, f"MX lookup of {answer.name} {answer.outcome.value}")
    if answer.outcome.is_negative:
        return run.count_void(answer, mech.text) or False  # no implicit MX (§5.4)
    records = answer.mx()
    if len(records) > MAX_NAMES:
        return Stop(SpfResult.PERMERROR, f"{mech.text}: {len(records)} MX names (§4.6.4)")
    hosts = [host for _, host in sorted(records) if host not in ("", ".")]
    return await _match_addresses(run, mech, hosts, void_answer=False)


async def _validated_names(run: EvalState, target: str | None) -> tuple[list[str], DnsAnswer]:
    """§5.5: PTR names of the client (first 10) whose own addresses include the client."""
    answer = await run.dns.query(reverse_name(str(run.ip)), "PTR")
    names = list(answer.targets()[:MAX_NAMES])
    if target is not None:  # only names in the target domain can match: validate just those
        suffix = "." + target.lower()
        names = [n for n in names if n.lower() == target.lower() or n.lower().endswith(suffix)]
    answers = await asyncio.gather(*(run.dns.query(n, run.address_type) for n in names))
    validated = [
        n.rstrip(".").lower()
        for n, a in zip(names, answers, strict=True)
        if not a.outcome.is_failure  # §5.5: a failed address lookup skips the name
        and any(client_address(x) == run.ip for x in a.addresses())
    ]
    return validated, answer


async def _match_ptr(run: EvalState, mech: Mechanism, name: str) -> bool | Stop:
    validated, answer = await _validated_names(run, name)
    if answer.outcome.is_negative:
        return run.count_void(answer, mech.text) or False
    return bool(validated)  # a failed PTR lookup is no match, not temperror (§5.5)


async def _validated_name(run: EvalState, domain: str) -> str:
    """The `p` macro value (§7.3): `domain` or a name below it if validated, else any."""
    key = domain.lower().rstrip(".")
    if key not in run.validated:
        names, _ = await _validated_names(run, None)
        below = [n for n in names if n.endswith("." + key)]
        run.validated[key] = key if key in names else (below or names or ["unknown"])[0]
    return run.validated[key]


async def expand_spec(run: EvalState, macro: MacroString, domain: str) -> str:
    """Expand a domain-spec or explanation, computing %{p} first when it is used."""
    validated = await _validated_name(run, domain) if needs_validated_name(macro) else None
    ctx = MacroContext(run.ip, run.sender, domain, run.helo, validated)
    return expand(macro, ctx)


def _prefetch_queries(run: EvalState, mech: Mechanism, domain: str) -> list[Awaitable[object]]:
    if mech.domain_spec is not None and not mech.domain_spec.is_static:
        return []  # the name depends on the client or %{p}: resolved in order only
    ctx = MacroContext(run.ip, run.sender, domain, run.helo)
    name = query_name(expand(mech.domain_spec, ctx) if mech.domain_spec else domain)
    if name is None:
        return []
    if mech.name == "include":
        return [run.dns.query(name, "TXT")]
    if mech.name == "a":
        return [run.dns.query(name, run.address_type)]
    if mech.name == "exists":
        return [run.dns.query(name, "A")]
    if mech.name == "mx":
        return [_warm_mx(run, name)]
    return [run.dns.query(reverse_name(str(run.ip)), "PTR")]  # ptr


async def _warm_mx(run: EvalState, name: str) -> None:
    answer = await run.dns.query(name, "MX")
    if len(answer.mx()) <= MAX_NAMES:
        hosts = [host for _, host in answer.mx() if host not in ("", ".")]
        await asyncio.gather(*(run.dns.query(h, run.address_type) for h in hosts))


def start_prefetch(run: EvalState, record: SpfRecord, domain: str) -> list[asyncio.Future[object]]:
    """Start the lookups of the next DNS-querying terms this record can still afford."""
    budget = MAX_LOOKUPS - run.lookups
    started: list[asyncio.Future[object]] = []
    for mech in record.reached:
        if budget <= 0:
            break
        if mech.causes_lookup:
            budget -= 1
            started.extend(asyncio.ensure_future(q) for q in _prefetch_queries(run, mech, domain))
    return started
