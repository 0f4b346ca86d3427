"""What every command module shares: the option types, `CommonOptions` and the decorator that
gives a command the shared options, one-line input errors, the run's DNS configuration, and
running the engine on one target then printing its report with the right exit code.

Imported by mailcheck/cli.py and by the command modules it mounts (mailcheck/cli_tls.py,
mailcheck/postfix/cli.py); it imports none of them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from mailcheck.checks import CHECK_ORDER, CheckName
from mailcheck.checks.dnsbl_catalogue import load_lists
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DnsConfig,
    Nameserver,
    parse_nameserver,
    system_nameservers,
)
from mailcheck.engine import DEFAULT_CHECK_TIMEOUT, RunOptions, Target, run_target
from mailcheck.exits import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, fail, say
from mailcheck.model import Report, Severity
from mailcheck.render import Renderer
from mailcheck.render.json import JsonRenderer
from mailcheck.render.rich import RichRenderer

T = TypeVar("T")


class InputError(Exception):
    """Bad usage or bad input: exit code 2 with this one-line message (mailcheck.cli.main)."""


NameserverOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--nameserver",
        "-n",
        metavar="ADDR[:PORT]",
        help="Resolver ADDR[:PORT] or [V6]:PORT; repeatable. Default: $MAILCHECK_NAMESERVER, "
        "then /etc/resolv.conf.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="SECONDS", help="Seconds to wait for one DNS reply.", min=0.05
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--retries", metavar="N", help="Further rounds over the resolvers on failure.", min=0
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", metavar="N", help="DNS queries in flight at once.", min=1)
]
CheckTimeoutOpt = Annotated[
    float,
    typer.Option("--check-timeout", metavar="SECONDS", help="Seconds one check may take.", min=0.1),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON report.")]
TraceOpt = Annotated[bool, typer.Option("--trace", help="Include every DNS query.")]
FailOnOpt = Annotated[
    Severity,
    typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe."),
]
IpOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ip",
        metavar="IP",
        help="A sending IP address to check too; repeatable.",
        show_default=False,
    ),
]
SelectorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dkim-selector",
        metavar="SELECTOR",
        help="A DKIM selector to check (repeatable); only these are checked when given.",
        show_default=False,
    ),
]
DnsblOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dnsbl",
        metavar="ZONE",
        help="A blocklist zone to ask (repeatable); replaces the default lists.",
        show_default=False,
    ),
]
DnsblConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--dnsbl-config",
        metavar="FILE",
        envvar="MAILCHECK_DNSBL_CONFIG",
        help="Blocklist definitions (TOML) adding to or replacing the shipped lists.",
        show_default=False,
    ),
]
OnlyOpt = Annotated[
    str | None,
    typer.Option(
        "--only",
        metavar="CHECKS",
        help=f"Comma-separated checks to run ({','.join(c.value for c in CHECK_ORDER)}).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class CommonOptions:
    """The options every check command shares (resolver, limits, output)."""

    nameserver: list[str] | None
    """--nameserver, as given (parsed by `dns_config`)."""
    timeout: float
    """--timeout: seconds to wait for one DNS reply."""
    retries: int
    """--retries: further rounds over the resolvers on failure."""
    concurrency: int
    """--concurrency: DNS queries in flight at once."""
    check_timeout: float
    """--check-timeout: seconds one check may take."""
    json: bool
    """--json: print the JSON report instead of the rich one."""
    fail_on: Severity
    """--fail-on: exit 1 when a finding is at least this severe."""
    trace: bool = False
    """--trace: include every DNS query (always False where the command has no --trace)."""


_COMMON_PARAMETERS = (
    ("nameserver", NameserverOpt, None),
    ("timeout", TimeoutOpt, DEFAULT_TIMEOUT),
    ("retries", RetriesOpt, DEFAULT_RETRIES),
    ("concurrency", ConcurrencyOpt, DEFAULT_CONCURRENCY),
    ("check_timeout", CheckTimeoutOpt, DEFAULT_CHECK_TIMEOUT),
    ("json", JsonOpt, False),
    ("trace", TraceOpt, False),
    ("fail_on", FailOnOpt, Severity.ERROR),
)


def common_options(trace: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared options; it receives them as one `common: CommonOptions`.

    Typer reads a command's options from its signature, so the decorator rewrites the
    signature: the command's own parameters, then the shared ones (without --trace when the
    command has no trace to show).
    """
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in _COMMON_PARAMETERS
        if trace or name != "trace"
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> None:
            values = {p.name: kwargs.pop(p.name) for p in shared}
            command(*args, common=CommonOptions(**values), **kwargs)

        own_parameters = [p for p in own.parameters.values() if p.name != "common"]
        run.__signature__ = own.replace(parameters=own_parameters + shared)  # type: ignore[attr-defined]
        return run

    return decorate


def parse_input(parse: Callable[[str], T], text: str) -> T:
    """`parse(text)`, with its ValueError turned into an InputError (exit 2, one line)."""
    try:
        return parse(text)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def read_source(source: str) -> str:
    """The text of FILE, or of stdin for `-`; an InputError when it cannot be read."""
    try:
        if source == "-":
            return sys.stdin.read()
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {source}: {exc}") from None


def checked_dnsbl_lists(zones: list[str] | None, config: Path | None) -> tuple[str, ...]:
    """Validate --dnsbl and --dnsbl-config before the run (a bad one is exit 2)."""
    given = tuple(zones or ())
    parse_input(lambda _: load_lists(config, given), "")
    return given


def configured_nameservers(given: list[str] | None) -> tuple[Nameserver, ...]:
    """--nameserver, else $MAILCHECK_NAMESERVER, else /etc/resolv.conf; may be empty."""
    specs = list(given or ())
    if not specs:
        specs = [s for s in re.split(r"[\s,]+", os.environ.get("MAILCHECK_NAMESERVER", "")) if s]
    if specs:
        return tuple(parse_input(parse_nameserver, spec) for spec in specs)
    return system_nameservers()


def dns_config(common: CommonOptions) -> DnsConfig:
    """The run's DNS configuration; exit 3 when no resolver is configured at all."""
    servers = configured_nameservers(common.nameserver)
    if not servers:
        fail(
            EXIT_INCOMPLETE,
            "no DNS resolver configured: give --nameserver or set MAILCHECK_NAMESERVER",
        )
    return DnsConfig(
        servers, timeout=common.timeout, retries=common.retries, concurrency=common.concurrency
    )


def renderer_for(common: CommonOptions) -> Renderer:
    """JSON with --json, else rich; either with the DNS trace when --trace was given."""
    if common.json:
        return JsonRenderer(with_trace=common.trace)
    return RichRenderer(show_trace=common.trace)


def run_and_render(
    target: Target, config: DnsConfig, options: RunOptions, common: CommonOptions
) -> NoReturn:
    """Run the engine on one target, print its report, and exit with `report_exit_code`."""
    report = asyncio.run(run_target(target, config, options))
    renderer_for(common).render(report, sys.stdout)
    sys.stdout.flush()
    raise typer.Exit(report_exit_code(report, common.fail_on))


def run_checks(
    target: Target,
    config: DnsConfig,
    checks: tuple[CheckName, ...],
    common: CommonOptions,
    *,
    dnsbl_zones: tuple[str, ...] = (),
    dnsbl_config: Path | None = None,
    tls: TlsSettings | None = None,
) -> NoReturn:
    """`run_and_render` with RunOptions from the shared options plus a command's own."""
    options = RunOptions(
        checks=checks,
        check_timeout=common.check_timeout,
        trace=common.trace,
        dnsbl_zones=dnsbl_zones,
        dnsbl_config=dnsbl_config,
        tls=tls or TlsSettings(),
    )
    run_and_render(target, config, options, common)


def report_exit_code(report: Report, fail_on: Severity) -> int:
    """3 when no resolver answered, 1 at or above --fail-on, else 0; non-zero says why."""
    if report.dns.unanswered:
        servers = ", ".join(report.dns.nameservers)
        say(f"no DNS resolver answered (asked {servers}); the results above are unknown")
        return EXIT_INCOMPLETE
    worst = report.worst_severity()
    if worst is not None and worst.rank >= fail_on.rank:
        count = sum(1 for c in report.checks for f in c.findings if f.severity.rank >= fail_on.rank)
        say(f"{report.target}: {count} finding(s) at or above {fail_on.value}")
        return EXIT_FINDINGS
    return EXIT_OK
