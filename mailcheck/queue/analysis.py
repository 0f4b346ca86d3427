"""One pass over a queue listing: per-queue totals, qshape's table and grouped reasons.

Messages stream through `QueueAnalyzer.add()` and are not kept: memory grows with the number
of domains and reason groups, not with the number of messages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mailcheck.queue.entries import (
    NULL_SENDER,
    QUEUE_NAMES,
    Entry,
    QueuedMessage,
    QueueName,
    SkippedLine,
    SourceWarning,
)
from mailcheck.queue.reasons import ParsedReason, ReasonCache, ReasonClass
from mailcheck.queue.shape import By, ShapeCounter, ShapeOptions, ShapeTable, bucket_of, domain_key

MAX_SKIPPED_KEPT = 20
"""Skipped lines kept with their problem; the rest are only counted."""


@dataclass(frozen=True)
class Lifetimes:
    """How long Postfix keeps trying (postconf), for "will bounce soon" warnings."""

    maximal_queue_lifetime: int
    """Seconds a message with a sender is retried."""
    bounce_queue_lifetime: int
    """Seconds a bounce (null sender) is retried."""


@dataclass(frozen=True)
class QueueStats:
    """The numbers a monitoring system wants for one queue."""

    messages: int = 0
    """Queue files."""
    recipients: int = 0
    """Pending recipients."""
    size_bytes: int = 0
    """Sum of message sizes."""
    oldest_seconds: int | None = None
    """Age of the oldest message, or None when the queue is empty."""
    forced_expire: int = 0
    """Messages marked with `postsuper -e`."""


@dataclass(frozen=True)
class ReasonGroup:
    """Deferred recipients with the same class, destination domain and next hop."""

    reason_class: ReasonClass
    """The class."""
    domain: str
    """The recipient domain."""
    next_hop: str | None
    """The host the example reason names, with its address (`mx.example.com[192.0.2.1]:25`);
    the group holds every address of that host name."""
    recipients: int
    """Recipients in the group."""
    messages: int
    """Distinct messages they belong to."""
    suspended: int
    """Recipients whose reason says "delivery temporarily suspended" (destination marked dead)."""
    permanent: int
    """Recipients whose reason holds a 5xx reply (kept only by soft_bounce)."""
    oldest_seconds: int
    """Age of the oldest message in the group."""
    smtp_code: str | None
    """The most common reply code, if the texts have one."""
    enhanced_code: str | None
    """The most common enhanced status code, if the texts have one."""
    example: str
    """One reason text as Postfix wrote it."""
    parsed: ParsedReason
    """The example, parsed."""


@dataclass(frozen=True)
class QueueObservation:
    """Everything one pass found; report.py judges it."""

    now: int
    """The epoch second ages are measured from."""
    selected: tuple[QueueName, ...]
    """The queues the shape and reasons cover."""
    queues: dict[QueueName, QueueStats]
    """Totals for every queue (all five, zero when empty)."""
    shape: ShapeTable
    """qshape's table over the selected queues."""
    reasons: tuple[ReasonGroup, ...]
    """Groups, most recipients first."""
    not_tried: int
    """Recipients in the selected queues without a delay_reason (not yet tried)."""
    skipped: tuple[SkippedLine, ...]
    """The first skipped lines."""
    skipped_count: int
    """All skipped lines."""
    warnings: tuple[str, ...]
    """Warnings postqueue printed."""
    expiring: int
    """Messages that reach their queue lifetime within a day (0 when lifetimes are unknown)."""


@dataclass
class _Group:
    example: str
    parsed: ParsedReason
    recipients: int = 0
    messages: int = 0
    suspended: int = 0
    permanent: int = 0
    oldest: int = 0
    codes: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)


@dataclass
class _Totals:
    messages: int = 0
    recipients: int = 0
    size: int = 0
    oldest: int | None = None
    forced: int = 0


class QueueAnalyzer:
    """Accumulates one listing."""

    def __init__(
        self,
        now: int,
        options: ShapeOptions,
        selected: tuple[QueueName, ...] = (QueueName.DEFERRED,),
        lifetimes: Lifetimes | None = None,
    ) -> None:
        self.now = now
        self.options = options
        self.selected = selected
        self.lifetimes = lifetimes
        self._selected = frozenset(selected)
        self._shape = ShapeCounter(options)
        self._totals = {q: _Totals() for q in QUEUE_NAMES}
        self._groups: dict[tuple[ReasonClass, str, str | None], _Group] = {}
        self._reasons = ReasonCache()
        self._not_tried = 0
        self._skipped: list[SkippedLine] = []
        self._skipped_count = 0
        self._warnings: list[str] = []
        self._expiring = 0

    def add(self, entry: Entry) -> None:
        """Take one entry of the listing."""
        if isinstance(entry, QueuedMessage):
            self._message(entry)
        elif isinstance(entry, SkippedLine):
            self._skipped_count += 1
            if len(self._skipped) < MAX_SKIPPED_KEPT:
                self._skipped.append(entry)
        elif isinstance(entry, SourceWarning):
            self._warnings.append(entry.text)

    def _message(self, msg: QueuedMessage) -> None:
        age = self.now - msg.arrival_time
        totals = self._totals[msg.queue_name]
        totals.messages += 1
        totals.recipients += len(msg.recipients)
        totals.size += msg.message_size
        totals.forced += msg.forced_expire
        if totals.oldest is None or age > totals.oldest:
            totals.oldest = age
        if msg.queue_name not in self._selected:
            return
        self._check_expiry(msg, age)
        # qshape counts a message only with at least one pending recipient, also with -s.
        if not msg.recipients:
            return
        bucket = bucket_of(age, self.options)
        if self.options.by is By.SENDER:
            self._shape.add(domain_key(msg.sender, sender=True), bucket)
        seen: set[tuple[ReasonClass, str, str | None]] = set()
        for rcpt in msg.recipients:
            domain = domain_key(rcpt.address)
            if self.options.by is By.RECIPIENT:
                self._shape.add(domain, bucket)
            if rcpt.delay_reason is None:
                self._not_tried += 1
                continue
            parsed = self._reasons.parse(rcpt.delay_reason)
            # One group per host name: a destination's MX hosts have many addresses.
            key = (parsed.reason_class, domain, _host_name(parsed.next_hop))
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(rcpt.delay_reason, parsed)
            elif group.parsed.suspended and not parsed.suspended:
                group.example, group.parsed = rcpt.delay_reason, parsed  # the original text
            group.recipients += 1
            group.suspended += parsed.suspended
            group.permanent += parsed.permanent_reply
            group.oldest = max(group.oldest, age)
            group.codes[(parsed.smtp_code, parsed.enhanced_code)] += 1
            if key not in seen:
                seen.add(key)
                group.messages += 1

    def _check_expiry(self, msg: QueuedMessage, age: int) -> None:
        if self.lifetimes is None or msg.queue_name is QueueName.HOLD:
            return
        lifetime = (
            self.lifetimes.bounce_queue_lifetime
            if msg.sender in ("", NULL_SENDER)
            else self.lifetimes.maximal_queue_lifetime
        )
        if lifetime > 0 and lifetime - age <= min(86400, lifetime // 4):
            self._expiring += 1

    def result(self) -> QueueObservation:
        """The observation, once every entry has been added."""
        groups = [
            ReasonGroup(
                reason_class=cls,
                domain=domain,
                next_hop=g.parsed.next_hop,
                recipients=g.recipients,
                messages=g.messages,
                suspended=g.suspended,
                permanent=g.permanent,
                oldest_seconds=g.oldest,
                smtp_code=_common(g.codes)[0],
                enhanced_code=_common(g.codes)[1],
                example=g.example,
                parsed=g.parsed,
            )
            for (cls, domain, _), g in self._groups.items()
        ]
        groups.sort(key=lambda g: (-g.recipients, g.reason_class.value, g.domain, g.next_hop or ""))
        queues = {
            q: QueueStats(t.messages, t.recipients, t.size, t.oldest, t.forced)
            for q, t in self._totals.items()
        }
        return QueueObservation(
            now=self.now,
            selected=self.selected,
            queues=queues,
            shape=self._shape.table(),
            reasons=tuple(groups),
            not_tried=self._not_tried,
            skipped=tuple(self._skipped),
            skipped_count=self._skipped_count,
            warnings=tuple(self._warnings),
            expiring=self._expiring,
        )


def _host_name(hop: str | None) -> str | None:
    """`mx.example.com` of `mx.example.com[192.0.2.1]:25`."""
    return hop.partition("[")[0] if hop else hop


def _common(codes: Counter[tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    """The most common (code, enhanced code) pair that has a code, else (None, None)."""
    for pair, _ in codes.most_common():
        if pair[0] is not None:
            return pair
    return (None, None)
