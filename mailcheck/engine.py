"""Runs the selected checks for one target concurrently over one shared DNS client.

A check that raises or overruns its time becomes a result with status `error` and a finding
(`engine.internal-error`, `engine.check-timeout`): one broken check never ends the run.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailcheck.checks import CHECK_ORDER, CHECKS, Check, CheckContext, CheckName
from mailcheck.checks.tls_probes import ProbeCache
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import DnsClient, DnsConfig
from mailcheck.model import CheckResult, Finding, Report, Severity, Status

DEFAULT_CHECK_TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    """What a run looks at."""

    label: str
    """The target as the report names it."""
    domain: str | None = None
    """A mail domain (for `mailcheck domain`)."""
    hosts: tuple[str, ...] = ()
    """Host names whose addresses are checked."""
    ips: tuple[str, ...] = ()
    """Addresses checked as senders."""
    dkim_selectors: tuple[str, ...] = ()
    """DKIM selectors to check instead of discovering them."""
    sender: str | None = None
    """Envelope sender for SPF evaluation."""
    helo: str | None = None
    """HELO name for SPF evaluation."""


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves."""

    checks: tuple[CheckName, ...] = CHECK_ORDER
    """The checks to run; reports list them in CHECK_ORDER whatever order is given here."""
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    """Seconds one check may take, its lookups included."""
    trace: bool = False
    """Keep every query in the report."""
    dnsbl_zones: tuple[str, ...] = ()
    """Blocklist zones replacing the default lists."""
    dnsbl_config: Path | None = None
    """A blocklist config file."""
    tls: TlsSettings = field(default_factory=TlsSettings)
    """How the tls check probes."""
    probes: ProbeCache | None = None
    """SMTP probes shared by every target that gets these options (a batch makes one)."""


async def run_target(
    target: Target,
    dns_config: DnsConfig,
    options: RunOptions,
    registry: Mapping[CheckName, Check] = CHECKS,
    client: DnsClient | None = None,
) -> Report:
    """Run the selected checks against a target and build the report.

    `client` lets several targets share one DNS cache (a batch passes `DnsClient.child()`s).
    """
    started_at = datetime.now(UTC)
    started = time.monotonic()
    client = client or DnsClient(dns_config)
    selected = [name for name in CHECK_ORDER if name in options.checks]
    ctx = CheckContext(
        dns=client,
        domain=target.domain,
        hosts=target.hosts,
        ips=target.ips,
        dkim_selectors=target.dkim_selectors,
        sender=target.sender,
        helo=target.helo,
        dnsbl_zones=options.dnsbl_zones,
        dnsbl_config=options.dnsbl_config,
        tls=options.tls,
        probes=options.probes,
        selected=frozenset(name.value for name in selected),
    )
    results = await asyncio.gather(
        *(_run_one(name, registry[name], ctx, options.check_timeout) for name in selected)
    )
    return Report(
        target=target.label,
        started_at=started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        duration_ms=round((time.monotonic() - started) * 1000),
        checks=tuple(results),
        dns=client.summary(with_trace=options.trace),
    )


async def _run_one(name: CheckName, check: Check, ctx: CheckContext, timeout: float) -> CheckResult:
    try:
        async with asyncio.timeout(timeout):
            return await check.run(ctx)
    except TimeoutError:
        return _failed(
            name,
            Finding(
                name.value,
                "engine.check-timeout",
                Severity.ERROR,
                f"The {name.value} check did not finish within {timeout:g} s; its result is "
                "unknown.",
                {"timeout_s": timeout},
                remedy="Run again with a larger --check-timeout, or look for a slow resolver.",
                indeterminate=True,
            ),
        )
    except Exception as exc:  # noqa: BLE001 - any bug in a check becomes a finding
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        return _failed(
            name,
            Finding(
                name.value,
                "engine.internal-error",
                Severity.ERROR,
                f"The {name.value} check failed with an internal error ({type(exc).__name__}: "
                f"{exc}); its result is unknown. This is a bug in mailcheck.",
                {"exception": type(exc).__name__, "detail": str(exc), "where": where},
                remedy="Please report it with the output of --json --trace.",
                indeterminate=True,
            ),
        )


def _failed(name: CheckName, finding: Finding) -> CheckResult:
    return CheckResult(name.value, Status.ERROR, (finding,))


def parse_check_list(text: str) -> tuple[CheckName, ...]:
    """Parse `--only mx,fcrdns`; raise ValueError naming the unknown check."""
    names: list[CheckName] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        try:
            names.append(CheckName(part))
        except ValueError:
            known = ", ".join(c.value for c in CHECK_ORDER)
            raise ValueError(f"unknown check {part!r} (known: {known})") from None
    if not names:
        raise ValueError("--only needs at least one check name")
    return tuple(names)
