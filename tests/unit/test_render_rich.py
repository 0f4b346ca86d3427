"""The people's renderer never lets a server's or a zone's control characters reach a terminal."""

from __future__ import annotations

import io

from mailcheck.model import CheckResult, DnsSummary, FactTable, FactTree, Finding, Report, Severity
from mailcheck.render.rich import RichRenderer

HOSTILE = "220 mx \x1b[31mred\x1b[0m\x00\x9b2J"


def render(result: CheckResult) -> str:
    report = Report("example.test", "2026-11-21T00:00:00Z", 1, (result,), DnsSummary((), 0, 0))
    out = io.StringIO()
    RichRenderer(width=200).render(report, out)
    return out.getvalue()


def test_control_characters_are_shown_as_text() -> None:
    finding = Finding("tls", "tls.ok", Severity.INFO, f"said '{HOSTILE}'", remedy=HOSTILE)
    result = CheckResult.from_findings(
        "tls",
        [finding],
        facts=FactTable(("banner",), ((HOSTILE,),)),
        tree=FactTree("transcript", (FactTree(HOSTILE),)),
    )
    text = render(result)
    assert "\x1b" not in text and "\x00" not in text and "\x9b" not in text
    assert text.count("\\x1b[31mred\\x1b[0m\\x00\\x9b2J") == 4  # message, remedy, cell, tree


def test_tabs_and_our_own_line_breaks_stay() -> None:
    finding = Finding("tls", "tls.ok", Severity.INFO, "first\tline", remedy="do this")
    text = render(CheckResult.from_findings("tls", [finding]))
    assert "\\x09" not in text and "\\x0a" not in text and "→ do this" in text
