"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) verdicts for the `tls` check, with no I/O.

`mta_sts_fetch.gather_mta_sts` produces an `MtaStsObservation` (two TXT lookups, the policy
host's addresses, the HTTPS fetch); `evaluate_mta_sts` judges it against the domain's MX hosts.
The parsers and the MX pattern matcher live in `mta_sts_record`, the facts in
`mta_sts_observation`, the verdicts on the fetch itself in `mta_sts_http`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from mailcheck.checks.base import lookup_failed
from mailcheck.checks.mta_sts_http import judge_fetch
from mailcheck.checks.mta_sts_observation import (
    MAX_POLICY_BYTES,
    POLICY_PATH,
    FetchAttempt,
    FetchStep,
    MtaStsObservation,
    PolicyFetch,
    PolicyResponse,
)
from mailcheck.checks.mta_sts_record import (
    StsMode,
    StsPolicy,
    covering_patterns,
    join_txt,
    mx_pattern_matches,
    parse_sts_policy,
    problem_list,
)
from mailcheck.checks.mta_sts_tls_rpt import judge_tls_rpt
from mailcheck.model import Finding, Severity

CHECK = "tls"
SHORT_MAX_AGE = 86_400  # RFC 8461 §3.2 expects max_age "in the range of weeks or greater"

__all__ = [
    "CHECK",
    "MAX_POLICY_BYTES",
    "FetchAttempt",
    "FetchStep",
    "MtaStsObservation",
    "PolicyFetch",
    "PolicyResponse",
    "StsMode",
    "StsPolicy",
    "evaluate_mta_sts",
    "mx_pattern_matches",
    "parse_sts_policy",
]


_finding = functools.partial(Finding, CHECK)
"""A finding of the tls check: Finding without its first argument."""


def evaluate_mta_sts(
    obs: MtaStsObservation, mx_hosts: Sequence[str], *, dane_published: bool = False
) -> tuple[Finding, ...]:
    """Judge MTA-STS and TLS-RPT (pure). `mx_hosts` are the domain's MX host names.

    `dane_published` (some MX host has TLSA records) makes a missing TLS-RPT record a warning,
    as a published MTA-STS record does.
    """
    hosts = list(dict.fromkeys(h.lower().removesuffix(".") for h in mx_hosts))
    findings = _judge_sts(obs, [h for h in hosts if h])
    findings.extend(judge_tls_rpt(obs, wanted=bool(obs.sts_texts) or dane_published))
    return tuple(findings)


def _judge_sts(obs: MtaStsObservation, hosts: list[str]) -> list[Finding]:
    if obs.sts_txt.outcome.is_failure:
        purpose = f"whether {obs.domain} publishes an MTA-STS policy"
        return [lookup_failed(CHECK, obs.sts_txt, purpose)]
    texts = obs.sts_texts
    if not texts:
        return [_none(obs)]
    findings = _judge_txt(obs, texts)
    txt_ok = not any(f.severity is Severity.ERROR for f in findings)
    findings.extend(judge_fetch(obs))
    policy = obs.policy
    if policy is not None and policy.problems:
        assert obs.fetch is not None  # a policy was read, so it was fetched
        findings.append(_policy_syntax(obs, obs.fetch, policy))
    if policy is None or not policy.valid:
        return findings
    findings.extend(_judge_policy(obs, policy, hosts, txt_ok))
    record = obs.record
    quiet = all(f.severity is Severity.INFO for f in findings)
    if txt_ok and quiet and record and policy.mode in (StsMode.ENFORCE, StsMode.TESTING):
        assert policy.mode is not None and policy.max_age is not None
        covering = (
            f" covering all {len(hosts)} MX hosts"
            if len(hosts) > 1
            else f" covering its MX host {hosts[0]}"
            if hosts
            else ""
        )
        findings.append(
            _finding(
                "mta-sts.ok",
                Severity.INFO,
                f"{obs.domain} publishes a valid MTA-STS policy (mode {policy.mode.value}, "
                f"max_age {policy.max_age} s, id {record.id}){covering}.",
                {
                    "id": record.id,
                    "mode": policy.mode.value,
                    "max_age": policy.max_age,
                    "mx": list(policy.mx),
                },
                rfc="RFC 8461",
            )
        )
    return findings


def _none(obs: MtaStsObservation) -> Finding:
    others = [join_txt(s) for s in obs.sts_txt.txt_strings()]
    return _finding(
        "mta-sts.none",
        Severity.INFO,
        f"{obs.domain} publishes no MTA-STS policy (no TXT record at _mta-sts.{obs.domain} "
        "beginning with v=STSv1): senders use TLS only when offered, and an attacker on the "
        "path can strip it.",
        {"name": obs.sts_txt.name, "outcome": obs.sts_txt.outcome.value, "other_txt": others},
        remedy=(
            f"To make senders require TLS with a valid certificate, serve a policy at "
            f"https://mta-sts.{obs.domain}{POLICY_PATH} and publish `_mta-sts.{obs.domain} TXT "
            '"v=STSv1; id=20250101T000000"`; start with `mode: testing`.'
        ),
        rfc="RFC 8461 §3",
    )


def _judge_txt(obs: MtaStsObservation, texts: tuple[str, ...]) -> list[Finding]:
    name = f"_mta-sts.{obs.domain}"
    if len(texts) > 1:
        return [
            _finding(
                "mta-sts.txt-multiple",
                Severity.ERROR,
                f"{name} has {len(texts)} TXT records beginning with v=STSv1: senders then "
                "treat the domain as having no MTA-STS policy at all.",
                {"name": name, "records": list(texts)},
                remedy="Keep exactly one `v=STSv1; id=...` record and delete the others.",
                rfc="RFC 8461 §3.1",
            )
        ]
    record = obs.record
    assert record is not None  # exactly one record, parsed with the observation
    if not record.problems:
        return []
    fatal = not record.valid
    consequence = (
        "senders ignore it, so the domain has no MTA-STS policy"
        if fatal
        else "senders tolerate this"
    )
    return [
        _finding(
            "mta-sts.txt-syntax",
            Severity.ERROR if fatal else Severity.WARNING,
            f"The MTA-STS TXT record at {name} is {'invalid' if fatal else 'untidy'} "
            f"({problem_list(record.problems)}): {consequence}.",
            {
                "name": name,
                "record": record.text,
                "problems": [p.to_json() for p in record.problems],
            },
            remedy=(
                "Publish exactly `v=STSv1; id=<1 to 32 letters and digits>` (e.g. "
                '"v=STSv1; id=20250101T000000"), and change the id whenever the policy changes.'
            ),
            rfc="RFC 8461 §3.1",
        )
    ]


def _policy_syntax(obs: MtaStsObservation, fetch: PolicyFetch, policy: StsPolicy) -> Finding:
    fatal = not policy.valid
    problems = sorted(policy.problems, key=lambda p: not p.fatal)  # what voids it first
    if fatal:
        text = (
            f"The MTA-STS policy at {fetch.url} is invalid: {problem_list(problems)}. "
            f"Senders discard it and deliver as if {obs.domain} had no policy."
        )
    else:
        text = (
            f"The MTA-STS policy at {fetch.url} has defects senders skip over: "
            f"{problem_list(problems)}."
        )
    return _finding(
        "mta-sts.policy-syntax",
        Severity.ERROR if fatal else Severity.WARNING,
        text,
        {
            "url": fetch.url,
            "problems": [p.to_json() for p in policy.problems],
            "policy": obs.fetch.response.body if obs.fetch and obs.fetch.response else None,
        },
        remedy=(
            "Write the policy as `key: value` lines: `version: STSv1` first, then "
            "`mode: enforce` (or testing, or none), one `mx:` line per MX host or `*.` pattern, "
            "and `max_age:` in seconds (604800 or more, at most 31557600)."
        ),
        rfc="RFC 8461 §3.2",
    )


def _judge_policy(
    obs: MtaStsObservation, policy: StsPolicy, hosts: list[str], txt_ok: bool
) -> list[Finding]:
    assert policy.mode is not None and policy.max_age is not None  # a valid policy has both
    mode, max_age = policy.mode, policy.max_age
    if mode is StsMode.NONE:
        return [
            _finding(
                "mta-sts.mode-none",
                Severity.INFO,
                f"The MTA-STS policy of {obs.domain} has mode none: senders drop any cached "
                "policy and treat the domain as having none (the way to withdraw MTA-STS).",
                {"mode": mode.value, "max_age": max_age},
                remedy="If you are not withdrawing MTA-STS, set `mode: testing` or `enforce`.",
                rfc="RFC 8461 §5, §8.3",
            )
        ]
    findings: list[Finding] = []
    if mode is StsMode.TESTING:
        findings.append(
            _finding(
                "mta-sts.testing",
                Severity.INFO,
                f"The MTA-STS policy of {obs.domain} is in testing mode: senders report TLS "
                "failures (to TLS-RPT) but still deliver without a valid TLS connection.",
                {"mode": mode.value},
                remedy="When TLS-RPT reports show no failures, switch to `mode: enforce`.",
                rfc="RFC 8461 §5",
            )
        )
    if max_age < SHORT_MAX_AGE:
        findings.append(
            _finding(
                "mta-sts.short-max-age",
                Severity.WARNING,
                f"The MTA-STS policy of {obs.domain} has max_age {max_age} s (under a day): "
                "senders forget it quickly, so an attacker who blocks the refresh soon faces "
                "no policy. RFC 8461 expects weeks or more.",
                {"max_age": max_age, "recommended_min": 604_800},
                remedy="Once the policy works, raise max_age to 604800 (a week) or more.",
                rfc="RFC 8461 §3.2",
            )
        )
    if hosts:
        findings.extend(_judge_coverage(obs, policy, hosts, txt_ok))
    return findings


def _judge_coverage(
    obs: MtaStsObservation, policy: StsPolicy, hosts: list[str], txt_ok: bool
) -> list[Finding]:
    findings: list[Finding] = []
    patterns = ", ".join(policy.mx) or "none"
    enforce = policy.mode is StsMode.ENFORCE
    for host in hosts:
        if policy.covers(host):
            continue
        if enforce and txt_ok:
            severity, effect = Severity.ERROR, "in enforce mode senders will NOT deliver to it"
        elif enforce:
            severity = Severity.WARNING
            effect = "once the TXT record is fixed, enforce-mode senders will not deliver to it"
        else:
            severity = Severity.WARNING
            effect = "in testing mode senders still deliver but report a failure"
        parent = host.partition(".")[2] or host
        findings.append(
            _finding(
                "mta-sts.mx-not-covered",
                severity,
                f"MX host {host} is not listed in the MTA-STS policy of {obs.domain} "
                f"(patterns: {patterns}): {effect}.",
                {"host": host, "patterns": list(policy.mx), "mode": str(policy.mode)},
                remedy=(
                    f"Add `mx: {host}` (or `mx: *.{parent}`) to the policy and change the id "
                    f"in the _mta-sts TXT record, or remove the MX record."
                ),
                rfc="RFC 8461 §4.1, §5",
            )
        )
    unused = [p for p in policy.mx if not any(covering_patterns((p,), h) for h in hosts)]
    if unused:
        findings.append(
            _finding(
                "mta-sts.pattern-unused",
                Severity.INFO,
                f"MTA-STS policy patterns {', '.join(unused)} match none of the MX hosts of "
                f"{obs.domain} ({', '.join(hosts)}): harmless, but often a left-over or a typo.",
                {"unused": unused, "mx_hosts": hosts},
                remedy="Remove them, or correct the host name they were meant to match.",
                rfc="RFC 8461 §4.1",
            )
        )
    return findings
