"""`mailcheck queue`: parses options, reads the queue, judges it, renders it.

Mounted by mailcheck/cli.py as `app.command("queue")(queue_command)`. Exit codes as for the
other commands: 0 nothing at or above --fail-on; 1 something is; 2 bad usage or bad input
(also after rendering, when lines of a snapshot had to be skipped); 3 the queue could not be
read. Every non-zero exit says why in one line on stderr (mailcheck.exits).
"""

from __future__ import annotations

import enum
import io
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mailcheck.atomic import write_text_atomic
from mailcheck.dns import DnsConfig, parse_nameserver, system_nameservers
from mailcheck.exits import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, fail, say
from mailcheck.model import CheckResult, DnsSummary, Report, Severity
from mailcheck.queue.analysis import QueueObservation
from mailcheck.queue.entries import QUEUE_NAMES, QueueName
from mailcheck.queue.live import LiveSource
from mailcheck.queue.prometheus import render_down, render_prometheus
from mailcheck.queue.report import evaluate_queue
from mailcheck.queue.shape import By, ShapeOptions
from mailcheck.queue.source import (
    QueueInputError,
    QueueSource,
    QueueUnavailable,
    SnapshotSource,
    read_queue,
)
from mailcheck.render import Renderer
from mailcheck.render.json import JsonRenderer
from mailcheck.render.rich import RichRenderer

DEFAULT_TIMEOUT = 120.0
PROBE_CHECK_TIMEOUT = 30.0


class OutputFormat(enum.StrEnum):
    """How the result is printed."""

    RICH = "rich"
    JSON = "json"
    PROMETHEUS = "prometheus"


def parse_queues(names: list[str] | None) -> tuple[QueueName, ...]:
    """--queue values (repeatable, comma-separated, `all`) in showq's order; default deferred."""
    wanted: set[QueueName] = set()
    for part in (p.strip().lower() for n in names or () for p in n.split(",")):
        if part == "all":
            wanted.update(QUEUE_NAMES)
        elif part:
            try:
                wanted.add(QueueName(part))
            except ValueError:
                known = ", ".join(q.value for q in QUEUE_NAMES)
                raise ValueError(f"unknown queue {part!r} (known: {known}, all)") from None
    return tuple(q for q in QUEUE_NAMES if q in wanted) or (QueueName.DEFERRED,)


def parse_now(text: str) -> int:
    """--now: epoch seconds, or ISO 8601 (a time without a zone is UTC)."""
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", text):
        return int(float(text))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--now {text!r} is neither epoch seconds nor ISO 8601 (2026-11-21T18:57:48Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def write_atomically(path: str, text: str) -> None:
    """Write a file so that readers (node-exporter) never see half of it."""
    write_text_atomic(Path(path), text)


def _probe(
    obs: QueueObservation, nameservers: list[str] | None
) -> tuple[dict[str, CheckResult], DnsSummary]:
    from mailcheck.queue.probe import engine_prober, probe_targets, run_probes

    try:
        servers = tuple(parse_nameserver(s) for s in nameservers or ()) or system_nameservers()
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    if not servers:
        fail(EXIT_INCOMPLETE, "--probe: no DNS resolver configured: give --nameserver")
    prober = engine_prober(DnsConfig(servers), PROBE_CHECK_TIMEOUT)
    return run_probes(probe_targets(obs.reasons), prober)


def _emit(text_or_render: str | Report, fmt: OutputFormat, output: str | None) -> None:
    if isinstance(text_or_render, str):
        text = text_or_render
    else:
        renderer: Renderer = JsonRenderer() if fmt is OutputFormat.JSON else RichRenderer()
        if output is None:
            renderer.render(text_or_render, sys.stdout)
            sys.stdout.flush()
            return
        text = _rendered(renderer, text_or_render)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_atomically(output, text)
        except OSError as exc:
            fail(EXIT_INCOMPLETE, f"cannot write {output}: {exc.strerror or exc}")


def _rendered(renderer: Renderer, report: Report) -> str:
    buffer = io.StringIO()
    renderer.render(report, buffer)
    return buffer.getvalue()


def queue_command(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="NAME",
            help="Queue to shape and classify: deferred (default), active, incoming, hold, "
            "maildrop or all; repeatable.",
            show_default=False,
        ),
    ] = None,
    config_dir: Annotated[
        str | None,
        typer.Option(
            "--config-dir",
            "-c",
            metavar="DIR",
            help="Configuration directory of the Postfix instance (postqueue -c).",
            show_default=False,
        ),
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="FILE",
            help="Read a saved `postqueue -j` listing (- for stdin) instead of the live queue.",
            show_default=False,
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="TIME",
            help="With --input: when the listing was captured (ISO 8601 or epoch seconds).",
            show_default=False,
        ),
    ] = None,
    tick: Annotated[
        float,
        typer.Option("--tick", "-t", metavar="MINUTES", help="First age bucket (qshape -t)."),
    ] = 5.0,
    buckets: Annotated[
        int,
        typer.Option("--buckets", "-b", metavar="N", min=1, help="Age buckets (qshape -b)."),
    ] = 10,
    linear: Annotated[
        bool, typer.Option("--linear", "-l", help="Buckets of equal width (qshape -l).")
    ] = False,
    parents: Annotated[
        bool, typer.Option("--parents", "-p", help="Add parent-domain rows (qshape -p).")
    ] = False,
    min_subdomains: Annotated[
        int,
        typer.Option(
            "--min-subdomains",
            "-m",
            metavar="N",
            min=1,
            help="Show a parent row with at least N subdomains (qshape -m).",
        ),
    ] = 5,
    top: Annotated[
        int,
        typer.Option("--top", "-n", metavar="N", min=0, help="Only the N largest domains; 0: all."),
    ] = 0,
    by: Annotated[
        By,
        typer.Option(
            "--by", help="Count recipients by domain, or messages by sender domain (qshape -s)."
        ),
    ] = By.RECIPIENT,
    senders: Annotated[
        bool, typer.Option("--senders", "-s", help="Same as --by sender (qshape -s).")
    ] = False,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output: rich, json or prometheus.")
    ] = OutputFormat.RICH,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE atomically (e.g. node-exporter's textfile directory).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="SECONDS", min=1, help="Seconds postqueue may take."),
    ] = DEFAULT_TIMEOUT,
    probe: Annotated[
        bool,
        typer.Option("--probe", help="Run the tls check for the top TLS-deferred destinations."),
    ] = False,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            "--nameserver",
            metavar="ADDR[:PORT]",
            help="Resolver for --probe; repeatable. Default: /etc/resolv.conf.",
            show_default=False,
        ),
    ] = None,
    fail_on: Annotated[
        Severity, typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe.")
    ] = Severity.ERROR,
) -> None:
    """Postfix queue: qshape's table, and why mail waits."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    fmt = OutputFormat.JSON if as_json else output_format
    try:
        selected = parse_queues(queue)
        given_now = parse_now(now) if now is not None else None
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    if tick <= 0:
        fail(EXIT_USAGE, f"--tick must be above 0 minutes, not {tick:g}")
    if input_file is not None and config_dir is not None:
        fail(EXIT_USAGE, "give either --input (a saved listing) or -c DIR (a live instance)")
    if given_now is not None and input_file is None:
        fail(EXIT_USAGE, "--now only applies to --input: the live queue is read now")
    clock_now = int(time.time())
    when = given_now if given_now is not None else clock_now
    clock = "given" if given_now is not None else ("assumed" if input_file else "run")
    by = By.SENDER if senders else by
    options = ShapeOptions(tick, buckets, linear, parents, min_subdomains, by, top)
    source: QueueSource = (
        SnapshotSource(input_file, when)
        if input_file is not None
        else LiveSource(config_dir, timeout, when)
    )
    try:
        obs = read_queue(source, when, options, selected)
    except QueueInputError as exc:
        fail(EXIT_USAGE, str(exc))
    except QueueUnavailable as exc:
        if fmt is OutputFormat.PROMETHEUS and output is not None:
            _emit(render_down(config_dir or ""), fmt, output)
        fail(EXIT_INCOMPLETE, str(exc))
    probes, dns = _probe(obs, nameserver) if probe else ({}, DnsSummary((), 0, 0))
    result = evaluate_queue(obs, source.info, clock, probes)
    if fmt is OutputFormat.PROMETHEUS:
        _emit(render_prometheus(obs, config_dir or ""), fmt, output)
    else:
        report = Report(
            target=source.info.label,
            started_at=started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            duration_ms=round((time.monotonic() - started) * 1000),
            checks=(result, *probes.values()),
            dns=dns,
        )
        _emit(report, fmt, output)
    raise typer.Exit(_exit_code(obs, result, source, fail_on))


def _exit_code(
    obs: QueueObservation, result: CheckResult, source: QueueSource, fail_on: Severity
) -> int:
    if obs.skipped_count:
        first = obs.skipped[0]
        name = source.info.input or "the listing"
        say(
            f"warning: skipped {obs.skipped_count} line(s) of {name} that are not queue entries "
            f"(line {first.line}: {first.problem}); the numbers leave them out; capture it "
            "again with `postqueue -j > FILE`"
        )
        return EXIT_USAGE
    worst = [f for f in result.findings if f.severity.rank >= fail_on.rank]
    if worst:
        say(f"queue: {len(worst)} finding(s) at or above {fail_on.value}")
        return EXIT_FINDINGS
    return EXIT_OK
