"""The `fcrdns` check: forward-confirmed reverse DNS of every MX address and sending address.

RFC 8601 §3 ("iprev"): with I the address, N the PTR names of I and L the union of the
A/AAAA addresses of the names in N, the test passes when I is in L. Gmail, Yahoo and
Outlook.com refuse or throttle mail from addresses that fail it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from mailcheck.checks.base import CheckContext, lookup_failed
from mailcheck.checks.generic_ptr import generic_reason
from mailcheck.checks.mx import observe_mx
from mailcheck.dns import DnsAnswer, DnsClient, reverse_name
from mailcheck.model import CheckResult, FactTable, Finding, Severity, Status
from mailcheck.targets import non_public_reason

CHECK = "fcrdns"
MAX_PTR_NAMES = 10  # RFC 8601 §3 asks for a limit; 10 follows SPF's (RFC 7208 §4.6.4)


@dataclass(frozen=True)
class ForwardLookup:
    """One PTR name and the lookup of its addresses in the IP's family."""

    name: str
    """The PTR target, absolute, lower case."""
    answer: DnsAnswer
    """The A (IPv4) or AAAA (IPv6) lookup of the name."""


@dataclass(frozen=True)
class IpObservation:
    """What reverse and forward DNS say about one address."""

    ip: str
    """The address, canonical."""
    sources: tuple[str, ...]
    """Why it was checked: `mx <host>`, `--ip`, `host <name>`."""
    ptr: DnsAnswer
    """The PTR lookup."""
    forward: tuple[ForwardLookup, ...]
    """Forward lookups of the first MAX_PTR_NAMES PTR names."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every PTR name, sorted (answer order is arbitrary)."""
        return tuple(sorted(self.ptr.targets()))

    @property
    def confirming(self) -> tuple[str, ...]:
        """PTR names whose forward lookup contains the address."""
        me = ipaddress.ip_address(self.ip)
        return tuple(
            f.name
            for f in self.forward
            if any(ipaddress.ip_address(a) == me for a in f.answer.addresses())
        )


async def _observe_ip(dns: DnsClient, ip: str, sources: tuple[str, ...]) -> IpObservation:
    ptr = await dns.query(reverse_name(ip), "PTR")
    family = "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
    names = sorted(ptr.targets())[:MAX_PTR_NAMES]
    answers = await asyncio.gather(*(dns.query(n, family) for n in names))
    forward = tuple(ForwardLookup(n, a) for n, a in zip(names, answers, strict=True))
    return IpObservation(ip, sources, ptr, forward)


async def gather_fcrdns(ctx: CheckContext) -> tuple[tuple[IpObservation, ...], list[Finding]]:
    """Collect the addresses to check (MX, --ip, named hosts) and look each one up."""
    sources: dict[str, list[str]] = {}
    findings: list[Finding] = []
    for ip in ctx.ips:
        sources.setdefault(ip, []).append("--ip")
    mx = await observe_mx(ctx)
    if mx is not None and mx.mx.outcome.is_failure and not ctx.ips:
        findings.append(
            Finding(
                CHECK,
                "fcrdns.no-addresses",
                Severity.INFO,
                f"The MX lookup of {mx.domain} failed, so there is no MX address to check "
                "(see the mx check).",
                {"domain": mx.domain, "mx_outcome": mx.mx.outcome.value},
            )
        )
    if mx is not None:
        for host, address in mx.addresses:
            sources.setdefault(address, []).append(f"mx {host}")
    hosts = await asyncio.gather(
        *(asyncio.gather(ctx.dns.query(h, "A"), ctx.dns.query(h, "AAAA")) for h in ctx.hosts)
    )
    for host, answers in zip(ctx.hosts, hosts, strict=True):
        failures = [
            lookup_failed(CHECK, a, f"the addresses of {host}")
            for a in answers
            if a.outcome.is_failure
        ]
        findings.extend(failures)
        for answer in answers:
            for address in answer.addresses():
                sources.setdefault(address, []).append(f"host {host}")
        if not any(a.addresses() for a in answers) and not failures:
            findings.append(
                Finding(
                    CHECK,
                    "fcrdns.host-unresolvable",
                    Severity.ERROR,
                    f"{host} has no A or AAAA record, so there is no address to check.",
                    {"host": host},
                    remedy=f"Check the name, or publish A/AAAA records for {host}.",
                )
            )
    public: dict[str, list[str]] = {}
    for ip, src in sources.items():
        why = non_public_reason(ip)
        if why is None:
            public[ip] = src
            continue
        findings.append(
            Finding(
                CHECK,
                "fcrdns.non-public-address",
                Severity.INFO,
                f"{ip} is {why}: receivers on the internet never see it, so its reverse DNS "
                "was not checked.",
                {"ip": ip, "sources": src, "reason": why},
                remedy=(
                    "Check the public address your server sends from instead (--ip): behind "
                    "NAT it is the router's public address."
                ),
            )
        )
    observed = await asyncio.gather(
        *(_observe_ip(ctx.dns, ip, tuple(src)) for ip, src in public.items())
    )
    return tuple(observed), findings


def evaluate_ip(obs: IpObservation) -> list[Finding]:
    """Judge one address (pure)."""
    where: dict[str, object] = {"ip": obs.ip, "sources": list(obs.sources)}
    if obs.ptr.outcome.is_failure:
        return [lookup_failed(CHECK, obs.ptr, f"the reverse DNS of {obs.ip}", **where)]
    if not obs.names:
        return [_no_ptr(obs, where)]
    findings: list[Finding] = []
    confirming = obs.confirming
    if not confirming:
        failed = [f.answer for f in obs.forward if f.answer.outcome.is_failure]
        if failed:
            findings.extend(
                lookup_failed(CHECK, a, f"whether {obs.ip}'s PTR confirms", **where) for a in failed
            )
        else:
            findings.append(_not_confirmed(obs, where))
    if len(obs.names) > MAX_PTR_NAMES:
        findings.append(
            Finding(
                CHECK,
                "fcrdns.too-many-ptr",
                Severity.WARNING,
                f"{obs.ip} has {len(obs.names)} PTR names; receivers check only the first "
                f"{MAX_PTR_NAMES} or fewer.",
                {**where, "ptr": list(obs.names)},
                remedy=f"Keep one PTR record for {obs.ip}, naming the mail server.",
                rfc="RFC 8601 §3",
            )
        )
    elif len(obs.names) > 1:
        findings.append(
            Finding(
                CHECK,
                "fcrdns.multiple-ptr",
                Severity.WARNING,
                f"{obs.ip} has {len(obs.names)} PTR names; many receivers look at only one, "
                "in whatever order the resolver returns them.",
                {**where, "ptr": list(obs.names)},
                remedy=f"Keep one PTR record for {obs.ip}: the name the server uses in HELO.",
                rfc="RFC 8601 §3",
            )
        )
    findings.extend(_advice(obs, where, confirming))
    return findings


def _no_ptr(obs: IpObservation, where: dict[str, object]) -> Finding:
    ipv6 = ":" in obs.ip
    extra = " Gmail rejects mail over IPv6 from addresses without PTR records." if ipv6 else ""
    return Finding(
        CHECK,
        "fcrdns.no-ptr",
        Severity.ERROR,
        f"{obs.ip} has no PTR record ({obs.ptr.outcome.value}); large mailbox providers "
        f"reject or throttle mail from addresses without reverse DNS.{extra}",
        {**where, **obs.ptr.evidence()},
        remedy=(
            f"Ask whoever owns {obs.ip} (your ISP or hosting provider) to set its PTR record to "
            "the mail server's host name, and give that name an A/AAAA record with this address."
        ),
        rfc="RFC 8601 §3",
    )


def _not_confirmed(obs: IpObservation, where: dict[str, object]) -> Finding:
    pointed = {f.name.rstrip("."): list(f.answer.addresses()) for f in obs.forward}
    shown = "; ".join(
        f"{name} → {', '.join(addrs) or 'no address'}" for name, addrs in pointed.items()
    )
    first = obs.names[0].rstrip(".")
    return Finding(
        CHECK,
        "fcrdns.not-confirmed",
        Severity.ERROR,
        f"The reverse DNS of {obs.ip} does not point back: {shown}. Receivers treat this as "
        "no valid reverse DNS.",
        {**where, "ptr": list(obs.names), "forward": pointed},
        remedy=(
            f"Add {obs.ip} to the A/AAAA records of {first}, or change the PTR of {obs.ip} to "
            "a name that resolves to it."
        ),
        rfc="RFC 8601 §3",
    )


def _advice(
    obs: IpObservation, where: dict[str, object], confirming: tuple[str, ...]
) -> list[Finding]:
    findings: list[Finding] = []
    name = (confirming or obs.names)[0]
    reason = generic_reason(obs.ip, name)
    if reason:
        findings.append(
            Finding(
                CHECK,
                "fcrdns.generic-ptr",
                Severity.WARNING,
                f"The PTR name of {obs.ip}, {name.rstrip('.')}, looks generic: {reason}. "
                "Receivers such as Yahoo and Outlook.com score such names as dynamic or "
                "unmanaged space.",
                {**where, "ptr": name, "reason": reason},
                remedy=(
                    f"Set the PTR of {obs.ip} to a name of your own domain that identifies the "
                    "mail server (e.g. mail.example.com), with a matching A/AAAA record."
                ),
            )
        )
    for lookup in obs.forward:
        if lookup.answer.cname_chain:
            findings.append(
                Finding(
                    CHECK,
                    "fcrdns.ptr-cname",
                    Severity.WARNING,
                    f"The PTR name {lookup.name.rstrip('.')} of {obs.ip} is an alias (CNAME to "
                    f"{lookup.answer.canonical_name.rstrip('.')}); some receivers do not "
                    "follow it.",
                    {**where, "ptr": lookup.name, "cname_chain": list(lookup.answer.cname_chain)},
                    remedy=(
                        f"Point the PTR of {obs.ip} at "
                        f"{lookup.answer.canonical_name.rstrip('.')} directly."
                    ),
                    rfc="RFC 2181 §10.2",
                )
            )
    return findings


def evaluate_fcrdns(
    observations: tuple[IpObservation, ...], gather_findings: list[Finding]
) -> CheckResult:
    """Judge every address and build the check's result (pure)."""
    findings = list(gather_findings)
    for obs in observations:
        findings.extend(evaluate_ip(obs))
    if not observations and not any(
        f.indeterminate or f.severity is Severity.ERROR for f in findings
    ):
        if not findings:
            findings.append(
                Finding(
                    CHECK,
                    "fcrdns.no-addresses",
                    Severity.INFO,
                    "There is no address to check: no MX host has an address and no --ip "
                    "was given.",
                )
            )
        return CheckResult(CHECK, Status.SKIPPED, tuple(findings))
    hosts = [
        {
            "ip": obs.ip,
            "sources": list(obs.sources),
            "outcome": obs.ptr.outcome.value,
            "ptr": [n.rstrip(".") for n in obs.names],
            "forward": {f.name.rstrip("."): list(f.answer.addresses()) for f in obs.forward},
            "confirmed": bool(obs.confirming),
        }
        for obs in observations
    ]
    rows = tuple(
        (
            obs.ip,
            ", ".join(n.rstrip(".") for n in obs.names) or f"({obs.ptr.outcome.value})",
            _verdict(obs),
            ", ".join(obs.sources),
        )
        for obs in observations
    )
    facts = FactTable(("address", "ptr", "confirmed", "checked because"), rows) if rows else None
    return CheckResult.from_findings(CHECK, findings, {"hosts": hosts}, facts)


def _verdict(obs: IpObservation) -> str:
    if obs.ptr.outcome.is_failure:
        return "unknown"
    if obs.confirming:
        return "yes"
    if any(f.answer.outcome.is_failure for f in obs.forward):
        return "unknown"
    return "no"


class FcrdnsCheck:
    """The `fcrdns` check."""

    name = CHECK
    description = "Forward-confirmed reverse DNS of every MX and sending address"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather and judge."""
        observations, findings = await gather_fcrdns(ctx)
        return evaluate_fcrdns(observations, findings)
