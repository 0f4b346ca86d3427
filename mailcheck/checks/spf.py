"""The `spf` check: the domain's SPF tree audited statically, and check_host() evaluated.

gather: the tree of records (spf_audit), the DMARC policy (for advice on ~all), and
check_host() for every MX address and every --ip, all concurrently over the run's DnsClient.
evaluate_spf is a pure judgement of what came back (spf_findings for the records).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mailcheck.checks.base import CheckContext
from mailcheck.checks.dmarc import DmarcLookup, discover, walk_domains
from mailcheck.checks.dmarc_record import parse_dmarc_record
from mailcheck.checks.mx import observe_mx
from mailcheck.checks.spf_audit import SpfNode, SpfObservation, gather_spf
from mailcheck.checks.spf_eval import SpfEvaluation, SpfResult, check_host, check_identity
from mailcheck.checks.spf_findings import CHECK, finding, is_selected_join, judge_tree
from mailcheck.checks.spf_limits import judge_totals
from mailcheck.checks.spf_macro import malformed_domain
from mailcheck.checks.spf_parse import printable
from mailcheck.dns import DnsClient, Outcome
from mailcheck.model import CheckResult, FactTable, FactTree, Finding, Severity, Status
from mailcheck.targets import is_ip

_UNAUTHORIZED = (SpfResult.FAIL, SpfResult.SOFTFAIL, SpfResult.NEUTRAL)


@dataclass(frozen=True)
class MxEvaluation:
    """check_host() for one address of one MX host (RFC 7208 cross-check)."""

    host: str
    """The MX host."""
    evaluation: SpfEvaluation
    """The result for its address."""


async def dmarc_policy(dns: DnsClient, domain: str) -> str | None:
    """The DMARC policy that applies to `domain` (the dmarc check's rule: p, sp or np)."""
    if malformed_domain(domain) is not None:
        return None
    names = walk_domains(domain)
    # The domain's own TXT is the SPF lookup's too (one query): it says whether it exists.
    apex, *answers = await asyncio.gather(
        dns.query(domain, "TXT"), *(dns.query(f"_dmarc.{n}", "TXT") for n in names)
    )
    found = discover(tuple(DmarcLookup(n, a) for n, a in zip(names, answers, strict=True)))
    if found.record is None or found.location is None:
        return None
    exists = apex.outcome is not Outcome.NXDOMAIN
    return parse_dmarc_record(found.record).applied_to(domain, found.location, exists)[0]


def evaluate_spf(
    obs: SpfObservation,
    evaluations: tuple[SpfEvaluation, ...] = (),
    mx_evaluations: tuple[MxEvaluation, ...] = (),
    dmarc: str | None = None,
) -> CheckResult:
    """Judge the tree, the domain's policy, and the evaluations (pure)."""
    root = obs.root
    findings = _judge_root(obs) + judge_tree(obs) + judge_totals(obs)
    if root.record is not None:
        findings.extend(_judge_top(obs, dmarc))
        findings.extend(_judge_cross_checks(mx_evaluations))
    findings.extend(_judge_ips(evaluations))
    data: dict[str, Any] = {
        "domain": obs.domain,
        "record": printable(root.record.text) if root.record else None,
        "dns_lookups": root.total_lookups,
        "void_lookups": root.total_voids,
        "void_lookups_worst_case": obs.worst_case_voids,
        "ip_dependent_terms": [t.text for _, t in obs.dynamic_terms],
        "counts_complete": not obs.unresolved
        and not any(n.error == "truncated" for n in root.walk()),
        "tree": node_json(root),
        "mx_evaluations": [{"host": m.host, **m.evaluation.to_json()} for m in mx_evaluations],
    }
    if len(root.records) > 1:
        data["records"] = [printable(r) for r in root.records]
    if evaluations:
        data["evaluation"] = evaluations[0].to_json()
        data["evaluations"] = [e.to_json() for e in evaluations]
    rows = [(e.ip, e.result.value, e.reason) for e in evaluations] + [
        (f"{m.evaluation.ip} (MX {m.host})", m.evaluation.result.value, m.evaluation.reason)
        for m in mx_evaluations
    ]
    facts = FactTable(("address", "SPF result", "why"), tuple(rows)) if rows else None
    tree = fact_tree(root) if root.txt is not None else None
    return CheckResult.from_findings(CHECK, findings, data, facts, tree)


def _judge_root(obs: SpfObservation) -> list[Finding]:
    root = obs.root
    findings: list[Finding] = []
    for text in root.lookalikes:
        answers = root.txt.txt_strings() if root.txt else ()
        strings = next((s for s in answers if b"".join(s).decode("latin-1") == text), ())
        joined = " (its strings are joined without a space)" if is_selected_join(strings) else ""
        findings.append(
            finding(
                "spf.lookalike",
                Severity.WARNING,
                f"{obs.domain} has a TXT record that looks like SPF but is not one{joined}: "
                f"'{printable(text)}'. Receivers ignore it; a record must start with exactly "
                "'v=spf1' followed by a space.",
                {"domain": obs.domain, "record": printable(text)},
                remedy="Correct the start of the record to 'v=spf1 '.",
                rfc="RFC 7208 §4.5",
            )
        )
    if root.error in ("none", "invalid-name"):
        outcome = root.txt.outcome if root.txt else None
        what = (
            f"is not a domain name SPF applies to ({malformed_domain(obs.domain)}, RFC 7208 §4.3)"
            if outcome is None
            else "does not exist (NXDOMAIN)"
            if outcome is Outcome.NXDOMAIN
            else "has no SPF record"
        )
        findings.append(
            finding(
                "spf.none",
                Severity.WARNING,
                f"{obs.domain} {what}: receivers get the result none, and many (Gmail, Yahoo, "
                "Microsoft) reject or junk mail from domains without SPF or DKIM.",
                {"domain": obs.domain, "outcome": outcome.value if outcome else None},
                remedy=f'Publish a TXT record at {obs.domain}: "v=spf1 mx -all" (add include: '
                'for each service that sends as you), or "v=spf1 -all" if it sends no mail.',
                rfc="RFC 7208 §2.6.1, §4.5",
            )
        )
    return findings


def _judge_top(obs: SpfObservation, dmarc: str | None) -> list[Finding]:
    """The policy for everyone else: the `all` of the root or of its redirect chain."""
    top = [n for n in obs.root.walk() if n.top and n.record is not None]
    if not top or any(n.error for n in obs.root.walk() if n.top):
        return []
    last = top[-1]
    assert last.record is not None
    mech = last.record.all
    where = obs.domain if last is obs.root else f"{last.domain} (by redirect from {obs.domain})"
    if mech is None:
        return [
            finding(
                "spf.no-all",
                Severity.WARNING,
                f"The SPF record of {where} ends without all or redirect=: mail from any other "
                "host gets neutral, as if it had ?all, and is not discouraged.",
                {"domain": last.domain},
                remedy="End the record with ~all (with an enforcing DMARC policy) or -all.",
                rfc="RFC 7208 §4.7",
            )
        ]
    if mech.qualifier == "?":
        return [
            finding(
                "spf.neutral-all",
                Severity.ERROR,
                f"{mech.text} at {where}: mail from any host at all gets neutral, so SPF does "
                "not protect the domain.",
                {"domain": last.domain, "term": mech.text},
                remedy="End the record with ~all (with an enforcing DMARC policy) or -all.",
                rfc="RFC 7208 §5.1, §8.2",
            )
        ]
    if mech.qualifier == "~":
        enforcing = dmarc in ("quarantine", "reject")
        advice = (
            f"With DMARC p={dmarc}, ~all lets DMARC decide: mail that fails SPF but passes "
            "DKIM (forwarded mail) is still delivered; nothing to change."
            if enforcing
            else "Without an enforcing DMARC policy, receivers decide alone what a softfail "
            "means (often: deliver to spam). Publish DMARC p=quarantine or p=reject, or use "
            "-all once every sender is listed."
        )
        return [
            finding(
                "spf.softfail-advice",
                Severity.INFO,
                f"{where} ends its SPF record with ~all (softfail). {advice}",
                {"domain": last.domain, "term": mech.text, "dmarc_policy": dmarc},
                rfc="RFC 7208 §8.5, RFC 9989",
            )
        ]
    return []


def _judge_cross_checks(mx_evaluations: tuple[MxEvaluation, ...]) -> list[Finding]:
    refused = [m for m in mx_evaluations if m.evaluation.result in _UNAUTHORIZED]
    if not refused:
        return []
    listed = "; ".join(f"{m.host} {m.evaluation.ip}: {m.evaluation.result}" for m in refused)
    return [
        finding(
            "spf.unauthorized-mx",
            Severity.WARNING,
            f"The domain's own SPF record does not authorize these MX addresses: {listed}. "
            "This matters if those hosts also send mail (bounces, forwards, replies).",
            {
                "addresses": [
                    {"host": m.host, "ip": m.evaluation.ip, "result": m.evaluation.result.value}
                    for m in refused
                ]
            },
            remedy="If the MX hosts send mail, add mx (or their ip4:/ip6:) to the record.",
            rfc="RFC 7208 §5.4",
        )
    ]


def _judge_ips(evaluations: tuple[SpfEvaluation, ...]) -> list[Finding]:
    findings = []
    for e in evaluations:
        evidence = {"ip": e.ip, "domain": e.domain, "result": e.result.value, "reason": e.reason}
        if e.result in _UNAUTHORIZED:
            findings.append(
                finding(
                    "spf.unauthorized-ip",
                    Severity.WARNING,
                    f"{e.ip} is not authorized by the SPF record of {e.domain} ({e.result}: "
                    f"{e.reason}): mail it sends as {e.sender} fails SPF.",
                    evidence,
                    remedy=f"Add ip4:/ip6: for {e.ip} (or the include: of its provider).",
                    rfc="RFC 7208 §4",
                )
            )
        elif e.result is SpfResult.PERMERROR:
            findings.append(
                finding(
                    "spf.ip-permerror",
                    Severity.ERROR,
                    f"For mail from {e.ip}, receivers get permerror from the SPF record of "
                    f"{e.domain}: {e.reason}.",
                    evidence,
                    remedy="Correct the record (see the other findings).",
                    rfc="RFC 7208 §2.6.7",
                )
            )
        elif e.result is SpfResult.TEMPERROR:
            findings.append(
                Finding(
                    CHECK,
                    "spf.ip-temperror",
                    Severity.ERROR,
                    f"check_host() for {e.ip} ended in temperror ({e.reason}): whether it is "
                    "authorized could not be determined.",
                    evidence,
                    "Run again; check the name servers of the domains in the record.",
                    "RFC 7208 §2.6.6",
                    indeterminate=True,
                )
            )
    return findings


def node_json(node: SpfNode) -> dict[str, Any]:
    """A tree node as in the JSON `tree`."""
    lookups = iter(node.lookups)
    terms: list[dict[str, Any]] = []
    record = node.record
    if record is not None:
        reached = len(record.reached)
        for index, mech in enumerate(record.mechanisms):
            entry: dict[str, Any] = {"term": printable(mech.text), "lookups": 0}
            if index >= reached:
                entry["reached"] = False
            elif mech.causes_lookup and (term := next(lookups, None)) is not None:
                entry.update(
                    lookups=1,
                    void=None if term.dynamic else term.void,
                    ip_dependent=term.dynamic,
                    target=term.target,
                    outcomes=[a.outcome.value for a in term.answers],
                )
            terms.append(entry)
        for term in lookups:  # the applied redirect
            void = None if term.dynamic else term.void
            terms.append({"term": printable(term.text), "lookups": 1, "void": void,
                          "ip_dependent": term.dynamic, "target": term.target})  # fmt: skip
    return {
        "domain": node.domain,
        "via": printable(node.via) if node.via else None,
        "record": printable(node.record.text) if node.record else None,
        "lookups": node.own_lookups,
        "lookups_total": node.total_lookups,
        "void_lookups": node.own_voids,
        "void_lookups_total": node.total_voids,
        "terms": terms,
        "children": [node_json(c) for c in node.children],
        "error": node.error,
    }


_ERROR_TEXT = {
    "loop": "loop: already being evaluated",
    "lookup-failed": "lookup failed",
    "none": "no SPF record",
    "multiple": "several SPF records",
    "invalid-name": "not a valid domain name",
    "dynamic": "depends on the connecting host",
    "truncated": "not fetched (tree too large)",
}


def fact_tree(node: SpfNode) -> FactTree:
    """The tree for people: each record with its own and cumulative lookups and voids."""
    via = f"{printable(node.via)} → " if node.via else ""
    if node.error is not None:
        return FactTree(f"{via}{node.domain}: {_ERROR_TEXT.get(node.error, node.error)}")
    assert node.record is not None
    label = (
        f"{via}{node.domain}: {printable(node.record.text)}  [lookups {node.own_lookups}, "
        f"total {node.total_lookups}; void {node.own_voids}]"
    )
    notes = [
        FactTree(f"{t.text}: void ({t.answers[0].outcome.value})") for t in node.lookups if t.void
    ] + [FactTree(f"{t.text}: depends on the connecting host") for t in node.lookups if t.dynamic
         and t.kind not in ("include", "redirect")]  # fmt: skip
    return FactTree(label, tuple(notes) + tuple(fact_tree(c) for c in node.children))


class SpfCheck:
    """The `spf` check."""

    name = CHECK
    description = "SPF record, lookup tree and check_host() evaluation"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather the tree, the DMARC policy and the evaluations concurrently, then judge."""
        domain = ctx.domain
        if domain is None:
            return CheckResult(CHECK, Status.SKIPPED)
        ips = tuple(ip for ip in ctx.ips if is_ip(ip))
        obs, dmarc, evaluations, mx_evaluations = await asyncio.gather(
            gather_spf(ctx.dns, domain),
            dmarc_policy(ctx.dns, domain),
            asyncio.gather(
                *(check_identity(ctx.dns, ip, ctx.sender, ctx.helo, domain) for ip in ips)
            ),
            _evaluate_mx(ctx, domain),
        )
        return evaluate_spf(obs, tuple(evaluations), mx_evaluations, dmarc)


async def _evaluate_mx(ctx: CheckContext, domain: str) -> tuple[MxEvaluation, ...]:
    if malformed_domain(domain) is not None:
        return ()
    mx = await observe_mx(ctx)
    if mx is None:
        return ()
    pairs = mx.addresses
    results = await asyncio.gather(
        *(check_host(ctx.dns, ip, domain, f"postmaster@{domain}", host) for host, ip in pairs)
    )
    return tuple(MxEvaluation(h, e) for (h, _), e in zip(pairs, results, strict=True))
