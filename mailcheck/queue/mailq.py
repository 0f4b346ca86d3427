"""The `postqueue -p` / `mailq` text listing: the fallback for Postfix 2.x (no `postqueue -j`).

Format (postqueue/showq_compat.c): a header line, then per message a line `ID[*!#] SIZE
ARRIVAL SENDER`, reason lines `(text)` that apply to the recipients after them, recipient lines
indented by 41 (47 with long queue IDs) spaces, and a blank line; a `-- N Kbytes in M Requests.`
footer. Parsed with patterns, never by column: the `*!#` status marks overflow the ID column.

What the text cannot say: the year and time zone of the arrival time (asctime in the listing
host's local time; the year is inferred as the latest one that is not in the future and has
the right weekday) and which of deferred, incoming or maildrop an unmarked message is in (a
message with a reason is counted as deferred, one without as incoming).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from mailcheck.queue.entries import (
    Entry,
    QueuedMessage,
    QueueName,
    Recipient,
    SkippedLine,
    SourceWarning,
)

_HEADER = re.compile(r"^-+Queue ID-+ +-+Size-+ +-+Arrival Time-+ +-+Sender/Recipient-+\s*$")
_MESSAGE = re.compile(
    r"^(?P<id>[0-9A-Za-z]{5,})(?P<flags>[*!#]*)\s+(?P<size>\d+)\s+"
    r"(?P<date>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\s*(?P<sender>.*?)\s*$"
)
_FOOTER = re.compile(r"^-- \d+ Kbytes in \d+ Requests?\.\s*$")
_EMPTY = "Mail queue is empty"
_UNAVAILABLE = "reason unavailable"
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_DAYS = {d: i for i, d in enumerate("Mon Tue Wed Thu Fri Sat Sun".split())}
YEARS_BACK = 8
"""How far back the year inference looks for a date with the printed weekday."""


def looks_like_mailq(line: str) -> bool:
    """True for the first line of a `postqueue -p` listing."""
    return bool(_HEADER.match(line)) or line.strip() == _EMPTY


def arrival_epoch(text: str, now: float, tz: tzinfo | None) -> int | None:
    """Epoch seconds of an asctime without year (`Sat Nov 21 18:56:44`), or None if invalid.

    The year is the latest one, from now's backwards, for which the date is not more than a
    day in the future (clocks and zones differ) and falls on the printed weekday.
    """
    weekday, month, day, clock = text.split()
    hours, minutes, seconds = (int(x) for x in clock.split(":"))
    current = datetime.fromtimestamp(now, tz).year
    fallback: int | None = None
    for year in range(current, current - YEARS_BACK, -1):
        try:
            when = datetime(year, _MONTHS[month], int(day), hours, minutes, seconds, tzinfo=tz)
        except (KeyError, ValueError):
            continue  # 29 Feb in a common year, or a bad month name
        epoch = int(when.timestamp())
        if epoch > now + 86400:
            continue
        if fallback is None:
            fallback = epoch
        if when.weekday() == _DAYS.get(weekday):
            return epoch
    return fallback


@dataclass
class _Pending:
    line: int
    queue_id: str
    flags: str
    size: int
    arrival: int
    sender: str
    recipients: list[Recipient] = field(default_factory=list)
    reason: str | None = None

    def message(self) -> QueuedMessage:
        if "!" in self.flags:
            name = QueueName.HOLD
        elif "*" in self.flags:
            name = QueueName.ACTIVE
        elif any(r.delay_reason is not None for r in self.recipients):
            name = QueueName.DEFERRED
        else:
            name = QueueName.INCOMING
        return QueuedMessage(
            name,
            self.queue_id,
            self.arrival,
            self.size,
            "#" in self.flags,
            self.sender,
            tuple(self.recipients),
        )


def parse_mailq(
    lines: Iterable[tuple[int, str]], now: float, tz: tzinfo | None = None
) -> Iterator[Entry]:
    """Entries of a `postqueue -p` listing; `lines` are (line number, text) pairs."""
    pending: _Pending | None = None
    for number, raw in lines:
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if pending is not None and not stripped:
            yield pending.message()
            pending = None
            continue
        if not stripped or _HEADER.match(line) or _FOOTER.match(line) or stripped == _EMPTY:
            continue
        if stripped.startswith(("postqueue: warning:", "mailq: warning:")):
            yield SourceWarning(stripped)
            continue
        if match := _MESSAGE.match(line):
            if pending is not None:
                yield pending.message()
            arrival = arrival_epoch(match["date"], now, tz)
            if arrival is None:
                pending = None
                yield SkippedLine(number, f"arrival time {match['date']!r} is not a date")
                continue
            pending = _Pending(
                number, match["id"], match["flags"], int(match["size"]), arrival, match["sender"]
            )
        elif pending is not None and stripped.startswith("(") and stripped.endswith(")"):
            reason = stripped[1:-1]
            pending.reason = None if reason == _UNAVAILABLE else reason
        elif pending is not None and line.startswith(" "):
            pending.recipients.append(Recipient(stripped, pending.reason))
        else:
            yield SkippedLine(number, "not part of a postqueue -p listing")
    if pending is not None:
        yield pending.message()
