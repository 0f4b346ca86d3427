"""The `mailcheck` command: parses options, calls the engine, picks a renderer.

Exit codes: 0 nothing at or above --fail-on; 1 something is; 2 bad usage or input;
3 the run could not complete (no resolver answered). Every non-zero exit says why in one
line on stderr.
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

from mailcheck import __version__
from mailcheck.batch.inputs import read_batch
from mailcheck.batch.session import BatchSettings, execute, previous_document
from mailcheck.checks import CHECK_ORDER, CheckName
from mailcheck.checks.dnsbl_catalogue import load_lists
from mailcheck.cli_tls import (
    CaFileOpt,
    EhloOpt,
    MtaStsPortOpt,
    NoSmtpOpt,
    SenderLevelOpt,
    SmtpPortOpt,
    SmtpTimeoutOpt,
    TranscriptOpt,
    parse_tls_target,
    tls_settings,
)
from mailcheck.dns import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DnsConfig,
    Nameserver,
    parse_nameserver,
    system_nameservers,
)
from mailcheck.engine import DEFAULT_CHECK_TIMEOUT, RunOptions, Target, parse_check_list, run_target
from mailcheck.exits import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, say
from mailcheck.model import Report, Severity
from mailcheck.postfix.cli import postfix_command, relay_command
from mailcheck.queue.cli import queue_command
from mailcheck.render import Renderer
from mailcheck.render.json import JsonRenderer
from mailcheck.render.rich import RichRenderer
from mailcheck.targets import is_ip, parse_domain, parse_ip, parse_selector

T = TypeVar("T")


app = typer.Typer(
    name="mailcheck",
    help="Why mail is not delivered, and how to fix it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class InputError(Exception):
    """Bad usage or bad input: exit code 2 with this one-line message."""


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
    timeout: float
    retries: int
    concurrency: int
    check_timeout: float
    json: bool
    fail_on: Severity
    trace: bool = False


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


@app.command()
@common_options()
def domain(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="The mail domain to check.")],
    ip: IpOpt = None,
    dkim_selector: SelectorOpt = None,
    dnsbl: DnsblOpt = None,
    dnsbl_config: DnsblConfigOpt = None,
    only: OnlyOpt = None,
    no_smtp: NoSmtpOpt = False,
    smtp_port: SmtpPortOpt = 25,
    ca_file: CaFileOpt = None,
    sender_level: SenderLevelOpt = None,
    *,
    common: CommonOptions,
) -> None:
    """Check a mail domain: every check, one report."""
    target_domain = _input(parse_domain, name)
    ips = tuple(_input(parse_ip, text) for text in ip or ())
    checks = _input(parse_check_list, only) if only else CHECK_ORDER
    target = Target(
        label=target_domain,
        domain=target_domain,
        ips=ips,
        dkim_selectors=tuple(_input(parse_selector, s) for s in dkim_selector or ()),
    )
    config = _dns_config(common)
    zones = _dnsbl_lists(dnsbl, dnsbl_config)
    tls = _input(
        lambda _: tls_settings(
            no_smtp=no_smtp, port=smtp_port, ca_file=ca_file, sender_levels=sender_level
        ),
        "",
    )
    options = RunOptions(
        checks=checks,
        check_timeout=common.check_timeout,
        trace=common.trace,
        dnsbl_zones=zones,
        dnsbl_config=dnsbl_config,
        tls=tls,
    )
    _run(target, config, options, common)


@app.command("tls")
@common_options()
def tls_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="DOMAIN|HOST:PORT",
            help="A mail domain (its MX hosts), or HOST[:PORT], [HOST]:PORT, IP (no MX lookup).",
        ),
    ],
    smtp_port: SmtpPortOpt = 25,
    ca_file: CaFileOpt = None,
    sender_level: SenderLevelOpt = None,
    ehlo: EhloOpt = None,
    smtp_timeout: SmtpTimeoutOpt = 10.0,
    transcript: TranscriptOpt = False,
    mta_sts_port: MtaStsPortOpt = 443,
    *,
    common: CommonOptions,
) -> None:
    """Probe STARTTLS, certificates, DANE and MTA-STS; name why TLS fails."""
    parsed = _input(parse_tls_target, target)
    settings = _input(
        lambda _: tls_settings(
            port=parsed.port or smtp_port,
            ca_file=ca_file,
            sender_levels=sender_level,
            ehlo=ehlo,
            step_timeout=smtp_timeout,
            transcript=transcript,
            mta_sts_port=mta_sts_port,
        ),
        "",
    )
    run_on = Target(
        label=parsed.label,
        domain=parsed.domain,
        hosts=(parsed.host,) if parsed.host else (),
        ips=(parsed.ip,) if parsed.ip else (),
    )
    config = _dns_config(common)
    options = RunOptions(
        checks=(CheckName.TLS,),
        check_timeout=common.check_timeout,
        trace=common.trace,
        tls=settings,
    )
    _run(run_on, config, options, common)


@app.command()
@common_options()
def fcrdns(
    target: Annotated[
        str,
        typer.Argument(
            metavar="IP|HOST",
            help="An IP address, or a host name (each of its addresses is checked).",
        ),
    ],
    *,
    common: CommonOptions,
) -> None:
    """Check forward-confirmed reverse DNS of an address or a host."""
    if is_ip(target):
        address = _input(parse_ip, target)
        run_on = Target(label=address, ips=(address,))
    else:
        host = _input(parse_domain, target)
        run_on = Target(label=host, hosts=(host,))
    config = _dns_config(common)
    options = RunOptions(
        checks=(CheckName.FCRDNS,), check_timeout=common.check_timeout, trace=common.trace
    )
    _run(run_on, config, options, common)


@app.command("dnsbl")
@common_options()
def dnsbl_command(
    target: Annotated[
        str,
        typer.Argument(metavar="IP|DOMAIN", help="An address, or a domain (its MX and itself)."),
    ],
    dnsbl: DnsblOpt = None,
    dnsbl_config: DnsblConfigOpt = None,
    *,
    common: CommonOptions,
) -> None:
    """Check blocklists (DNSBL) for an address, or a domain and its MX."""
    if is_ip(target):
        address = _input(parse_ip, target)
        run_on = Target(label=address, ips=(address,))
    else:
        name = _input(parse_domain, target)
        run_on = Target(label=name, domain=name)
    config = _dns_config(common)
    zones = _dnsbl_lists(dnsbl, dnsbl_config)
    options = RunOptions(
        checks=(CheckName.DNSBL,),
        check_timeout=common.check_timeout,
        trace=common.trace,
        dnsbl_zones=zones,
        dnsbl_config=dnsbl_config,
    )
    _run(run_on, config, options, common)


def _dnsbl_lists(zones: list[str] | None, config: Path | None) -> tuple[str, ...]:
    """Validate --dnsbl and --dnsbl-config before the run (a bad one is exit 2)."""
    given = tuple(zones or ())
    _input(lambda _: load_lists(config, given), "")
    return given


@app.command()
@common_options()
def spf(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="The domain whose SPF to check.")],
    ip: Annotated[
        list[str] | None,
        typer.Option(
            "--ip",
            metavar="IP",
            help="Evaluate check_host() for this client address; repeatable.",
            show_default=False,
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--sender", metavar="ADDR", help="MAIL FROM for the evaluation.", show_default=False
        ),
    ] = None,
    helo: Annotated[
        str | None,
        typer.Option(
            "--helo", metavar="NAME", help="HELO name for the evaluation.", show_default=False
        ),
    ] = None,
    *,
    common: CommonOptions,
) -> None:
    """Check a domain's SPF: lookup tree, and check_host() for --ip."""
    ips = tuple(_input(parse_ip, text) for text in ip or ())
    if ips:
        # Evaluating like a receiver: a malformed domain or sender is the RFC's result
        # (none, RFC 7208 §4.3), not a usage error.
        try:
            target_domain = parse_domain(name)
        except ValueError:
            target_domain = name.strip()
    else:
        target_domain = _input(parse_domain, name)
    target = Target(label=target_domain, domain=target_domain, ips=ips, sender=sender, helo=helo)
    config = _dns_config(common)
    options = RunOptions(
        checks=(CheckName.SPF,), check_timeout=common.check_timeout, trace=common.trace
    )
    _run(target, config, options, common)


@app.command()
@common_options()
def dkim(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="The mail domain to check.")],
    dkim_selector: SelectorOpt = None,
    *,
    common: CommonOptions,
) -> None:
    """Check a domain's DKIM keys: named selectors, or the common ones."""
    target_domain = _input(parse_domain, name)
    selectors = tuple(_input(parse_selector, s) for s in dkim_selector or ())
    target = Target(label=target_domain, domain=target_domain, dkim_selectors=selectors)
    config = _dns_config(common)
    options = RunOptions(
        checks=(CheckName.DKIM,), check_timeout=common.check_timeout, trace=common.trace
    )
    _run(target, config, options, common)


@app.command()
@common_options()
def dmarc(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="The mail domain to check.")],
    *,
    common: CommonOptions,
) -> None:
    """Check a domain's DMARC policy and its reporting."""
    target_domain = _input(parse_domain, name)
    target = Target(label=target_domain, domain=target_domain)
    config = _dns_config(common)
    options = RunOptions(
        checks=(CheckName.DMARC,), check_timeout=common.check_timeout, trace=common.trace
    )
    _run(target, config, options, common)


@app.command()
@common_options(trace=False)
def batch(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-", help="Domains, one per line, or a zone file; - for stdin."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Keep DIR/mailcheck-<UTC>.json and latest.json.",
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            metavar="N",
            min=1,
            help="Keep only the N newest reports in --out.",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            metavar="PREVIOUS.json",
            help="Report what changed (default with --out: DIR/latest.json).",
            show_default=False,
        ),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One report per line as each ends.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="Print nothing unless the exit code is 1 (for cron).")
    ] = False,
    at_once: Annotated[
        int, typer.Option("--domains-at-once", metavar="N", min=1, help="Domains checked at once.")
    ] = 25,
    dkim_selector: SelectorOpt = None,
    only: OnlyOpt = None,
    dnsbl: DnsblOpt = None,
    dnsbl_config: DnsblConfigOpt = None,
    no_smtp: NoSmtpOpt = False,
    *,
    common: CommonOptions,
) -> None:
    """Check many domains (cron): kept reports, and what changed."""
    parsed = _input(read_batch, _read_source(source))
    if not parsed.entries:
        raise InputError(f"{source}: no domain to check")
    settings = BatchSettings(
        as_json=common.json,
        jsonl=jsonl,
        out=out,
        keep=keep,
        compare=compare,
        fail_on=common.fail_on,
        quiet=quiet,
        at_once=at_once,
        dkim_selectors=tuple(_input(parse_selector, x) for x in dkim_selector or ()),
    )
    previous = _input(lambda _: previous_document(settings), "")
    checks = _input(parse_check_list, only) if only else CHECK_ORDER
    config = _dns_config(common)
    zones = _dnsbl_lists(dnsbl, dnsbl_config)
    options = RunOptions(
        checks=checks,
        check_timeout=common.check_timeout,
        dnsbl_zones=zones,
        dnsbl_config=dnsbl_config,
        tls=tls_settings(no_smtp=no_smtp),
    )
    outcome = execute(parsed, config, options, settings, previous)
    if outcome.reason:
        say(outcome.reason)
    raise typer.Exit(outcome.exit_code)


def _read_source(source: str) -> str:
    try:
        if source == "-":
            return sys.stdin.read()
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {source}: {exc}") from None


app.command("queue")(queue_command)
app.command("postfix")(common_options()(postfix_command))
app.command("relay")(common_options()(relay_command))


def _input(parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _nameservers(given: list[str] | None) -> tuple[Nameserver, ...]:
    specs = list(given or ())
    if not specs:
        specs = [s for s in re.split(r"[\s,]+", os.environ.get("MAILCHECK_NAMESERVER", "")) if s]
    if specs:
        return tuple(_input(parse_nameserver, spec) for spec in specs)
    return system_nameservers()


def _dns_config(common: CommonOptions) -> DnsConfig:
    servers = _nameservers(common.nameserver)
    if not servers:
        _incomplete("no DNS resolver configured: give --nameserver or set MAILCHECK_NAMESERVER")
    return DnsConfig(
        servers, timeout=common.timeout, retries=common.retries, concurrency=common.concurrency
    )


def _run(target: Target, config: DnsConfig, options: RunOptions, common: CommonOptions) -> None:
    report = asyncio.run(run_target(target, config, options))
    renderer: Renderer = (
        JsonRenderer(with_trace=common.trace)
        if common.json
        else RichRenderer(show_trace=common.trace)
    )
    renderer.render(report, sys.stdout)
    sys.stdout.flush()
    raise typer.Exit(_exit_code(report, common.fail_on))


def _exit_code(report: Report, fail_on: Severity) -> int:
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


def _incomplete(line: str) -> NoReturn:
    say(line)
    raise typer.Exit(EXIT_INCOMPLETE)


def _version(value: bool) -> None:
    if value:
        print(f"mailcheck {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Why mail is not delivered, and how to fix it."""


def main() -> None:
    """Entry point: run the app and turn every usage problem into one line and exit 2."""
    try:
        code = app(standalone_mode=False, prog_name="mailcheck")
    except InputError as exc:
        say(f"error: {exc}")
        code = EXIT_USAGE
    except (typer.Abort, KeyboardInterrupt):
        say("interrupted")
        code = 130
    except BrokenPipeError:
        # The reader went away (`mailcheck ... | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    except Exception as exc:
        # Typer vendors click, so its usage errors are matched by shape, not by class.
        message = getattr(exc, "format_message", None)
        if message is None or not hasattr(exc, "exit_code"):
            # A bug outside any check (those become findings): one line, never a traceback.
            say(f"internal error: {type(exc).__name__}: {exc} (please report this)")
            sys.exit(EXIT_INCOMPLETE)
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(message(), file=sys.stderr)
        else:
            say(f"error: {message()}")
        code = EXIT_USAGE
    sys.exit(code if isinstance(code, int) else EXIT_OK)
