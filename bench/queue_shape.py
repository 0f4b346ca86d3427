"""Benchmark `mailcheck queue` on a synthetic 100,000-message queue, and compare with qshape.

Run from the repository root: `.venv/bin/python bench/queue_shape.py` (`--help` for options).

1. Writes a `postqueue -j` snapshot of N messages (1-3 recipients each, ~2,000 domains, ages
   spread over two weeks, reasons from the captured Postfix templates with per-recipient
   addresses, so the reason memo cannot hide the classifier's cost).
2. Shapes and classifies it the way `mailcheck queue --input FILE` does: wall time, and peak
   Python memory (tracemalloc, a second run) for N and N/10 messages: bounded memory means the
   peak does not grow with N.
3. If qshape is installed (Debian package postfix), writes the same messages as Postfix queue
   files (C, T, S, R..., M, X, E records) into a scratch spool, runs `qshape -s`-less
   `qshape DIR/deferred` (an absolute queue path: no main.cf needed) and compares both the time
   and the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for mailcheck when run from a checkout

from mailcheck.queue.entries import QueueName  # noqa: E402
from mailcheck.queue.shape import ShapeOptions, ShapeTable  # noqa: E402
from mailcheck.queue.source import SnapshotSource, read_queue  # noqa: E402

NOW = int(time.time())
"""Ages are measured from the start of the bench, by mailcheck and by qshape alike."""
BOUNDARIES = [5 * 60 * 2**k for k in range(9)]
"""qshape's default bucket edges in seconds; synthetic ages keep a minute away from them."""
REASONS = (
    "connect to {h}[{ip}]:25: Connection refused",
    "delivery temporarily suspended: connect to {h}[{ip}]:25: Connection timed out",
    "host {h}[{ip}] said: 450 4.2.0 <{a}>: Recipient address rejected: Greylisted, see "
    "http://postgrey.schweikert.ch/help/{d}.html (in reply to RCPT TO command)",
    "host {h}[{ip}] said: 452 4.2.2 <{a}>: Recipient address rejected: Mailbox full (in reply "
    "to RCPT TO command)",
    "host {h}[{ip}] said: 450-4.2.1 The user you are trying to contact is receiving mail at a "
    "rate that 450-4.2.1 prevents additional messages from being delivered. fake - gsmtp (in "
    "reply to RCPT TO command)",
    "host {h}[{ip}] refused to talk to me: 421 4.7.0 [TSS04] Messages from 192.0.2.7 "
    "temporarily deferred due to unexpected volume or user complaints",
    "host {h}[{ip}] said: 554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using "
    "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.7 (in reply to RCPT TO "
    "command)",
    "TLS is required, but was not offered by host {h}[{ip}]",
    "conversation with {h}[{ip}] timed out while receiving the initial server greeting",
    "host {h}[{ip}] said: 550 5.1.1 <{a}>: Recipient address rejected: User unknown (in reply "
    "to RCPT TO command)",
)


def synthetic_messages(count: int, seed: int = 7) -> Iterator[dict[str, object]]:
    """`postqueue -j` objects of a plausible deferred queue."""
    rng = random.Random(seed)
    domains = [f"d{i}.example" if i % 10 else f"m{i}.sub{i % 7}.example" for i in range(2000)]
    for n in range(count):
        recipients = []
        for k in range(rng.choice((1, 1, 1, 2, 3))):
            domain = rng.choice(domains)
            address = f"user{n}x{k}@{domain}"
            digest = zlib.crc32(domain.encode())
            template = REASONS[digest % len(REASONS)]
            ip = f"198.51.{digest % 256}.{n % 200 + 1}"
            reason = template.format(h=f"mx.{domain}", ip=ip, a=address, d=domain)
            recipients.append({"address": address, "delay_reason": reason})
        yield {
            "queue_name": "deferred",
            "queue_id": f"{0x10000000000 + n:X}",
            "arrival_time": NOW - _age(rng),
            "message_size": rng.randint(800, 90000),
            "forced_expire": False,
            "sender": "MAILER-DAEMON" if n % 50 == 0 else f"news{n % 13}@sender.example",
            "recipients": recipients,
        }


def _age(rng: random.Random) -> int:
    """An age in seconds, most of them young, none within a minute of a bucket edge (so that
    qshape, started seconds later, puts every message in the same bucket)."""
    age = int(rng.expovariate(1 / 20000)) % (14 * 86400)
    while any(abs(age - edge) < 60 for edge in BOUNDARIES):
        age += 120
    return age


def write_snapshot(path: Path, count: int) -> None:
    """The synthetic queue as a `postqueue -j` listing."""
    with path.open("w") as out:
        for message in synthetic_messages(count):
            out.write(json.dumps(message, ensure_ascii=False) + "\n")


def shape_snapshot(path: Path) -> tuple[float, ShapeTable, int]:
    """(seconds, table, reason groups) for one run over the snapshot."""
    started = time.perf_counter()
    source = SnapshotSource(str(path), NOW)
    obs = read_queue(source, NOW, ShapeOptions(), (QueueName.DEFERRED,))
    return time.perf_counter() - started, obs.shape, len(obs.reasons)


def peak_memory(path: Path) -> int:
    """Peak bytes allocated by Python while shaping the snapshot."""
    tracemalloc.start()
    shape_snapshot(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def _record(kind: str, data: bytes) -> bytes:
    length = len(data)
    size = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        size.append(byte | (0x80 if length else 0))
        if not length:
            break
    return kind.encode() + bytes(size) + data


def write_spool(directory: Path, count: int) -> None:
    """The same messages as Postfix queue files that qshape reads (mode 0700)."""
    for message in synthetic_messages(count):
        qid = str(message["queue_id"])
        sender = str(message["sender"])
        records = [
            _record("C", b"%15d %15d %15d %15d %15d %15d" % (0, 0, 0, 0, 0, 0)),
            _record("T", b"%d 0" % int(str(message["arrival_time"]))),
            _record("S", b"" if sender == "MAILER-DAEMON" else sender.encode()),
            *(_record("R", str(r["address"]).encode()) for r in message["recipients"]),  # type: ignore[attr-defined]
            _record("M", b""),
            _record("X", b""),
            _record("E", b""),
        ]
        sub = directory / qid[-1]
        sub.mkdir(exist_ok=True)
        path = sub / qid
        path.write_bytes(b"".join(records))
        path.chmod(0o700)


def parse_qshape(text: str) -> dict[str, list[int]]:
    """qshape's rows as {domain: [total, bucket counts...]}."""
    rows: dict[str, list[int]] = {}
    for line in text.splitlines()[1:]:
        name, *numbers = line.split()
        rows[name] = [int(n) for n in numbers]
    return rows


def compare_with_qshape(count: int, table: ShapeTable, mailcheck_seconds: float) -> None:
    """Time qshape on the same queue and check the tables are equal."""
    qshape = shutil.which("qshape") or "/usr/sbin/qshape"
    if not os.access(qshape, os.X_OK):
        print("qshape: not installed (Debian package postfix); comparison skipped")
        return
    scratch = Path(tempfile.mkdtemp(prefix="mailcheck-bench-spool-"))
    try:
        deferred = scratch / "deferred"
        deferred.mkdir()
        started = time.perf_counter()
        write_spool(deferred, count)
        print(f"spool: {count} queue files written in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        proc = subprocess.run(
            [qshape, str(deferred)], capture_output=True, text=True, timeout=600, check=False
        )
        seconds = time.perf_counter() - started
        print(
            f"qshape: {seconds:.2f} s on the same queue (mailcheck {mailcheck_seconds:.2f} s: "
            f"{seconds / mailcheck_seconds:.1f}x faster)"
        )
        ours = {r.domain: [r.total, *r.counts] for r in table.rows}
        ours["TOTAL"] = [table.total.total, *table.total.counts]
        theirs = parse_qshape(proc.stdout)
        differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        verdict = "equal" if not differing else f"DIFFERENT for {differing[:5]}"
        print(f"tables: {verdict} ({len(theirs)} rows)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--no-qshape", action="store_true", help="skip the qshape comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailcheck-bench-") as tmp:
        big = Path(tmp) / "big.jsonl"
        small = Path(tmp) / "small.jsonl"
        write_snapshot(big, args.messages)
        write_snapshot(small, max(1, args.messages // 10))
        size = big.stat().st_size
        seconds, table, groups = shape_snapshot(big)
        print(
            f"mailcheck: {args.messages} messages ({size / 1e6:.1f} MB, {table.total.total} "
            f"recipients, {len(table.rows)} domains, {groups} reason groups) in {seconds:.2f} s"
        )
        peak_big, peak_small = peak_memory(big), peak_memory(small)
        print(
            f"peak Python memory: {peak_big / 1e6:.1f} MB for {args.messages} messages, "
            f"{peak_small / 1e6:.1f} MB for {args.messages // 10}"
        )
        if not args.no_qshape:
            compare_with_qshape(args.messages, table, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
