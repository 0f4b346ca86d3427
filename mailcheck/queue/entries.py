"""What a queue listing is made of: messages, skipped lines and postqueue's warnings.

`postqueue -j` (Postfix >= 3.1) prints one JSON object per queue file, each on its own line
(postqueue(1), "JSON OUTPUT FORMAT"). Members not listed there are ignored, as the manual asks;
the list is expected to grow.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any


class QueueName(enum.StrEnum):
    """A Postfix queue, in the order showq scans them."""

    MAILDROP = "maildrop"
    ACTIVE = "active"
    INCOMING = "incoming"
    DEFERRED = "deferred"
    HOLD = "hold"


QUEUE_NAMES: tuple[QueueName, ...] = tuple(QueueName)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient still to be delivered."""

    address: str
    """The address as postqueue prints it (quoted local part, case kept)."""
    delay_reason: str | None
    """Why the last attempt failed; None when it was never tried (maildrop, incoming...)."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One queue file."""

    queue_name: QueueName
    """The queue the file is in."""
    queue_id: str
    """The queue file name (short hex or long form)."""
    arrival_time: int
    """Epoch seconds of arrival; kept across retries and across pickup."""
    message_size: int
    """Bytes of header and body (for maildrop files, the file size)."""
    forced_expire: bool
    """`postsuper -e` was applied: it bounces at its next delivery attempt."""
    sender: str
    """Envelope sender; the null sender is `MAILER-DAEMON`."""
    recipients: tuple[Recipient, ...]
    """Recipients still to be delivered (may be empty)."""


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A line of the listing that was not a queue entry; it was skipped and counted."""

    line: int
    """1-based line number in the input."""
    problem: str
    """Why it was skipped, for people."""


@dataclass(frozen=True, slots=True)
class SourceWarning:
    """A warning postqueue printed (e.g. "Mail system is down -- accessing queue directly")."""

    text: str
    """The warning line, as printed."""


Entry = QueuedMessage | SkippedLine | SourceWarning
"""What a queue source yields, in input order."""

NULL_SENDER = "MAILER-DAEMON"
"""How postqueue -j shows the null sender `<>` (`empty_address_recipient`)."""

_QUEUES = {q.value: q for q in QUEUE_NAMES}


def parse_json_line(text: str, line: int) -> QueuedMessage | SkippedLine:
    """One line of `postqueue -j` as a message, or as a skipped line saying what is wrong."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return SkippedLine(line, f"not JSON ({_short(exc)})")
    if not isinstance(obj, dict):
        return SkippedLine(line, f"a JSON {type(obj).__name__}, not an object")
    try:
        return _message(obj)
    except (KeyError, TypeError, ValueError) as exc:
        return SkippedLine(line, f"not a postqueue -j message ({_short(exc)})")


def _message(obj: dict[str, Any]) -> QueuedMessage:
    name = _QUEUES.get(_str(obj, "queue_name"))
    if name is None:
        raise ValueError(f"unknown queue_name {obj['queue_name']!r}")
    raw_recipients = obj["recipients"]
    if not isinstance(raw_recipients, list):
        raise TypeError("recipients is not a list")
    recipients = tuple(_recipient(r) for r in raw_recipients)
    forced = obj.get("forced_expire", False)  # only since Postfix 3.5
    if not isinstance(forced, bool):
        raise TypeError("forced_expire is not a boolean")
    return QueuedMessage(
        queue_name=name,
        queue_id=_str(obj, "queue_id"),
        arrival_time=_int(obj, "arrival_time"),
        message_size=_int(obj, "message_size") if "message_size" in obj else 0,
        forced_expire=forced,
        sender=_str(obj, "sender") if "sender" in obj else "",
        recipients=recipients,
    )


def _recipient(obj: Any) -> Recipient:
    if not isinstance(obj, dict):
        raise TypeError("a recipient is not an object")
    reason = obj.get("delay_reason")
    if reason is not None and not isinstance(reason, str):
        raise TypeError("delay_reason is not a string")
    return Recipient(_str(obj, "address"), reason)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise KeyError(f"{key} missing" if value is None else f"{key} is not a string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KeyError(f"{key} missing" if value is None else f"{key} is not a number")
    return int(value)


def _short(exc: Exception) -> str:
    text = str(exc).strip("'\"")
    return text if len(text) <= 80 else text[:77] + "..."
