"""The queue check's `data`: the JSON contract of docs/json.md (`queue_data` in the schema).

Pure functions of a QueueObservation. Every queue and every reason class is always present
(zero when empty), so consumers never meet a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mailcheck.model import CheckResult
from mailcheck.queue.advice import ADVICE, Destination
from mailcheck.queue.analysis import QueueObservation, ReasonGroup
from mailcheck.queue.reasons import TLS_CLASSES, ReasonClass
from mailcheck.queue.shape import By, ShapeTable, bucket_bounds, bucket_labels
from mailcheck.queue.source import SourceInfo

STOPPED_MARK = "Mail system is down"
"""postqueue's warning when it read the spool directly because Postfix is not running."""


def postfix_stopped(obs: QueueObservation) -> bool:
    """True when postqueue said Postfix was not running."""
    return any(STOPPED_MARK in w for w in obs.warnings)


def next_step(group: ReasonGroup) -> str:
    """The next step for one destination."""
    advice = ADVICE[group.reason_class]
    return advice.next_step(Destination(group.domain, group.next_hop, group.parsed))


def shape_json(shape: ShapeTable) -> dict[str, Any]:
    """`data.shape`."""
    options = shape.options
    buckets = [
        {"label": label, "from_seconds": lo, "to_seconds": hi}
        for label, (lo, hi) in zip(bucket_labels(options), bucket_bounds(options), strict=True)
    ]
    return {
        "by": options.by.value,
        "counts": "messages" if options.by is By.SENDER else "recipients",
        "tick_minutes": options.tick_minutes,
        "linear": options.linear,
        "parents": options.parents,
        "buckets": buckets,
        "total": {"total": shape.total.total, "counts": list(shape.total.counts)},
        "rows": [
            {"domain": r.domain, "total": r.total, "counts": list(r.counts), "parent": r.parent}
            for r in shape.rows
        ],
        "omitted_rows": shape.omitted,
    }


def _probe_json(g: ReasonGroup, probes: Mapping[str, CheckResult]) -> dict[str, Any] | None:
    result = probes.get(g.domain) if g.reason_class in TLS_CLASSES else None
    if result is None:
        return None
    return {"status": result.status.value, "codes": [f.code for f in result.findings]}


def reasons_json(
    groups: tuple[ReasonGroup, ...], probes: Mapping[str, CheckResult] | None = None
) -> list[dict[str, Any]]:
    """`data.reasons`."""
    probes = probes or {}
    return [
        {
            "class": g.reason_class.value,
            "domain": g.domain,
            "next_hop": g.next_hop,
            "count": g.recipients,
            "messages": g.messages,
            "suspended": g.suspended,
            "permanent": g.permanent,
            "oldest_seconds": g.oldest_seconds,
            "smtp_code": g.smtp_code,
            "enhanced_code": g.enhanced_code,
            "stage": g.parsed.stage,
            "provider": g.parsed.provider,
            "listed_ip": g.parsed.listed_ip,
            "dnsbl_zone": g.parsed.dnsbl_zone,
            "template": g.parsed.template,
            "example": g.example,
            "next_step": next_step(g),
            "probe": _probe_json(g, probes),
        }
        for g in groups
    ]


def queue_data(
    obs: QueueObservation,
    info: SourceInfo,
    clock: str,
    probes: Mapping[str, CheckResult] | None = None,
) -> dict[str, Any]:
    """The queue check's `data` (docs/json.md, `queue_data` in the schema)."""
    queues = {
        q.value: {
            "messages": s.messages,
            "recipients": s.recipients,
            "size_bytes": s.size_bytes,
            "oldest_seconds": s.oldest_seconds,
            "forced_expire": s.forced_expire,
        }
        for q, s in obs.queues.items()
    }
    ages = [s.oldest_seconds for s in obs.queues.values() if s.oldest_seconds is not None]
    counts = dict.fromkeys((c.value for c in ReasonClass), 0)
    for g in obs.reasons:
        counts[g.reason_class.value] += g.recipients
    stopped = postfix_stopped(obs)
    return {
        "source": {
            "kind": info.kind,
            "listing": info.listing,
            "config_dir": info.config_dir,
            "input": info.input,
            "postfix": dict(info.postfix),
            "running": (not stopped) if info.kind == "postqueue" else (False if stopped else None),
        },
        "now": obs.now,
        "now_iso": datetime.fromtimestamp(obs.now, UTC).isoformat().replace("+00:00", "Z"),
        "clock": clock,
        "selected_queues": [q.value for q in obs.selected],
        "queues": queues,
        "summary": {
            "messages": sum(s.messages for s in obs.queues.values()),
            "recipients": sum(s.recipients for s in obs.queues.values()),
            "size_bytes": sum(s.size_bytes for s in obs.queues.values()),
            "oldest_seconds": max(ages) if ages else None,
            "not_tried": obs.not_tried,
            "expiring": obs.expiring,
            "reason_counts": counts,
        },
        "shape": shape_json(obs.shape),
        "reasons": reasons_json(obs.reasons, probes),
        "skipped_lines": {
            "count": obs.skipped_count,
            "first": [{"line": s.line, "problem": s.problem} for s in obs.skipped],
        },
        "warnings": list(obs.warnings),
    }
