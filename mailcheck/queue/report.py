"""Judging a queue observation: findings, and what people see (data.py builds the JSON).

Pure functions of a QueueObservation (and the SourceInfo): no I/O. The shape becomes the
result's FactTable (qshape's layout), the per-queue totals and reason groups its FactTree, and
each reason class present one finding whose remedy is the next step for its largest group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from mailcheck.model import CheckResult, FactTable, FactTree, Finding, Severity
from mailcheck.queue.advice import ADVICE
from mailcheck.queue.analysis import QueueObservation, ReasonGroup
from mailcheck.queue.data import next_step, postfix_stopped, queue_data
from mailcheck.queue.entries import QUEUE_NAMES, QueueName
from mailcheck.queue.reasons import TLS_CLASSES, ReasonClass
from mailcheck.queue.shape import ShapeTable, qshape_lines
from mailcheck.queue.source import SourceInfo

CHECK = "queue"
GROUPS_SHOWN = 3
"""Destinations shown per class in the tree (JSON has them all)."""
EXAMPLE_CHARS = 160
"""Example texts are cut here in the tree (JSON has them whole)."""


def age_text(seconds: int | None) -> str:
    """A short human age: `45 s`, `12 min`, `5.2 h`, `3.1 d`."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def size_text(size: int) -> str:
    """Bytes as `830 B`, `81.2 kB`, `12.5 MB`."""
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def evaluate_queue(
    obs: QueueObservation,
    info: SourceInfo,
    clock: str,
    probes: Mapping[str, CheckResult] | None = None,
) -> CheckResult:
    """The queue check's result: findings, data, the shape table and the reasons tree.

    `clock` says where `obs.now` came from: `run` (this run's time), `given` (--now) or
    `assumed` (a snapshot read without --now). `probes` are tls check results by domain
    (--probe), shown under that domain's TLS reasons.
    """
    probes = probes or {}
    findings = [*_state_findings(obs, info, clock), *_reason_findings(obs)]
    return CheckResult.from_findings(
        CHECK,
        findings,
        data=queue_data(obs, info, clock, probes),
        facts=shape_facts(obs.shape),
        tree=reasons_tree(obs, probes),
    )


def probe_line(result: CheckResult) -> str:
    """One line for the reasons tree: the tls check's verdict and its worst finding."""
    worst = max(result.findings, key=lambda f: f.severity.rank, default=None)
    said = f": {worst.message} ({worst.code})" if worst else ""
    return f"probe: {result.check} {result.status.value}{said}"


def _state_findings(obs: QueueObservation, info: SourceInfo, clock: str) -> list[Finding]:
    found: list[Finding] = []
    names = ", ".join(q.value for q in obs.selected)
    if postfix_stopped(obs):
        found.append(
            Finding(
                CHECK,
                "queue.postfix-stopped",
                Severity.WARNING,
                "Postfix is not running: the queue was read straight from the spool, and nothing "
                "is being delivered.",
                {"warnings": list(obs.warnings)},
                remedy="Start it (postfix start, or systemctl start postfix) and check its log.",
            )
        )
    if obs.skipped_count:
        first = obs.skipped[0]
        lines = ", ".join(str(s.line) for s in obs.skipped[:5])
        found.append(
            Finding(
                CHECK,
                "queue.corrupt-line",
                Severity.WARNING,
                f"{obs.skipped_count} line(s) of {info.input or 'the listing'} were not queue "
                f"entries and were skipped (line {lines}; line {first.line}: {first.problem}); the "
                "numbers leave them out.",
                {
                    "count": obs.skipped_count,
                    "lines": [{"line": s.line, "problem": s.problem} for s in obs.skipped],
                },
                remedy="Capture the listing again with `postqueue -j > FILE`.",
            )
        )
    if not any(obs.queues[q].messages for q in obs.selected):
        empty_file = info.kind == "snapshot" and not any(s.messages for s in obs.queues.values())
        note = (
            " An empty snapshot is also what a failed `postqueue -j > FILE` leaves: check that "
            "the capture exited 0."
            if empty_file
            else ""
        )
        found.append(
            Finding(
                CHECK,
                "queue.empty",
                Severity.INFO,
                f"No mail in the {names} queue(s).{note}",
                {"queues": [q.value for q in obs.selected]},
            )
        )
    if clock == "assumed":
        found.append(
            Finding(
                CHECK,
                "queue.clock-assumed",
                Severity.INFO,
                "The snapshot was read without --now: ages are measured from this run's clock, not "
                "from when the listing was captured.",
                {"now": obs.now},
                remedy="Give --now with the capture time (ISO 8601 or epoch seconds).",
            )
        )
    hold = obs.queues[QueueName.HOLD].messages
    if hold:
        found.append(
            Finding(
                CHECK,
                "queue.hold",
                Severity.INFO,
                f"{hold} message(s) are on hold: Postfix never delivers them until released.",
                {"messages": hold},
                remedy="Release with `postsuper -H QUEUEID` (or ALL); delete with `postsuper -d`.",
            )
        )
    forced = sum(s.forced_expire for s in obs.queues.values())
    if forced:
        found.append(
            Finding(
                CHECK,
                "queue.forced-expire",
                Severity.INFO,
                f"{forced} message(s) are marked to expire (postsuper -e): they bounce to their "
                "sender at the next delivery attempt (not while on hold).",
                {"messages": forced},
            )
        )
    if obs.expiring:
        found.append(
            Finding(
                CHECK,
                "queue.expiring",
                Severity.WARNING,
                f"{obs.expiring} message(s) reach their queue lifetime within a day and will then "
                "bounce to their senders.",
                {"messages": obs.expiring, "lifetimes": _lifetimes(info)},
                remedy="Fix the causes below first; raising maximal_queue_lifetime only delays it.",
            )
        )
    permanent = sum(g.permanent for g in obs.reasons)
    if permanent:
        found.append(
            Finding(
                CHECK,
                "queue.soft-bounce",
                Severity.WARNING,
                f"{permanent} deferred recipient(s) hold a permanent (5xx) reply: soft_bounce "
                "keeps mail that would have bounced.",
                {"recipients": permanent},
                remedy="Fix the cause, then turn soft_bounce off (it is meant for testing).",
            )
        )
    return found


def _lifetimes(info: SourceInfo) -> dict[str, int] | None:
    if info.lifetimes is None:
        return None
    return {
        "maximal_queue_lifetime": info.lifetimes.maximal_queue_lifetime,
        "bounce_queue_lifetime": info.lifetimes.bounce_queue_lifetime,
    }


def _reason_findings(obs: QueueObservation) -> list[Finding]:
    by_class: dict[ReasonClass, list[ReasonGroup]] = {}
    for group in obs.reasons:
        by_class.setdefault(group.reason_class, []).append(group)
    ranked = sorted(by_class.items(), key=lambda kv: -sum(g.recipients for g in kv[1]))
    found: list[Finding] = []
    for cls, groups in ranked:
        advice = ADVICE[cls]
        recipients = sum(g.recipients for g in groups)
        domains: Counter[str] = Counter()
        for g in groups:
            domains[g.domain] += g.recipients
        shown = ", ".join(f"{d} {n}" for d, n in domains.most_common(3))
        more = f" and {len(domains) - 3} more" if len(domains) > 3 else ""
        oldest = max(g.oldest_seconds for g in groups)
        others = " (other destinations: see the reasons above)" if len(groups) > 1 else ""
        found.append(
            Finding(
                CHECK,
                advice.code,
                advice.severity,
                f"{recipients} recipient(s) deferred, {advice.title}: {shown}{more}; oldest "
                f"{age_text(oldest)}.",
                {
                    "class": cls.value,
                    "recipients": recipients,
                    "domains": dict(domains.most_common(10)),
                    "oldest_seconds": oldest,
                    "example": groups[0].example,
                },
                remedy=next_step(groups[0]) + others,
            )
        )
    return found


def shape_facts(shape: ShapeTable) -> FactTable:
    """qshape's table for people, as qshape lays it out (fixed width, right-justified).

    One column of preformatted lines, not one column per bucket: a dozen generic columns do
    not fit 80 characters.
    """
    lines = qshape_lines(shape)
    if shape.omitted:
        lines.append(f"({shape.omitted} more domains in --json, or raise --top)")
    return FactTable(("",), tuple((line,) for line in lines))


def reasons_tree(obs: QueueObservation, probes: Mapping[str, CheckResult]) -> FactTree:
    """Per-queue totals as the root, then each class, its destinations, example and next step."""
    parts = []
    for q in QUEUE_NAMES:
        s = obs.queues[q]
        if s.messages:
            parts.append(
                f"{q.value}: {s.messages} msg / {s.recipients} rcpt, {size_text(s.size_bytes)}, "
                f"oldest {age_text(s.oldest_seconds)}"
            )
    root = "; ".join(parts) if parts else "all queues empty"
    if obs.not_tried:
        root += f"; {obs.not_tried} recipient(s) not tried yet"
    by_class: dict[ReasonClass, list[ReasonGroup]] = {}
    for group in obs.reasons:
        by_class.setdefault(group.reason_class, []).append(group)
    children = []
    for cls, groups in sorted(by_class.items(), key=lambda kv: -sum(g.recipients for g in kv[1])):
        count = sum(g.recipients for g in groups)
        label = (
            f"{cls.value}: {count} rcpt, {len(groups)} destination(s), oldest "
            f"{age_text(max(g.oldest_seconds for g in groups))}"
        )
        nodes = [_group_node(g, probes) for g in groups[:GROUPS_SHOWN]]
        if len(groups) > GROUPS_SHOWN:
            nodes.append(FactTree(f"({len(groups) - GROUPS_SHOWN} more destinations in --json)"))
        children.append(FactTree(label, tuple(nodes)))
    return FactTree(root, tuple(children))


def _group_node(g: ReasonGroup, probes: Mapping[str, CheckResult]) -> FactTree:
    codes = " ".join(c for c in (g.smtp_code, g.enhanced_code) if c)
    via = f" via {g.next_hop}" if g.next_hop else ""
    label = (
        f"{g.domain}{via}: {g.recipients} rcpt / {g.messages} msg, oldest "
        f"{age_text(g.oldest_seconds)}{', ' + codes if codes else ''}"
    )
    example = g.example if len(g.example) <= EXAMPLE_CHARS else g.example[:EXAMPLE_CHARS] + "…"
    nodes = [FactTree(f"“{example}”"), FactTree(f"→ {next_step(g)}")]
    if g.reason_class in TLS_CLASSES and g.domain in probes:
        nodes.append(FactTree(probe_line(probes[g.domain])))
    return FactTree(label, tuple(nodes))
