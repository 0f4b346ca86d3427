"""`mailcheck postfix` and `mailcheck relay`: option parsing, one-line errors, rendering.

Mounted by mailcheck/cli.py with the shared options (`common_options`: --nameserver,
--timeout, --retries, --concurrency, --check-timeout, --json, --trace, --fail-on), whose
DnsConfig is built by mailcheck.cli_common's `dns_config`, as for every check command. Exit
codes: 0 nothing at or above --fail-on; 1 something is; 2 bad usage or bad input; 3 the
configuration or the server could not be read, or something could not be determined (one
line on stderr each, mailcheck.exits).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from mailcheck.cli_common import CommonOptions, configured_nameservers, dns_config, renderer_for
from mailcheck.dns import DnsClient
from mailcheck.exits import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, fail, say
from mailcheck.model import CheckResult, DnsSummary, Report
from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.config import ConfigUnavailable, read_files, read_live
from mailcheck.postfix.host import gather_host
from mailcheck.postfix.relay import evaluate_relay, probe_relay
from mailcheck.targets import is_ip, parse_host_port, parse_ip

DEFAULT_SMTP_TIMEOUT = 10.0
NO_DNS = DnsSummary((), 0, 0)


def _run_dns(common: CommonOptions, required: bool) -> DnsClient | None:
    """The run's DNS client, built from the shared options exactly as every check command
    builds it (`dns_config`); None when no resolver is configured and the command can do
    without one (required=False)."""
    if not required and not configured_nameservers(common.nameserver):
        return None
    return DnsClient(dns_config(common))


def _finish(
    target: str, result: CheckResult, started: float, common: CommonOptions, dns: DnsSummary
) -> None:
    report = Report(
        target,
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        int((time.monotonic() - started) * 1000),
        (result,),
        dns,
    )
    renderer_for(common).render(report, sys.stdout)
    sys.stdout.flush()
    if dns.unanswered:
        say(f"no DNS resolver answered (asked {', '.join(dns.nameservers)}); see the findings")
        raise typer.Exit(EXIT_INCOMPLETE)
    unknown = [f for f in result.findings if f.indeterminate]
    if unknown:
        say(f"{target}: could not determine everything ({unknown[0].code}); see the findings")
        raise typer.Exit(EXIT_INCOMPLETE)
    worst = report.worst_severity()
    if worst is not None and worst.rank >= common.fail_on.rank:
        count = sum(1 for f in result.findings if f.severity.rank >= common.fail_on.rank)
        say(f"{target}: {count} finding(s) at or above {common.fail_on.value}")
        raise typer.Exit(EXIT_FINDINGS)
    raise typer.Exit(EXIT_OK)


def parse_hostport(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT, or a bare IPv6 address; default port 25. HOST is an address
    (canonical) or a fully qualified name (mailcheck.targets' rules)."""
    target = parse_host_port(text)
    return target.host, target.port or 25


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
    ip: Annotated[
        list[str] | None,
        typer.Option(
            "--ip",
            metavar="IP",
            help="The public address mail leaves from (behind NAT); default smtp_bind_address, "
            "else this host's default-route address. Repeatable.",
            show_default=False,
        ),
    ] = None,
    *,
    common: CommonOptions,
) -> None:
    """Audit a Postfix configuration: relay, AUTH, TLS, identity."""
    started = time.monotonic()
    if (main_cf is None) != (master_cf is None):
        fail(EXIT_USAGE, "--main-cf and --master-cf go together")
    if main_cf is not None and config_dir is not None:
        fail(EXIT_USAGE, "give either --config-dir or --main-cf/--master-cf, not both")
    if ip and main_cf is not None:
        fail(EXIT_USAGE, "--ip checks the live configuration's identity, not saved files")
    try:
        given = tuple(parse_ip(text) for text in ip or ())
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    try:
        if main_cf is not None and master_cf is not None:
            cfg = read_files(main_cf, master_cf)
        else:
            cfg = read_live(config_dir)
    except ConfigUnavailable as exc:
        fail(EXIT_INCOMPLETE, str(exc))
    host, dns = None, NO_DNS
    if cfg.live:
        # Only the live configuration is this host's: its resolv.conf and its addresses.
        client = _run_dns(common, required=False)
        host = gather_host(cfg, client, given, common.check_timeout)
        dns = client.summary(with_trace=common.trace) if client else NO_DNS
    _finish(cfg.source, evaluate_postfix(cfg, host), started, common, dns)


def relay_command(
    target: Annotated[str, typer.Argument(metavar="HOST[:PORT]", help="Your server (port 25).")],
    smtp_timeout: Annotated[
        float,
        typer.Option(
            "--smtp-timeout", metavar="SECONDS", min=0.1, help="Seconds to wait for one SMTP step."
        ),
    ] = DEFAULT_SMTP_TIMEOUT,
    *,
    common: CommonOptions,
) -> None:
    """Probe your own server: open relay, STARTTLS, AUTH (never DATA).

    Port 25: does it relay for a stranger? 587: STARTTLS, and AUTH only after it. 465:
    implicit TLS (RFC 8314).
    """
    started = time.monotonic()
    try:
        host, port = parse_hostport(target)
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))
    # A name is resolved by mailcheck's DNS layer with the run's options, never the OS resolver.
    client = None if is_ip(host) else _run_dns(common, required=True)
    result = evaluate_relay(asyncio.run(probe_relay(host, port, smtp_timeout, dns=client)))
    dns = client.summary(with_trace=common.trace) if client else NO_DNS
    _finish(f"{host}:{port}", result, started, common, dns)
