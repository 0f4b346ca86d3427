"""qshape's arithmetic: buckets, headings, domain keys, parent rollup, and the real captures.

The captures in fixtures/queue/qshape/ were taken seconds after fixtures/queue/fresh-postqueue-j
.jsonl from the same queue; each `.cmd` file holds the qshape command and the capture time.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcheck.queue.entries import QUEUE_NAMES, QueuedMessage, QueueName
from mailcheck.queue.shape import (
    By,
    ShapeCounter,
    ShapeOptions,
    ShapeTable,
    bucket_bounds,
    bucket_labels,
    bucket_of,
    domain_key,
    parent_keys,
    qshape_lines,
)
from mailcheck.queue.source import SnapshotSource, read_queue
from tests.conftest import ROOT

QUEUE_FIXTURES = ROOT / "fixtures" / "queue"
CAPTURES = sorted((QUEUE_FIXTURES / "qshape").glob("*.txt"))


@pytest.mark.parametrize(
    ("minutes", "bucket"),
    [
        (-3, 1),
        (0, 1),
        (4.99, 1),
        (5, 2),
        (9.99, 2),
        (10, 3),
        (19.9, 3),
        (20, 4),
        (640, 9),
        (1279.9, 9),
        (1280, 10),
        (10**6, 10),
    ],
)
def test_geometric_buckets_double(minutes: float, bucket: int) -> None:
    assert bucket_of(minutes * 60, ShapeOptions()) == bucket


@pytest.mark.parametrize(("minutes", "bucket"), [(0, 1), (59, 1), (60, 2), (119, 2), (420, 8)])
def test_linear_buckets_are_equal_width(minutes: float, bucket: int) -> None:
    assert bucket_of(minutes * 60, ShapeOptions(tick_minutes=60, buckets=8, linear=True)) == bucket


@pytest.mark.parametrize(
    ("options", "labels"),
    [
        (ShapeOptions(), "5 10 20 40 80 160 320 640 1280 1280+"),
        (ShapeOptions(tick_minutes=1, buckets=6), "1 2 4 8 16 16+"),
        (ShapeOptions(tick_minutes=1, buckets=8, linear=True), "1 2 3 4 5 6 7 7+"),
        (ShapeOptions(tick_minutes=60, buckets=8, linear=True), "60 120 180 240 300 360 420 420+"),
        (ShapeOptions(buckets=14), "5 10 20 40 80 160 320 640 1280 2560 5120 10240 20480 20480+"),
        (ShapeOptions(tick_minutes=2.5, buckets=3), "2.5 5 5+"),
        (ShapeOptions(buckets=1), "0+"),
    ],
)
def test_headings_are_qshapes(options: ShapeOptions, labels: str) -> None:
    assert " ".join(bucket_labels(options)) == labels


def test_bounds_follow_the_headings() -> None:
    bounds = bucket_bounds(ShapeOptions())
    assert bounds[0] == (0, 300) and bounds[1] == (300, 600)
    assert bounds[-1] == (1280 * 60, None)
    for (_, hi), (lo, _) in zip(bounds, bounds[1:], strict=False):
        assert hi == lo
    for seconds in (0, 299, 300, 4000, 76799, 76800, 10**7):
        index = bucket_of(seconds, ShapeOptions()) - 1
        lo, hi = bounds[index]
        assert lo <= seconds and (hi is None or seconds < hi)


@pytest.mark.parametrize(
    ("address", "sender", "key"),
    [
        ("User@Example.COM", False, "example.com"),
        ("a@b@c.example", False, "c.example"),
        ("x@..foo..bar.", False, "foo.bar"),
        ("josé@Refused.TEST", False, "refused.test"),
        ("ZOË@BÜCHER.example", False, "bÜcher.example"),  # Perl's lc on bytes: ASCII only
        ('"john doe"@refused.test', False, "refused.test"),
        ("root", False, "root"),
        ("", False, "MAILER-DAEMON"),
        ("MAILER-DAEMON", True, "MAILER-DAEMON"),
        ("MAILER-DAEMON", False, "mailer-daemon"),
    ],
)
def test_domain_keys_are_qshapes(address: str, sender: bool, key: str) -> None:
    assert domain_key(address, sender=sender) == key


def test_parents_stop_before_the_top_level_domain() -> None:
    assert list(parent_keys("a.b.example.com")) == [".b.example.com", ".example.com"]
    assert list(parent_keys("example.com")) == []
    assert list(parent_keys("com")) == []


def _count(keys: list[str], options: ShapeOptions) -> ShapeTable:
    counter = ShapeCounter(options)
    for key in keys:
        counter.add(key, 1)
    return counter.table()


def test_a_parent_shows_once_it_has_enough_distinct_children() -> None:
    keys = ["a.corp.test", "a.corp.test", "b.corp.test", "c.corp.test"]
    hidden = _count(keys, ShapeOptions(parents=True, min_subdomains=4))
    shown = _count(keys, ShapeOptions(parents=True, min_subdomains=3))
    assert ".corp.test" not in [r.domain for r in hidden.rows]
    assert [(r.domain, r.total, r.parent) for r in shown.rows][0] == (".corp.test", 4, True)
    assert shown.total.total == 4  # parents are not added into TOTAL


def test_rows_sort_by_count_then_length_then_name_and_top_cuts() -> None:
    table = _count(["bb.test", "a.test", "cc.test", "cc.test", "b.test"], ShapeOptions(top=3))
    assert [r.domain for r in table.rows] == ["cc.test", "a.test", "b.test"]
    assert table.omitted == 1


def _qshape_rows(text: str) -> dict[str, list[int]]:
    rows = {}
    for line in text.splitlines()[1:]:
        name, *numbers = line.split()
        rows[name] = [int(n) for n in numbers]
    return rows


def _capture(path: Path) -> tuple[list[str], int]:
    cmd = Path(f"{path}.cmd").read_text()
    args = shlex.split(re.search(r"^# \$ qshape(.*)$", cmd, re.M)[1])  # type: ignore[index]
    when = re.search(r"captured (\S+)", cmd)[1]  # type: ignore[index]
    return args, int(datetime.fromisoformat(when).timestamp())


def _options(args: list[str]) -> tuple[ShapeOptions, tuple[QueueName, ...]]:
    """qshape's command line as mailcheck's options (qshape's default queues: incoming active)."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    queues: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg in ("-t", "-b", "-m"):
            values[arg] = next(rest)
        elif arg.startswith("-"):
            flags.add(arg)
        else:
            queues.append(arg)
    options = ShapeOptions(
        tick_minutes=float(values.get("-t", 5)),
        buckets=int(values.get("-b", 10)),
        linear="-l" in flags,
        parents="-p" in flags,
        min_subdomains=int(values.get("-m", 5)),
        by=By.SENDER if "-s" in flags else By.RECIPIENT,
    )
    names = queues or ["incoming", "active"]
    return options, tuple(q for q in QUEUE_NAMES if q.value in names)


def _forced_expire_recipients(queues: tuple[QueueName, ...]) -> int:
    """Recipients of force-expired messages, which qshape skips (file mode 0710)."""
    path = QUEUE_FIXTURES / "fresh-postqueue-j.jsonl"
    source = SnapshotSource(str(path), 0)
    return sum(
        len(e.recipients)
        for e in source.entries()
        if isinstance(e, QueuedMessage) and e.forced_expire and e.queue_name in queues
    )


@pytest.mark.parametrize("capture", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_the_table_equals_qshapes_capture(capture: Path) -> None:
    args, captured_at = _capture(capture)
    options, queues = _options(args)
    source = SnapshotSource(str(QUEUE_FIXTURES / "fresh-postqueue-j.jsonl"), captured_at, UTC)
    table = read_queue(source, captured_at, options, queues).shape
    theirs = _qshape_rows(capture.read_text())
    ours = {r.domain: [r.total, *r.counts] for r in table.rows}
    ours["TOTAL"] = [table.total.total, *table.total.counts]
    skipped = _forced_expire_recipients(queues)  # qshape's bug, not copied
    if skipped:
        assert ours["TOTAL"][0] == theirs["TOTAL"][0] + skipped
        return
    assert ours == theirs
    # Same order where qshape's is defined (count, then length); ties may differ.
    keys = [(-theirs[d][0], len(d)) for d in (r.domain for r in table.rows)]
    assert keys == sorted(keys)


def test_the_layout_is_qshapes_line_for_line() -> None:
    capture = QUEUE_FIXTURES / "qshape" / "fresh-qshape-p-deferred.txt"
    args, captured_at = _capture(capture)
    options, queues = _options(args)
    source = SnapshotSource(str(QUEUE_FIXTURES / "fresh-postqueue-j.jsonl"), captured_at)
    lines = qshape_lines(read_queue(source, captured_at, options, queues).shape)
    theirs = capture.read_text().splitlines()
    assert lines[:2] == theirs[:2]  # headings and TOTAL, byte for byte
    assert sorted(lines) == sorted(theirs)  # every row; ties are in Perl's hash order there


def test_a_long_name_keeps_its_end_as_qshape_does() -> None:
    name = "a-very-long-subdomain-name.of-a-rather-long-domain-name.example"
    table = _count([name], ShapeOptions())
    line = qshape_lines(table)[2]
    assert len(line) == 80 and line.lstrip().startswith("+") and "domain-name.example" in line
