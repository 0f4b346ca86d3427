"""The `dnsbl` check: is any MX address, sending address or the domain on a DNS blocklist?

gather_dnsbl asks every list about its RFC 5782 §5 test entries and about every target, all
at once; evaluate_dnsbl believes a list's answers only when its test entries are right, decodes
them per list (dnsbl_lists), and reports listings, refusals and unusable lists.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mailcheck.checks.base import CheckContext
from mailcheck.checks.dmarc import organizational_domain
from mailcheck.checks.dnsbl_catalogue import load_lists
from mailcheck.checks.dnsbl_findings import (
    config_invalid_finding,
    list_findings,
    listed_finding,
    non_public_finding,
    nothing_to_check_finding,
    public_resolver_finding,
    retired_finding,
    unchecked_finding,
)
from mailcheck.checks.dnsbl_lists import BlockList, ListKind, ListStatus
from mailcheck.checks.dnsbl_verdict import (
    CHECK,
    DnsblObservation,
    DnsblTarget,
    Judgement,
    ListLookup,
    ListProbe,
    ListVerdict,
    ResultStatus,
    SkippedAddress,
    TargetResult,
    judge,
)
from mailcheck.checks.mx import observe_mx
from mailcheck.dns import DnsAnswer, DnsClient, Outcome
from mailcheck.model import CheckResult, FactTable, Finding, Severity, Status, status_of
from mailcheck.targets import non_public_reason, parse_ip

# ---------------------------------------------------------------- gathering


async def _probe(dns: DnsClient, blocklist: BlockList) -> ListProbe:
    """Ask a list its RFC 5782 §5 test entries; the zone's SOA too when the first is missing."""
    listed_name = blocklist.query_name(blocklist.test_listed) if blocklist.test_listed else None
    unlisted_name = blocklist.query_name(blocklist.test_unlisted)
    if listed_name is None:
        return ListProbe(blocklist, None, await dns.query(unlisted_name, "A"))
    listed, unlisted = await asyncio.gather(
        dns.query(listed_name, "A"), dns.query(unlisted_name, "A")
    )
    # A missing test entry means a dead list or a filtering resolver; a missing zone tells
    # which.
    apex = await dns.query(blocklist.zone, "SOA") if listed.outcome.is_negative else None
    return ListProbe(blocklist, listed, unlisted, apex)


async def _lookup(dns: DnsClient, target: DnsblTarget, blocklist: BlockList) -> ListLookup:
    """Ask a list about one target: A for the codes, then TXT for the reason if listed."""
    name = blocklist.query_name(target.value)
    answer = await dns.query(name, "A")
    txt: DnsAnswer | None = None
    if answer.outcome is Outcome.ANSWER:
        txt = await dns.query(name, "TXT")
    return ListLookup(target, blocklist.zone, answer, txt)


async def collect_targets(
    ctx: CheckContext,
) -> tuple[tuple[DnsblTarget, ...], tuple[SkippedAddress, ...], Outcome | None]:
    """The MX addresses, the --ip addresses and the domain (and its registrable domain)."""
    sources: dict[str, list[str]] = {}
    mx = await observe_mx(ctx)
    if mx is not None:
        for host, address in mx.addresses:
            sources.setdefault(parse_ip(address), []).append(f"MX {host}")
    label = ["--ip"] if ctx.domain is not None else []
    for ip in ctx.ips:
        sources.setdefault(parse_ip(ip), []).extend(label)
    targets: list[DnsblTarget] = []
    skipped: list[SkippedAddress] = []
    for ip, src in sources.items():
        why = non_public_reason(ip)
        if why is None:
            targets.append(DnsblTarget(ip, True, tuple(src)))
        else:
            skipped.append(SkippedAddress(ip, tuple(src), why))
    if ctx.domain is not None:
        targets.append(DnsblTarget(ctx.domain, False))
        # Domain lists hold registrable domains (URIBL strips host parts before listing).
        registrable = organizational_domain(ctx.domain)
        if registrable != ctx.domain:
            source = f"registrable domain of {ctx.domain}"
            targets.append(DnsblTarget(registrable, False, (source,)))
    mx_outcome = mx.mx.outcome if mx is not None else None
    return tuple(targets), tuple(skipped), mx_outcome


async def gather_dnsbl(ctx: CheckContext, lists: tuple[BlockList, ...]) -> DnsblObservation:
    """Probe every list and look up every target on every list that holds its kind, at once."""
    retired = tuple(bl for bl in lists if bl.status is ListStatus.RETIRED)
    wanted = [
        bl
        for bl in lists
        if bl.status is not ListStatus.RETIRED
        and (ctx.domain is not None or (bl.kind is ListKind.IP and ctx.ips))
    ]
    async with asyncio.TaskGroup() as group:
        # The probes go out first; the lookups join them as soon as the MX addresses are known.
        probes = {bl.zone: group.create_task(_probe(ctx.dns, bl)) for bl in wanted}
        targets, skipped, mx_outcome = await collect_targets(ctx)
        pairs = [(t, bl) for t in targets for bl in wanted if bl.applies_to(t.value, t.is_address)]
        lookups = [group.create_task(_lookup(ctx.dns, t, bl)) for t, bl in pairs]
    used = {bl.zone for _, bl in pairs}
    return DnsblObservation(
        resolvers=ctx.dns.config.nameservers,
        probes=tuple(task.result() for zone, task in probes.items() if zone in used),
        lookups=tuple(task.result() for task in lookups),
        targets=targets,
        skipped=skipped,
        retired=retired,
        mx_outcome=mx_outcome,
    )


# ---------------------------------------------------------------- judging


def evaluate_dnsbl(obs: DnsblObservation, lists: tuple[BlockList, ...] = ()) -> CheckResult:
    """Judge a dnsbl observation (pure). `lists` are the lists configured, for the messages."""
    findings: list[Finding] = []
    public = public_resolver_finding(obs)
    if public is not None:
        findings.append(public)
    findings += [retired_finding(bl) for bl in obs.retired]
    findings += [non_public_finding(s) for s in obs.skipped]
    judgement = judge(obs)
    if not obs.lookups:
        usable = [bl for bl in lists if bl.status is not ListStatus.RETIRED]
        findings.append(nothing_to_check_finding(obs, usable))
        quiet = all(f.severity is Severity.INFO for f in findings)
        status = Status.SKIPPED if quiet else status_of(findings)
        return CheckResult(CHECK, status, tuple(findings), _data(obs, judgement))
    listed = _listed_first(judgement.results)
    findings += [listed_finding(r) for r in listed]
    if any(judgement.checked(v) for v in judgement.lists):
        for verdict in judgement.lists:
            findings += list_findings(verdict, judgement.results_of(verdict.blocklist.zone))
    else:
        findings.append(unchecked_finding(judgement))  # one finding, not one per list
    facts = _fact_table(obs, judgement, listed)
    return CheckResult.from_findings(CHECK, findings, _data(obs, judgement), facts)


def _listed_first(results: tuple[TargetResult, ...]) -> list[TargetResult]:
    """Listings, those on lists that affect delivery first, otherwise in lookup order."""
    listed = [r for r in results if r.status is ResultStatus.LISTED]
    return sorted(listed, key=lambda r: not r.blocklist.affects_delivery)


def _data(obs: DnsblObservation, judgement: Judgement) -> dict[str, Any]:
    return {
        "resolvers": [str(ns) for ns in obs.resolvers],
        "lists": [_list_data(v) for v in judgement.lists],
        "results": [r.to_json() for r in judgement.results],
        "skipped": [
            {"ip": s.ip, "sources": list(s.sources), "reason": s.reason} for s in obs.skipped
        ],
        "retired": [bl.zone for bl in obs.retired],
    }


def _list_data(verdict: ListVerdict) -> dict[str, Any]:
    blocklist, probe = verdict.blocklist, verdict.probe
    return {
        "zone": blocklist.zone,
        "name": blocklist.name,
        "kind": blocklist.kind.value,
        "affects_delivery": blocklist.affects_delivery,
        "known": blocklist.known,
        "status": verdict.health.value,
        "why": verdict.why or None,
        "test_listed": _probe_data(probe.listed),
        "test_unlisted": _probe_data(probe.unlisted),
    }


def _probe_data(answer: DnsAnswer | None) -> dict[str, Any] | None:
    if answer is None:
        return None
    return {
        "name": answer.name.rstrip("."),
        "outcome": answer.outcome.value,
        "codes": list(answer.addresses()) if answer.outcome is Outcome.ANSWER else [],
    }


_RESULT_TEXT = {
    ResultStatus.CLEAN: "clean",
    ResultStatus.REFUSED: "not checked: refused",
    ResultStatus.ERROR: "not checked: lookup failed",
    ResultStatus.DEAD: "not checked: list dead",
    ResultStatus.BROKEN: "not checked: list broken",
}


def _fact_table(
    obs: DnsblObservation, judgement: Judgement, listed: list[TargetResult]
) -> FactTable:
    """Listings first, one row each; then per target one row per other outcome.

    The table stays narrow enough for 100 columns: a listing shows the short name of its code
    (`SBL`, `PBL (ISP maintained)`) with the delisting page on the next line; the findings
    carry the whole meaning and the list's reason.
    """
    rows = [
        (r.target.label, r.blocklist.name, "\n".join(filter(None, (_listed_text(r), r.delist_url))))
        for r in listed
    ]
    for target in obs.targets:
        mine = [r for r in judgement.results if r.target == target]
        for status, text in _RESULT_TEXT.items():
            group = [r.blocklist.name for r in mine if r.status is status]
            if group:
                names = ", ".join(group) if len(group) <= 3 else f"{len(group)} lists"
                rows.append((target.label, names, text))
    return FactTable(("address / domain", "list", "result / delisting"), tuple(rows))


def _listed_text(result: TargetResult) -> str:
    word = "listed" if result.blocklist.affects_delivery else "listed (minor)"
    short = dict.fromkeys(d.meaning.split(":")[0] for d in result.decoded)
    labels = [s for s in short if not s.startswith("listed")]
    return f"{word}: {'; '.join(labels)}" if labels else word


# ---------------------------------------------------------------- the check


async def check_dnsbl(ctx: CheckContext, config: Path | None = None) -> CheckResult:
    """Load the lists (the config file, then ctx.dnsbl_zones), gather and judge."""
    try:
        lists = load_lists(config, ctx.dnsbl_zones)
    except ValueError as exc:
        empty = DnsblObservation(ctx.dns.config.nameservers, (), ())
        finding = config_invalid_finding(str(exc))
        return CheckResult(CHECK, Status.ERROR, (finding,), _data(empty, judge(empty)))
    obs = await gather_dnsbl(ctx, lists)
    return evaluate_dnsbl(obs, lists)


class DnsblCheck:
    """The `dnsbl` check."""

    name = CHECK
    description = "DNS blocklists for every MX and sending address, and the domain"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather and judge, with the lists of the run's DNSBL config file (if any)."""
        return await check_dnsbl(ctx, ctx.dnsbl_config)
