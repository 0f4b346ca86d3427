"""Running many domains at once over one shared DNS cache."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

from mailcheck.batch.inputs import BatchEntry
from mailcheck.checks.tls_probes import ProbeCache
from mailcheck.dns import DnsClient, DnsConfig
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import Report

DEFAULT_AT_ONCE = 25


async def run_batch(
    entries: Sequence[BatchEntry],
    config: DnsConfig,
    options: RunOptions,
    at_once: int = DEFAULT_AT_ONCE,
    on_report: Callable[[int, Report], None] | None = None,
    dkim_selectors: tuple[str, ...] = (),
) -> tuple[list[Report], DnsClient]:
    """Check every entry, `at_once` domains at a time, all sharing one DNS cache.

    Reports come back in input order; `on_report(index, report)` is called as each finishes
    (for progress and streaming). DNS concurrency stays bounded by the shared client.
    `dkim_selectors` (a hosting panel's own, e.g. `default`) replace the probe of ~40 common
    selectors for every domain.
    """
    root = DnsClient(config)
    # Domains of a panel share MX hosts: probe each once for all of them.
    options = dataclasses.replace(options, probes=options.probes or ProbeCache())
    gate = asyncio.Semaphore(max(1, at_once))
    reports: list[Report | None] = [None] * len(entries)

    async def one(index: int, entry: BatchEntry) -> None:
        async with gate:
            target = Target(label=entry.domain, domain=entry.domain, dkim_selectors=dkim_selectors)
            report = await run_target(target, config, options, client=root.child())
        reports[index] = report
        if on_report is not None:
            on_report(index, report)

    await asyncio.gather(*(one(i, e) for i, e in enumerate(entries)))
    return [r for r in reports if r is not None], root
