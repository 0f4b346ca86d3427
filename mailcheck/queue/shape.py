"""qshape's table: recipients (or senders) per domain and age bucket.

The arithmetic is qshape's (Postfix 3.7 `auxiliary/qshape/qshape.pl`, unchanged since
3.7-20220102), so the numbers are equal for the same queue. Its known bugs are not copied:
force-expired messages count, Postfix 3.x maildrop files count with their real arrival time,
a queue that cannot be read is an error (never a table of zeros), and ties are ordered by name
instead of Perl's random hash order.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mailcheck.queue.entries import NULL_SENDER

_DOUBLE_DOT = re.compile(r"\.\.")
_EDGE_DOTS = re.compile(r"\.?(.+?)\.?$")
_PARENT = re.compile(r"^(?:\.)?[^.]+\.(.*\.)")
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class By(enum.StrEnum):
    """What a row counts."""

    RECIPIENT = "recipient"
    """Each pending recipient, by its domain (qshape's default)."""
    SENDER = "sender"
    """Each message once, by its sender's domain (qshape -s)."""


@dataclass(frozen=True)
class ShapeOptions:
    """qshape's options."""

    tick_minutes: float = 5.0
    """Width of the first bucket in minutes (qshape -t)."""
    buckets: int = 10
    """Number of age buckets; the last one is open-ended (qshape -b)."""
    linear: bool = False
    """Buckets of equal width instead of doubling ones (qshape -l)."""
    parents: bool = False
    """Also count parent domains, shown with a leading dot (qshape -p)."""
    min_subdomains: int = 5
    """Show a parent row only with at least this many child domains (qshape -m)."""
    by: By = By.RECIPIENT
    """Count recipients by domain, or messages by sender domain (qshape -s)."""
    top: int = 0
    """Keep only the first N domain rows; 0 keeps them all."""


def bucket_of(age_seconds: float, options: ShapeOptions) -> int:
    """The 1-based bucket of a message of this age (qshape's `bucket()`)."""
    m = age_seconds / (60 * options.tick_minutes)
    if m < 1:
        return 1  # also negative ages: arrival in the future (clock skew)
    # log(m)/log(2) as qshape computes it, not log2(m): the same rounding at exact powers.
    b = int(m + 1) if options.linear else 2 + int(math.log(m) / math.log(2))
    return b if b < options.buckets else options.buckets


def bucket_labels(options: ShapeOptions) -> list[str]:
    """Column headings after `T`: each bucket's upper bound in minutes, the last with `+`."""
    labels: list[str] = []
    edge = 0.0
    for i in range(1, options.buckets + 1):
        if i < options.buckets:
            edge += edge if (edge and not options.linear) else options.tick_minutes
            labels.append(_number(edge))
        else:
            labels.append(_number(edge) + "+")
    return labels


def bucket_bounds(options: ShapeOptions) -> list[tuple[int, int | None]]:
    """Each bucket's age range [lo, hi) in seconds; hi is None for the open-ended last one."""
    bounds: list[tuple[int, int | None]] = []
    lo = 0.0
    edge = 0.0
    for i in range(1, options.buckets + 1):
        if i < options.buckets:
            edge += edge if (edge and not options.linear) else options.tick_minutes
            bounds.append((round(lo * 60), round(edge * 60)))
            lo = edge
        else:
            bounds.append((round(lo * 60), None))
    return bounds


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else format(value, ".15g")


def domain_key(address: str, sender: bool = False) -> str:
    """The row an address counts in, as qshape derives it.

    Lower case (ASCII only, as Perl's `lc` on bytes), the part after the last `@`, `..`
    collapsed to `.`, one leading and one trailing dot removed; the null sender is
    `MAILER-DAEMON` (postqueue -j prints it so; qshape reads it as an empty address).
    """
    if not address or (sender and address == NULL_SENDER):
        return NULL_SENDER
    key = address.translate(_ASCII_UPPER)
    at = key.rfind("@")
    if at >= 0:
        key = key[at + 1 :]
    if ".." in key:
        key = _DOUBLE_DOT.sub(".", key)
    if key.startswith(".") or key.endswith("."):
        key = _EDGE_DOTS.sub(r"\1", key, count=1)
    return key


def parent_keys(domain: str) -> Iterator[str]:
    """qshape -p's parents: `a.b.example.com` gives `.b.example.com`, `.example.com`.

    The rollup stops before the top-level domain: the pattern needs a dot after the parent.
    """
    key = domain
    while True:
        match = _PARENT.match(key)
        if match is None:
            return
        key = "." + match.group(1) + key[match.end() :]
        yield key


@dataclass(frozen=True)
class ShapeRow:
    """One row of the table."""

    domain: str
    """The domain, or a parent (leading dot), or `MAILER-DAEMON`."""
    total: int
    """Its count over all buckets."""
    counts: tuple[int, ...]
    """Its count per bucket."""

    @property
    def parent(self) -> bool:
        """True for a parent-domain rollup row."""
        return self.domain.startswith(".")


@dataclass(frozen=True)
class ShapeTable:
    """qshape's table, rows sorted: count descending, then shorter names, then by name."""

    options: ShapeOptions
    """How it was counted."""
    total: ShapeRow
    """The TOTAL row (parents are not added into it)."""
    rows: tuple[ShapeRow, ...]
    """Domain rows after the parent filter and --top."""
    omitted: int
    """Domain rows left out by --top."""


class ShapeCounter:
    """Counts addresses into domain rows as messages stream by; memory grows with domains only."""

    def __init__(self, options: ShapeOptions) -> None:
        self.options = options
        width = options.buckets + 1
        self._width = width
        self._total = [0] * width
        self._rows: dict[str, list[int]] = {}
        self._children: dict[str, int] = {}

    def add(self, key: str, bucket: int) -> None:
        """Count one address by its domain_key() (a recipient, or a sender with --by sender)."""
        self._total[0] += 1
        self._total[bucket] += 1
        counts = self._rows.get(key)
        if counts is None:
            counts = self._rows[key] = [0] * self._width
        counts[0] += 1
        counts[bucket] += 1
        if not self.options.parents:
            return
        # qshape: a parent counts each child key the first time that child is seen.
        child_is_new = counts[0] == 1
        for parent in parent_keys(key):
            counts = self._rows.get(parent)
            if counts is None:
                counts = self._rows[parent] = [0] * self._width
            counts[0] += 1
            counts[bucket] += 1
            if child_is_new:
                self._children[parent] = self._children.get(parent, 0) + 1
            child_is_new = counts[0] == 1

    def table(self) -> ShapeTable:
        """The table as qshape prints it, with a deterministic order for ties."""
        shown = [
            ShapeRow(key, counts[0], tuple(counts[1:]))
            for key, counts in self._rows.items()
            if not key.startswith(".") or self._children.get(key, 0) >= self.options.min_subdomains
        ]
        shown.sort(key=lambda r: (-r.total, len(r.domain), r.domain))
        top = self.options.top
        kept = shown[:top] if top > 0 else shown
        total = ShapeRow("TOTAL", self._total[0], tuple(self._total[1:]))
        return ShapeTable(self.options, total, tuple(kept), len(shown) - len(kept))


QSHAPE_WIDTH = 80
"""qshape's line width (its -w only ever widens it)."""
QSHAPE_MIN_DOMAIN = 18
"""qshape's narrowest domain field."""


def qshape_lines(table: ShapeTable, width: int = QSHAPE_WIDTH) -> list[str]:
    """The table laid out exactly as qshape prints it: right-justified columns, each as wide
    as its heading or TOTAL count plus one (at least 3), the domain field taking the rest of
    `width` (at least 18); a name too long for it keeps its end after `+` (`.+` for parents).
    """
    heads = ["T", *bucket_labels(table.options)]
    totals = [table.total.total, *table.total.counts]
    widths = []
    for head, count in zip(heads, totals, strict=True):
        size = max(len(head), len(str(count)))
        widths.append(size + 1 if size > 2 else 3)
    field = max(width - sum(widths), QSHAPE_MIN_DOMAIN)

    def line(name: str, cells: list[str]) -> str:
        if len(name) > field:
            keep = field - 2 if name.startswith(".") else field - 1
            name = (".+" if name.startswith(".") else "+") + name[len(name) - keep :]
        return name.rjust(field) + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

    lines = [line("", heads), line("TOTAL", [str(n) for n in totals])]
    for row in table.rows:
        lines.append(line(row.domain, [str(row.total), *(str(c) for c in row.counts)]))
    return lines
