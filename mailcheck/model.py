"""Findings, check results and reports: the data every check produces and every renderer reads."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    """How much a finding matters; ordered from least to most."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Position in the order info < warning < error."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Status(enum.StrEnum):
    """The verdict of one check. `error` means "could not determine", never "bad"."""

    PASS = "pass"
    WARNING = "warning"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def rank(self) -> int:
        """Position in the order skipped < pass < warning < error < fail."""
        return _STATUS_RANK[self]


_STATUS_RANK = {
    Status.SKIPPED: 0,
    Status.PASS: 1,
    Status.WARNING: 2,
    Status.ERROR: 3,
    Status.FAIL: 4,
}


@dataclass(frozen=True)
class Finding:
    """One fact a check established, with its weight and what to do about it."""

    check: str
    """The check that produced it, e.g. `mx`."""
    code: str
    """Stable dotted name, e.g. `mx.cname`; documented in docs/findings.md, never renamed."""
    severity: Severity
    """info, warning or error."""
    message: str
    """One or two sentences for a person, naming the thing concerned."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """The technical facts behind the verdict (names, addresses, DNS outcomes), JSON-ready."""
    remedy: str = ""
    """What to change so the finding goes away; empty for purely informative findings."""
    rfc: str = ""
    """Where the rule comes from, e.g. `RFC 7505 §3`."""
    indeterminate: bool = False
    """True when the finding says "could not determine" (a DNS timeout, SERVFAIL...)."""

    def to_json(self) -> dict[str, Any]:
        """The finding as it appears in the JSON report."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "remedy": self.remedy,
            "rfc": self.rfc,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class FactTable:
    """A small table of facts a check wants shown to people (renderers draw it generically)."""

    columns: tuple[str, ...]
    """Column headings."""
    rows: tuple[tuple[str, ...], ...]
    """One tuple of cell texts per row."""


@dataclass(frozen=True)
class FactTree:
    """A tree of facts a check wants shown to people (e.g. an SPF include tree)."""

    label: str
    """This node's text."""
    children: tuple[FactTree, ...] = ()
    """The nodes below it, in order."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check for one target."""

    check: str
    """The check's name, e.g. `fcrdns`."""
    status: Status
    """The verdict."""
    findings: tuple[Finding, ...] = ()
    """Everything the check found, in the order it found it."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Check-specific observations for machines (documented per check in docs/)."""
    facts: FactTable | None = None
    """What a person should see besides the findings (e.g. MX hosts and their addresses)."""
    tree: FactTree | None = None
    """A tree a person should see besides the findings (drawn under the facts)."""

    @classmethod
    def from_findings(
        cls,
        check: str,
        findings: Iterable[Finding],
        data: Mapping[str, Any] | None = None,
        facts: FactTable | None = None,
        tree: FactTree | None = None,
    ) -> CheckResult:
        """Derive the status from the findings: errors fail, unknowns are `error`, and so on."""
        found = tuple(findings)
        return cls(check, status_of(found), found, dict(data or {}), facts, tree)

    def to_json(self) -> dict[str, Any]:
        """The check as it appears in the JSON report."""
        return {
            "check": self.check,
            "status": self.status.value,
            "findings": [f.to_json() for f in self.findings],
            "data": dict(self.data),
        }


def status_of(findings: Sequence[Finding]) -> Status:
    """The status a set of findings implies.

    A determined error wins over "could not determine": if the check proved something broken,
    a timeout elsewhere does not make that less true.
    """
    if any(f.severity is Severity.ERROR and not f.indeterminate for f in findings):
        return Status.FAIL
    if any(f.indeterminate for f in findings):
        return Status.ERROR
    if any(f.severity is Severity.WARNING for f in findings):
        return Status.WARNING
    return Status.PASS


@dataclass(frozen=True)
class DnsSummary:
    """What the DNS layer did during a run."""

    nameservers: tuple[str, ...]
    """The resolvers asked, as `addr:port`."""
    queries: int
    """Lookups that went on the wire (a retry of the same lookup is not counted again)."""
    cache_hits: int
    """Lookups answered from the run's cache, including ones joined while in flight."""
    replies: int = 0
    """Replies received from resolvers (0 with queries > 0 means no resolver answered)."""
    trace: tuple[Mapping[str, Any], ...] = ()
    """One entry per wire lookup, in the order they were sent (only kept with --trace)."""

    @property
    def unanswered(self) -> bool:
        """True when queries were sent and no resolver replied to any of them."""
        return self.queries > 0 and self.replies == 0

    def to_json(self, with_trace: bool) -> dict[str, Any]:
        """The `dns` member of the JSON report."""
        out: dict[str, Any] = {
            "nameservers": list(self.nameservers),
            "queries": self.queries,
            "cache_hits": self.cache_hits,
            "replies": self.replies,
        }
        if with_trace:
            out["trace"] = [dict(t) for t in self.trace]
        return out


@dataclass(frozen=True)
class Report:
    """Everything one run found about one target."""

    target: str
    """The domain, host or address that was checked, as given after normalisation."""
    started_at: str
    """UTC start time, ISO 8601 with a `Z`."""
    duration_ms: int
    """Wall time of the run."""
    checks: tuple[CheckResult, ...]
    """One result per selected check, in the fixed order of mailcheck.checks.CHECK_ORDER."""
    dns: DnsSummary
    """What the DNS layer did."""

    @property
    def status(self) -> Status:
        """The worst status of all checks."""
        return max((c.status for c in self.checks), key=lambda s: s.rank, default=Status.PASS)

    def worst_severity(self) -> Severity | None:
        """The highest severity among all findings, or None when there are none."""
        found = [f.severity for c in self.checks for f in c.findings]
        return max(found, key=lambda s: s.rank) if found else None

    def status_counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        return {s.value: sum(1 for c in self.checks if c.status is s) for s in Status}

    def finding_counts(self) -> dict[str, int]:
        """How many findings of each severity."""
        return {
            s.value: sum(1 for c in self.checks for f in c.findings if f.severity is s)
            for s in Severity
        }
