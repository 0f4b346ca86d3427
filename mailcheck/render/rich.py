"""The human report: a section per check with its facts and findings, then a summary line.

Colour only on a terminal and without NO_COLOR (rich decides); the layout is the same either
way, so piped output stays readable and golden-testable.
"""

from __future__ import annotations

from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mailcheck.checks import CHECKS, CheckName
from mailcheck.model import CheckResult, FactTree, Report, Severity, Status
from mailcheck.text import escape_controls

STATUS_STYLE = {
    Status.PASS: "bold green",
    Status.WARNING: "bold yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIPPED: "dim",
}

SEVERITY_STYLE = {
    Severity.INFO: "cyan",
    Severity.WARNING: "yellow",
    Severity.ERROR: "red",
}


class RichRenderer:
    """Tables for people."""

    def __init__(self, width: int | None = None, show_trace: bool = False) -> None:
        self.width = width
        self.show_trace = show_trace

    def render(self, report: Report, out: TextIO) -> None:
        """Write the report."""
        console = Console(file=out, width=self.width, highlight=False, soft_wrap=False)
        dns = report.dns
        console.print(
            Text.assemble(
                (report.target, "bold cyan"),
                f"  {report.duration_ms} ms, {dns.queries} DNS queries ({dns.cache_hits} cached)"
                f" via {', '.join(dns.nameservers) or '-'}",
            )
        )
        for result in report.checks:
            console.print()
            self._render_check(console, result)
        if self.show_trace and dns.trace:
            console.print()
            console.print(self._trace_table(report))
        console.print()
        console.print(self._summary(report))

    def _render_check(self, console: Console, result: CheckResult) -> None:
        status = result.status
        description = _description(result.check)
        console.print(
            Text.assemble(
                (f"{result.check.upper():<8}", "bold"),
                (f"{status.value.upper():<8}", STATUS_STYLE[status]),
                (description, "dim"),
            )
        )
        if result.facts is not None and result.facts.rows:
            facts = Table(
                box=box.SIMPLE_HEAD,
                show_edge=False,
                pad_edge=False,
                padding=(0, 2),
                show_header=any(result.facts.columns),
            )
            for column in result.facts.columns:
                facts.add_column(column, overflow="fold")
            for row in result.facts.rows:
                facts.add_row(*(_text(cell) for cell in row))  # data, never rich markup
            console.print(facts)
        if result.tree is not None:
            console.print(_rich_tree(result.tree))
        if result.findings:
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 2))
            table.add_column("severity", no_wrap=True)
            table.add_column("finding", overflow="fold", ratio=1)
            for finding in result.findings:
                body = _text(finding.message)
                body.append(f"\n{finding.code}", style="dim")
                if finding.rfc:
                    body.append(f" · {finding.rfc}", style="dim")
                if finding.remedy:
                    body.append("\n→ ", style="bold")
                    body.append(_text(finding.remedy))
                table.add_row(
                    Text(finding.severity.value, style=SEVERITY_STYLE[finding.severity]), body
                )
            console.print(table)

    def _trace_table(self, report: Report) -> Table:
        table = Table(title="DNS queries", box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("name", overflow="fold")
        for column in ("type", "outcome", "ms", "server", "tcp", "ad"):
            table.add_column(column, no_wrap=True)
        for entry in report.dns.trace:
            table.add_row(
                _text(str(entry["name"])),
                str(entry["type"]),
                str(entry["outcome"]),
                f"{entry['ms']:.0f}",
                str(entry["server"]),
                "yes" if entry["tcp"] else "",
                "yes" if entry["ad"] else "",
            )
        return table

    def _summary(self, report: Report) -> Text:
        status = report.status
        counts = report.status_counts()
        findings = report.finding_counts()
        checks = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        found = ", ".join(f"{findings[s.value]} {s.value}" for s in reversed(Severity))
        return Text.assemble(
            ("Summary: ", "bold"),
            (status.value.upper(), STATUS_STYLE[status]),
            f" — checks: {checks}; findings: {found}",
        )


def _rich_tree(node: FactTree, parent: Tree | None = None) -> Tree:
    """A FactTree as a rich Tree (labels as plain text: no markup is interpreted)."""
    label = _text(node.label)
    branch = Tree(label) if parent is None else parent.add(label)
    for child in node.children:
        _rich_tree(child, branch)
    return branch


def _text(text: str) -> Text:
    """Text for the terminal: no markup interpreted, control characters written as \\xNN."""
    return Text(escape_controls(text, keep="\t\n"))  # newlines are ours: kept


def _description(check: str) -> str:
    try:
        return CHECKS[CheckName(check)].description
    except ValueError:
        return ""
