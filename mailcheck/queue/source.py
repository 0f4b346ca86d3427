"""Where a queue listing comes from: the seam between mailcheck and Postfix.

A source yields entries in input order and never holds the whole listing. It raises
`QueueInputError` (bad input, exit 2) or `QueueUnavailable` (the queue cannot be read, exit 3)
with a one-line message naming the cause and the fix; otherwise problems are entries
(`SkippedLine`, `SourceWarning`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import IO, Protocol

from mailcheck.queue.analysis import Lifetimes, QueueAnalyzer, QueueObservation
from mailcheck.queue.entries import (
    Entry,
    QueueName,
    SkippedLine,
    SourceWarning,
    parse_json_line,
)
from mailcheck.queue.mailq import looks_like_mailq, parse_mailq
from mailcheck.queue.shape import ShapeOptions

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest line read whole (a message with ~100,000 recipients); longer ones are skipped."""
CAPTURE_HINT = "capture it with `postqueue -j > FILE` (Postfix >= 3.1)"


class QueueInputError(Exception):
    """The input is not a queue listing, or the options are wrong: exit 2."""


class QueueUnavailable(Exception):
    """The queue could not be read (Postfix missing, stopped, not permitted...): exit 3."""


@dataclass(frozen=True)
class SourceInfo:
    """What was read, for the report."""

    kind: str
    """`postqueue` (the live queue) or `snapshot` (a saved listing)."""
    label: str
    """How the report names the target."""
    listing: str = "json"
    """`json` (postqueue -j) or `text` (postqueue -p)."""
    config_dir: str | None = None
    """The instance's configuration directory (-c), if given."""
    input: str | None = None
    """The snapshot file, or `-` for stdin."""
    postfix: dict[str, str] = field(default_factory=dict)
    """mail_version, myhostname, queue_directory when postconf could tell."""
    lifetimes: Lifetimes | None = None
    """Queue lifetimes when postconf could tell."""


class QueueSource(Protocol):
    """A listing of the queue."""

    @property
    def info(self) -> SourceInfo:
        """What is being read (complete once entries() is exhausted)."""
        ...

    def entries(self) -> Iterator[Entry]:
        """The listing's entries, streamed."""
        ...


def numbered_lines(stream: IO[bytes]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) pairs; text is None for a line over MAX_LINE_BYTES (skipped)."""
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk:
            return
        number += 1
        if len(chunk) == MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = stream.readline(MAX_LINE_BYTES)  # drain the rest of the long line
            yield number, None
            continue
        yield number, chunk.decode("utf-8", errors="replace")


def read_listing(
    lines: Iterator[tuple[int, str | None]],
    name: str,
    now: float,
    tz: tzinfo | None,
    on_format: Callable[[str], None] = lambda listing: None,
) -> Iterator[Entry]:
    """Entries of a `postqueue -j` listing, or of a `postqueue -p` one (detected on line 1).

    `on_format` hears `json` or `text` once detected. Raises QueueInputError when the first
    meaningful line is neither, or when the listing is postqueue's error message instead.
    """
    for number, text in lines:
        if text is None:
            raise QueueInputError(
                f"{name} line {number} is over {MAX_LINE_BYTES} bytes: not a postqueue -j "
                f"listing; {CAPTURE_HINT}"
            )
        stripped = text.strip()
        if not stripped:
            continue
        if _postfix_fatal(stripped):
            raise QueueInputError(
                f"{name} holds Postfix's error, not a queue listing ({stripped}): fix that, "
                f"then {CAPTURE_HINT}"
            )
        if stripped.startswith("postqueue: warning:"):
            yield SourceWarning(stripped)
            continue
        if stripped.startswith("{"):
            on_format("json")
            yield parse_json_line(stripped, number)
            yield from _json_lines(lines)
            return
        if looks_like_mailq(stripped) or looks_like_mailq(text):
            on_format("text")
            rest = ((n, t) for n, t in lines if t is not None)
            yield from parse_mailq(_chain((number, text), rest), now, tz)
            return
        raise QueueInputError(
            f"{name} is not postqueue -j output (line {number} starts {stripped[:40]!r}); "
            f"{CAPTURE_HINT}"
        )


def _json_lines(lines: Iterator[tuple[int, str | None]]) -> Iterator[Entry]:
    for number, text in lines:
        if text is None:
            yield SkippedLine(number, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        stripped = text.strip()
        if not stripped:
            continue
        if stripped.startswith("postqueue: warning:"):
            yield SourceWarning(stripped)
        else:
            yield parse_json_line(stripped, number)


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _postfix_fatal(line: str) -> bool:
    head, _, rest = line.partition(": ")
    return head in ("postqueue", "mailq", "sendmail", "postconf") and rest.startswith("fatal:")


class SnapshotSource:
    """A saved `postqueue -j` (or `postqueue -p`) listing in a file, or on stdin (`-`)."""

    def __init__(self, path: str, now: float, tz: tzinfo | None = None) -> None:
        self.path = path
        self.now = now
        self.tz = tz
        name = "stdin" if path == "-" else path
        self._info = SourceInfo("snapshot", f"queue snapshot {name}", input=path)

    @property
    def info(self) -> SourceInfo:
        """What is being read."""
        return self._info

    def entries(self) -> Iterator[Entry]:
        """The snapshot's entries; QueueInputError when it cannot be opened or is not one."""
        name = "stdin" if self.path == "-" else self.path
        if self.path == "-":
            yield from self._read(sys.stdin.buffer, name)
            return
        try:
            stream = open(self.path, "rb")  # noqa: SIM115 - closed below, also on error
        except OSError as exc:
            raise QueueInputError(
                f"cannot read {self.path}: {exc.strerror or exc}; give a saved `postqueue -j` "
                "listing, or - for stdin"
            ) from None
        with stream:
            yield from self._read(stream, name)

    def _read(self, stream: IO[bytes], name: str) -> Iterator[Entry]:
        def detected(listing: str) -> None:
            self._info = replace(self._info, listing=listing)

        yield from read_listing(numbered_lines(stream), name, self.now, self.tz, detected)


def read_queue(
    source: QueueSource,
    now: int,
    options: ShapeOptions,
    selected: tuple[QueueName, ...] = (QueueName.DEFERRED,),
) -> QueueObservation:
    """Stream the source through the analyzer (errors propagate from the source)."""
    entries = source.entries()
    first = next(entries, None)  # the source describes itself (postconf) before its first entry
    analyzer = QueueAnalyzer(now, options, selected, source.info.lifetimes)
    if first is not None:
        analyzer.add(first)
        for entry in entries:
            analyzer.add(entry)
    obs = analyzer.result()
    if obs.skipped_count and not any(s.messages for s in obs.queues.values()):
        # Nothing but skipped lines: an empty table would look like an empty queue.
        first_skip = obs.skipped[0]
        raise QueueInputError(
            f"{source.info.input or 'the listing'} has no queue entry: all {obs.skipped_count} "
            f"line(s) were skipped (line {first_skip.line}: {first_skip.problem}); {CAPTURE_HINT}"
        )
    return obs
