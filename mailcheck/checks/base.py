"""What every check gets from the engine, and the findings shared by all checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mailcheck.checks.tls_probes import ProbeCache
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import DnsAnswer, DnsClient, Outcome
from mailcheck.model import CheckResult, Finding, Severity

T = TypeVar("T")


@dataclass
class CheckContext:
    """The target of a run and the services checks share: one DNS client, one memo of facts."""

    dns: DnsClient
    """The run's only DNS client."""
    domain: str | None = None
    """The mail domain, for `mailcheck domain`."""
    hosts: tuple[str, ...] = ()
    """Host names whose addresses are checked (e.g. `mailcheck fcrdns mx.example.com`)."""
    ips: tuple[str, ...] = ()
    """Sending addresses the user named with --ip, or the address given to a one-check command."""
    dkim_selectors: tuple[str, ...] = ()
    """DKIM selectors the user named (--dkim-selector); when given, only these are checked."""
    sender: str | None = None
    """The envelope sender (MAIL FROM) for SPF evaluation (--sender), as given."""
    helo: str | None = None
    """The HELO/EHLO name for SPF evaluation (--helo), as given."""
    dnsbl_zones: tuple[str, ...] = ()
    """Blocklist zones the user named (--dnsbl); when given, they replace the default lists."""
    dnsbl_config: Path | None = None
    """A blocklist config file (--dnsbl-config) adding to or replacing the shipped lists."""
    tls: TlsSettings = field(default_factory=TlsSettings)
    """How the tls check probes (port, trust, --no-smtp)."""
    probes: ProbeCache | None = None
    """SMTP probes shared beyond this target (a batch); None: the tls check keeps its own."""
    selected: frozenset[str] = frozenset()
    """The names of the checks in this run (a check may use another's facts only if it runs)."""
    _facts: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    async def shared(self, key: str, gather: Callable[[], Awaitable[T]]) -> T:
        """Gather a fact once per run, however many checks ask for it (e.g. the MX hosts)."""
        pending = self._facts.get(key)
        if pending is None:
            pending = asyncio.ensure_future(gather())
            self._facts[key] = pending
        result: T = await asyncio.shield(pending)
        return result


class Check(Protocol):
    """A check: a name, one line of description, and a coroutine that returns its result."""

    name: str
    description: str

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather observations through `ctx` and judge them."""
        ...


_FAILURE_TEXT = {
    Outcome.TIMEOUT: "timed out",
    Outcome.SERVFAIL: "failed with SERVFAIL",
    Outcome.REFUSED: "was refused",
    Outcome.ERROR: "failed",
}

_FAILURE_REMEDY = {
    Outcome.TIMEOUT: (
        "Run again; if it keeps timing out, check that the resolver is reachable and that the "
        "domain's authoritative name servers answer (dig +trace)."
    ),
    Outcome.SERVFAIL: (
        "The resolver could not get an answer from the domain's name servers, or DNSSEC "
        "validation failed. Check the delegation and DNSSEC (dig +trace, dig +cd)."
    ),
    Outcome.REFUSED: (
        "The resolver refused the query. Use a resolver that serves you (--nameserver), or ask "
        "its operator."
    ),
    Outcome.ERROR: "Check the resolver and run again; the evidence says what went wrong.",
}


def lookup_failed(check: str, answer: DnsAnswer, purpose: str, **evidence: Any) -> Finding:
    """A finding that says a lookup could not be completed, so something is unknown.

    The code is the DNS outcome (`dns.timeout`, `dns.servfail`, `dns.refused`, `dns.error`):
    it is never the code of the thing that could not be looked up, because a timeout does not
    mean the record is missing.
    """
    text = _FAILURE_TEXT.get(answer.outcome, "failed")
    where = f" at {answer.server}" if answer.server else ""
    detail = (
        f" ({answer.detail})" if answer.detail and answer.outcome is not Outcome.TIMEOUT else ""
    )
    return Finding(
        check=check,
        code=f"dns.{answer.outcome.value}",
        severity=Severity.ERROR,
        message=(
            f"The {answer.rdtype} lookup of {answer.name.rstrip('.')}{where} {text}{detail}: "
            f"{purpose} could not be determined."
        ),
        evidence={**answer.evidence(), **evidence},
        remedy=_FAILURE_REMEDY.get(answer.outcome, _FAILURE_REMEDY[Outcome.ERROR]),
        indeterminate=True,
    )
