"""The `tls` check: STARTTLS, certificates, DANE and MTA-STS of every MX host, and what a
Postfix sender at each TLS level will do with them.

The gatherer asks the DNS layer (MX, TLSA with their DNSSEC state, MTA-STS/TLS-RPT TXT) and
probes each MX address over SMTP (mailcheck.checks.tls_probe), all concurrently, one
connection per address at a time. Judging is pure and lives in the modules it calls:
tls_session (the SMTP dialogue), tls_cert (PKIX), dane (TLSA matching), tls_dns (TLSA
lookups), mta_sts (the policy), tls_sender (Postfix's outcome per level); tls_report puts
their verdicts together.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mailcheck.checks.base import CheckContext
from mailcheck.checks.mta_sts_fetch import gather_mta_sts
from mailcheck.checks.mta_sts_observation import MtaStsObservation
from mailcheck.checks.mx import observe_mx
from mailcheck.checks.tls_cert import load_roots
from mailcheck.checks.tls_dns import TlsaLookup, TlsaState, lookup_tlsa
from mailcheck.checks.tls_probe import SmtpProbe
from mailcheck.checks.tls_probes import ProbeCache
from mailcheck.checks.tls_report import HostAddress, TlsObservation, evaluate_tls
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import DnsAnswer, DnsClient
from mailcheck.model import CheckResult
from mailcheck.targets import is_ip


@dataclass(frozen=True)
class _Host:
    host: str
    addresses: tuple[str, ...]
    lookups: tuple[DnsAnswer, ...]


class TlsCheck:
    """STARTTLS, certificates, DANE, MTA-STS and TLS-RPT of every MX host."""

    name = "tls"
    description = "STARTTLS, certificates, DANE and MTA-STS of every MX host"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather, then judge with evaluate_tls."""
        return evaluate_tls(await gather_tls(ctx))


@functools.lru_cache(maxsize=4)
def trusted_roots(ca_file: Path | None) -> tuple[x509.Certificate, ...]:
    """The roots PKIX judgement trusts; read once per process (a file does not change mid-run).

    Raises ValueError for an unusable --ca-file (the CLI checks it before the run).
    """
    return load_roots(ca_file)


async def gather_tls(ctx: CheckContext) -> TlsObservation:
    """Everything the tls check looks at, gathered concurrently."""
    started: list[asyncio.Future[Any]] = []
    try:
        return await _gather(ctx, started)
    finally:
        for task in started:  # the check ran out of time: stop what it started
            task.cancel()


async def _gather(ctx: CheckContext, started: list[asyncio.Future[Any]]) -> TlsObservation:
    settings = ctx.tls
    # What needs only the domain starts at once: MTA-STS beside everything, and each MX
    # host's TLSA as soon as the MX answer is in, beside the address lookups and probes.
    sts = asyncio.ensure_future(_mta_sts(ctx, settings)) if ctx.domain is not None else None
    started += [sts] if sts is not None else []
    tlsa_tasks: dict[str, asyncio.Future[TlsaLookup | None]] = {}

    def tlsa_of(host: str) -> asyncio.Future[TlsaLookup | None]:
        if host not in tlsa_tasks:
            tlsa_tasks[host] = asyncio.ensure_future(_tlsa(ctx.dns, host, settings.port))
            started.append(tlsa_tasks[host])
        return tlsa_tasks[host]

    if ctx.domain is not None:
        early = await ctx.dns.query(ctx.domain, "MX")  # the same lookup observe_mx makes
        for _, exchange in early.mx():
            if exchange not in ("", "."):
                tlsa_of(exchange.rstrip("."))
    mx = await observe_mx(ctx)
    if mx is not None:
        hosts = [
            _Host(h.host.rstrip("."), h.addresses, tuple(a for a in (h.a, h.aaaa) if a))
            for h in mx.hosts
            if h.host not in ("", ".")
        ]
        mx_answer: DnsAnswer | None = mx.mx
    else:
        # Named hosts or addresses (`mailcheck tls HOST`); a domain's --ip addresses are
        # sending addresses for the other checks, not servers to probe.
        hosts = list(await asyncio.gather(*(_resolve(ctx.dns, h) for h in ctx.hosts)))
        hosts += [_Host(ip, (ip,), ()) for ip in ctx.ips]
        mx_answer = None
    prober = ctx.probes or ProbeCache()

    async def probe(h: _Host, ip: str) -> SmtpProbe:
        # RFC 7672 §8.1: a DANE sender's SNI is the TLSA base domain, which differs from the
        # MX host only behind a CNAME: then the probe waits for the host's TLSA lookup.
        aliased = any(a.cname_chain for a in h.lookups)
        lookup = await tlsa_of(h.host) if aliased else None
        return await prober.probe(h.host, ip, settings, sni=lookup.host if lookup else None)

    probes = await asyncio.gather(
        *(probe(h, ip) for h in hosts for ip in h.addresses if settings.smtp)
    )
    tlsa = await asyncio.gather(*(tlsa_of(h.host) for h in hosts))
    mta_sts = await sts if sts is not None else None
    # TLSA without AD: an unsigned zone, or a resolver that does not validate? Ask it for the
    # root's keys, which a validating resolver always returns with AD (RFC 4035 §3.2.3).
    unsigned = any(lu is not None and lu.state is TlsaState.UNSIGNED for lu in tlsa)
    root_keys = await ctx.dns.query(".", "DNSKEY") if unsigned else None
    by_address = {(p.host, p.ip): p for p in probes}
    addresses = tuple(
        HostAddress(h.host, ip, by_address.get((h.host, ip))) for h in hosts for ip in h.addresses
    )
    roots = trusted_roots(settings.ca_file)
    return TlsObservation(
        domain=ctx.domain,
        settings=settings,
        mx=mx_answer,
        hosts=tuple(h.host for h in hosts),
        host_lookups={h.host: h.lookups for h in hosts},
        tlsa={h.host: lu for h, lu in zip(hosts, tlsa, strict=True) if lu is not None},
        addresses=addresses,
        mta_sts=mta_sts,
        root_keys=root_keys,
        roots=roots,
    )


async def _resolve(dns: DnsClient, host: str) -> _Host:
    if is_ip(host):
        return _Host(host, (host,), ())
    a, aaaa = await asyncio.gather(dns.query(host, "A"), dns.query(host, "AAAA"))
    return _Host(host.rstrip("."), (*a.addresses(), *aaaa.addresses()), (a, aaaa))


async def _tlsa(dns: DnsClient, host: str, port: int) -> TlsaLookup | None:
    if is_ip(host):
        return None  # DANE needs a name: no TLSA owner for an address literal
    # RFC 7672 §2.2.2: an MX host reached through a CNAME chain that validated as secure has
    # its TLSA records at the fully expanded name first, then at its own name.
    for rdtype in ("A", "AAAA"):
        address = await dns.query(host, rdtype)  # the lookup the MX check makes anyway
        if address.cname_chain:
            if address.authenticated:
                expanded = await lookup_tlsa(dns, address.canonical_name.rstrip("."), port)
                if expanded.state not in (TlsaState.NONE, TlsaState.NONE_INSECURE):
                    return expanded
            break
    return await lookup_tlsa(dns, host, port)


async def _mta_sts(ctx: CheckContext, settings: TlsSettings) -> MtaStsObservation | None:
    assert ctx.domain is not None
    return await gather_mta_sts(
        ctx.dns,
        ctx.domain,
        port=settings.mta_sts_port,
        roots=settings.ca_file,
        timeout=settings.step_timeout,
    )
