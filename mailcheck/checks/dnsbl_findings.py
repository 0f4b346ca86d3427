"""The findings of the dnsbl check, one builder per code (pure).

Severity is policy: a listing on a list many receivers use is an error, on one few use a
warning; a list that could not be asked is a warning when it matters for delivery, else info.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailcheck.checks.dnsbl_catalogue import public_resolver
from mailcheck.checks.dnsbl_lists import BlockList, ListKind
from mailcheck.checks.dnsbl_verdict import (
    CHECK,
    DnsblObservation,
    Health,
    Judgement,
    ListVerdict,
    ResultStatus,
    SkippedAddress,
    TargetResult,
)
from mailcheck.model import Finding, Severity

RFC_TEST = "RFC 5782 §5"
_REFUSED_REMEDY = (
    "Ask through your own recursive resolver (e.g. unbound on the mail server; --nameserver) "
    "rather than a public or shared one: that is also what your mail server should use for "
    "blocklist lookups."
)
_UNREACHABLE_REMEDY = (
    "Run again; if it persists, check that your resolver reaches the list "
    "(dig 2.0.0.127.<zone> A @resolver), or use another resolver with --nameserver."
)
_IGNORED_REMEDY = (
    'Stop asking this list: drop it from --dnsbl, or give it status = "retired" in your '
    "DNSBL config file. If it is one of mailcheck's default lists, please report it."
)


def _names(blocklist: BlockList) -> str:
    if blocklist.name == blocklist.zone:
        return blocklist.zone
    return f"{blocklist.name} ({blocklist.zone})"


def _severity(blocklist: BlockList) -> Severity:
    return Severity.WARNING if blocklist.affects_delivery else Severity.INFO


def _list_evidence(verdict: ListVerdict, **extra: Any) -> dict[str, Any]:
    probe = verdict.probe
    out: dict[str, Any] = {
        "zone": verdict.blocklist.zone,
        "list": verdict.blocklist.name,
        "status": verdict.health.value,
        "codes": [d.code for d in verdict.decoded],
        "meanings": [d.meaning for d in verdict.decoded],
        "test_listed": probe.listed.evidence() if probe.listed is not None else None,
        "test_unlisted": probe.unlisted.evidence(),
    }
    return {**out, **extra}


def public_resolver_finding(obs: DnsblObservation) -> Finding | None:
    """A warning, up front, when the queries go through a well-known public resolver."""
    public = [(str(ns), who) for ns in obs.resolvers if (who := public_resolver(ns.host))]
    if not public:
        return None
    refusing = [p.blocklist for p in obs.probes if not p.blocklist.public_resolvers]
    shown = ", ".join(f"{ns} ({who})" for ns, who in public)
    if refusing:
        names = ", ".join(bl.zone for bl in refusing)
        effect = (
            f"{names} refuse queries that come through public resolvers (or answer them "
            "wrongly), so their results here will say `refused` rather than whether you are "
            "listed."
        )
    else:
        effect = "Lists with usage limits may refuse queries that come through it."
    return Finding(
        CHECK,
        "dnsbl.public-resolver",
        Severity.WARNING if refusing else Severity.INFO,
        f"The resolver {shown} is a well-known public resolver. {effect}",
        {"resolvers": [ns for ns, _ in public], "refusing_lists": [bl.zone for bl in refusing]},
        remedy=_REFUSED_REMEDY,
    )


def retired_finding(blocklist: BlockList) -> Finding:
    """A retired list the user named: never asked."""
    why = f": {blocklist.notes}" if blocklist.notes else ""
    return Finding(
        CHECK,
        "dnsbl.list-retired",
        Severity.WARNING,
        f"{_names(blocklist)} is retired{why}. It was not asked: its answers mean nothing.",
        {"zone": blocklist.zone, "list": blocklist.name, "notes": blocklist.notes},
        remedy=(
            "Remove it from --dnsbl and from any configuration that still names it (mail "
            "servers and spam filters too)."
        ),
    )


def non_public_finding(skipped: SkippedAddress) -> Finding:
    """An address no blocklist holds, so it was not looked up."""
    return Finding(
        CHECK,
        "dnsbl.non-public-address",
        Severity.INFO,
        f"{skipped.ip} is {skipped.reason}: blocklists hold only public addresses, so it was "
        "not looked up.",
        {"ip": skipped.ip, "sources": list(skipped.sources), "reason": skipped.reason},
        remedy=(
            "Check the public address your server sends from instead (--ip): behind NAT it is "
            "the router's public address."
        ),
    )


def listed_finding(result: TargetResult) -> Finding:
    """A listing: an error on a list that affects delivery, a warning on one that rarely does."""
    blocklist, target = result.blocklist, result.target
    meanings = "; ".join(d.meaning for d in result.decoded)
    codes = ", ".join(d.code for d in result.decoded)
    text = f"{target.label} is listed on {_names(blocklist)}: {meanings} ({codes})."
    if result.reason:
        text += f' Its reason: "{result.reason}".'
    what = "mail from listed addresses" if target.is_address else "mail that names the domain"
    if blocklist.affects_delivery:
        code, severity = "dnsbl.listed", Severity.ERROR
        text += f" Many receivers reject or score down {what}."
    else:
        code, severity = "dnsbl.listed-minor", Severity.WARNING
        text += " Few receivers use this list to decide on delivery, so it rarely costs mail."
    advice = next((d.advice for d in result.decoded if d.advice), "")
    return Finding(
        CHECK,
        code,
        severity,
        text,
        {**result.to_json(), "affects_delivery": blocklist.affects_delivery},
        remedy=advice or _delist_remedy(result),
        rfc="RFC 5782 §2.1" if target.is_address else "RFC 5782 §3",
    )


def _delist_remedy(result: TargetResult) -> str:
    where = f" at {result.delist_url}" if result.delist_url else ""
    if result.target.is_address:
        cause = (
            "Find and stop what got the address listed (a compromised account or machine, an "
            "open relay, mail to old or bought addresses)"
        )
    else:
        cause = (
            "Find out why the domain is listed (a compromised web site, spam advertising it, "
            "abused redirects) and fix it"
        )
    tail = "" if result.blocklist.affects_delivery else " Never pay to be delisted."
    return f"{cause}, then ask for removal{where}.{tail}"


def list_findings(verdict: ListVerdict, results: Sequence[TargetResult]) -> list[Finding]:
    """Why a list, or some of its answers, could not be used (nothing when all is well)."""
    blocklist = verdict.blocklist
    unknown = "Its results are unknown, not clean."
    if verdict.health is Health.REFUSED:
        return [
            _refused(
                blocklist,
                f"{_names(blocklist)} refuses queries from your resolver: {verdict.why}. {unknown}",
                _list_evidence(verdict),
            )
        ]
    if verdict.health is Health.BROKEN:
        return [_ignored("dnsbl.list-broken", f"{_names(blocklist)} is broken", verdict)]
    if verdict.health is Health.DEAD:
        return [_ignored("dnsbl.list-dead", f"{_names(blocklist)} looks dead", verdict)]
    if verdict.health is Health.ERROR:
        return [
            _unreachable(
                blocklist,
                f"{_names(blocklist)} could not be checked: {verdict.why}. {unknown}",
                _list_evidence(verdict),
            )
        ]
    findings = []
    for status in (ResultStatus.REFUSED, ResultStatus.ERROR):
        failed = [r for r in results if r.status is status]
        if not failed:
            continue
        targets = ", ".join(r.target.value for r in failed)
        text = (
            f"{_names(blocklist)} could not be checked for {targets}: {failed[0].why}. "
            "Those results are unknown, not clean."
        )
        evidence = _list_evidence(verdict, targets=[r.target.value for r in failed])
        make = _refused if status is ResultStatus.REFUSED else _unreachable
        findings.append(make(blocklist, text, evidence))
    return findings


def _ignored(code: str, what: str, verdict: ListVerdict) -> Finding:
    """A list whose test entries show that its answers mean nothing (RFC 5782 §5)."""
    return Finding(
        CHECK,
        code,
        Severity.WARNING,
        f"{what}: {verdict.why}. Its answers were ignored.",
        _list_evidence(verdict),
        remedy=_IGNORED_REMEDY.format(what="this list"),
        rfc=RFC_TEST,
    )


def _refused(blocklist: BlockList, text: str, evidence: dict[str, Any]) -> Finding:
    remedy = _REFUSED_REMEDY
    if blocklist.query_service:
        remedy += f" Or use {blocklist.query_service}."
    if blocklist.registration:
        remedy += f" Its terms: {blocklist.registration}."
    return Finding(CHECK, "dnsbl.refused", _severity(blocklist), text, evidence, remedy=remedy)


def _unreachable(blocklist: BlockList, text: str, evidence: dict[str, Any]) -> Finding:
    remedy = _UNREACHABLE_REMEDY.replace("<zone>", blocklist.zone)
    return Finding(
        CHECK, "dnsbl.list-unreachable", _severity(blocklist), text, evidence, remedy=remedy
    )


def unchecked_finding(judgement: Judgement) -> Finding:
    """No list could be used: one finding for all of them, grouped by what went wrong."""
    groups: dict[str, list[str]] = {}
    healths: set[Health] = set()
    for verdict in judgement.lists:
        why, health = verdict.why, verdict.health
        if health is Health.OK:  # usable, but every lookup on it was refused or failed
            results = judgement.results_of(verdict.blocklist.zone)
            why = next((r.why for r in results), "")
            refused = any(r.status is ResultStatus.REFUSED for r in results)
            health = Health.REFUSED if refused else Health.ERROR
        healths.add(health)
        groups.setdefault(why, []).append(verdict.blocklist.zone)
    parts = [f"{_zones(zones)}: {why}" for why, zones in groups.items()]
    count = len(judgement.lists)
    lists = "The blocklist could not" if count == 1 else f"None of the {count} blocklists could"
    remedies = []
    if Health.REFUSED in healths:
        remedies.append(_REFUSED_REMEDY)
    if Health.ERROR in healths:
        remedies.append(_UNREACHABLE_REMEDY.replace("<zone>", judgement.lists[0].blocklist.zone))
    if healths & {Health.BROKEN, Health.DEAD}:
        remedies.append(_IGNORED_REMEDY.format(what="a list that is broken or gone"))
    return Finding(
        CHECK,
        "dnsbl.unchecked",
        Severity.ERROR,
        f"{lists} be checked, so whether anything is listed is unknown: " + "; ".join(parts) + ".",
        {
            "lists": [
                {"zone": v.blocklist.zone, "status": v.health.value, "why": v.why}
                for v in judgement.lists
            ]
        },
        remedy=" ".join(remedies),
        indeterminate=True,
    )


def _zones(zones: list[str]) -> str:
    if len(zones) <= 3:
        return ", ".join(zones)
    return f"{len(zones)} lists ({', '.join(zones[:2])}, ...)"


def nothing_to_check_finding(obs: DnsblObservation, lists: Sequence[BlockList]) -> Finding:
    """Nothing was looked up: no target, or no list holds the targets' kind."""
    if not obs.targets:
        mx = ""
        if obs.mx_outcome is not None and obs.mx_outcome.is_failure:
            mx = f" (the MX lookup failed: {obs.mx_outcome.value})"
        text = f"There was nothing to look up: no public MX address{mx} and no --ip."
    elif not lists:
        text = "There was nothing to look up: no blocklist is configured."
    else:
        held = sorted({_holds(bl) for bl in lists})
        shown = ", ".join(t.value for t in obs.targets)
        text = (
            f"Nothing was looked up: the lists asked hold only {' and '.join(held)}, and "
            f"none of the targets ({shown}) is one."
        )
    return Finding(
        CHECK,
        "dnsbl.nothing-to-check",
        Severity.INFO,
        text,
        {"targets": [t.value for t in obs.targets], "lists": [bl.zone for bl in lists]},
    )


def _holds(blocklist: BlockList) -> str:
    if blocklist.kind is ListKind.DOMAIN:
        return "domains"
    return " and ".join(f"IPv{v}" for v in sorted(blocklist.families)) + " addresses"


def config_invalid_finding(reason: str) -> Finding:
    """The DNSBL config file could not be used, so no list was asked."""
    return Finding(
        CHECK,
        "dnsbl.config-invalid",
        Severity.ERROR,
        f"The DNSBL configuration could not be used, so no list was asked: {reason}.",
        {"reason": reason},
        remedy="Fix the file; docs/checks.md describes its format.",
        indeterminate=True,
    )
