"""The engine keeps a run alive when a check crashes or overruns (fakes of our own seam)."""

from __future__ import annotations

import asyncio

from mailcheck.checks import CHECKS, CheckContext, CheckName
from mailcheck.dns import DnsConfig
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import CheckResult, Status


class _Crashing:
    name = "mx"
    description = "raises"

    async def run(self, ctx: CheckContext) -> CheckResult:
        raise KeyError("boom")


class _Hanging:
    name = "mx"
    description = "never returns"

    async def run(self, ctx: CheckContext) -> CheckResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def _run(config: DnsConfig, replacement: object, timeout: float = 5.0) -> list[CheckResult]:
    registry = {**CHECKS, CheckName.MX: replacement}
    target = Target(label="good.test", domain="good.test")
    options = RunOptions(checks=(CheckName.MX, CheckName.FCRDNS), check_timeout=timeout)
    report = asyncio.run(run_target(target, config, options, registry))  # type: ignore[arg-type]
    return list(report.checks)


def test_a_crashing_check_becomes_an_internal_error(lab_config: DnsConfig) -> None:
    mx, fcrdns = _run(lab_config, _Crashing())
    assert mx.status is Status.ERROR
    assert [f.code for f in mx.findings] == ["engine.internal-error"]
    assert mx.findings[0].evidence["exception"] == "KeyError"
    assert fcrdns.status is Status.PASS  # the other check still ran (it gathers MX itself)


def test_a_hanging_check_is_cut_off(lab_config: DnsConfig) -> None:
    mx, fcrdns = _run(lab_config, _Hanging(), timeout=0.3)
    assert [f.code for f in mx.findings] == ["engine.check-timeout"]
    assert mx.status is Status.ERROR
    assert fcrdns.status is Status.PASS
