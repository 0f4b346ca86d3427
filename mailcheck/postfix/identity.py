"""Who the outbound SMTP client says it is: FCrDNS of its address, myhostname and HELO vs PTR.

Receivers look up the PTR of the connecting address, confirm it forward (RFC 8601 §3,
"iprev") and compare it with the HELO name (RFC 5321 §4.1.1.1 asks for the client's primary
host name there). Postfix sends `smtp_helo_name` (default `$myhostname`) from
`smtp_bind_address` / `smtp_bind_address6`, or else from whatever address the kernel picks.

Only for a live configuration: the effective values come from `postconf -x`, and "the host's
address" is this machine's. The reverse and forward lookups are the fcrdns check's own
gatherer and evaluator, through mailcheck's DNS layer.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace

from mailcheck.checks.base import CheckContext
from mailcheck.checks.fcrdns import IpObservation, evaluate_ip, gather_fcrdns
from mailcheck.dns import DnsClient
from mailcheck.model import Finding, Severity
from mailcheck.postfix.config import PostfixConfig
from mailcheck.postfix.rules import CHECK, finding

# Documentation addresses (RFC 5737, RFC 3849): a UDP connect() to them only asks the kernel
# which source address its routing table would use; no packet is sent.
ROUTE_PROBE = {4: "192.0.2.1", 6: "2001:db8::1"}


@dataclass(frozen=True)
class OutboundAddress:
    """One address the SMTP client sends from, and how mailcheck knows."""

    address: str
    """The address, canonical."""
    source: str
    """`--ip`, `smtp_bind_address`, `smtp_bind_address6` or `default route`."""


@dataclass(frozen=True)
class IdentityObservation:
    """The identity parameters and what reverse DNS says about the outbound addresses."""

    myhostname: str
    """Effective myhostname (postconf -x), lower case, without a trailing dot."""
    helo_name: str
    """Effective smtp_helo_name (default $myhostname), lower case, without a trailing dot."""
    addresses: tuple[OutboundAddress, ...]
    """The outbound addresses, in the order found."""
    fcrdns: tuple[IpObservation, ...]
    """The fcrdns check's observation of each public outbound address."""
    gather_findings: tuple[Finding, ...]
    """What the fcrdns gatherer reported on its own (non-public addresses)."""


def route_source(family: int, probe: str | None = None) -> str | None:
    """The source address the kernel would use toward `probe` (default: a documentation
    address, so the default route); None when there is no route. Sends nothing."""
    target = probe or ROUTE_PROBE[family]
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    try:
        with socket.socket(af, socket.SOCK_DGRAM) as sock:
            sock.connect((target, 9))  # UDP connect: a route lookup, no datagram
            address: str = sock.getsockname()[0]
    except OSError:
        return None
    return str(ipaddress.ip_address(address.split("%")[0]))


def outbound_addresses(
    cfg: PostfixConfig, given: tuple[str, ...] = (), route_probe: dict[int, str] | None = None
) -> tuple[OutboundAddress, ...]:
    """--ip if given; else smtp_bind_address(6); else the default route's source address for
    each family inet_protocols allows (postconf(5): the client binds nothing then)."""
    if given:
        return tuple(OutboundAddress(str(ipaddress.ip_address(a)), "--ip") for a in given)
    found: list[OutboundAddress] = []
    for name in ("smtp_bind_address", "smtp_bind_address6"):
        value = cfg.effective.get(name, "").strip().strip("[]")
        try:
            found.append(OutboundAddress(str(ipaddress.ip_address(value)), name))
        except ValueError:
            continue  # unset (or not an address: postfix refuses to start then)
    if found:
        return tuple(found)
    protocols = cfg.get("inet_protocols", "all").lower()
    families = [4, 6] if "all" in protocols else [f for f in (4, 6) if f"ipv{f}" in protocols]
    for family in families:
        address = route_source(family, (route_probe or {}).get(family))
        if address is not None:
            found.append(OutboundAddress(address, "default route"))
    return tuple(found)


def _name(value: str) -> str:
    return value.strip().rstrip(".").lower()


async def gather_identity(
    cfg: PostfixConfig, dns: DnsClient, given: tuple[str, ...] = ()
) -> IdentityObservation:
    """Find the outbound addresses and run the fcrdns gatherer on them."""
    addresses = outbound_addresses(cfg, given)
    sources = {a.address: a.source for a in addresses}
    observed, findings = await gather_fcrdns(CheckContext(dns=dns, ips=tuple(sources)))
    myhostname = _name(cfg.effective.get("myhostname") or cfg.get("myhostname"))
    helo = _name(cfg.effective.get("smtp_helo_name") or cfg.get("smtp_helo_name") or myhostname)
    return IdentityObservation(
        myhostname,
        helo,
        addresses,
        tuple(replace(o, sources=(sources.get(o.ip, "--ip"),)) for o in observed),
        tuple(_relabel(f, sources) for f in findings),
    )


def _relabel(found: Finding, sources: dict[str, str] | None = None) -> Finding:
    """An fcrdns finding as part of the postfix result (same code, our check name)."""
    evidence = dict(found.evidence)
    ip = evidence.get("ip")
    if sources and isinstance(ip, str) and ip in sources:
        evidence["sources"] = [sources[ip]]
    return replace(found, check=CHECK, evidence=evidence)


def identity_dns_findings(obs: IdentityObservation) -> list[Finding]:
    """Judge the identity (pure): the fcrdns verdicts, then myhostname and HELO against PTR."""
    found = list(obs.gather_findings)
    if not obs.addresses:
        found.append(
            finding(
                "postfix.outbound-address-unknown",
                Severity.INFO,
                "No outbound address to check: smtp_bind_address is not set and this host has "
                "no default route, so mailcheck cannot tell which address receivers see.",
                {"myhostname": obs.myhostname, "helo_name": obs.helo_name},
                "Give the public address this server sends from with --ip.",
            )
        )
    for ip_obs in obs.fcrdns:
        found.extend(_relabel(f) for f in evaluate_ip(ip_obs))
        if ip_obs.ptr.outcome.is_failure or not ip_obs.names:
            continue  # no PTR, or unknown: the fcrdns finding above says so
        names = [_name(n) for n in ip_obs.names]
        confirming = [_name(n) for n in ip_obs.confirming]
        where = {
            "ip": ip_obs.ip,
            "source": ip_obs.sources[0] if ip_obs.sources else "",
            "ptr": names,
            "myhostname": obs.myhostname,
            "helo_name": obs.helo_name,
        }
        if obs.myhostname not in names:
            found.append(
                finding(
                    "postfix.myhostname-not-ptr",
                    Severity.WARNING,
                    f"myhostname {obs.myhostname or '(empty)'} is not the reverse DNS name of "
                    f"the outbound address {ip_obs.ip} ({', '.join(names)}): the name this "
                    "server gives and the name receivers look up differ.",
                    where,
                    f"Set myhostname = {(confirming or names)[0]}, or change the PTR of "
                    f"{ip_obs.ip} to {obs.myhostname} (with a matching A/AAAA record).",
                    "RFC 5321 §4.1.1.1, RFC 8601 §3",
                )
            )
        if obs.helo_name != obs.myhostname and obs.helo_name not in names:
            found.append(
                finding(
                    "postfix.helo-not-ptr",
                    Severity.WARNING,
                    f"smtp_helo_name {obs.helo_name} is not the reverse DNS name of the "
                    f"outbound address {ip_obs.ip} ({', '.join(names)}): receivers that "
                    "compare HELO with PTR score the mail down or refuse it.",
                    where,
                    f"Remove smtp_helo_name (it defaults to $myhostname) or set it to "
                    f"{(confirming or names)[0]}.",
                    "RFC 5321 §4.1.1.1",
                )
            )
        if obs.helo_name in confirming:
            found.append(
                finding(
                    "postfix.identity-confirmed",
                    Severity.INFO,
                    f"{ip_obs.ip} has forward-confirmed reverse DNS {obs.helo_name}, the name "
                    "this server gives in HELO.",
                    where,
                    rfc="RFC 8601 §3",
                )
            )
    return found


def identity_unchecked(reason: str, indeterminate: bool = False) -> Finding:
    """The identity checks did not run on a live configuration, and why."""
    return finding(
        "postfix.identity-unchecked",
        Severity.WARNING if indeterminate else Severity.INFO,
        f"The reverse DNS of the outbound address and the HELO name were not checked: {reason}.",
        {"reason": reason},
        "Give a resolver with --nameserver (and --ip if the server sends from behind NAT).",
        indeterminate=indeterminate,
    )


def identity_data(obs: IdentityObservation) -> dict[str, object]:
    """The `identity` member of the postfix check's data."""
    return {
        "myhostname": obs.myhostname,
        "helo_name": obs.helo_name,
        "addresses": [
            {
                "address": a.address,
                "source": a.source,
                "ptr": next(
                    ([_name(n) for n in o.names] for o in obs.fcrdns if o.ip == a.address), []
                ),
                "confirmed": any(o.ip == a.address and o.confirming for o in obs.fcrdns),
            }
            for a in obs.addresses
        ],
    }
