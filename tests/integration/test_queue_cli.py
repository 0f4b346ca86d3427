"""`mailcheck queue` end to end, in a child process: exit codes, one-line errors, JSON, the
Prometheus textfile, and postqueue's failures replayed from the real captures.

The replayed failures (non-root, authorized_mailq_users, Postfix 2.x) cannot be produced by
the Postfix lab as root; a `postqueue` script named by $MAILCHECK_POSTQUEUE prints the captured
text and exit status. tests/integration/test_queue_postfix.py runs the real thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT
from tests.unit.test_queue_report import schema

QUEUE_FIXTURES = ROOT / "fixtures" / "queue"
FRESH = str(QUEUE_FIXTURES / "fresh-postqueue-j.jsonl")
CAPTURED_AT = "2026-11-21T18:57:49Z"
# The real `mailcheck` entry point, with `queue` mounted as mailcheck/cli.py mounts it (until
# it does, this mounts it the same way).
SHIM = """\
import sys
from mailcheck.cli import app, main
from mailcheck.queue.cli import queue_command
if not any(c.name == "queue" for c in app.registered_commands):
    app.command("queue")(queue_command)
sys.argv[0] = "mailcheck"
main()
"""


def mailcheck_queue(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `mailcheck queue ARGS` in a child process, with a fixed width and no colour."""
    full_env = {k: v for k, v in os.environ.items() if k != "MAILCHECK_POSTQUEUE"}
    full_env.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", SHIM, "queue", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        check=False,
        cwd=ROOT,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed run."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mailcheck: ") and "Traceback" not in proc.stderr
    return lines[0]


def data_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document = json.loads(proc.stdout)
    jsonschema.validate(document, schema())
    check = document["checks"][0]
    assert check["check"] == "queue"
    data: dict[str, Any] = check["data"]
    return data


def test_a_snapshot_as_json() -> None:
    proc = mailcheck_queue("--input", FRESH, "--now", CAPTURED_AT, "--json")
    assert proc.returncode == 1  # the fixture has error findings (TLS, DNSBL)
    assert "finding(s) at or above error" in one_line(proc)
    data = data_of(proc)
    assert data["clock"] == "given" and data["source"]["kind"] == "snapshot"
    assert data["shape"]["total"]["total"] == 64
    assert {r["class"] for r in data["reasons"]} >= {"tls-not-offered", "blocklisted"}


def test_fail_on_and_stdin() -> None:
    text = Path(FRESH).read_text()
    proc = mailcheck_queue(
        "--input", "-", "--now", CAPTURED_AT, "--fail-on", "info", "--queue", "hold", stdin=text
    )
    assert proc.returncode == 1 and "queue snapshot stdin" in proc.stdout
    quiet = mailcheck_queue("--input", "-", "--now", CAPTURED_AT, "--queue", "incoming", stdin=text)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "No mail in the incoming queue(s)." in quiet.stdout


def test_the_rich_output_starts_with_qshapes_table() -> None:
    proc = mailcheck_queue("--input", FRESH, "--now", CAPTURED_AT, "-p")
    senders = mailcheck_queue("--input", FRESH, "--now", CAPTURED_AT, "-s")
    assert "mailcheck.test 55 55" in senders.stdout and "MAILER-DAEMON  3  3" in senders.stdout
    table = (QUEUE_FIXTURES / "qshape" / "fresh-qshape-p-deferred.txt").read_text().splitlines()
    assert table[0] in proc.stdout and table[1] in proc.stdout
    assert "                             .corp.test  6  6" in proc.stdout
    assert proc.stdout.index("TOTAL 64") < proc.stdout.index("→ ")


def test_a_corrupt_line_is_skipped_named_and_exits_2(tmp_path: Path) -> None:
    lines = Path(FRESH).read_text().splitlines()
    path = tmp_path / "snap.jsonl"
    path.write_text("\n".join([*lines[:5], "{truncated", *lines[5:]]) + "\n")
    proc = mailcheck_queue("--input", str(path), "--now", CAPTURED_AT, "--json")
    assert proc.returncode == 2
    line = one_line(proc)
    assert "skipped 1 line(s)" in line and "line 6: not JSON" in line
    data = data_of(proc)
    assert data["skipped_lines"] == {
        "count": 1,
        "first": [{"line": 6, "problem": data["skipped_lines"]["first"][0]["problem"]}],
    }
    assert data["queues"]["deferred"]["messages"] + data["queues"]["hold"]["messages"] == 60


def test_prometheus_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "mailcheck_queue.prom"
    proc = mailcheck_queue(
        "--input", FRESH, "--now", CAPTURED_AT, "--format", "prometheus", "-o", str(out)
    )
    assert proc.stdout == "" and out.read_text().startswith("# HELP mailcheck_queue_up")
    assert 'mailcheck_queue_messages{queue="deferred"} 58' in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--queue", "nope"), "unknown queue 'nope'"),
        (("--input", FRESH, "--now", "yesterday"), "neither epoch seconds nor ISO 8601"),
        (("--now", "0"), "--now only applies to --input"),
        (("--input", FRESH, "-c", "/etc/postfix"), "either --input"),
        (("-t", "0"), "--tick must be above 0"),
        (("-b", "0"), "--buckets"),
        (("--by", "someone"), "--by"),
        (("--format", "xml"), "--format"),
        (("-c", "/nonexistent-dir"), "-c /nonexistent-dir: no such directory"),
        (("-c", "/"), "-c /: no main.cf there"),
        (("--input", "/etc/hostname"), "is not postqueue -j output (line 1"),
        (("--input", "/nonexistent.jsonl"), "cannot read /nonexistent.jsonl"),
    ],
)
def test_bad_usage_and_input_exit_2_with_one_line(args: tuple[str, ...], words: str) -> None:
    proc = mailcheck_queue(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert words in one_line(proc)


def replay(tmp_path: Path, stderr: str, status: int, stdout_file: Path | None = None) -> str:
    """A `postqueue` that prints a captured failure (or listing) and exits with its status."""
    (tmp_path / "err.txt").write_text(stderr)
    out = f"cat '{stdout_file}'" if stdout_file else ":"
    script = tmp_path / "postqueue"
    script.write_text(
        "#!/bin/sh\n"
        f"case \"$*\" in *-p*) cat '{QUEUE_FIXTURES / 'fresh-postqueue-p.txt'}'; exit 0;; esac\n"
        f"{out}\ncat '{tmp_path / 'err.txt'}' >&2\nexit {status}\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("capture", "words"),
    [
        ("nonroot-postqueue-j-postfix-stopped.txt", "Postfix is not running, and only root"),
        (
            "nonroot-postqueue-j-authorized_mailq_users-root.txt",
            "not allowed to view the mail queue",
        ),
        ("default-config-missing-postqueue-j.txt", "Postfix is installed but not configured"),
        ("default-config-missing-mailq.txt", "Postfix is installed but not configured"),
    ],
)
def test_postqueue_failures_exit_3_with_the_cause(tmp_path: Path, capture: str, words: str) -> None:
    text = (QUEUE_FIXTURES / "errors" / capture).read_text()
    status = int(text.rsplit("[exit status: ", 1)[1].split("]")[0])
    stderr = "".join(line + "\n" for line in text.splitlines() if ": fatal: " in line)
    program = replay(tmp_path, stderr, status)
    for fmt in ("rich", "json"):
        proc = mailcheck_queue("--format", fmt, env={"MAILCHECK_POSTQUEUE": program})
        assert proc.returncode == 3 and proc.stdout == ""  # never an empty table
        line = one_line(proc)
        assert line.startswith("mailcheck: cannot read the Postfix queue as ") and words in line


def test_a_failed_read_leaves_only_up_0_in_the_textfile(tmp_path: Path) -> None:
    program = replay(tmp_path, "postqueue: fatal: something broke\n", 75)
    out = tmp_path / "q.prom"
    out.write_text("stale numbers\n")
    proc = mailcheck_queue(
        "--format", "prometheus", "-o", str(out), env={"MAILCHECK_POSTQUEUE": program}
    )
    assert proc.returncode == 3 and "exited with status 75" in one_line(proc)
    assert out.read_text().splitlines()[-1] == "mailcheck_queue_up 0"


def test_postfix_not_installed(tmp_path: Path) -> None:
    proc = mailcheck_queue(env={"MAILCHECK_POSTQUEUE": str(tmp_path / "postqueue")})
    assert proc.returncode == 3
    assert "Postfix is not installed" in one_line(proc)


def test_a_stopped_postfix_read_by_root_is_a_finding(tmp_path: Path) -> None:
    capture = (QUEUE_FIXTURES / "stopped-postqueue-j-maildrop.txt").read_text().splitlines()
    listing = tmp_path / "listing.jsonl"
    listing.write_text("".join(line + "\n" for line in capture if line.startswith("{")))
    warning = next(line for line in capture if "warning" in line)
    program = replay(tmp_path, warning + "\n", 0, listing)
    proc = mailcheck_queue("--json", "--queue", "maildrop", env={"MAILCHECK_POSTQUEUE": program})
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert "queue.postfix-stopped" in {f["code"] for f in document["checks"][0]["findings"]}
    data = data_of(proc)
    assert data["source"]["running"] is False and data["queues"]["maildrop"]["messages"] == 1
    assert data["shape"]["total"]["total"] == 1  # qshape counts 3.x maildrop files nowhere


def test_postfix_2_without_json_falls_back_to_the_text_listing(tmp_path: Path) -> None:
    program = replay(
        tmp_path,
        "postqueue: invalid option -- 'j'\npostqueue: fatal: usage: "
        "postqueue -f | postqueue -p | postqueue -s site\n",
        64,
    )
    proc = mailcheck_queue("--json", env={"MAILCHECK_POSTQUEUE": program})
    data = data_of(proc)
    assert data["source"]["listing"] == "text"
    assert data["shape"]["total"]["total"] == 64
