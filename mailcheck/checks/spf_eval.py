"""check_host() of RFC 7208 §4: the seven results, the limits of §4.6.4, macros, exp=.

All DNS goes through the run's DnsClient. A lookup that fails (timeout, SERVFAIL...) is a
temperror (RFC 7208 §2.6.7), never `none`.

Concurrency: when a record is fetched, the lookups its terms will need (include targets' TXT,
`a`/`exists` addresses, `mx` records and their hosts' addresses, the PTR of the client) are
started at once, in the background. Evaluation then walks the terms strictly in order, and
counting happens only there, so the results, the lookup and void counts and the limits are
exactly those of a sequential evaluator (a match at term 3 never counts term 5's lookups). The
price is a few queries that may turn out unneeded; the gain is one round trip per record
instead of one per term. The DnsClient's single flight makes the in-order lookup join the
background one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from mailcheck.checks.spf_macro import client_address, malformed_domain, query_name, split_sender
from mailcheck.checks.spf_parse import (
    QUALIFIERS,
    Mechanism,
    SpfRecord,
    is_spf_record,
    parse_macro_string,
    parse_spf,
    printable,
)
from mailcheck.checks.spf_terms import (
    EvalState,
    SpfResult,
    Stop,
    expand_spec,
    match_term,
    start_prefetch,
)
from mailcheck.dns import DnsAnswer, DnsClient, Outcome

__all__ = [
    "SpfEvaluation",
    "SpfResult",
    "check_host",
    "check_identity",
    "select_records",
    "why_none",
]

DEFAULT_TIME_LIMIT = 20.0  # RFC 7208 §4.6.4: SHOULD allow at least 20 seconds


@dataclass(frozen=True)
class SpfEvaluation:
    """The outcome of check_host() for one client address."""

    ip: str
    """The client address as given."""
    domain: str
    """The domain whose policy was checked."""
    sender: str
    """<sender> (postmaster@domain when there was none)."""
    helo: str | None
    """The HELO name, when one was given."""
    result: SpfResult
    """One of the seven results."""
    reason: str
    """Why, in words (the matching term, the limit exceeded, the failed lookup)."""
    explanation: str | None = None
    """The expanded exp= text, for `fail` only (RFC 7208 §6.2)."""
    dns_lookups: int = 0
    """DNS-querying terms evaluated (RFC 7208 §4.6.4)."""
    void_lookups: int = 0
    """Lookups that returned NXDOMAIN or no records."""
    matched: str | None = None
    """`domain: term` of the mechanism that decided, if one did."""
    trace: tuple[str, ...] = ()
    """What was evaluated, in order."""

    def to_json(self) -> dict[str, object]:
        """The `evaluation` object of the spf check's data."""
        return {
            "ip": self.ip,
            "domain": self.domain,
            "sender": self.sender,
            "helo": self.helo,
            "result": self.result.value,
            "reason": self.reason,
            "explanation": self.explanation,
            "dns_lookups": self.dns_lookups,
            "void_lookups": self.void_lookups,
            "matched": self.matched,
            "trace": list(self.trace),
        }


@dataclass(frozen=True)
class _Outcome:
    result: SpfResult
    reason: str
    explanation: str | None = None
    matched: str | None = None


async def check_host(
    dns: DnsClient,
    ip: str,
    domain: str,
    sender: str,
    helo: str | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> SpfEvaluation:
    """RFC 7208 §4: the SPF result for mail from `sender` at client `ip`, checking `domain`.

    `ip` must be an IP address (ValueError otherwise); a malformed `domain` or `sender` gives the
    RFC's result, not an error (§4.3: `none`).
    """
    address = client_address(ip)
    domain = domain[:-1] if domain.endswith(".") else domain
    local, at, _ = sender.rpartition("@")
    full_sender = f"{local or 'postmaster'}@{domain}" if not at or not local else sender
    run = EvalState(dns, address, full_sender, helo or "unknown")
    base = SpfEvaluation(ip, domain, full_sender, helo, SpfResult.NONE, "")
    problem = malformed_domain(domain)
    if problem is not None:
        return dataclasses.replace(base, reason=f"{problem} (RFC 7208 §4.3)")
    try:
        async with asyncio.timeout(time_limit):
            outcome = await _check(run, domain, explain=True)
    except TimeoutError:
        outcome = _Outcome(SpfResult.TEMPERROR, f"no result within {time_limit:g} s (§4.6.4)")
    return dataclasses.replace(
        base,
        result=outcome.result,
        reason=outcome.reason,
        explanation=outcome.explanation,
        dns_lookups=run.lookups,
        void_lookups=run.voids,
        matched=outcome.matched,
        trace=tuple(run.trace),
    )


async def check_identity(
    dns: DnsClient,
    ip: str,
    sender: str | None,
    helo: str | None,
    domain: str | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> SpfEvaluation:
    """What a receiver checks for a message: the MAIL FROM identity (RFC 7208 §2.4).

    `sender` None (no --sender) checks postmaster@`domain`; an empty sender (a bounce) checks
    postmaster@`helo`; otherwise the sender's own domain is checked, whatever `domain` is.
    """
    if sender is None:
        sender = f"postmaster@{(domain or '').rstrip('.')}"
    check_domain, full_sender = split_sender(sender, helo)
    return await check_host(dns, ip, check_domain, full_sender, helo, time_limit)


def why_none(answer: DnsAnswer) -> str:
    """Why a TXT answer holds no SPF record, in words."""
    if answer.outcome is Outcome.ANSWER:
        return "only other TXT records"
    return "the name does not exist" if answer.outcome is Outcome.NXDOMAIN else "no TXT records"


def select_records(answer: DnsAnswer) -> tuple[str, ...]:
    """The SPF records among a TXT answer, strings joined (RFC 7208 §3.3, §4.5), as Latin-1."""
    texts = (b"".join(strings).decode("latin-1") for strings in answer.txt_strings())
    return tuple(t for t in texts if is_spf_record(t))


async def _check(run: EvalState, domain: str, explain: bool) -> _Outcome:
    """check_host() for one domain; include and redirect call it again (§5.2, §6.1)."""
    name = query_name(domain)
    if name is None:
        return _Outcome(SpfResult.NONE, f"{printable(domain)} is not a valid domain name (§4.3)")
    answer = await run.dns.query(name, "TXT")
    if answer.outcome.is_failure:
        return _Outcome(SpfResult.TEMPERROR, f"TXT lookup of {domain} {answer.outcome.value}")
    records = select_records(answer)
    if not records:
        return _Outcome(SpfResult.NONE, f"{domain} has no SPF record ({why_none(answer)})")
    if len(records) > 1:
        return _Outcome(SpfResult.PERMERROR, f"{domain} has {len(records)} SPF records (§4.5)")
    record = parse_spf(records[0])
    run.trace.append(f"{domain}: {printable(record.text)}")
    if record.problems:
        first = record.problems[0]
        where = f" in '{printable(first.term)}'" if first.term else ""
        return _Outcome(SpfResult.PERMERROR, f"syntax error at {domain}{where}: {first.message}")
    warm = start_prefetch(run, record, domain)
    try:
        return await _evaluate(run, record, domain, explain)
    finally:
        for task in warm:
            task.cancel()


async def _evaluate(run: EvalState, record: SpfRecord, domain: str, explain: bool) -> _Outcome:
    for mech in record.mechanisms:
        got = await (
            _include(run, mech, domain) if mech.name == "include" else match_term(run, mech, domain)
        )
        where = f"{domain}: {mech.text}"
        if isinstance(got, Stop):
            run.trace.append(f"  {mech.text} → {got.result.value}")
            return _Outcome(got.result, got.reason, matched=where)
        run.trace.append(f"  {mech.text} → {'match' if got else 'no match'}")
        if got:
            result = SpfResult(QUALIFIERS[mech.qualifier])
            explain = explain and result is SpfResult.FAIL  # exp= only on fail (§6.2)
            explanation = await _explanation(run, record, domain) if explain else None
            return _Outcome(result, f"{where} matched", explanation, where)
    redirect = record.redirect
    if redirect is not None and redirect.macro is not None:
        # RFC 7208 §6.1: only when no mechanism matched; the target's exp= applies, not ours.
        stop = run.count_lookup(redirect.text)
        if stop is not None:
            return _Outcome(stop.result, stop.reason, matched=f"{domain}: {redirect.text}")
        target = await expand_spec(run, redirect.macro, domain)
        outcome = await _check(run, target, explain)
        if outcome.result is SpfResult.NONE:
            reason = f"redirect target {printable(target)} has no SPF record (§6.1)"
            return _Outcome(SpfResult.PERMERROR, reason, matched=f"{domain}: {redirect.text}")
        return outcome
    return _Outcome(SpfResult.NEUTRAL, f"no mechanism of {domain} matched (§4.7)")


async def _include(run: EvalState, mech: Mechanism, domain: str) -> bool | Stop:
    """RFC 7208 §5.2: pass matches; fail, softfail and neutral do not; none is permerror."""
    stop = run.count_lookup(mech.text)
    if stop is not None:
        return stop
    assert mech.domain_spec is not None  # the parser demands a domain-spec for include
    target = await expand_spec(run, mech.domain_spec, domain)
    outcome = await _check(run, target, explain=False)
    if outcome.result is SpfResult.NONE:
        return Stop(SpfResult.PERMERROR, f"{mech.text}: {outcome.reason}")
    if outcome.result in (SpfResult.TEMPERROR, SpfResult.PERMERROR):
        return Stop(outcome.result, outcome.reason)  # the reason names where it happened
    return outcome.result is SpfResult.PASS


async def _explanation(run: EvalState, record: SpfRecord, domain: str) -> str | None:
    """RFC 7208 §6.2: the exp= text, or None when anything about it is wrong (not counted)."""
    exp = record.exp
    if exp is None or exp.macro is None:
        return None
    name = query_name(await expand_spec(run, exp.macro, domain))
    if name is None:
        return None
    answer = await run.dns.query(name, "TXT")
    texts = [b"".join(s) for s in answer.txt_strings()]
    if len(texts) != 1 or not texts[0].isascii():
        return None
    parsed = parse_macro_string(texts[0].decode("ascii"), explanation=True)
    if isinstance(parsed, str):
        return None
    return await expand_spec(run, parsed, domain)
