"""The JSON report: a versioned contract that cron users rely on (docs/schema/report.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from mailcheck import __version__
from mailcheck.model import DnsSummary, Report

SCHEMA_VERSION = 1


def report_to_json(report: Report, with_trace: bool = False) -> dict[str, Any]:
    """The report as the JSON document of schema version 1."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "mailcheck", "version": __version__},
        "target": report.target,
        "started_at": report.started_at,
        "duration_ms": report.duration_ms,
        "checks": [c.to_json() for c in report.checks],
        "summary": {
            "status": report.status.value,
            "counts": report.status_counts(),
            "findings": report.finding_counts(),
        },
        "dns": report.dns.to_json(with_trace),
    }


class JsonRenderer:
    """Prints the report as indented JSON."""

    def __init__(self, with_trace: bool = False) -> None:
        self.with_trace = with_trace

    def render(self, report: Report, out: TextIO) -> None:
        """Write the JSON document and a newline."""
        json.dump(report_to_json(report, self.with_trace), out, indent=2, ensure_ascii=False)
        out.write("\n")


def batch_to_json(
    reports: Sequence[Report],
    started_at: str,
    duration_ms: int,
    dns: DnsSummary,
    extra: Mapping[str, Any] | None = None,
    with_trace: bool = False,
) -> dict[str, Any]:
    """The batch document: one report per domain (same shape as `domain --json`) and totals."""
    results = [report_to_json(r, with_trace) for r in reports]
    statuses = [r.status.value for r in reports]
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "mailcheck", "version": __version__},
        "started_at": started_at,
        "duration_ms": duration_ms,
        "results": results,
        "summary": {
            "domains": len(reports),
            "status": {s: statuses.count(s) for s in dict.fromkeys(statuses)},
            "findings": {
                sev: sum(r.finding_counts()[sev] for r in reports)
                for sev in ("error", "warning", "info")
            },
        },
        "dns": dns.to_json(False),
        **dict(extra or {}),
    }
