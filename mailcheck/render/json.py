"""The JSON report: a versioned contract that cron users rely on (docs/schema/report.json)."""

from __future__ import annotations

import json
from typing import Any, TextIO

from mailcheck import __version__
from mailcheck.model import Report

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
