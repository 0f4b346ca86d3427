"""Keeping batch reports: atomic writes (temporary file, fsync, rename), latest.json, pruning."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "mailcheck-"
LATEST = "latest.json"


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON so that readers see the old file or the whole new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


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
