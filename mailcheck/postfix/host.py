"""Facts about the host a live configuration runs on: its resolv.conf and its identity in DNS.

The I/O half of the audit's host rules (the pure half is resolvers.py and identity.py's
judging functions). Saved configuration files get none of this: they may come from another
machine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailcheck.dns import DnsClient
from mailcheck.postfix.config import PostfixConfig
from mailcheck.postfix.identity import IdentityObservation, gather_identity
from mailcheck.postfix.resolvers import RESOLV_CONF, ResolverFacts, read_resolv_conf

DEFAULT_IDENTITY_TIMEOUT = 30.0


@dataclass(frozen=True)
class HostFacts:
    """What was observed on the host of a live configuration."""

    resolvers: ResolverFacts | None = None
    """The resolv.conf Postfix's DNS lookups go through."""
    identity: IdentityObservation | None = None
    """Reverse DNS of the outbound addresses; None when it was not checked."""
    identity_skipped: str = ""
    """Why the identity was not checked (no resolver configured, timed out)."""
    identity_timed_out: bool = False
    """True when the identity lookups did not finish in time (could not determine)."""


def gather_host(
    cfg: PostfixConfig,
    dns: DnsClient | None,
    given: tuple[str, ...] = (),
    timeout: float = DEFAULT_IDENTITY_TIMEOUT,
    resolv_conf: str = RESOLV_CONF,
) -> HostFacts:
    """Read resolv.conf and, with a DNS client, check the identity (bounded by timeout).

    `dns` None means no resolver is configured for mailcheck: the identity is skipped, with
    the reason. Must not be called from a running event loop (it uses asyncio.run).
    """
    resolvers = read_resolv_conf(resolv_conf)
    if dns is None:
        return HostFacts(resolvers, identity_skipped="no DNS resolver is configured")
    try:
        identity = asyncio.run(asyncio.wait_for(gather_identity(cfg, dns, given), timeout))
    except TimeoutError:
        return HostFacts(
            resolvers,
            identity_skipped=f"the lookups did not finish within {timeout:g} s",
            identity_timed_out=True,
        )
    return HostFacts(resolvers, identity)
