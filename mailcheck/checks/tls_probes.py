"""The probes of one run (or one batch): each MX address probed once, one connection at a time.

A hosting panel's hundred domains often share two MX hosts: a batch hands every domain the
same ProbeCache, so each (host, SNI name, address, port) is probed once for all of them. Probes
of different names on one address wait for each other: a server should never see two of our
connections at once.
"""

from __future__ import annotations

import asyncio
import time

from mailcheck.checks.tls_probe import ProbeTimeouts, SmtpProbe, probe_smtp
from mailcheck.checks.tls_settings import TlsSettings

PROBE_DEADLINE_CAP = 25.0
"""Seconds one probe may take at most, whatever the step timeout (below --check-timeout)."""


MIN_DEADLINE = 0.05
"""Seconds a probe gets when the address's budget is spent: it stops at once, saying why."""


class ProbeCache:
    """Probes by (host, SNI name, address, port, EHLO name); create it inside the running
    event loop."""

    def __init__(self) -> None:
        self._probes: dict[tuple[str, str, str, int, str], asyncio.Future[SmtpProbe]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._budgets: dict[str, float] = {}
        self._queued: dict[str, int] = {}
        self.sent = 0
        """Probes that went on the wire (the rest were shared)."""

    async def probe(
        self, host: str, ip: str, settings: TlsSettings, sni: str | None = None
    ) -> SmtpProbe:
        """The probe of `ip` as `host` (SNI `sni`, default `host`), run once however many ask.

        The SNI name is part of the key: a server may choose its certificate by it, so an
        aliased MX host probed with its TLSA base domain is another probe.
        """
        name = host if sni is None else sni
        key = (host, name, ip, settings.port, settings.ehlo)
        pending = self._probes.get(key)
        if pending is None:
            self.sent += 1
            pending = asyncio.ensure_future(self._run(host, name, ip, settings))
            self._probes[key] = pending
        return await asyncio.shield(pending)

    async def _run(self, host: str, sni: str, ip: str, settings: TlsSettings) -> SmtpProbe:
        step = settings.step_timeout
        timeouts = ProbeTimeouts(
            connect=step, greeting=step, command=step, handshake=step, quit=min(step, 5.0)
        )
        # A whole-probe limit as well as the step limits: a tarpit costs one address its
        # result, never the check's other hosts (the check has --check-timeout in all). Names
        # queued on one address share the budget of the probe running when they came, so ten
        # names on one tarpit take one budget, not ten; an idle address starts a new one.
        if not self._queued.get(ip):
            self._budgets[ip] = time.monotonic() + min(3 * step, PROBE_DEADLINE_CAP)
        budget = self._budgets[ip]
        self._queued[ip] = self._queued.get(ip, 0) + 1
        try:
            async with self._locks.setdefault(ip, asyncio.Lock()):
                return await probe_smtp(
                    host,
                    ip,
                    settings.port,
                    helo=settings.ehlo,
                    timeouts=timeouts,
                    deadline=max(budget - time.monotonic(), MIN_DEADLINE),
                    sni=sni,
                )
        finally:
            self._queued[ip] -= 1
