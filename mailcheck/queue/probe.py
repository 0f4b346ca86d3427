"""`mailcheck queue --probe`: run the tls check for the top TLS-deferred destinations.

The queue says *that* TLS failed; the tls check says *why* (no STARTTLS at all, STARTTLS
hidden from a blocklisted IP, a broken certificate...).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from mailcheck.checks import CheckName
from mailcheck.dns import DnsConfig
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import CheckResult, DnsSummary
from mailcheck.queue.analysis import ReasonGroup
from mailcheck.queue.reasons import TLS_CLASSES

PROBE_DOMAINS = 3
"""How many destinations --probe checks (the ones with the most TLS-deferred recipients)."""

Prober = Callable[[str], Awaitable[tuple[CheckResult, DnsSummary]]]
"""Runs the tls check for one domain."""


def probe_targets(groups: Sequence[ReasonGroup], limit: int = PROBE_DOMAINS) -> list[str]:
    """The domains with the most recipients deferred for a TLS reason, most first."""
    counts: Counter[str] = Counter()
    for group in groups:
        if group.reason_class in TLS_CLASSES:
            counts[group.domain] += group.recipients
    return [domain for domain, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


def engine_prober(config: DnsConfig, timeout: float) -> Prober:
    """A prober that runs the tls check through the engine, as `mailcheck tls DOMAIN` would."""

    async def run(domain: str) -> tuple[CheckResult, DnsSummary]:
        target = Target(label=domain, domain=domain)
        report = await run_target(
            target, config, RunOptions(checks=(CheckName.TLS,), check_timeout=timeout)
        )
        return report.checks[0], report.dns

    return run


async def _probe_all(
    domains: Sequence[str], prober: Prober
) -> list[tuple[CheckResult, DnsSummary]]:
    return list(await asyncio.gather(*(prober(d) for d in domains)))


def run_probes(domains: Sequence[str], prober: Prober) -> tuple[dict[str, CheckResult], DnsSummary]:
    """Probe every domain concurrently; the results by domain and the DNS totals."""
    outcomes = asyncio.run(_probe_all(domains, prober)) if domains else []
    results = {d: result for d, (result, _) in zip(domains, outcomes, strict=True)}
    servers: dict[str, None] = {}
    for _, dns in outcomes:
        servers.update(dict.fromkeys(dns.nameservers))
    summary = DnsSummary(
        nameservers=tuple(servers),
        queries=sum(dns.queries for _, dns in outcomes),
        cache_hits=sum(dns.cache_hits for _, dns in outcomes),
        replies=sum(dns.replies for _, dns in outcomes),
    )
    return results, summary
