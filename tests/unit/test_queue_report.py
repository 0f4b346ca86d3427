"""Judging a queue: every finding code, the JSON contract (schema), the Prometheus textfile,
and the human output."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import jsonschema
import pytest

from mailcheck.model import CheckResult, DnsSummary, Finding, Report, Severity, Status
from mailcheck.queue.analysis import Lifetimes, QueueAnalyzer, QueueObservation
from mailcheck.queue.entries import QUEUE_NAMES, QueueName, SourceWarning, parse_json_line
from mailcheck.queue.probe import probe_targets, run_probes
from mailcheck.queue.prometheus import render_down, render_prometheus
from mailcheck.queue.report import evaluate_queue
from mailcheck.queue.shape import ShapeOptions
from mailcheck.queue.source import SnapshotSource, SourceInfo, read_queue
from mailcheck.render.json import report_to_json
from mailcheck.render.rich import RichRenderer
from tests.conftest import ROOT

QUEUE_FIXTURES = ROOT / "fixtures" / "queue"
NOW = 1795287469
SNAPSHOT = SourceInfo("snapshot", "queue snapshot s.jsonl", input="s.jsonl")
LIVE = SourceInfo("postqueue", "postfix queue (default instance)")
STATE_CODES = {
    "queue.empty",
    "queue.postfix-stopped",
    "queue.corrupt-line",
    "queue.clock-assumed",
    "queue.hold",
    "queue.forced-expire",
    "queue.expiring",
    "queue.soft-bounce",
}
CODE_LITERAL = re.compile(r'"(queue\.[a-z0-9-]+)"')


def schema() -> dict[str, Any]:
    """The report schema (docs/schema/report-v1.json), `queue_data` included."""
    document: dict[str, Any] = json.loads((ROOT / "docs/schema/report-v1.json").read_text())
    return document


def message(
    queue: str = "deferred",
    age: int = 600,
    reasons: tuple[str | None, ...] = ("x",),
    sender: str = "a@mailcheck.test",
    forced: bool = False,
    qid: str = "A1",
) -> str:
    recipients = [
        {"address": f"r{i}@dest.test", **({"delay_reason": r} if r is not None else {})}
        for i, r in enumerate(reasons)
    ]
    return json.dumps(
        {
            "queue_name": queue,
            "queue_id": qid,
            "arrival_time": NOW - age,
            "message_size": 1000,
            "forced_expire": forced,
            "sender": sender,
            "recipients": recipients,
        }
    )


def observe(
    *lines: str,
    lifetimes: Lifetimes | None = None,
    warnings: tuple[str, ...] = (),
    selected: tuple[QueueName, ...] = (QueueName.DEFERRED,),
) -> QueueObservation:
    analyzer = QueueAnalyzer(NOW, ShapeOptions(), selected, lifetimes)
    for number, line in enumerate(lines, 1):
        analyzer.add(parse_json_line(line, number))
    for text in warnings:
        analyzer.add(SourceWarning(text))
    return analyzer.result()


def codes(obs: QueueObservation, info: SourceInfo = LIVE, clock: str = "run") -> set[str]:
    return {f.code for f in evaluate_queue(obs, info, clock).findings}


def fresh() -> QueueObservation:
    source = SnapshotSource(str(QUEUE_FIXTURES / "fresh-postqueue-j.jsonl"), NOW)
    return read_queue(source, NOW, ShapeOptions())


def test_the_fresh_capture() -> None:
    result = evaluate_queue(fresh(), SNAPSHOT, "given")
    found = {f.code for f in result.findings}
    assert found == {
        "queue.hold",
        "queue.forced-expire",
        "queue.soft-bounce",
        "queue.rate-limited",
        "queue.connection-refused",
        "queue.greylisted",
        "queue.tls-not-offered",
        "queue.blocklisted",
        "queue.connection-timed-out",
        "queue.no-greeting",
        "queue.lost-connection",
        "queue.remote-error",
        "queue.starttls-refused",
        "queue.mailbox-full",
    }
    assert result.status is Status.FAIL
    tls = next(f for f in result.findings if f.code == "queue.tls-not-offered")
    assert tls.severity is Severity.ERROR and tls.remedy.startswith("`mailcheck tls notls.test`")
    assert tls.evidence["recipients"] == 4 and tls.evidence["domains"] == {"notls.test": 4}


def test_the_data_follows_the_contract() -> None:
    result = evaluate_queue(fresh(), SNAPSHOT, "given")
    report = Report(
        "queue snapshot s.jsonl", "2026-11-21T18:57:49Z", 3, (result,), DnsSummary((), 0, 0)
    )
    document = report_to_json(report)
    jsonschema.validate(document, schema())
    data = document["checks"][0]["data"]
    assert set(data["queues"]) == {q.value for q in QUEUE_NAMES}
    assert data["queues"]["deferred"] == {
        "messages": 58,
        "recipients": 64,
        "size_bytes": 392125,
        "oldest_seconds": 66,
        "forced_expire": 0,
    }
    assert data["shape"]["total"] == {"total": 64, "counts": [64] + [0] * 9}
    assert data["shape"]["rows"][0] == {
        "domain": "refused.test",
        "total": 9,
        "counts": [9] + [0] * 9,
        "parent": False,
    }
    tls = next(r for r in data["reasons"] if r["class"] == "tls-not-offered")
    assert (tls["domain"], tls["count"], tls["next_hop"]) == (
        "notls.test",
        4,
        "127.0.0.1[127.0.0.1]",
    )
    dnsbl = next(r for r in data["reasons"] if r["class"] == "blocklisted")
    assert (dnsbl["smtp_code"], dnsbl["enhanced_code"], dnsbl["listed_ip"], dnsbl["permanent"]) == (
        "554",
        "5.7.1",
        "127.0.0.1",
        3,
    )
    refused = [r for r in data["reasons"] if r["class"] == "connection-refused"]
    assert sum(r["suspended"] for r in refused) > 0
    assert data["summary"]["reason_counts"]["rate-limited"] == 23
    assert set(data["summary"]["reason_counts"]) == {r["class"] for r in data["reasons"]} | set(
        data["summary"]["reason_counts"]
    )


@pytest.mark.parametrize(
    ("obs", "info", "clock", "code"),
    [
        (observe(), LIVE, "run", "queue.empty"),
        (
            observe(
                message(),
                warnings=(
                    "postqueue: warning: Mail system is down -- accessing "
                    "queue directly (Connect to the Postfix showq service: "
                    "Connection refused)",
                ),
            ),
            LIVE,
            "run",
            "queue.postfix-stopped",
        ),
        (observe(message(), "{broken"), SNAPSHOT, "given", "queue.corrupt-line"),
        (observe(message()), SNAPSHOT, "assumed", "queue.clock-assumed"),
        (observe(message(queue="hold")), LIVE, "run", "queue.hold"),
        (observe(message(queue="hold", forced=True)), LIVE, "run", "queue.forced-expire"),
        (
            observe(message(sender="MAILER-DAEMON", age=80000), lifetimes=Lifetimes(432000, 86400)),
            LIVE,
            "run",
            "queue.expiring",
        ),
        (
            observe(
                message(
                    reasons=(
                        "host mx[192.0.2.1] said: 550 5.1.1 <r0@dest.test>: User "
                        "unknown (in reply to RCPT TO command)",
                    )
                )
            ),
            LIVE,
            "run",
            "queue.soft-bounce",
        ),
    ],
)
def test_state_findings(obs: QueueObservation, info: SourceInfo, clock: str, code: str) -> None:
    assert code in codes(obs, info, clock)


def test_no_state_finding_without_its_cause() -> None:
    ordinary = observe(message(age=80000), lifetimes=Lifetimes(432000, 86400))
    assert codes(ordinary) == {"queue.other"}  # not expiring: a sender's lifetime is 5 days


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("connect to mx[192.0.2.1]:25: Connection refused", "queue.connection-refused"),
        ("connect to mx[192.0.2.1]:25: Connection timed out", "queue.connection-timed-out"),
        ("connect to mx[192.0.2.1]:25: Network is unreachable", "queue.no-route"),
        (
            "conversation with mx[192.0.2.1] timed out while receiving the initial server greeting",
            "queue.no-greeting",
        ),
        (
            "lost connection with mx[192.0.2.1] while sending end of data -- message may be sent "
            "more than once",
            "queue.lost-connection",
        ),
        (
            "host mx[192.0.2.1] refused to talk to me: 421 4.3.2 Service shutting down",
            "queue.greeting-421",
        ),
        (
            "host mx[192.0.2.1] said: 421 4.7.28 rate limited (in reply to MAIL FROM command)",
            "queue.rate-limited",
        ),
        (
            "host mx[192.0.2.1] said: 451 4.7.1 Greylisting in action (in reply to RCPT TO "
            "command)",
            "queue.greylisted",
        ),
        (
            "host mx[192.0.2.1] said: 452 4.2.2 Over quota (in reply to RCPT TO command)",
            "queue.mailbox-full",
        ),
        (
            "host mx[192.0.2.1] said: 554 5.7.1 listed on bl.example (in reply to RCPT TO command)",
            "queue.blocklisted",
        ),
        ("TLS is required, but was not offered by host mx[192.0.2.1]", "queue.tls-not-offered"),
        (
            "TLS is required, but host mx[192.0.2.1] refused to start TLS: 454 4.7.0 no",
            "queue.starttls-refused",
        ),
        ("Server certificate not verified", "queue.certificate-not-verified"),
        ("Cannot start TLS: handshake failure", "queue.tls-handshake-failed"),
        (
            "Host or domain name not found. Name service error for name=dest.test type=MX: Host "
            "not found, try again",
            "queue.dns-lookup-failure",
        ),
        (
            "host mx[192.0.2.1] said: 450 4.1.1 <r0@dest.test>: Recipient address rejected: User "
            "unknown (in reply to RCPT TO command)",
            "queue.user-unknown",
        ),
        (
            "host mx[192.0.2.1] said: 451 4.6.0 Message content rejected (in reply to end of DATA "
            "command)",
            "queue.content-rejected",
        ),
        (
            "host mx[192.0.2.1] said: 451 4.3.0 Error: queue file write error (in reply to end of "
            "DATA command)",
            "queue.remote-error",
        ),
        ("mail for dest.test loops back to myself", "queue.other"),
    ],
)
def test_class_findings(text: str, code: str) -> None:
    found = codes(observe(message(reasons=(text,))))
    assert code in found and found - {code} <= {"queue.soft-bounce"}


def test_every_code_is_documented_and_tested() -> None:
    in_source = {
        code
        for path in (ROOT / "mailcheck" / "queue").glob("*.py")
        for code in CODE_LITERAL.findall(path.read_text())
    }
    assert STATE_CODES <= in_source and len(in_source) == len(STATE_CODES) + 19
    docs = (ROOT / "docs" / "findings.md").read_text()
    documented = set(re.findall(r"^### `(queue\.[a-z0-9-]+)`", docs, re.M))
    assert in_source == documented
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_queue*.py"))
    assert {c for c in in_source if f'"{c}"' not in tests} == set()


def test_the_prometheus_textfile_has_every_series() -> None:
    text = render_prometheus(observe(), "/etc/postfix-out")
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert 'mailcheck_queue_up{config_dir="/etc/postfix-out"} 1' in samples
    for queue in QUEUE_NAMES:
        assert (
            f'mailcheck_queue_messages{{config_dir="/etc/postfix-out",queue="{queue}"}} 0'
            in samples
        )
    assert sum("mailcheck_queue_reason_recipients{" in s for s in samples) == 19
    full = render_prometheus(fresh())
    assert 'mailcheck_queue_recipients{queue="deferred"} 64' in full
    assert 'mailcheck_queue_reason_recipients{class="tls-not-offered"} 4' in full
    assert render_down() == (
        "# HELP mailcheck_queue_up 1 if the queue was read.\n"
        "# TYPE mailcheck_queue_up gauge\nmailcheck_queue_up 0\n"
    )


def test_people_see_qshapes_table_then_reasons_with_next_steps() -> None:
    result = evaluate_queue(fresh(), SNAPSHOT, "given")
    report = Report(
        "queue snapshot s.jsonl", "2026-11-21T18:57:49Z", 3, (result,), DnsSummary((), 0, 0)
    )
    out = io.StringIO()
    RichRenderer(width=80).render(report, out)
    text = out.getvalue()
    table = (QUEUE_FIXTURES / "qshape" / "fresh-qshape-deferred.txt").read_text().splitlines()
    assert table[0] in text and table[1] in text  # headings and TOTAL exactly as qshape's
    assert text.index(table[1]) < text.index("tls-not-offered: 4 rcpt")
    assert "→ `mailcheck tls notls.test`" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_probe_results_show_under_the_tls_reasons() -> None:
    obs = fresh()
    assert probe_targets(obs.reasons) == ["notls.test", "tls454.test"]
    asked: list[str] = []

    async def fake_tls_check(domain: str) -> tuple[CheckResult, DnsSummary]:
        asked.append(domain)
        finding = Finding("tls", "tls.starttls-missing", Severity.ERROR, f"{domain}: no TLS.")
        return CheckResult("tls", Status.FAIL, (finding,)), DnsSummary(("127.0.0.1:53",), 2, 1, 2)

    probes, dns = run_probes(probe_targets(obs.reasons), fake_tls_check)
    assert sorted(asked) == ["notls.test", "tls454.test"]
    assert (dns.queries, dns.cache_hits, dns.nameservers) == (4, 2, ("127.0.0.1:53",))
    result = evaluate_queue(obs, SNAPSHOT, "given", probes)
    tls = next(r for r in result.data["reasons"] if r["class"] == "tls-not-offered")
    assert tls["probe"] == {"status": "fail", "codes": ["tls.starttls-missing"]}
    assert all(r["probe"] is None for r in result.data["reasons"] if r["class"] == "blocklisted")
    assert result.tree is not None
    labels = [
        leaf.label for cls in result.tree.children for g in cls.children for leaf in g.children
    ]
    assert "probe: tls fail: notls.test: no TLS. (tls.starttls-missing)" in labels
