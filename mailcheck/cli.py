"""The `mailcheck` command: parses options, calls the engine, picks a renderer.

Exit codes: 0 nothing at or above --fail-on; 1 something is; 2 bad usage or input;
3 the run could not complete (no resolver answered). Every non-zero exit says why in one
line on stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mailcheck import __version__
from mailcheck.batch.inputs import read_batch
from mailcheck.batch.session import BatchSettings, execute, previous_document
from mailcheck.checks import CHECK_ORDER, CheckName
from mailcheck.cli_common import (
    CommonOptions,
    DnsblConfigOpt,
    DnsblOpt,
    InputError,
    IpOpt,
    OnlyOpt,
    SelectorOpt,
    checked_dnsbl_lists,
    common_options,
    dns_config,
    parse_input,
    read_source,
    run_checks,
)
from mailcheck.cli_tls import (
    CaFileOpt,
    NoSmtpOpt,
    SenderLevelOpt,
    SmtpPortOpt,
    tls_command,
    tls_settings,
)
from mailcheck.engine import RunOptions, Target, parse_check_list
from mailcheck.exits import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, say
from mailcheck.postfix.cli import postfix_command, relay_command
from mailcheck.queue.cli import queue_command
from mailcheck.targets import is_ip, parse_domain, parse_ip, parse_selector

app = typer.Typer(
    name="mailcheck",
    help="Why mail is not delivered, and how to fix it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
    target_domain = parse_input(parse_domain, name)
    ips = tuple(parse_input(parse_ip, text) for text in ip or ())
    checks = parse_input(parse_check_list, only) if only else CHECK_ORDER
    target = Target(
        label=target_domain,
        domain=target_domain,
        ips=ips,
        dkim_selectors=tuple(parse_input(parse_selector, s) for s in dkim_selector or ()),
    )
    config = dns_config(common)
    zones = checked_dnsbl_lists(dnsbl, dnsbl_config)
    tls = parse_input(
        lambda _: tls_settings(
            no_smtp=no_smtp, port=smtp_port, ca_file=ca_file, sender_levels=sender_level
        ),
        "",
    )
    run_checks(
        target, config, checks, common, dnsbl_zones=zones, dnsbl_config=dnsbl_config, tls=tls
    )


app.command("tls")(common_options()(tls_command))


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
        address = parse_input(parse_ip, target)
        run_on = Target(label=address, ips=(address,))
    else:
        host = parse_input(parse_domain, target)
        run_on = Target(label=host, hosts=(host,))
    config = dns_config(common)
    run_checks(run_on, config, (CheckName.FCRDNS,), common)


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
        address = parse_input(parse_ip, target)
        run_on = Target(label=address, ips=(address,))
    else:
        name = parse_input(parse_domain, target)
        run_on = Target(label=name, domain=name)
    config = dns_config(common)
    zones = checked_dnsbl_lists(dnsbl, dnsbl_config)
    run_checks(
        run_on, config, (CheckName.DNSBL,), common, dnsbl_zones=zones, dnsbl_config=dnsbl_config
    )


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
    ips = tuple(parse_input(parse_ip, text) for text in ip or ())
    if ips:
        # Evaluating like a receiver: a malformed domain or sender is the RFC's result
        # (none, RFC 7208 §4.3), not a usage error.
        try:
            target_domain = parse_domain(name)
        except ValueError:
            target_domain = name.strip()
    else:
        target_domain = parse_input(parse_domain, name)
    target = Target(label=target_domain, domain=target_domain, ips=ips, sender=sender, helo=helo)
    config = dns_config(common)
    run_checks(target, config, (CheckName.SPF,), common)


@app.command()
@common_options()
def dkim(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="The mail domain to check.")],
    dkim_selector: SelectorOpt = None,
    *,
    common: CommonOptions,
) -> None:
    """Check a domain's DKIM keys: named selectors, or the common ones."""
    target_domain = parse_input(parse_domain, name)
    selectors = tuple(parse_input(parse_selector, s) for s in dkim_selector or ())
    target = Target(label=target_domain, domain=target_domain, dkim_selectors=selectors)
    config = dns_config(common)
    run_checks(target, config, (CheckName.DKIM,), common)


@app.command()
@common_options()
def dmarc(
    name: Annotated[str, typer.Argument(metavar="DOMAIN", help="The mail domain to check.")],
    *,
    common: CommonOptions,
) -> None:
    """Check a domain's DMARC policy and its reporting."""
    target_domain = parse_input(parse_domain, name)
    target = Target(label=target_domain, domain=target_domain)
    config = dns_config(common)
    run_checks(target, config, (CheckName.DMARC,), common)


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
    parsed = parse_input(read_batch, read_source(source))
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
        dkim_selectors=tuple(parse_input(parse_selector, x) for x in dkim_selector or ()),
    )
    previous = parse_input(lambda _: previous_document(settings), "")
    checks = parse_input(parse_check_list, only) if only else CHECK_ORDER
    config = dns_config(common)
    zones = checked_dnsbl_lists(dnsbl, dnsbl_config)
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


app.command("queue")(queue_command)
app.command("postfix")(common_options()(postfix_command))
app.command("relay")(common_options()(relay_command))


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
