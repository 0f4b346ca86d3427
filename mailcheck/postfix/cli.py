"""`mailcheck postfix` and `mailcheck relay`: option parsing, one-line errors, rendering.

Mounted by mailcheck/cli.py. Exit codes: 0 nothing at or above --fail-on; 1 something is;
2 bad usage or bad input; 3 the configuration or the server could not be read (one line on
stderr each, mailcheck.exits).
"""

from __future__ import annotations

import ipaddress
import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from mailcheck.exits import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, fail
from mailcheck.model import CheckResult, DnsSummary, Report, Severity
from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.config import ConfigUnavailable, read_files, read_live
from mailcheck.postfix.relay import evaluate_relay, probe_relay
from mailcheck.render import Renderer
from mailcheck.render.json import JsonRenderer
from mailcheck.render.rich import RichRenderer


def _finish(target: str, result: CheckResult, started: float, as_json: bool, fail_on: str) -> None:
    try:
        threshold = Severity(fail_on)
    except ValueError:
        fail(EXIT_USAGE, f"--fail-on {fail_on!r}: use info, warning or error")
    report = Report(
        target,
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        int((time.monotonic() - started) * 1000),
        (result,),
        DnsSummary((), 0, 0),
    )
    renderer: Renderer = JsonRenderer() if as_json else RichRenderer()
    renderer.render(report, sys.stdout)
    sys.stdout.flush()
    if any(f.indeterminate for f in result.findings):
        raise typer.Exit(EXIT_INCOMPLETE)
    worst = report.worst_severity()
    raise typer.Exit(EXIT_FINDINGS if worst and worst.rank >= threshold.rank else EXIT_OK)


def parse_hostport(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT, or a bare IPv6 address; default port 25."""
    text = text.strip()
    host, port = text, "25"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else port
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST[:PORT]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not all(part.isalnum() or "-" in part for part in host.split(".")):
            raise ValueError(f"{host!r} is not a host name or address") from None
    return host, int(port)


def postfix_command(
    config_dir: Annotated[
        str | None,
        typer.Option(
            "--config-dir",
            "-c",
            metavar="DIR",
            help="Instance to read (postconf -c).",
            show_default=False,
        ),
    ] = None,
    main_cf: Annotated[
        str | None,
        typer.Option(
            "--main-cf",
            metavar="FILE",
            help="Saved main.cf (with --master-cf).",
            show_default=False,
        ),
    ] = None,
    master_cf: Annotated[
        str | None,
        typer.Option(
            "--master-cf",
            metavar="FILE",
            help="Saved master.cf (with --main-cf).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
    fail_on: Annotated[
        str, typer.Option("--fail-on", metavar="SEVERITY", help="Exit 1 at this severity.")
    ] = "error",
) -> None:
    """Audit a Postfix configuration: relay control, AUTH, submission, TLS, identity."""
    started = time.monotonic()
    if (main_cf is None) != (master_cf is None):
        fail(EXIT_USAGE, "--main-cf and --master-cf go together")
    if main_cf is not None and config_dir is not None:
        fail(EXIT_USAGE, "give either --config-dir or --main-cf/--master-cf, not both")
    try:
        if main_cf is not None and master_cf is not None:
            cfg = read_files(main_cf, master_cf)
        else:
            cfg = read_live(config_dir)
    except ConfigUnavailable as exc:
        fail(EXIT_INCOMPLETE, str(exc))
    _finish(cfg.source, evaluate_postfix(cfg), started, json_output, fail_on)


def relay_command(
    target: Annotated[str, typer.Argument(metavar="HOST[:PORT]", help="Your server (port 25).")],
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", min=0.1, help="Per SMTP step.")
    ] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
    fail_on: Annotated[
        str, typer.Option("--fail-on", metavar="SEVERITY", help="Exit 1 at this severity.")
    ] = "error",
) -> None:
    """Probe your own server: open relay on 25, STARTTLS/AUTH on 587, TLS on 465. No DATA."""
    started = time.monotonic()
    try:
        host, port = parse_hostport(target)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    result = evaluate_relay(probe_relay(host, port, timeout))
    _finish(f"{host}:{port}", result, started, json_output, fail_on)
