"""Reading listings: postqueue -j lines, the postqueue -p fallback, snapshot detection, and
the error matrix (every failure captured in fixtures/queue/errors/, verbatim)."""

from __future__ import annotations

import io
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcheck.queue.entries import QueuedMessage, QueueName, SkippedLine, SourceWarning
from mailcheck.queue.entries import parse_json_line as parse
from mailcheck.queue.live import explain_failure, locate_postqueue, parse_duration
from mailcheck.queue.mailq import arrival_epoch
from mailcheck.queue.shape import ShapeOptions
from mailcheck.queue.source import (
    QueueInputError,
    SnapshotSource,
    numbered_lines,
    read_listing,
    read_queue,
)
from tests.conftest import ROOT

QUEUE_FIXTURES = ROOT / "fixtures" / "queue"
NOW = 1795287470  # 2026-11-21T18:57:50Z, just after the fresh captures


def _entries(text: str, name: str = "listing") -> list[object]:
    lines = numbered_lines(io.BytesIO(text.encode()))
    return list(read_listing(lines, name, NOW, UTC))


def test_a_postqueue_j_line() -> None:
    line = (
        '{"queue_name": "hold", "queue_id": "8D06D21A82A", "arrival_time": 1795287404, '
        '"message_size": 862, "forced_expire": true, "sender": "MAILER-DAEMON", "future": 1, '
        '"recipients": [{"address": "josé@refused.test"}, {"address": "b@x.test", '
        '"delay_reason": "connect to x[1.2.3.4]:25: Connection refused"}]}'
    )
    msg = parse(line, 1)
    assert isinstance(msg, QueuedMessage)
    assert (msg.queue_name, msg.forced_expire, msg.sender) == (
        QueueName.HOLD,
        True,
        "MAILER-DAEMON",
    )
    assert [r.delay_reason is None for r in msg.recipients] == [True, False]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"queue_name": "deferred", "arrival_time": 1, "recipients": []}', "queue_id missing"),
        (
            '{"queue_name": "corrupt", "queue_id": "A", "arrival_time": 1, "recipients": []}',
            "unknown queue_name",
        ),
        (
            '{"queue_name": "deferred", "queue_id": "A", "arrival_time": true, "recipients": []}',
            "arrival_time is not a number",
        ),
        (
            '{"queue_name": "deferred", "queue_id": "A", "arrival_time": 1, "recipients": {}}',
            "recipients is not a list",
        ),
        (
            '{"queue_name": "deferred", "queue_id": "A", "arrival_time": 1, "recipients": [1]}',
            "a recipient is not an object",
        ),
    ],
)
def test_a_corrupt_line_says_why(line: str, problem: str) -> None:
    skipped = parse(line, 7)
    assert isinstance(skipped, SkippedLine) and skipped.line == 7
    assert problem in skipped.problem


def test_optional_members_default() -> None:
    msg = parse(
        '{"queue_name": "incoming", "queue_id": "A", "arrival_time": 5, "recipients": []}', 1
    )
    assert isinstance(msg, QueuedMessage)
    assert (msg.message_size, msg.forced_expire, msg.sender) == (0, False, "")


def test_detection_and_corrupt_lines_in_the_middle() -> None:
    good = (QUEUE_FIXTURES / "fresh-postqueue-j.jsonl").read_text().splitlines()
    text = "\n".join([good[0], "garbage", "", good[1], '{"half": '])
    entries = _entries(text)
    assert [type(e).__name__ for e in entries] == [
        "QueuedMessage",
        "SkippedLine",
        "QueuedMessage",
        "SkippedLine",
    ]
    assert [e.line for e in entries if isinstance(e, SkippedLine)] == [2, 5]


def test_postqueue_warnings_are_kept() -> None:
    text = (QUEUE_FIXTURES / "stopped-postqueue-j-maildrop.txt").read_text()
    listing = "\n".join(line for line in text.splitlines() if not line.startswith(("$", "[")))
    entries = _entries(listing)
    assert isinstance(entries[0], SourceWarning) and "Mail system is down" in entries[0].text
    assert isinstance(entries[1], QueuedMessage) and entries[1].queue_name is QueueName.MAILDROP


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("root:x:0:0:root:/root:/bin/bash\n", "is not postqueue -j output (line 1"),
        ("\n\n$ postqueue -j\n", "(line 3 starts '$ postqueue -j')"),
        (
            "postqueue: fatal: open /etc/postfix/main.cf: No such file or directory\n",
            "holds Postfix's error, not a queue listing",
        ),
    ],
)
def test_what_is_not_a_listing_is_an_input_error(text: str, words: str) -> None:
    with pytest.raises(QueueInputError, match=re.escape(words)):
        _entries(text, "snap.txt")


def test_a_listing_of_only_corrupt_lines_is_not_an_empty_queue(tmp_path: Path) -> None:
    path = tmp_path / "snap.jsonl"
    path.write_text('{"queue_name": "deferred"}\n{"queue_name": "deferred"}\n')
    with pytest.raises(QueueInputError, match="no queue entry: all 2 line"):
        read_queue(SnapshotSource(str(path), NOW), NOW, ShapeOptions())


def test_an_empty_listing_is_an_empty_queue(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    obs = read_queue(SnapshotSource(str(path), NOW), NOW, ShapeOptions())
    assert obs.shape.total.total == 0 and obs.skipped_count == 0


def test_unreadable_snapshots(tmp_path: Path) -> None:
    with pytest.raises(QueueInputError, match="cannot read .*missing"):
        list(SnapshotSource(str(tmp_path / "missing"), NOW).entries())
    with pytest.raises(QueueInputError, match="Is a directory"):
        list(SnapshotSource(str(tmp_path), NOW).entries())


@pytest.mark.parametrize("pair", ["fresh", "during-flush", "longids"])
def test_the_text_listing_says_what_the_json_one_does(pair: str) -> None:
    def messages(name: str) -> dict[str, QueuedMessage]:
        text = (QUEUE_FIXTURES / name).read_text()
        return {e.queue_id: e for e in _entries(text) if isinstance(e, QueuedMessage)}

    text, json = messages(f"{pair}-postqueue-p.txt"), messages(f"{pair}-postqueue-j.jsonl")
    assert text.keys() == json.keys() and len(text) >= 60
    for queue_id, msg in json.items():
        other = text[queue_id]
        assert (other.arrival_time, other.message_size, other.sender, other.forced_expire) == (
            msg.arrival_time,
            msg.message_size,
            msg.sender,
            msg.forced_expire,
        )
        assert sorted(other.recipients, key=repr) == sorted(msg.recipients, key=repr)
        if msg.queue_name in (QueueName.ACTIVE, QueueName.HOLD, QueueName.DEFERRED):
            assert other.queue_name is msg.queue_name


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("Thu Nov 19 17:56:44", "2026-11-21T18:57:48", "2026-11-19T17:56:44"),
        ("Thu Nov 19 17:56:44", "2027-01-05T00:00:00", "2026-11-19T17:56:44"),
        ("Sun Nov 22 00:30:00", "2026-11-21T23:50:00", "2026-11-22T00:30:00"),  # zones differ
        ("Thu Feb 29 10:00:00", "2026-11-21T18:57:48", "2024-02-29T10:00:00"),
    ],
)
def test_the_year_is_inferred(text: str, now: str, expected: str) -> None:
    at = datetime.fromisoformat(now).replace(tzinfo=UTC).timestamp()
    epoch = arrival_epoch(text, at, UTC)
    assert epoch == int(datetime.fromisoformat(expected).replace(tzinfo=UTC).timestamp())


def _capture(name: str) -> tuple[int, str]:
    """(exit status, stderr) of a captured postqueue failure."""
    text = (QUEUE_FIXTURES / "errors" / name).read_text()
    status = int(re.search(r"\[exit status: (\d+)\]", text)[1])  # type: ignore[index]
    lines = [line for line in text.splitlines() if ": fatal: " in line or ": warning: " in line]
    return status, "\n".join(lines)


@pytest.mark.parametrize(
    ("capture", "config_dir", "euid", "words"),
    [
        (
            "default-config-missing-postqueue-j.txt",
            None,
            0,
            "Postfix is installed but not configured: /etc/postfix/main.cf",
        ),
        ("default-config-missing-mailq.txt", None, 1000, "dpkg-reconfigure postfix"),
        (
            "nonroot-postqueue-j-altconfig-no-default-maincf.txt",
            "/srv/pfq/etc",
            65534,
            "postqueue refuses -c /srv/pfq/etc to a non-root user",
        ),
        (
            "nonroot-postqueue-j-authorized_mailq_users-root.txt",
            "/srv/pfq/etc",
            65534,
            "User nobody(65534) is not allowed to view the mail queue: the user is not in "
            "authorized_mailq_users",
        ),
        (
            "nonroot-postqueue-j-postfix-stopped.txt",
            "/srv/pfq/etc",
            65534,
            "Postfix is not running, and only root can read its queue then",
        ),
    ],
)
def test_the_error_matrix_is_explained(
    capture: str, config_dir: str | None, euid: int, words: str
) -> None:
    status, stderr = _capture(capture)
    assert status in (69, 75)
    line = explain_failure(status, stderr, config_dir, euid)
    assert words in line and "\n" not in line


def test_unknown_failures_quote_postqueue() -> None:
    line = explain_failure(75, "postqueue: fatal: something new", None, 0)
    assert (
        line == "postqueue exited with status 75: postqueue: fatal: something new; a "
        "temporary failure, try again"
    )
    assert "showq" in explain_failure(
        69, "postqueue: fatal: Connect to the Postfix showq service: Permission denied", None, 7
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5d", 432000), ("3600s", 3600), ("1w", 604800), ("2", 172800), ("bogus", None)],
)
def test_postfix_durations(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


def test_postqueue_is_found_off_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILCHECK_POSTQUEUE", raising=False)
    program = tmp_path / "postqueue"
    program.write_text("#!/bin/sh\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    assert locate_postqueue(path_env="", extra_dirs=(str(tmp_path),)) == str(program)
    assert locate_postqueue(path_env="", extra_dirs=()) is None
    monkeypatch.setenv("MAILCHECK_POSTQUEUE", str(program))
    assert locate_postqueue(path_env="", extra_dirs=()) == str(program)
    monkeypatch.setenv("MAILCHECK_POSTQUEUE", os.devnull + "-missing")
    assert locate_postqueue() is None
