"""`mailcheck tls`, the options of `mailcheck tls` and `mailcheck domain` that shape the tls
check, and the parsing of `mailcheck tls` targets (DOMAIN, HOST:PORT, [HOST]:PORT, IP, [V6]:PORT).

`tls_command` is mounted by mailcheck/cli.py with the shared options (`common_options`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from mailcheck.checks import CheckName
from mailcheck.checks.mta_sts_fetch import policy_context
from mailcheck.checks.tls import trusted_roots
from mailcheck.checks.tls_sender import Level
from mailcheck.checks.tls_settings import DEFAULT_STEP_TIMEOUT, TlsSettings
from mailcheck.cli_common import CommonOptions, dns_config, parse_input, run_checks
from mailcheck.engine import Target
from mailcheck.targets import is_ip, parse_domain, parse_host_port, parse_ip

NoSmtpOpt = Annotated[
    bool,
    typer.Option(
        "--no-smtp",
        envvar="MAILCHECK_NO_SMTP",
        help="Do not connect to MX hosts (DNS-only: TLSA, MTA-STS records still checked).",
    ),
]
SmtpPortOpt = Annotated[
    int,
    typer.Option("--smtp-port", metavar="PORT", min=1, max=65535, help="SMTP port to probe."),
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        metavar="FILE",
        help="Trusted root certificates (PEM) instead of the system store.",
        show_default=False,
    ),
]
SenderLevelOpt = Annotated[
    list[Level] | None,
    typer.Option(
        "--sender-level",
        metavar="LEVEL",
        help="Error when a Postfix sender at this smtp_tls_security_level (may, encrypt, "
        "dane, dane-only, verify, secure) defers; repeatable.",
        show_default=False,
    ),
]
EhloOpt = Annotated[
    str | None,
    typer.Option(
        "--ehlo",
        metavar="NAME",
        help="Name to send with EHLO (default: this host's name).",
        show_default=False,
    ),
]
SmtpTimeoutOpt = Annotated[
    float,
    typer.Option("--smtp-timeout", metavar="SECONDS", min=0.1, help="Seconds for each SMTP step."),
]
TranscriptOpt = Annotated[bool, typer.Option("--transcript", help="Show each SMTP conversation.")]
MtaStsPortOpt = Annotated[
    int,
    typer.Option(
        "--mta-sts-port",
        metavar="PORT",
        min=1,
        max=65535,
        help="HTTPS port of the MTA-STS policy host (only labs use another than 443).",
    ),
]


@dataclass(frozen=True)
class TlsTarget:
    """What `mailcheck tls` was asked to look at."""

    label: str
    """The target as the report names it."""
    domain: str | None = None
    """A mail domain: its MX hosts are probed (and MTA-STS checked)."""
    host: str | None = None
    """One host name, without MX lookup."""
    ip: str | None = None
    """One address."""
    port: int | None = None
    """A port given with the target; overrides --smtp-port."""


def parse_tls_target(text: str) -> TlsTarget:
    """Parse DOMAIN, HOST:PORT, [HOST] or [HOST]:PORT (Postfix's "no MX lookup"), IP, [V6]:PORT.

    Raises ValueError with a one-line message.
    """
    target = parse_host_port(text)
    if is_ip(target.host):
        return TlsTarget(target.host, ip=target.host, port=target.port)
    if target.bracketed or target.port is not None:
        return TlsTarget(target.host, host=target.host, port=target.port)
    return TlsTarget(target.host, domain=target.host)


def tls_settings(
    *,
    no_smtp: bool = False,
    port: int = 25,
    ca_file: Path | None = None,
    sender_levels: list[Level] | None = None,
    ehlo: str | None = None,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
    transcript: bool = False,
    mta_sts_port: int = 443,
) -> TlsSettings:
    """Build and validate the settings; raises ValueError (a bad --ca-file, --ehlo)."""
    if ca_file is not None:
        # Read now, as both readers will: a bad file is a usage error, not a finding.
        trusted_roots(ca_file)
        policy_context(ca_file)  # the MTA-STS fetch (Python's ssl wants PEM)
    if ehlo is not None:
        ehlo = parse_domain(ehlo) if not is_ip(ehlo) else f"[{parse_ip(ehlo)}]"
    return TlsSettings(
        smtp=not no_smtp,
        port=port,
        ehlo_name=ehlo or "",
        ca_file=ca_file,
        step_timeout=step_timeout,
        sender_levels=tuple(dict.fromkeys(sender_levels or ())),
        transcript=transcript,
        mta_sts_port=mta_sts_port,
    )


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
    parsed = parse_input(parse_tls_target, target)
    settings = parse_input(
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
    config = dns_config(common)
    run_checks(run_on, config, (CheckName.TLS,), common, tls=settings)
