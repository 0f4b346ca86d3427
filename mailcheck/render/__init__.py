"""Renderers turn a Report into text; they know nothing about individual checks."""

from __future__ import annotations

from typing import Protocol, TextIO

from mailcheck.model import Report


class Renderer(Protocol):
    """Writes one report to a stream."""

    def render(self, report: Report, out: TextIO) -> None:
        """Write `report` to `out`."""
        ...
