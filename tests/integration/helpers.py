"""Running the engine against the lab from tests."""

from __future__ import annotations

import asyncio

from mailcheck.checks import CHECK_ORDER, CheckName
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import DnsConfig
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import CheckResult, Report


def run_domain(
    config: DnsConfig,
    domain: str,
    ips: tuple[str, ...] = (),
    checks: tuple[CheckName, ...] = CHECK_ORDER,
) -> Report:
    """Run `mailcheck domain --no-smtp` in-process against the lab (its MX hosts are not real)."""
    target = Target(label=domain, domain=domain, ips=ips)
    options = RunOptions(checks=checks, trace=True, tls=TlsSettings(smtp=False))
    return asyncio.run(run_target(target, config, options))


def result(report: Report, check: str) -> CheckResult:
    """The result of one check in a report."""
    return next(c for c in report.checks if c.check == check)


def codes(report: Report, check: str) -> list[str]:
    """The finding codes of one check, in order."""
    return [f.code for f in result(report, check).findings]
