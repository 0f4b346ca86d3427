"""Keeping batch reports: atomic writes (temporary file, fsync, rename), latest.json, pruning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mailcheck.atomic import write_text_atomic

PREFIX = "mailcheck-"
LATEST = "latest.json"


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON so that readers see the old file or the whole new one, never a torn one."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(path, text)


def store_report(directory: Path, document: dict[str, Any], stamp: str, keep: int | None) -> Path:
    """Write `mailcheck-<stamp>.json` and `latest.json`; prune to the `keep` newest reports."""
    path = directory / f"{PREFIX}{stamp}.json"
    write_atomic(path, document)
    write_atomic(directory / LATEST, document)
    if keep is not None:
        reports = sorted(directory.glob(f"{PREFIX}*.json"))
        for old in reports[: max(0, len(reports) - keep)]:
            old.unlink(missing_ok=True)
    return path


def load_previous(path: Path) -> dict[str, Any]:
    """A previous batch document; raises ValueError with a one-line reason."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a mailcheck batch report ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise ValueError(f"{path}: not a mailcheck batch report (no results list)")
    return document
