"""evaluate_postfix: a pure function from a PostfixConfig (and host facts) to the `postfix`
CheckResult.

`data` (docs/json.md): {"source", "live", "parameters": {name: value} as set, "services":
[{"name", "type", "command", "options"}] for inet services, "malformed": [lines],
"identity": {...} or null, "resolv_conf": {...} or null}.
"""

from __future__ import annotations

from mailcheck.model import CheckResult, FactTable, Finding, Severity
from mailcheck.postfix.config import PostfixConfig
from mailcheck.postfix.host import HostFacts
from mailcheck.postfix.identity import identity_data, identity_dns_findings, identity_unchecked
from mailcheck.postfix.outbound import (
    identity_findings,
    notify_findings,
    relayhost_findings,
    tls_findings,
    transport_findings,
)
from mailcheck.postfix.resolvers import dane_resolver_findings
from mailcheck.postfix.rules import (
    CHECK,
    auth_findings,
    finding,
    mynetworks_findings,
    relay_restriction_findings,
    submission_findings,
)


def evaluate_postfix(cfg: PostfixConfig, host: HostFacts | None = None) -> CheckResult:
    """Every audit rule over one configuration, and the host facts of a live one."""
    found: list[Finding] = []
    if cfg.malformed:
        found.append(
            finding(
                "postfix.malformed-line",
                Severity.WARNING,
                f"{len(cfg.malformed)} configuration line(s) could not be parsed and were "
                f"ignored, first: {cfg.malformed[0][:80]!r}.",
                {"lines": list(cfg.malformed[:10])},
                "Run `postfix check`; fix or remove the lines.",
            )
        )
    for rule in (
        mynetworks_findings,
        relay_restriction_findings,
        auth_findings,
        submission_findings,
        tls_findings,
        relayhost_findings,
        identity_findings,
        transport_findings,
        notify_findings,
    ):
        found.extend(rule(cfg))
    if host is not None:
        if host.resolvers is not None:
            level = cfg.get("smtp_tls_security_level").lower()
            found.extend(dane_resolver_findings(level, host.resolvers))
        if host.identity is not None:
            found.extend(identity_dns_findings(host.identity))
        elif host.identity_skipped:
            found.append(identity_unchecked(host.identity_skipped, host.identity_timed_out))
    inet = [s for s in cfg.services if s.type == "inet"]
    resolvers = host.resolvers if host else None
    identity = host.identity if host else None
    data = {
        "source": cfg.source,
        "live": cfg.live,
        "parameters": dict(cfg.params),
        "services": [
            {"name": s.name, "type": s.type, "command": s.command, "options": dict(s.options)}
            for s in inet
        ],
        "malformed": list(cfg.malformed),
        "identity": identity_data(identity) if identity else None,
        "resolv_conf": (
            {
                "path": resolvers.path,
                "nameservers": list(resolvers.nameservers),
                "remote": list(resolvers.remote),
                "error": resolvers.error,
            }
            if resolvers
            else None
        ),
    }
    facts = FactTable(
        ("service", "daemon", "overrides"),
        tuple(
            (s.name, s.command, " ".join(f"{k}={v}" for k, v in s.options.items()) or "-")
            for s in inet
        ),
    )
    return CheckResult.from_findings(CHECK, found, data, facts)
