"""The `mx` check: where mail for a domain goes, and whether those hosts exist.

gather_mx asks the DNS layer; evaluate_mx is a pure judgement of what came back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailcheck.checks.base import CheckContext, lookup_failed
from mailcheck.dns import DnsAnswer, DnsClient, Outcome
from mailcheck.model import CheckResult, FactTable, Finding, Severity, Status
from mailcheck.targets import is_ip, non_public_reason

CHECK = "mx"


@dataclass(frozen=True)
class MxHost:
    """One MX target and its address lookups."""

    preference: int
    """The MX preference (lower is tried first)."""
    host: str
    """The exchange, lower case, without the trailing dot."""
    a: DnsAnswer | None
    """The A lookup (None for a null MX or an IP literal, which are not looked up)."""
    aaaa: DnsAnswer | None
    """The AAAA lookup."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """IPv4 then IPv6 addresses of the host."""
        return tuple(
            addr
            for answer in (self.a, self.aaaa)
            if answer is not None
            for addr in answer.addresses()
        )

    @property
    def alias_chain(self) -> tuple[str, ...]:
        """CNAMEs the host name went through (it should be none, RFC 2181 §10.3)."""
        for answer in (self.a, self.aaaa):
            if answer is not None and answer.cname_chain:
                return answer.cname_chain
        return ()


@dataclass(frozen=True)
class MxObservation:
    """What DNS says about where mail for a domain goes."""

    domain: str
    """The mail domain."""
    mx: DnsAnswer
    """The MX lookup itself."""
    hosts: tuple[MxHost, ...]
    """The MX hosts in preference order; for an implicit MX, the domain itself."""
    implicit: bool
    """True when there is no MX and senders fall back to the domain's own A/AAAA."""

    @property
    def addresses(self) -> tuple[tuple[str, str], ...]:
        """Every (host, address) pair, in preference order, each address once."""
        seen: set[str] = set()
        out = []
        for host in self.hosts:
            for address in host.addresses:
                if address not in seen:
                    seen.add(address)
                    out.append((host.host, address))
        return tuple(out)


async def _resolve_host(dns: DnsClient, preference: int, host: str) -> MxHost:
    if host in ("", ".") or is_ip(host):
        return MxHost(preference, host, None, None)
    a, aaaa = await asyncio.gather(dns.query(host, "A"), dns.query(host, "AAAA"))
    return MxHost(preference, host, a, aaaa)


async def gather_mx(dns: DnsClient, domain: str) -> MxObservation:
    """Look up the MX records of `domain` and the addresses of every MX host, concurrently."""
    mx = await dns.query(domain, "MX")
    if mx.outcome is Outcome.NODATA:
        # RFC 5321 §5.1: without MX records the domain itself is the implicit MX.
        host = await _resolve_host(dns, 0, domain)
        return MxObservation(domain, mx, (host,), implicit=True)
    records = sorted(mx.mx(), key=lambda pair: (pair[0], pair[1]))
    hosts = await asyncio.gather(
        *(_resolve_host(dns, pref, name.rstrip(".") or ".") for pref, name in records)
    )
    return MxObservation(domain, mx, tuple(hosts), implicit=False)


async def observe_mx(ctx: CheckContext) -> MxObservation | None:
    """The run's MX observation, gathered once and shared by every check that needs it."""
    domain = ctx.domain
    if domain is None:
        return None
    return await ctx.shared("mx", lambda: gather_mx(ctx.dns, domain))


def evaluate_mx(obs: MxObservation) -> CheckResult:
    """Judge an MX observation (pure)."""
    findings = list(_judge_lookup(obs))
    if not findings and not obs.implicit:
        findings.extend(_judge_null_mx(obs))
    if not any(f.code.startswith("mx.null") or f.indeterminate for f in findings):
        findings.extend(_judge_hosts(obs))
        findings.extend(_judge_reachability(obs))
    data = {
        "domain": obs.domain,
        "outcome": obs.mx.outcome.value,
        "implicit": obs.implicit,
        "null_mx": _is_null_mx(obs),
        "hosts": [
            {
                "preference": h.preference,
                "host": h.host,
                "addresses": list(h.addresses),
                "cname": list(h.alias_chain),
            }
            for h in obs.hosts
        ],
    }
    rows = tuple(
        (
            str(h.preference),
            h.host + (" (implicit)" if obs.implicit else ""),
            ", ".join(h.addresses) or "-",
        )
        for h in obs.hosts
    )
    facts = FactTable(("preference", "host", "addresses"), rows) if rows else None
    return CheckResult.from_findings(CHECK, findings, data, facts)


def _is_null_mx(obs: MxObservation) -> bool:
    return any(h.host == "." for h in obs.hosts)


def _judge_lookup(obs: MxObservation) -> list[Finding]:
    mx = obs.mx
    if mx.outcome.is_failure:
        return [lookup_failed(CHECK, mx, f"where mail for {obs.domain} goes")]
    if mx.outcome is Outcome.NXDOMAIN:
        return [
            Finding(
                CHECK,
                "mx.nxdomain",
                Severity.ERROR,
                f"The domain {obs.domain} does not exist (NXDOMAIN): no mail can be delivered "
                "to it.",
                mx.evidence(),
                remedy="Check the spelling, and that the domain is registered and delegated.",
                rfc="RFC 1035 §4.1.1",
            )
        ]
    if obs.implicit:
        return _judge_implicit(obs)
    return []


def _judge_implicit(obs: MxObservation) -> list[Finding]:
    host = obs.hosts[0]
    failed = [a for a in (host.a, host.aaaa) if a is not None and a.outcome.is_failure]
    if host.addresses:
        return [
            Finding(
                CHECK,
                "mx.implicit",
                Severity.WARNING,
                f"{obs.domain} has no MX record; senders fall back to its own address "
                f"({', '.join(host.addresses)}), which is fragile and often unintended.",
                {"domain": obs.domain, "addresses": list(host.addresses)},
                remedy=(
                    f"Publish an MX record for {obs.domain} naming the host that receives its "
                    "mail, or a null MX (`MX 0 .`, RFC 7505) if it receives none."
                ),
                rfc="RFC 5321 §5.1",
            )
        ]
    if failed:
        return [lookup_failed(CHECK, a, f"whether {obs.domain} has an implicit MX") for a in failed]
    return [
        Finding(
            CHECK,
            "mx.none",
            Severity.ERROR,
            f"{obs.domain} has neither MX nor A/AAAA records: mail to it cannot be delivered.",
            {"domain": obs.domain},
            remedy=(
                f"Publish an MX record for {obs.domain}; if the domain is not meant to receive "
                "mail, publish a null MX (`MX 0 .`) so senders fail fast."
            ),
            rfc="RFC 5321 §5.1",
        )
    ]


def _judge_null_mx(obs: MxObservation) -> list[Finding]:
    if not _is_null_mx(obs):
        return []
    if len(obs.hosts) == 1 and obs.hosts[0].preference == 0:
        return [
            Finding(
                CHECK,
                "mx.null",
                Severity.INFO,
                f"{obs.domain} publishes a null MX: it declares that it accepts no mail.",
                {"domain": obs.domain},
                remedy="Nothing to do if the domain receives no mail; otherwise publish real MX.",
                rfc="RFC 7505 §3",
            )
        ]
    return [
        Finding(
            CHECK,
            "mx.null-mixed",
            Severity.ERROR,
            f"{obs.domain} mixes a null MX (`.`) with other MX records, or gives it a "
            "preference other than 0; senders may bounce mail at once.",
            {"records": [f"{h.preference} {h.host}" for h in obs.hosts]},
            remedy="Remove the `.` MX record if the domain receives mail, or every other one.",
            rfc="RFC 7505 §3",
        )
    ]


def _judge_hosts(obs: MxObservation) -> list[Finding]:
    findings: list[Finding] = []
    usable = sum(1 for h in obs.hosts if h.addresses)
    for host in obs.hosts:
        if obs.implicit:
            break
        if is_ip(host.host):
            findings.append(_ip_literal(obs, host, usable))
            continue
        if host.alias_chain:
            findings.append(
                Finding(
                    CHECK,
                    "mx.cname",
                    Severity.WARNING,
                    f"MX host {host.host} is an alias (CNAME to "
                    f"{host.alias_chain[-1].rstrip('.')}); an MX must name a host directly.",
                    {"host": host.host, "cname_chain": list(host.alias_chain)},
                    remedy=(
                        f"Point the MX record at {host.alias_chain[-1].rstrip('.')} itself, or "
                        f"replace the CNAME at {host.host} with A/AAAA records."
                    ),
                    rfc="RFC 2181 §10.3, RFC 5321 §5.1",
                )
            )
        findings.extend(_judge_host_addresses(host, usable))
    return findings


def _judge_reachability(obs: MxObservation) -> list[Finding]:
    """MX addresses no sender on the internet can reach (split-horizon DNS leaking out)."""
    unreachable = {
        (host.host, address): why
        for host in obs.hosts
        for address in host.addresses
        if (why := non_public_reason(address))
    }
    if not unreachable:
        return []
    every = len(unreachable) == len(obs.addresses)
    listed = "; ".join(f"{h} → {a} ({why})" for (h, a), why in unreachable.items())
    return [
        Finding(
            CHECK,
            "mx.private-address",
            Severity.ERROR if every else Severity.WARNING,
            f"MX addresses of {obs.domain} cannot be reached from the internet: {listed}. "
            + (
                "No sender outside your network can deliver mail."
                if every
                else "Senders waste time on them before trying the other addresses."
            ),
            {
                "addresses": [
                    {"host": h, "ip": a, "reason": why} for (h, a), why in unreachable.items()
                ]
            },
            remedy=(
                "Publish the public addresses of the MX hosts in public DNS; internal addresses "
                "belong only in your internal (split-horizon) view."
            ),
            rfc="RFC 5321 §5.1",
        )
    ]


def _ip_literal(obs: MxObservation, host: MxHost, usable: int) -> Finding:
    return Finding(
        CHECK,
        "mx.ip-literal",
        Severity.ERROR if usable == 0 else Severity.WARNING,
        f"An MX record of {obs.domain} names the IP address {host.host}; an MX must name a "
        "host, and senders look up the address as a name and fail.",
        {"host": host.host, "preference": host.preference},
        remedy=f"Create a host name with an A record for {host.host} and name it in the MX.",
        rfc="RFC 5321 §5.1, RFC 7505 §2",
    )


def _judge_host_addresses(host: MxHost, usable: int) -> list[Finding]:
    if host.addresses:
        return []
    answers = [a for a in (host.a, host.aaaa) if a is not None]
    failed = [a for a in answers if a.outcome.is_failure]
    if failed:
        return [lookup_failed(CHECK, a, f"the address of MX host {host.host}") for a in failed]
    severity = Severity.ERROR if usable == 0 else Severity.WARNING
    why = (
        "does not exist (NXDOMAIN)"
        if any(a.outcome is Outcome.NXDOMAIN for a in answers)
        else "has no A or AAAA record"
    )
    consequence = (
        "no MX host can be reached, so mail to the domain cannot be delivered"
        if usable == 0
        else "senders skip it and use the other MX hosts, after a delay"
    )
    return [
        Finding(
            CHECK,
            "mx.host-unresolvable",
            severity,
            f"MX host {host.host} {why}: {consequence}.",
            {
                "host": host.host,
                "preference": host.preference,
                "a": answers[0].outcome.value if answers else None,
                "aaaa": answers[1].outcome.value if len(answers) > 1 else None,
            },
            remedy=f"Publish A/AAAA records for {host.host}, or remove the MX record naming it.",
            rfc="RFC 5321 §5.1",
        )
    ]


class MxCheck:
    """The `mx` check."""

    name = CHECK
    description = "MX records and the addresses of every MX host"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather (shared with other checks) and judge."""
        obs = await observe_mx(ctx)
        if obs is None:
            return CheckResult(CHECK, Status.SKIPPED)
        return evaluate_mx(obs)
