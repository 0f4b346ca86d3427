"""The `dmarc` check: discovery (RFC 9989 §4.10 tree walk), the record, report authorization.

gather_dmarc asks the DNS layer (the walk's levels and the report authorizations concurrently);
evaluate_dmarc is a pure judgement of what came back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

from mailcheck.checks.base import CheckContext, lookup_failed
from mailcheck.checks.dkim import has_usable_key, observe_dkim
from mailcheck.checks.dmarc_record import (
    DmarcRecord,
    is_dmarc_record,
    judge_record,
    parse_dmarc_record,
)
from mailcheck.dns import DnsAnswer, DnsClient, Outcome
from mailcheck.model import CheckResult, FactTable, Finding, Severity, Status

CHECK = "dmarc"
MAX_WALK_LABELS = 8  # RFC 9989 §4.10: at most 8 queries per walk
_PSL = PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registrable domain by the Public Suffix List (checkdmarc's approximation too)."""
    return _PSL.privatesuffix(domain.lower().rstrip(".")) or domain.lower().rstrip(".")


def txt_texts(answer: DnsAnswer) -> tuple[str, ...]:
    """Each TXT record with its strings joined (RFC 7208 §3.3 / RFC 9989 §4.7)."""
    return tuple(
        b"".join(strings).decode("utf-8", errors="replace") for strings in answer.txt_strings()
    )


@dataclass(frozen=True)
class DmarcLookup:
    """The TXT lookup of `_dmarc.<domain>` for one level of the walk."""

    domain: str
    """The domain whose policy this level holds."""
    answer: DnsAnswer
    """The TXT lookup."""

    @property
    def dmarc_records(self) -> tuple[str, ...]:
        """The TXT records that are DMARC records."""
        return tuple(t for t in txt_texts(self.answer) if is_dmarc_record(t))

    @property
    def other_records(self) -> tuple[str, ...]:
        """TXT records at `_dmarc` that are not DMARC records (ignored by receivers)."""
        return tuple(t for t in txt_texts(self.answer) if not is_dmarc_record(t))


@dataclass(frozen=True)
class ReportAuthorization:
    """RFC 9990 §4 (RFC 7489 §7.1): does an external destination accept our reports?"""

    destination: str
    """The domain that receives the reports."""
    uris: tuple[str, ...]
    """The rua/ruf URIs sending reports there."""
    wildcard: DnsAnswer
    """TXT of `*._report._dmarc.<destination>`."""
    specific: DnsAnswer
    """TXT of `<policy domain>._report._dmarc.<destination>`."""


@dataclass(frozen=True)
class DmarcObservation:
    """What DNS says about a domain's DMARC policy."""

    domain: str
    """The domain checked."""
    levels: tuple[DmarcLookup, ...]
    """`_dmarc` lookups: the domain itself first, then each walk level upwards."""
    apex: DnsAnswer
    """TXT of the domain itself (a misplaced DMARC record; SPF presence; existence)."""
    org_apex: DnsAnswer | None
    """TXT of the organizational domain, when it differs (its SPF aligns under aspf=r)."""
    authorizations: tuple[ReportAuthorization, ...]
    """External report destinations of the record that applies."""


def walk_domains(domain: str) -> tuple[str, ...]:
    """The domain, then the ancestors the RFC 9989 §4.10 tree walk asks, longest first."""
    labels = domain.lower().rstrip(".").split(".")
    start = 1 if len(labels) <= MAX_WALK_LABELS else len(labels) - (MAX_WALK_LABELS - 1)
    return (".".join(labels),) + tuple(".".join(labels[i:]) for i in range(start, len(labels)))


async def gather_dmarc(dns: DnsClient, domain: str) -> DmarcObservation:
    """Ask every walk level at once (it costs queries, saves round trips), then authorizations."""
    names = walk_domains(domain)
    org = organizational_domain(domain)
    apexes = (domain,) if org == domain else (domain, org)
    answers = await asyncio.gather(
        *(dns.query(a, "TXT") for a in apexes), *(dns.query(f"_dmarc.{n}", "TXT") for n in names)
    )
    apex, org_apex = answers[0], (answers[1] if len(apexes) > 1 else None)
    level_answers = answers[len(apexes) :]
    levels = tuple(DmarcLookup(n, a) for n, a in zip(names, level_answers, strict=True))
    found = discover(levels)
    authorizations: tuple[ReportAuthorization, ...] = ()
    if found.location is not None and found.record is not None:
        record = parse_dmarc_record(found.record)
        authorizations = await _gather_authorizations(dns, found.location, record)
    return DmarcObservation(domain, levels, apex, org_apex, authorizations)


async def _gather_authorizations(
    dns: DnsClient, location: str, record: DmarcRecord
) -> tuple[ReportAuthorization, ...]:
    own = organizational_domain(location)
    external: dict[str, list[str]] = {}
    for uri in record.rua + record.ruf:
        if uri.domain and organizational_domain(uri.domain) != own:
            external.setdefault(uri.domain, []).append(uri.uri)
    pairs = await asyncio.gather(
        *(
            asyncio.gather(
                dns.query(f"*._report._dmarc.{dest}", "TXT"),
                dns.query(f"{location}._report._dmarc.{dest}", "TXT"),
            )
            for dest in external
        )
    )
    return tuple(
        ReportAuthorization(dest, tuple(uris), wildcard, specific)
        for (dest, uris), (wildcard, specific) in zip(external.items(), pairs, strict=True)
    )


@dataclass(frozen=True)
class Discovery:
    """Which record applies to the domain, or why none can be named (RFC 9989 §4.10)."""

    location: str | None = None
    """The domain whose `_dmarc` record applies."""
    record: str | None = None
    """That record."""
    failed: DnsAnswer | None = None
    """A lookup that failed before a record was found: the answer is unknown."""
    multiple: tuple[str, ...] = ()
    """The records, when the domain itself has more than one (no policy applies)."""


def discover(levels: tuple[DmarcLookup, ...]) -> Discovery:
    """The domain's own record, else the first one up the tree; stop at what is unknown."""
    if len(levels[0].dmarc_records) > 1:
        return Discovery(multiple=levels[0].dmarc_records)
    for level in levels:
        if level.answer.outcome.is_failure:
            return Discovery(failed=level.answer)
        if len(level.dmarc_records) == 1:
            return Discovery(level.domain, level.dmarc_records[0])
    return Discovery()


def evaluate_dmarc(obs: DmarcObservation, dkim_key_found: bool | None = None) -> CheckResult:
    """Judge the discovery, the record, the reporting and alignment readiness (pure)."""
    findings: list[Finding] = []
    data: dict[str, object] = {"domain": obs.domain, "record": None, "location": None}
    misplaced = [t for t in txt_texts(obs.apex) if is_dmarc_record(t)]
    if misplaced:
        findings.append(
            Finding(
                CHECK,
                "dmarc.apex-record",
                Severity.WARNING,
                f"A DMARC record is published at {obs.domain} itself, where it has no effect; "
                f"receivers look for it at _dmarc.{obs.domain}.",
                {"name": obs.domain, "record": misplaced[0]},
                remedy=f"Move the record to _dmarc.{obs.domain}.",
                rfc="RFC 9989 §4.7",
            )
        )
    found = _discover(obs, findings, data)
    if found is None:
        return CheckResult.from_findings(CHECK, findings, data)
    location, record = found
    findings.extend(judge_record(record, location))
    findings.extend(_judge_reporting(obs, record, location))
    spf = any(
        t.lower().startswith("v=spf1")
        for answer in (obs.apex, obs.org_apex)
        if answer is not None
        for t in txt_texts(answer)
    )
    findings.extend(_judge_alignment(obs, record, spf, dkim_key_found))
    exists = obs.apex.outcome is not Outcome.NXDOMAIN
    applies, because = record.applied_to(obs.domain, location, exists)
    data.update(
        {
            "record": record.text,
            "location": location,
            "organizational_domain": organizational_domain(location),
            "policy": record.policy,
            "subdomain_policy": record.subdomain_policy,
            "nonexistent_policy": record.nonexistent_policy,
            "applied_policy": applies,
            "applied_because": because,
            "rua": [u.uri for u in record.rua],
            "ruf": [u.uri for u in record.ruf],
            "tags": record.tags_json(),
            "alignment": {"spf_record": spf, "dkim_key": dkim_key_found},
        }
    )
    rows = (
        ("record", f"_dmarc.{location}: {record.text}"),
        ("applies here", f"{applies or '-'} ({because})"),
        ("reports", ", ".join(u.uri for u in record.rua) or "none"),
    )
    return CheckResult.from_findings(CHECK, findings, data, FactTable(("", ""), rows))


def _discover(
    obs: DmarcObservation, findings: list[Finding], data: dict[str, object]
) -> tuple[str, DmarcRecord] | None:
    """Find the record that applies, or explain why there is none."""
    found = discover(obs.levels)
    for text in obs.levels[0].other_records:
        if text.strip().lower().startswith("v=dmarc"):
            findings.append(
                Finding(
                    CHECK,
                    "dmarc.syntax",
                    Severity.ERROR,
                    f"The TXT record {text!r} at _dmarc.{obs.domain} looks like DMARC, but a "
                    "DMARC record must start with exactly 'v=DMARC1;': receivers discard it.",
                    {"name": f"_dmarc.{obs.domain}", "record": text, "tag": "v"},
                    remedy="Start the record with v=DMARC1; and separate every tag with ';'.",
                    rfc="RFC 9989 §4.7",
                )
            )
    if found.failed is not None:
        findings.append(lookup_failed(CHECK, found.failed, f"the DMARC policy of {obs.domain}"))
        return None
    if found.multiple:
        data["records"] = list(found.multiple)
        findings.append(
            Finding(
                CHECK,
                "dmarc.multiple",
                Severity.ERROR,
                f"_dmarc.{obs.domain} has {len(found.multiple)} DMARC records; receivers "
                "then apply no DMARC policy at all.",
                {"name": f"_dmarc.{obs.domain}", "records": list(found.multiple)},
                remedy=f"Keep exactly one v=DMARC1 record at _dmarc.{obs.domain}.",
                rfc="RFC 9989 §4.10",
            )
        )
        return None
    if found.location is None or found.record is None:
        others = list(obs.levels[0].other_records)
        findings.append(
            Finding(
                CHECK,
                "dmarc.missing",
                Severity.ERROR,
                f"No DMARC record for {obs.domain}, neither at _dmarc.{obs.domain} nor at a "
                "parent domain: receivers apply no policy, and Gmail and Yahoo require DMARC "
                "of bulk senders."
                + (f" (_dmarc.{obs.domain} holds other TXT records: {others}.)" if others else ""),
                {"names": [f"_dmarc.{lv.domain}" for lv in obs.levels], "other_txt": others},
                remedy=(
                    f'Publish a TXT record at _dmarc.{obs.domain}: "v=DMARC1; p=none; '
                    f'rua=mailto:dmarc-reports@{obs.domain}", read the reports, then move to '
                    "p=quarantine and p=reject."
                ),
                rfc="RFC 9989 §4.10",
            )
        )
        return None
    if found.location != obs.domain:
        findings.append(
            Finding(
                CHECK,
                "dmarc.inherited",
                Severity.INFO,
                f"{obs.domain} has no DMARC record of its own; the record of {found.location} "
                "applies (found by the DNS tree walk).",
                {"domain": obs.domain, "location": found.location},
                rfc="RFC 9989 §4.10",
            )
        )
    return found.location, parse_dmarc_record(found.record)


def _judge_reporting(obs: DmarcObservation, record: DmarcRecord, location: str) -> list[Finding]:
    findings: list[Finding] = []
    if not record.rua:
        findings.append(
            Finding(
                CHECK,
                "dmarc.no-rua",
                Severity.INFO,
                f"The DMARC record of {location} asks for no aggregate reports (rua): you will "
                "not learn who sends mail as your domain, or whether your own mail passes.",
                {"location": location},
                remedy=f"Add rua=mailto:dmarc-reports@{location} (or a report service's address).",
                rfc="RFC 9989 §4.7",
            )
        )
    for auth in obs.authorizations:
        answers = (auth.wildcard, auth.specific)
        if any(is_dmarc_record(t) for a in answers for t in txt_texts(a)):
            continue
        failed = [a for a in answers if a.outcome.is_failure]
        if failed:
            findings.extend(
                lookup_failed(
                    CHECK, a, f"whether {auth.destination} accepts DMARC reports for {location}"
                )
                for a in failed
            )
            continue
        findings.append(
            Finding(
                CHECK,
                "dmarc.report-unauthorized",
                Severity.WARNING,
                f"{auth.destination} does not say it accepts DMARC reports for {location}: "
                f"receivers will not send the reports of {', '.join(auth.uris)}.",
                {
                    "destination": auth.destination,
                    "uris": list(auth.uris),
                    "name": auth.specific.name,
                },
                remedy=(
                    f'Ask the operator of {auth.destination} to publish TXT "v=DMARC1" at '
                    f"{location}._report._dmarc.{auth.destination} (or *._report._dmarc."
                    f"{auth.destination}), or send reports to an address of your own domain."
                ),
                rfc="RFC 9990 §4, RFC 7489 §7.1",
            )
        )
    return findings


def _judge_alignment(
    obs: DmarcObservation, record: DmarcRecord, spf: bool, dkim: bool | None
) -> list[Finding]:
    if spf or dkim:
        return []
    dkim_text = (
        "no DKIM key was found under the probed selectors"
        if dkim is False
        else "DKIM was not checked"
    )
    return [
        Finding(
            CHECK,
            "dmarc.cannot-pass",
            Severity.WARNING,
            f"Neither {obs.domain} nor its organizational domain publishes an SPF record, and "
            f"{dkim_text}: unless it signs with a "
            "selector mailcheck did not try, none of its mail can pass DMARC"
            + (
                f", and p={record.policy} will have it quarantined or rejected."
                if record.policy in ("quarantine", "reject")
                else "."
            ),
            {"domain": obs.domain, "spf_record": spf, "dkim_key": dkim},
            remedy="Publish an SPF record for the domain and sign its mail with DKIM "
            "(give the selector with --dkim-selector to check it).",
            rfc="RFC 9989 §4.4",
        )
    ]


class DmarcCheck:
    """The `dmarc` check."""

    name = CHECK
    description = "DMARC policy, reporting and alignment readiness"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather and judge; DKIM facts come from the same run when the dkim check shares them."""
        domain = ctx.domain
        if domain is None:
            return CheckResult(CHECK, Status.SKIPPED)
        obs = await gather_dmarc(ctx.dns, domain)
        dkim_key: bool | None = None
        if "dkim" in ctx.selected:
            dkim = await observe_dkim(ctx)
            dkim_key = has_usable_key(dkim) if dkim is not None else None
        return evaluate_dmarc(obs, dkim_key)
