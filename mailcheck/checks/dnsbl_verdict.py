"""What the blocklists said: the observations of a dnsbl run and their reading (pure).

Every list is judged by its RFC 5782 §5 test entries before any of its answers is believed: a
list that refuses this resolver, lists everything, is gone or cannot be reached says nothing
about an address, so its answers become `refused`, `broken`, `dead` or `error`, never `clean`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailcheck.checks.dnsbl_lists import AnswerKind, BlockList, Decoded
from mailcheck.dns import DnsAnswer, Nameserver, Outcome

CHECK = "dnsbl"


@dataclass(frozen=True)
class DnsblTarget:
    """An address or a domain to look up on the lists that hold its kind."""

    value: str
    """The address (canonical; IPv4-mapped IPv6 as IPv4) or the domain (lower case)."""
    is_address: bool
    """True for an address, False for a domain."""
    sources: tuple[str, ...] = ()
    """Why it is checked: `MX <host>`, `--ip`, `registrable domain of <domain>`."""

    @property
    def key(self) -> str:
        """The JSON member naming it: `ip` or `domain`."""
        return "ip" if self.is_address else "domain"

    @property
    def label(self) -> str:
        """The target with why it is checked, for people."""
        return self.value + (f" ({', '.join(self.sources)})" if self.sources else "")


@dataclass(frozen=True)
class ListProbe:
    """A list's RFC 5782 §5 test entries, asked through the run's resolver."""

    blocklist: BlockList
    """The list."""
    listed: DnsAnswer | None
    """The A lookup of the entry that must be listed (None when the list has no such entry)."""
    unlisted: DnsAnswer
    """The A lookup of the entry that must not be listed."""
    apex: DnsAnswer | None = None
    """The SOA lookup of the zone, asked when the must-be-listed entry was not listed."""


@dataclass(frozen=True)
class ListLookup:
    """One target asked of one list."""

    target: DnsblTarget
    """What was asked about."""
    zone: str
    """The list's zone."""
    a: DnsAnswer
    """The A lookup: NXDOMAIN is "not listed", an answer carries the list's codes."""
    txt: DnsAnswer | None = None
    """The TXT lookup of the same name (the list's reason), asked when A had an answer."""


@dataclass(frozen=True)
class SkippedAddress:
    """An address no blocklist can hold (private, loopback...), so not looked up."""

    ip: str
    """The address."""
    sources: tuple[str, ...]
    """Why it would have been checked."""
    reason: str
    """Why it is not public, in words."""


@dataclass(frozen=True)
class DnsblObservation:
    """Everything a dnsbl run asked and heard."""

    resolvers: tuple[Nameserver, ...]
    """The resolvers the queries went to (a public one makes many lists refuse)."""
    probes: tuple[ListProbe, ...]
    """One per list asked about at least one target, in the lists' order."""
    lookups: tuple[ListLookup, ...]
    """Every (target, list) pair, targets in order, lists in order within each."""
    targets: tuple[DnsblTarget, ...] = ()
    """The addresses and domains checked."""
    skipped: tuple[SkippedAddress, ...] = ()
    """Addresses that were not looked up."""
    retired: tuple[BlockList, ...] = ()
    """Retired lists the user named: reported, never asked."""
    mx_outcome: Outcome | None = None
    """The outcome of the MX lookup, when the run has a domain."""


class ResultStatus(enum.StrEnum):
    """The outcome for one target on one list."""

    LISTED = "listed"
    CLEAN = "clean"
    REFUSED = "refused"
    """The list refused the query (a refusal code): unknown."""
    BROKEN = "broken"
    """The list answers "listed" for everything: ignored."""
    DEAD = "dead"
    """The list does not list its test entry: ignored."""
    ERROR = "error"
    """The lookup failed (timeout, SERVFAIL, REFUSED, a rewritten answer): unknown."""


class Health(enum.StrEnum):
    """What a list's test entries say about it."""

    OK = "ok"
    REFUSED = "refused"
    BROKEN = "broken"
    DEAD = "dead"
    ERROR = "error"


_RESULT_OF_HEALTH = {
    Health.REFUSED: ResultStatus.REFUSED,
    Health.BROKEN: ResultStatus.BROKEN,
    Health.DEAD: ResultStatus.DEAD,
    Health.ERROR: ResultStatus.ERROR,
}


@dataclass(frozen=True)
class AnswerReading:
    """One A lookup read for its list."""

    status: ResultStatus
    """LISTED, CLEAN, REFUSED or ERROR."""
    decoded: tuple[Decoded, ...] = ()
    """Every A record, decoded."""
    why: str = ""
    """For REFUSED and ERROR: what happened, in words."""
    answer: DnsAnswer | None = None
    """The lookup read."""


def read_answer(blocklist: BlockList, answer: DnsAnswer) -> AnswerReading:
    """Read one A lookup: a listing, not listed, a refusal, or unknown."""
    if answer.outcome is Outcome.ANSWER:
        decoded = tuple(blocklist.decode(a) for a in answer.addresses())
        invalid = [d for d in decoded if d.kind is AnswerKind.INVALID]
        if invalid:
            why = (
                f"it answered {invalid[0].code}, outside 127.0.0.0/8: the resolver rewrites "
                "answers, so no answer from it can be read (RFC 5782 §2.1)"
            )
            return AnswerReading(ResultStatus.ERROR, decoded, why, answer)
        refused = [d for d in decoded if d.kind is AnswerKind.REFUSED]
        if refused:
            why = f"it answered {refused[0].code} ({refused[0].meaning})"
            return AnswerReading(ResultStatus.REFUSED, decoded, why, answer)
        return AnswerReading(ResultStatus.LISTED, decoded, "", answer)
    if answer.outcome.is_negative:
        return AnswerReading(ResultStatus.CLEAN, (), "", answer)
    return AnswerReading(ResultStatus.ERROR, (), failure_text(answer), answer)


def failure_text(answer: DnsAnswer) -> str:
    """A failed lookup in words, naming the resolver (the same words for every list)."""
    server = answer.server or "the resolver"
    if answer.outcome is Outcome.TIMEOUT:
        return "no answer in time (its name servers are down, or drop queries from this resolver)"
    if answer.outcome is Outcome.SERVFAIL:
        return (
            f"the resolver {server} answered SERVFAIL (it got no answer from the list's name "
            "servers)"
        )
    if answer.outcome is Outcome.REFUSED:
        return (
            f"the resolver {server} refused the queries (DNS REFUSED): it does not resolve "
            "these names for you"
        )
    return f"the lookup failed ({answer.detail or answer.outcome.value})"


@dataclass(frozen=True)
class ListVerdict:
    """A list judged by its test entries."""

    probe: ListProbe
    """What it answered."""
    health: Health
    """Usable (OK) or why not."""
    why: str = ""
    """Why it is not usable, in words that do not name the list."""
    decoded: tuple[Decoded, ...] = ()
    """The answer that decided it (the refusal code, the wildcard listing)."""

    @property
    def blocklist(self) -> BlockList:
        """The list judged."""
        return self.probe.blocklist


def judge_list(probe: ListProbe) -> ListVerdict:
    """Judge a list by its RFC 5782 §5 test entries (refusals first: they explain the rest)."""
    blocklist = probe.blocklist
    positive = read_answer(blocklist, probe.listed) if probe.listed is not None else None
    negative = read_answer(blocklist, probe.unlisted)
    readings = [r for r in (positive, negative) if r is not None]
    for reading in readings:
        if reading.status is ResultStatus.REFUSED:
            return ListVerdict(probe, Health.REFUSED, reading.why, reading.decoded)
    if negative.status is ResultStatus.LISTED:
        codes = ", ".join(d.code for d in negative.decoded)
        why = (
            f"it lists {blocklist.test_unlisted} ({codes}), which RFC 5782 §5 says no list may "
            'list: it answers "listed" for everything (a wildcard, an expired or parked domain, '
            "or a list that shut down by listing the world)"
        )
        return ListVerdict(probe, Health.BROKEN, why, negative.decoded)
    for reading in readings:
        if reading.status is ResultStatus.ERROR:
            return ListVerdict(probe, Health.ERROR, reading.why, reading.decoded)
    if positive is not None and positive.status is ResultStatus.CLEAN:
        return ListVerdict(probe, Health.DEAD, _dead_text(probe))
    return ListVerdict(probe, Health.OK)


def _dead_text(probe: ListProbe) -> str:
    listed = probe.listed
    assert listed is not None  # only a list with a must-be-listed entry can be dead
    text = (
        f"it does not list its test entry {probe.blocklist.test_listed} "
        f"({listed.outcome.value}), which RFC 5782 §5 says every list must"
    )
    apex = probe.apex
    if apex is None:
        return text
    if apex.outcome is Outcome.NXDOMAIN:
        return text + "; its zone does not exist any more, so the list is gone"
    if apex.outcome.is_failure:
        return text + "; whether its zone still exists could not be determined"
    return (
        text + "; its zone still exists, so the list is empty or shut down, or the resolver "
        "filters it"
    )


@dataclass(frozen=True)
class TargetResult:
    """The outcome for one target on one list."""

    lookup: ListLookup
    """What was asked."""
    blocklist: BlockList
    """The list."""
    status: ResultStatus
    """The outcome, the list's health taken into account."""
    decoded: tuple[Decoded, ...] = ()
    """The A records of the answer, decoded."""
    reason: str = ""
    """The list's TXT record at the same name (its reason), when there is one."""
    why: str = ""
    """For every status but LISTED and CLEAN: why nothing is known."""

    @property
    def target(self) -> DnsblTarget:
        """What was asked about."""
        return self.lookup.target

    @property
    def delist_url(self) -> str:
        """Where to look the listing up or ask for removal (listed results only)."""
        if self.status is not ResultStatus.LISTED:
            return ""
        return self.blocklist.delist_url(self.target.value)

    def to_json(self) -> dict[str, Any]:
        """One member of `data.results`."""
        return {
            self.target.key: self.target.value,
            "sources": list(self.target.sources),
            "zone": self.blocklist.zone,
            "name": self.blocklist.name,
            "status": self.status.value,
            "codes": [d.code for d in self.decoded],
            "meanings": [d.meaning for d in self.decoded],
            "reason": self.reason or None,
            "delist_url": self.delist_url or None,
        }


def judge_lookup(lookup: ListLookup, verdict: ListVerdict) -> TargetResult:
    """One target's outcome on a list: the answer if the list is usable, else its health."""
    reading = read_answer(verdict.blocklist, lookup.a)
    reason = _txt_reason(lookup.txt)
    if verdict.health is not Health.OK:
        status = _RESULT_OF_HEALTH[verdict.health]
        return TargetResult(lookup, verdict.blocklist, status, reading.decoded, reason, verdict.why)
    return TargetResult(
        lookup, verdict.blocklist, reading.status, reading.decoded, reason, reading.why
    )


def _txt_reason(txt: DnsAnswer | None) -> str:
    if txt is None or txt.outcome is not Outcome.ANSWER:
        return ""
    texts = (b"".join(strings).decode("utf-8", "replace") for strings in txt.txt_strings())
    return " | ".join(t.strip() for t in texts if t.strip())


@dataclass(frozen=True)
class Judgement:
    """Every list and every result of a run, judged."""

    lists: tuple[ListVerdict, ...]
    """One per list asked, in order."""
    results: tuple[TargetResult, ...]
    """One per (target, list), in the order of the lookups."""

    def results_of(self, zone: str) -> tuple[TargetResult, ...]:
        """The results of one list."""
        return tuple(r for r in self.results if r.blocklist.zone == zone)

    def checked(self, verdict: ListVerdict) -> bool:
        """The list is usable and answered for at least one target."""
        return verdict.health is Health.OK and any(
            r.status in (ResultStatus.LISTED, ResultStatus.CLEAN)
            for r in self.results_of(verdict.blocklist.zone)
        )


def judge(obs: DnsblObservation) -> Judgement:
    """Judge every list, then every lookup against its list's verdict."""
    verdicts = tuple(judge_list(p) for p in obs.probes)
    by_zone: Mapping[str, ListVerdict] = {v.blocklist.zone: v for v in verdicts}
    results = tuple(judge_lookup(lk, by_zone[lk.zone]) for lk in obs.lookups)
    return Judgement(verdicts, results)
