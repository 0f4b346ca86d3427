"""What changed between two batch reports: findings that appeared or went away, statuses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailcheck.model import Severity, Status


@dataclass(frozen=True)
class Change:
    """One difference for one domain and check."""

    domain: str
    check: str
    kind: str
    """`appeared`, `gone` (a finding), `status` (the check's status changed),
    `domain-added` or `domain-removed` (in one report only)."""
    code: str | None = None
    severity: str | None = None
    message: str | None = None
    before: str | None = None
    after: str | None = None

    def worse_at(self, fail_on: Severity) -> bool:
        """A regression at or above `fail_on`: a finding that appeared with that severity."""
        return (
            self.kind == "appeared"
            and self.severity is not None
            and Severity(self.severity).rank >= fail_on.rank
        )

    def to_json(self) -> dict[str, Any]:
        """The change as it appears under `changes` in the batch JSON."""
        return {k: v for k, v in vars(self).items() if v is not None}


def compare_batches(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[Change]:
    """Changes per domain and check, in the current report's order (domains in both only)."""
    before = {r["target"]: r for r in previous.get("results", []) if isinstance(r, dict)}
    changes: list[Change] = []
    now = {r["target"] for r in current.get("results", [])}
    changes.extend(Change(d, "-", "domain-removed") for d in before if d not in now)
    for report in current.get("results", []):
        old = before.get(report["target"])
        if old is None:
            changes.append(Change(report["target"], "-", "domain-added"))
            continue
        old_checks = {c["check"]: c for c in old.get("checks", [])}
        for check in report["checks"]:
            was = old_checks.get(check["check"])
            if was is not None:
                changes.extend(_check_changes(report["target"], was, check))
    return changes


def _keys(findings: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(f["code"], f["message"]): f for f in findings}


def _check_changes(domain: str, was: Mapping[str, Any], now: Mapping[str, Any]) -> list[Change]:
    name = now["check"]
    changes = []
    if was["status"] != now["status"]:
        changes.append(Change(domain, name, "status", before=was["status"], after=now["status"]))
    old, new = _keys(was["findings"]), _keys(now["findings"])
    for key in new.keys() - old.keys():
        f = new[key]
        changes.append(Change(domain, name, "appeared", f["code"], f["severity"], f["message"]))
    for key in old.keys() - new.keys():
        f = old[key]
        changes.append(Change(domain, name, "gone", f["code"], f["severity"], f["message"]))
    return sorted(changes, key=_order)


def _order(change: Change) -> tuple[int, int, str]:
    kinds = {"status": 0, "appeared": 1, "gone": 2}
    rank = Severity(change.severity).rank if change.severity else 3
    return (kinds[change.kind], -rank, change.code or "")


def status_got_worse(change: Change) -> bool:
    """A status change to a worse status (shown in red)."""
    if change.kind != "status" or change.before is None or change.after is None:
        return False
    return Status(change.after).rank > Status(change.before).rank
