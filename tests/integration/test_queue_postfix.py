"""A real deferred queue: a private Postfix delivers to scripted SMTP servers on loopback
(421, 450, 451, 454, 554 replies, a TLS-required policy toward a server without STARTTLS, a
closed port...), then `qshape` and `mailcheck queue -c DIR` read the same queue.

One module fixture builds the queue (about 10 s): it injects the messages, waits until every
recipient was tried once, puts two on hold (one force-expired), reads the queue while Postfix
runs, stops Postfix, back-dates the messages over every age bucket, and drops one more message
into maildrop. The tests read what it left. Needs root and the Debian package postfix (fails
under CI=true without them, skips otherwise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from mailcheck.queue.entries import QueueName
from mailcheck.queue.live import LiveSource, explain_failure
from mailcheck.queue.shape import By, ShapeOptions, ShapeTable
from mailcheck.queue.source import read_queue
from tests.conftest import IN_CI, require_binary
from tests.integration.test_queue_cli import data_of, mailcheck_queue
from tests.lab.postfix import PostfixLab
from tests.lab.smtpd import Script, SmtpLab, always

MINUTE = 60
# Ages given to the messages: just above a bucket edge of every option set compared below,
# so the seconds the test takes never move one across an edge.
AGES = [int(m * MINUTE) for m in (2.2, 6, 11, 21, 41, 81, 161, 321, 641, 1281, 2881)]
BOUNCE_AGE = 20 * 60 * MINUTE  # a bounce 20 h old, with bounce_queue_lifetime = 1d: expiring

GMAIL_RATE = (
    "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\n"
    "450-4.2.1 prevents additional messages from being delivered. Please resend your\n"
    "450 4.2.1 message at a later time. fake.2 - gsmtp"
)
SCRIPTS = {
    "notls": Script(),
    "tls454": Script(starttls="454 4.7.0 TLS not available due to local problem"),
    "yahoo": Script(
        greeting="421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to "
        "unexpected volume or user complaints - 4.16.55.1",
        close_after_greeting=True,
    ),
    "gmail": Script(rcpt=always(GMAIL_RATE)),
    "outlook": Script(
        rcpt=always(
            "451 4.7.500 Server busy. Please try again later from [127.0.0.1]. "
            "(S77714) [Name=Protocol Filter Agent][AGT=PFA]"
        )
    ),
    "greet421": Script(
        greeting="421 4.7.0 lab.mailcheck.test Too many concurrent SMTP connections; please "
        "try again later",
        close_after_greeting=True,
    ),
    "greylist": Script(
        rcpt=lambda a: (
            f"452 4.2.2 <{a}>: Recipient address rejected: Mailbox full"
            if a.startswith("full")
            else f"450 4.2.0 <{a}>: Recipient address rejected: Greylisted, see "
            "http://postgrey.schweikert.ch/help/lab.html"
        )
    ),
    "dnsbl": Script(
        rcpt=always(
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using "
            "zen.spamhaus.org; https://www.spamhaus.org/query/ip/127.0.0.1"
        )
    ),
    "lost": Script(hang_up=True),
    "silent": Script(greeting=None),
    "dataerr": Script(data_end="451 4.3.0 Error: queue file write error"),
    "unknown": Script(
        rcpt=always(
            "550 5.1.1 <gone@unknownuser.test>: Recipient address "
            "rejected: User unknown in virtual mailbox table"
        )
    ),
}
TRANSPORTS = {  # domain: (transport, server); every other domain goes to the closed relay
    "notls.test": ("tls", "notls"),
    "tls454.test": ("tls", "tls454"),
    "yahoo-like.test": ("smtp", "yahoo"),
    "gmail-like.test": ("smtp", "gmail"),
    "outlook-like.test": ("smtp", "outlook"),
    "greet421.test": ("smtp", "greet421"),
    "greylist.test": ("smtp", "greylist"),
    "dnsbl.test": ("softsmtp", "dnsbl"),
    "lostconn.test": ("smtp", "lost"),
    "slowbanner.test": ("smtp", "silent"),
    "dataerr.test": ("smtp", "dataerr"),
    "unknownuser.test": ("smtp", "unknown"),
}
NEWS, ALERTS = "newsletter@mailcheck.test", "alerts@mailcheck.test"
MESSAGES = [
    (NEWS, ["a@notls.test", "a@greylist.test", "a@gmail-like.test", "a@refused.test"]),
    (ALERTS, ["b@notls.test"]),
    (ALERTS, ["a@tls454.test", "b@tls454.test"]),
    (NEWS, ["a@yahoo-like.test"]),
    (NEWS, ["b@yahoo-like.test", "c@yahoo-like.test"]),
    (NEWS, ["b@gmail-like.test"]),
    (NEWS, ["a@outlook-like.test"]),
    (NEWS, ["a@greet421.test"]),
    (NEWS, ["new1@greylist.test", "full1@greylist.test"]),
    ("billing@shop.example", ["gone@unknownuser.test"]),  # bounces; the bounce is deferred
    (ALERTS, ["a@dnsbl.test", "b@dnsbl.test"]),
    (ALERTS, ["a@lostconn.test"]),
    (ALERTS, ["a@slowbanner.test"]),
    (NEWS, ["a@dataerr.test"]),
    *((ALERTS, [f"x@{c}.corp.test"]) for c in "abcdef"),
    (NEWS, ["b@refused.test", "c@refused.test"]),
    (ALERTS, ["hold1@refused.test"]),
    (ALERTS, ["hold2@refused.test"]),
]
EXPECTED_MESSAGES = len(MESSAGES)  # one bounced, its bounce took its place
EXPECTED_CLASSES = {
    "notls.test": "tls-not-offered",
    "tls454.test": "starttls-refused",
    "yahoo-like.test": "rate-limited",
    "gmail-like.test": "rate-limited",
    "outlook-like.test": "rate-limited",
    "greet421.test": "greeting-421",
    "dnsbl.test": "blocklisted",
    "lostconn.test": "lost-connection",
    "slowbanner.test": "no-greeting",
    "dataerr.test": "remote-error",
    "refused.test": "connection-refused",
    "a.corp.test": "connection-refused",
    "shop.example": "connection-refused",
}


@dataclass
class QueueLab:
    """What the fixture built: the stopped instance, and what was read while it ran."""

    postfix: PostfixLab
    qshape: str
    running_json: dict[str, Any] = field(default_factory=dict)
    running_qshape: dict[str, list[int]] = field(default_factory=dict)


def qshape_rows(text: str) -> dict[str, list[int]]:
    """qshape's output as {domain: [total, bucket counts...]}."""
    rows: dict[str, list[int]] = {}
    for line in text.splitlines()[1:]:
        name, *numbers = line.split()
        rows[name] = [int(n) for n in numbers]
    return rows


def table_rows(table: ShapeTable) -> dict[str, list[int]]:
    rows = {r.domain: [r.total, *r.counts] for r in table.rows}
    rows["TOTAL"] = [table.total.total, *table.total.counts]
    return rows


def json_rows(shape: dict[str, Any]) -> dict[str, list[int]]:
    rows = {r["domain"]: [r["total"], *r["counts"]] for r in shape["rows"]}
    rows["TOTAL"] = [shape["total"]["total"], *shape["total"]["counts"]]
    return rows


def run_qshape(lab: QueueLab, *args: str) -> dict[str, list[int]]:
    proc = subprocess.run(
        [lab.qshape, "-c", str(lab.postfix.config_dir), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PATH": f"/usr/sbin:{os.environ.get('PATH', '')}"},
    )
    assert proc.returncode == 0, proc.stderr
    return qshape_rows(proc.stdout)


@pytest.fixture(scope="module")
def queue_lab() -> Iterator[QueueLab]:
    require_binary("postfix")
    qshape = require_binary("qshape")
    if os.geteuid() != 0:
        message = "a private Postfix instance needs root"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    with SmtpLab(SCRIPTS, closed=("closed",)) as smtp:
        transports = {d: f"{t}:{smtp.nexthop(s)}" for d, (t, s) in TRANSPORTS.items()}
        with PostfixLab(transports, smtp.nexthop("closed"), bounce_lifetime="1d") as postfix:
            lab = QueueLab(postfix, qshape)
            for sender, recipients in MESSAGES:
                postfix.sendmail(sender, recipients)
            listing = postfix.wait_settled(EXPECTED_MESSAGES)
            by_rcpt = {m["recipients"][0]["address"]: m for m in listing}
            postfix.postsuper("-h", by_rcpt["hold1@refused.test"]["queue_id"])
            held = by_rcpt["hold2@refused.test"]["queue_id"]
            postfix.postsuper("-h", held)
            postfix.postsuper("-e", held)
            proc = mailcheck_queue("-c", str(postfix.config_dir), "--json")
            lab.running_json = data_of(proc)
            lab.running_qshape = run_qshape(lab, "deferred")
            postfix.stop_daemons()
            ages = {}
            ordered = sorted(listing, key=lambda m: m["recipients"][0]["address"])
            for index, msg in enumerate(ordered):
                bounce = msg["sender"] == "MAILER-DAEMON"
                ages[msg["queue_id"]] = BOUNCE_AGE if bounce else AGES[index % len(AGES)]
            postfix.backdate(ages)
            postfix.sendmail(NEWS, ["late@refused.test"])  # Postfix is down: into maildrop
            yield lab


def test_the_running_queue_equals_qshape(queue_lab: QueueLab) -> None:
    data = queue_lab.running_json
    assert data["source"]["running"] is True
    assert data["source"]["postfix"]["myhostname"] == "queuelab.mailcheck.test"
    assert json_rows(data["shape"]) == queue_lab.running_qshape
    assert data["shape"]["total"]["total"] == 29  # 31 recipients, 2 of them on hold


def test_the_reasons_are_classified(queue_lab: QueueLab) -> None:
    reasons = queue_lab.running_json["reasons"]
    found = {r["domain"]: r["class"] for r in reasons if not r["domain"].startswith("greylist")}
    assert {d: found.get(d) for d in EXPECTED_CLASSES} == EXPECTED_CLASSES
    greylist = {r["class"]: r["count"] for r in reasons if r["domain"] == "greylist.test"}
    assert greylist == {"greylisted": 2, "mailbox-full": 1}
    by_class = {r["class"]: r for r in reasons}
    assert (by_class["rate-limited"]["smtp_code"], by_class["starttls-refused"]["smtp_code"]) in {
        ("421", "454"),
        ("450", "454"),
        ("451", "454"),
    }
    dnsbl = by_class["blocklisted"]
    assert (
        dnsbl["enhanced_code"],
        dnsbl["listed_ip"],
        dnsbl["dnsbl_zone"],
        dnsbl["permanent"],
    ) == ("5.7.1", "127.0.0.1", "zen.spamhaus.org", 2)
    assert by_class["tls-not-offered"]["next_step"].startswith("`mailcheck tls notls.test`")
    assert "mailcheck dnsbl 127.0.0.1 --dnsbl zen.spamhaus.org" in dnsbl["next_step"]
    providers = {r["domain"]: r["provider"] for r in reasons if r["class"] == "rate-limited"}
    assert providers == {
        "yahoo-like.test": "yahoo",
        "gmail-like.test": "gmail",
        "outlook-like.test": "microsoft",
    }


OPTION_SETS = [
    ((), ShapeOptions()),
    (("-s",), ShapeOptions(by=By.SENDER)),
    (("-p",), ShapeOptions(parents=True)),
    (("-p", "-m", "7"), ShapeOptions(parents=True, min_subdomains=7)),
    (("-t", "1", "-b", "6"), ShapeOptions(tick_minutes=1, buckets=6)),
    (("-l", "-t", "60", "-b", "8"), ShapeOptions(tick_minutes=60, buckets=8, linear=True)),
    (("-t", "60", "-b", "6"), ShapeOptions(tick_minutes=60, buckets=6)),
    (
        (
            "-b",
            "14",
        ),
        ShapeOptions(buckets=14),
    ),
]


@pytest.mark.parametrize(
    ("args", "options"), OPTION_SETS, ids=[" ".join(a) or "default" for a, _ in OPTION_SETS]
)
def test_the_aged_queue_equals_qshape(
    queue_lab: QueueLab, args: tuple[str, ...], options: ShapeOptions
) -> None:
    before = run_qshape(queue_lab, *args, "deferred")
    now = int(time.time())
    source = LiveSource(str(queue_lab.postfix.config_dir), 30, now)
    ours = table_rows(read_queue(source, now, options, (QueueName.DEFERRED,)).shape)
    after = run_qshape(queue_lab, *args, "deferred")
    assert ours in (before, after)  # qshape's clock is its own: one of the two brackets ours
    if not args:
        assert sum(1 for n in ours["TOTAL"][1:] if n) >= 8  # ages spread over the buckets


def test_the_cli_reads_the_stopped_queue(queue_lab: QueueLab) -> None:
    proc = mailcheck_queue("-c", str(queue_lab.postfix.config_dir), "--json", "--queue", "all")
    assert proc.returncode == 1  # TLS and DNSBL errors
    document_codes = set(proc.stdout.split('"code": "')[1:])
    codes = {c.split('"', 1)[0] for c in document_codes}
    assert {
        "queue.postfix-stopped",
        "queue.expiring",
        "queue.hold",
        "queue.forced-expire",
        "queue.soft-bounce",
        "queue.tls-not-offered",
        "queue.blocklisted",
    } <= codes
    data = data_of(proc)
    assert data["source"]["running"] is False
    assert data["queues"]["hold"]["messages"] == 2 and data["queues"]["maildrop"]["messages"] == 1
    assert data["summary"]["expiring"] == 1


def test_qshape_bugs_are_not_copied(queue_lab: QueueLab) -> None:
    config = str(queue_lab.postfix.config_dir)
    now = int(time.time())
    source = LiveSource(config, 30, now)
    hold = read_queue(source, now, ShapeOptions(), (QueueName.HOLD,)).shape.total.total
    maildrop = read_queue(source, now, ShapeOptions(), (QueueName.MAILDROP,)).shape.total.total
    assert (hold, maildrop) == (2, 1)
    # qshape skips the force-expired file (mode 0710) and reads no 3.x maildrop file.
    assert run_qshape(queue_lab, "hold")["TOTAL"][0] == 1
    assert run_qshape(queue_lab, "maildrop")["TOTAL"][0] == 0


def test_a_non_root_user_gets_the_cause(queue_lab: QueueLab) -> None:
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("runuser is not available")
    config = str(queue_lab.postfix.config_dir)
    proc = subprocess.run(
        [runuser, "-u", "nobody", "--", "/usr/sbin/postqueue", "-c", config, "-j"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )
    assert proc.returncode == 69 and proc.stdout == ""
    line = explain_failure(proc.returncode, proc.stderr, config, 65534)
    assert line.startswith(f"postqueue refuses -c {config} to a non-root user")
    assert "alternate_config_directories" in line
