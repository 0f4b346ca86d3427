"""evaluate_postfix: a pure function from a PostfixConfig to the `postfix` CheckResult.

`data` (docs/json.md): {"source", "parameters": {name: value} as set, "services":
[{"name", "type", "command", "options"}] for inet services, "malformed": [lines]}.
"""

from __future__ import annotations

from mailcheck.model import CheckResult, FactTable, Finding, Severity
from mailcheck.postfix.config import PostfixConfig
from mailcheck.postfix.outbound import (
    identity_findings,
    notify_findings,
    relayhost_findings,
    tls_findings,
    transport_findings,
)
from mailcheck.postfix.rules import (
    CHECK,
    auth_findings,
    finding,
    mynetworks_findings,
    relay_restriction_findings,
    submission_findings,
)


def evaluate_postfix(cfg: PostfixConfig) -> CheckResult:
    """Every audit rule over one configuration."""
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
    inet = [s for s in cfg.services if s.type == "inet"]
    data = {
        "source": cfg.source,
        "parameters": dict(cfg.params),
        "services": [
            {"name": s.name, "type": s.type, "command": s.command, "options": dict(s.options)}
            for s in inet
        ],
        "malformed": list(cfg.malformed),
    }
    facts = FactTable(
        ("service", "daemon", "overrides"),
        tuple(
            (s.name, s.command, " ".join(f"{k}={v}" for k, v in s.options.items()) or "-")
            for s in inet
        ),
    )
    return CheckResult.from_findings(CHECK, found, data, facts)
