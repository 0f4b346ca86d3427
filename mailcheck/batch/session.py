"""One `mailcheck batch` run: read, check, compare, keep, print, and decide the exit code."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailcheck.batch.compare import Change, compare_batches
from mailcheck.batch.inputs import BatchInput
from mailcheck.batch.run import run_batch
from mailcheck.batch.store import LATEST, load_previous, store_report
from mailcheck.dns import DnsConfig
from mailcheck.engine import RunOptions
from mailcheck.model import DnsSummary, Report, Severity
from mailcheck.render.batch import render_batch
from mailcheck.render.json import batch_to_json, report_to_json


@dataclass(frozen=True)
class BatchSettings:
    """What the command line asked for."""

    as_json: bool = False
    """Print one JSON document at the end."""
    jsonl: bool = False
    """Print one report per line as each finishes."""
    out: Path | None = None
    """Keep the document as DIR/mailcheck-<UTC>.json and DIR/latest.json."""
    keep: int | None = None
    """Keep only this many reports in `out`."""
    compare: Path | None = None
    """The previous document (default: `out`/latest.json)."""
    fail_on: Severity = Severity.ERROR
    """Exit 1 at this severity (a regression of it when comparing)."""
    quiet: bool = False
    """Print nothing unless the exit code is 1."""
    at_once: int = 25
    """Domains checked at once."""
    dkim_selectors: tuple[str, ...] = ()
    """DKIM selectors to check for every domain instead of probing the common ones."""


@dataclass(frozen=True)
class BatchOutcome:
    """The finished run."""

    document: dict[str, Any]
    reports: list[Report]
    changes: list[Change] | None
    exit_code: int
    reason: str
    """Why the exit code is not 0, in one line."""


def previous_document(settings: BatchSettings) -> dict[str, Any] | None:
    """The document to compare with; raises ValueError when an explicit one is unreadable."""
    if settings.compare is not None:
        return load_previous(settings.compare)
    if settings.out is not None and (settings.out / LATEST).exists():
        return load_previous(settings.out / LATEST)
    return None


def execute(
    batch: BatchInput,
    config: DnsConfig,
    options: RunOptions,
    settings: BatchSettings,
    previous: dict[str, Any] | None,
    out: TextIO = sys.stdout,
) -> BatchOutcome:
    """Run the batch, write what was asked for, and return the outcome."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    show_progress = out.isatty() and not (settings.as_json or settings.jsonl or settings.quiet)
    progress = Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failing"),
        TimeRemainingColumn(),
        transient=True,
        disable=not show_progress,
    )
    task = progress.add_task("batch", total=len(batch.entries), failed=0)
    failing = 0

    def finished(index: int, report: Report) -> None:
        nonlocal failing
        failing += report.status.value in ("fail", "error")
        progress.update(task, advance=1, failed=failing)
        if settings.jsonl:
            print(json.dumps(report_to_json(report), ensure_ascii=False), file=out, flush=True)

    with progress:
        reports, client = asyncio.run(
            run_batch(
                batch.entries, config, options, settings.at_once, finished, settings.dkim_selectors
            )
        )
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    document = batch_to_json(
        reports,
        started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        round((time.monotonic() - started) * 1000),
        DnsSummary(
            nameservers=client.summary().nameservers,
            queries=sum(r.dns.queries for r in reports),
            cache_hits=sum(r.dns.cache_hits for r in reports),
            replies=sum(r.dns.replies for r in reports),
        ),
        {"input": _input_json(batch)},
    )
    for result, entry in zip(document["results"], batch.entries, strict=True):
        if entry.unicode:
            result["target_unicode"] = entry.unicode
    changes = compare_batches(previous, document) if previous is not None else None
    if changes is not None:
        document["changes"] = [c.to_json() for c in changes]
    if settings.out is not None:
        store_report(settings.out, document, stamp, settings.keep)
    unanswered = document["dns"]["queries"] > 0 and document["dns"]["replies"] == 0
    code, reason = _exit(reports, changes, settings.fail_on, unanswered)
    if not settings.quiet or code == 1:
        _print(document, reports, changes, batch, settings, out)
    return BatchOutcome(document, reports, changes, code, reason)


def _input_json(batch: BatchInput) -> dict[str, Any]:
    return {
        "duplicates": [{"domain": d, "line": n} for d, n in batch.duplicates],
        "invalid": [{"line": n, "reason": r} for n, r in batch.invalid],
    }


def _exit(
    reports: list[Report], changes: list[Change] | None, fail_on: Severity, unanswered: bool
) -> tuple[int, str]:
    if unanswered:
        return 3, "no DNS resolver answered; the results are unknown"
    if changes is not None:
        worse = [c for c in changes if c.worse_at(fail_on)]
        if worse:
            return 1, f"{len(worse)} new finding(s) at or above {fail_on.value} since last run"
        return 0, ""
    bad = [r for r in reports if (w := r.worst_severity()) is not None and w.rank >= fail_on.rank]
    if bad:
        return 1, f"{len(bad)} domain(s) with findings at or above {fail_on.value}"
    return 0, ""


def _print(
    document: dict[str, Any],
    reports: list[Report],
    changes: list[Change] | None,
    batch: BatchInput,
    settings: BatchSettings,
    out: TextIO,
) -> None:
    if settings.as_json:
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    if settings.jsonl:
        return  # the reports went out as they finished
    notes = [f"line {n}: {r}" for n, r in batch.invalid]
    notes += [f"line {n}: {d} is listed again (checked once)" for d, n in batch.duplicates]
    names = {e.domain: f"{e.unicode} ({e.domain})" for e in batch.entries if e.unicode}
    render_batch(reports, changes, notes, out, names)
