"""The human view of a batch: one row per domain, then what changed, then totals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailcheck.batch.compare import Change, status_got_worse
from mailcheck.model import Report, Severity, Status
from mailcheck.render.rich import SEVERITY_STYLE, STATUS_STYLE


def render_batch(
    reports: Sequence[Report],
    changes: Sequence[Change] | None,
    notes: Sequence[str],
    out: TextIO,
    names: Mapping[str, str] | None = None,
    width: int | None = None,
) -> None:
    """Write the batch table, the changes (when compared) and a summary line."""
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    checks = list(dict.fromkeys(c.check for r in reports for c in r.checks))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("domain", no_wrap=True)
    table.add_column("status")
    for check in checks:
        table.add_column(check)
    table.add_column("errors / warnings")
    for report in reports:
        by_check = {c.check: c.status for c in report.checks}
        counts = report.finding_counts()
        table.add_row(
            (names or {}).get(report.target, report.target),
            Text(report.status.value, STATUS_STYLE[report.status]),
            *(_status_cell(by_check.get(c)) for c in checks),
            f"{counts['error']} / {counts['warning']}",
        )
    console.print(table)
    for note in notes:
        console.print(Text(note, "dim"))
    if changes is not None:
        console.print()
        console.print(_changes_table(changes) if changes else Text("No changes since last run."))
    statuses = [r.status for r in reports]
    summary = ", ".join(f"{statuses.count(s)} {s.value}" for s in Status if s in statuses)
    console.print()
    console.print(Text.assemble(("Summary: ", "bold"), f"{len(reports)} domains — {summary}"))


def _status_cell(status: Status | None) -> Text:
    if status is None:
        return Text("-")
    return Text(status.value, STATUS_STYLE[status])


def _changes_table(changes: Sequence[Change]) -> Table:
    table = Table(
        title="Changes since the previous run",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for column in ("domain", "check", "change", "finding"):
        table.add_column(column, overflow="fold")
    for change in changes:
        if change.kind == "status":
            style = "red" if status_got_worse(change) else "green"
            what = Text(f"{change.before} → {change.after}", style)
        else:
            severity = Severity(change.severity or "info")
            what = Text(
                f"{change.severity} {change.code}: {change.message}",
                SEVERITY_STYLE[severity] if change.kind == "appeared" else "dim",
            )
        table.add_row(change.domain, change.check, change.kind, what)
    return table
