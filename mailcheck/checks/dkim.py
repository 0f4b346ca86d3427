"""The `dkim` check: the DKIM public keys a domain publishes, and whether receivers can use them.

gather_dkim asks for `<selector>._domainkey.<domain>` TXT for every selector at once (the ones
the user named, or a list of common ones: selectors cannot be listed through DNS) and for
`_domainkey.<domain>` itself; evaluate_dkim judges the records (parsed by dkim_key).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mailcheck.checks.base import CheckContext, lookup_failed
from mailcheck.checks.dkim_key import (
    CHECK,
    RFC_KEY,
    KeyFormat,
    KeyKind,
    KeyRecord,
    dkim_finding,
    join_txt_strings,
    judge_key,
    parse_key_record,
    printable,
)
from mailcheck.dns import DnsAnswer, DnsClient, Outcome
from mailcheck.model import CheckResult, FactTable, Finding, Severity, Status, status_of

SELECTOR_FILE = "dkim-selectors.txt"


@functools.cache
def common_selectors() -> tuple[str, ...]:
    """The selectors probed when none is named (mailcheck/data/dkim-selectors.txt)."""
    text = resources.files("mailcheck.data").joinpath(SELECTOR_FILE).read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return normalize_selectors(line for line in lines if line)


def probe_selectors(domain: str) -> tuple[str, ...]:
    """The common selectors plus Microsoft 365's domain-derived ones (selector1-example-com)."""
    dashed = domain.rstrip(".").replace(".", "-")
    return normalize_selectors((*common_selectors(), f"selector1-{dashed}", f"selector2-{dashed}"))


def normalize_selectors(selectors: Iterable[str]) -> tuple[str, ...]:
    """Lower case, without surrounding dots or blanks, each once, in the order given."""
    cleaned = (s.strip().strip(".").lower() for s in selectors)
    return tuple(dict.fromkeys(s for s in cleaned if s))


@dataclass(frozen=True)
class SelectorLookup:
    """The TXT lookup of one selector."""

    selector: str
    """The selector, e.g. `google`."""
    name: str
    """`<selector>._domainkey.<domain>`, without the trailing dot."""
    answer: DnsAnswer
    """The TXT lookup, CNAMEs followed."""

    @property
    def records(self) -> tuple[KeyRecord, ...]:
        """Every TXT record at the selector, each parsed as a key record."""
        return tuple(parse_key_record(join_txt_strings(s)) for s in self.answer.txt_strings())

    @property
    def cname(self) -> list[str]:
        """The aliases followed from the selector name, without trailing dots."""
        return [name.rstrip(".") for name in self.answer.cname_chain]


@dataclass(frozen=True)
class DkimObservation:
    """What DNS says about a domain's DKIM keys."""

    domain: str
    """The mail domain."""
    lookups: tuple[SelectorLookup, ...]
    """One lookup per selector, in the order probed."""
    domainkey: DnsAnswer
    """The TXT lookup of `_domainkey.<domain>`: NXDOMAIN means no selector exists (RFC 8020)."""
    discovering: bool
    """True when common selectors were probed; False when the user named the selectors."""


async def gather_dkim(
    dns: DnsClient, domain: str, selectors: Iterable[str], discovering: bool
) -> DkimObservation:
    """Look up every selector's TXT record and `_domainkey.<domain>`, all concurrently."""
    names = [(s, f"{s}._domainkey.{domain}") for s in normalize_selectors(selectors)]
    domainkey, *answers = await asyncio.gather(
        dns.query(f"_domainkey.{domain}", "TXT"), *(dns.query(name, "TXT") for _, name in names)
    )
    lookups = tuple(
        SelectorLookup(s, name, answer) for (s, name), answer in zip(names, answers, strict=True)
    )
    return DkimObservation(domain, lookups, domainkey, discovering)


@dataclass(frozen=True)
class _Judged:
    """One selector during evaluation: its lookup and its parsed records."""

    lookup: SelectorLookup
    records: tuple[KeyRecord, ...]

    @property
    def found(self) -> bool:
        """At least one DKIM key record is published here."""
        return self.lookup.answer.outcome is Outcome.ANSWER and any(
            r.kind is KeyKind.KEY for r in self.records
        )

    @property
    def key(self) -> KeyRecord | None:
        """The one key record, when exactly one TXT record is published here."""
        return self.records[0] if self.found and len(self.records) == 1 else None

    @property
    def dangling(self) -> bool:
        """A CNAME whose target has no TXT record (or does not exist)."""
        answer = self.lookup.answer
        return answer.outcome.is_negative and bool(answer.cname_chain)

    @property
    def usable(self) -> bool:
        """A key receivers verify with (see KeyRecord.usable)."""
        return self.key is not None and self.key.usable


def has_usable_key(obs: DkimObservation) -> bool:
    """True when some selector publishes a key receivers verify with (for DMARC readiness)."""
    return any(_Judged(lookup, lookup.records).usable for lookup in obs.lookups)


async def observe_dkim(ctx: CheckContext) -> DkimObservation | None:
    """The run's DKIM observation, gathered once and shared (the dmarc check reads it too)."""
    domain = ctx.domain
    if domain is None:
        return None
    named = normalize_selectors(ctx.dkim_selectors)
    selectors = named or probe_selectors(domain)
    return await ctx.shared(
        "dkim", lambda: gather_dkim(ctx.dns, domain, selectors, discovering=not named)
    )


def evaluate_dkim(obs: DkimObservation) -> CheckResult:
    """Judge a DKIM observation (pure)."""
    judged = [_Judged(lookup, lookup.records) for lookup in obs.lookups]
    findings = _lookup_failures(obs)
    for item in judged:
        findings.extend(_judge_selector(obs, item, judged))
    if obs.discovering:
        findings.extend(_judge_discovery(obs, judged))
    listed = [j for j in judged if not obs.discovering or j.found or j.dangling]
    data = {
        "selectors": [_selector_data(j) for j in listed],
        "probed": len(obs.lookups),
        "discovered": obs.discovering,
        "domainkey": obs.domainkey.outcome.value,
    }
    rows = tuple(_fact_row(j) for j in listed)
    facts = FactTable(("selector", "key", "flags", "cname"), rows) if rows else None
    status = status_of(findings)
    if obs.discovering and status is Status.PASS and not any(j.found for j in judged):
        status = Status.SKIPPED  # nothing to judge: the keys are under a selector we cannot guess
    return CheckResult(CHECK, status, tuple(findings), data, facts)


def _selector_data(item: _Judged) -> dict[str, Any]:
    key = item.key
    single = item.records[0].text if len(item.records) == 1 else None
    return {
        "selector": item.lookup.selector,
        "found": item.found,
        "outcome": item.lookup.answer.outcome.value,
        "key_type": key.key_type if key is not None and key.has_key else None,
        "key_bits": key.key_bits if key is not None else None,
        "testing": key.testing if key is not None else False,
        "revoked": key.revoked if key is not None else False,
        "record": single,
        "cname": item.lookup.cname,
    }


def _fact_row(item: _Judged) -> tuple[str, str, str, str]:
    key, answer = item.key, item.lookup.answer
    flags: list[str] = []
    if answer.outcome.is_failure:
        shown = f"unknown ({answer.outcome.value})"
    elif item.dangling:
        shown, flags = "none", ["dangling cname"]
    elif not item.found:
        shown = "none" + (" (not a DKIM record)" if item.records else "")
    elif key is None:
        shown, flags = "?", [f"{len(item.records)} records"]
    else:
        flags = [f.code.removeprefix("dkim.") for f in key.faults]
        flags += ["testing"] if key.testing else []
        flags += ["pkcs1"] if key.key_format is KeyFormat.PKCS1 else []
        if key.revoked:
            shown = "revoked"
        elif key.key_bits is not None:
            shown = f"{key.key_type} {key.key_bits}"
        else:
            shown = key.key_type if key.has_key else "unusable"
    cname = " → ".join(item.lookup.cname) or "-"
    return (item.lookup.selector, shown, ", ".join(flags) or "-", cname)


def _where(lookup: SelectorLookup) -> str:
    return f"DKIM selector {lookup.selector} ({lookup.name})"


def _evidence(item: _Judged, **extra: Any) -> dict[str, Any]:
    records = [r.text for r in item.records]
    out: dict[str, Any] = {
        "selector": item.lookup.selector,
        "name": item.lookup.name,
        "record": records[0] if len(records) == 1 else None,
        "cname": item.lookup.cname,
    }
    if len(records) > 1:
        out["records"] = records
    return {**out, **extra}


def _lookup_failures(obs: DkimObservation) -> list[Finding]:
    """Failed selector lookups: unknown, never "no key". Probes are grouped per outcome."""
    failed = [lk for lk in obs.lookups if lk.answer.outcome.is_failure]
    if not obs.discovering:
        return [
            lookup_failed(
                CHECK, lk.answer, f"the DKIM key of selector {lk.selector}", selector=lk.selector
            )
            for lk in failed
        ]
    findings = []
    for outcome in dict.fromkeys(lk.answer.outcome for lk in failed):
        group = [lk.selector for lk in failed if lk.answer.outcome is outcome]
        first = next(lk for lk in failed if lk.answer.outcome is outcome)
        others = f" (and the {len(group) - 1} other probed selectors that failed the same way)"
        purpose = f"whether selector {first.selector} has a DKIM key" + (
            others if len(group) > 1 else ""
        )
        findings.append(lookup_failed(CHECK, first.answer, purpose, failed_selectors=group))
    return findings


def _judge_selector(obs: DkimObservation, item: _Judged, judged: list[_Judged]) -> list[Finding]:
    lookup, answer = item.lookup, item.lookup.answer
    named = not obs.discovering
    if answer.outcome.is_failure:
        return []
    if item.dangling:
        target = lookup.cname[-1]
        what = "does not exist" if answer.outcome is Outcome.NXDOMAIN else "has no TXT record"
        return [
            dkim_finding(
                "dkim.dangling-cname",
                Severity.ERROR if named else Severity.WARNING,
                f"{_where(lookup)} is a CNAME to {target}, which {what}: no key is published "
                "there, so signatures made with this selector fail.",
                _evidence(item, outcome=answer.outcome.value),
                f"If you still send through the provider behind {target}, finish its DKIM setup "
                "(Microsoft 365: enable DKIM signing for the domain); otherwise delete the CNAME.",
                "RFC 6376 §6.1.2",
            )
        ]
    if answer.outcome.is_negative:
        if not named:
            return []
        what = "does not exist" if answer.outcome is Outcome.NXDOMAIN else "has no TXT record"
        return [
            dkim_finding(
                "dkim.selector-missing",
                Severity.ERROR,
                f"No DKIM key is published for selector {lookup.selector}: {lookup.name} {what}, "
                "so signatures made with this selector fail.",
                _evidence(item, outcome=answer.outcome.value),
                f"Publish the key record (`v=DKIM1; k=rsa; p=…`) at {lookup.name}, or check the "
                "selector: it is the s= tag of the DKIM-Signature header of a message you sent.",
                "RFC 6376 §3.6.2.1",
            )
        ]
    if not item.found:
        if not named:
            return []  # probed: a record that is not a key there is simply no key
        return [
            dkim_finding(
                "dkim.not-a-key",
                Severity.ERROR,
                f"{_where(lookup)} has a TXT record that is not a DKIM key "
                f"(`{printable(item.records[0].text, 40)}`): receivers discard it, so "
                "signatures made with this selector fail.",
                _evidence(item),
                f"Publish the DKIM key record (`v=DKIM1; k=rsa; p=…`) at {lookup.name}; move the "
                "other record to the name it belongs to.",
                RFC_KEY,
            )
        ]
    findings = []
    if lookup.cname:
        findings.append(
            dkim_finding(
                "dkim.cname",
                Severity.INFO,
                f"{_where(lookup)} is delegated: a CNAME to {lookup.cname[-1]}, which publishes "
                "the key. Whoever runs that name (usually your email provider) controls the key.",
                _evidence(item),
            )
        )
    if len(item.records) > 1:
        findings.append(
            dkim_finding(
                "dkim.multiple-records",
                Severity.ERROR,
                f"{_where(lookup)} has {len(item.records)} TXT records: a receiver uses any one "
                "of them, so verification fails whenever it picks the wrong one.",
                _evidence(item),
                "If they are pieces of one key, publish them as strings of one TXT record; if "
                "they are separate keys, give each its own selector.",
                "RFC 6376 §3.6.2.2, §6.1.2",
            )
        )
        return findings
    assert item.key is not None  # found, with exactly one record
    findings += judge_key(item.key, _where(lookup), _evidence(item))
    return findings + _judge_among_others(obs, item, item.key, judged)


def _judge_among_others(
    obs: DkimObservation, item: _Judged, key: KeyRecord, judged: list[_Judged]
) -> list[Finding]:
    """A revoked key, or an Ed25519 one, matters less when another selector has a usable key."""
    usable = [j.lookup.selector for j in judged if j is not item and j.usable]
    if key.revoked:
        if usable:
            also = f" Selector {usable[0]} has a usable key."
        elif obs.discovering:
            also = " No other probed selector has a usable key (name yours with --dkim-selector)."
        else:
            also = " No other selector checked has a usable key."
        return [
            dkim_finding(
                "dkim.revoked",
                Severity.WARNING if usable else Severity.ERROR,
                f"The key of {_where(item.lookup)} is revoked (empty `p=`): signatures made "
                f"with it fail.{also}",
                _evidence(item),
                "If mail is still signed with this selector, publish its key again or sign with "
                "a selector that has one; otherwise delete the record once no such mail is in "
                "transit.",
                RFC_KEY,
            )
        ]
    if key.has_key and key.key_type == "ed25519":
        rsa = [j.lookup.selector for j in judged if j.usable and j.key and j.key.key_type == "rsa"]
        tail = (
            f" An RSA key is published under selector {rsa[0]}: sign with both."
            if rsa
            else " Receivers that cannot verify it treat mail signed only with it as unsigned: "
            "sign with an RSA key too."
        )
        return [
            dkim_finding(
                "dkim.ed25519",
                Severity.INFO,
                f"{_where(item.lookup)} has an Ed25519 key (RFC 8463). Many receivers do "
                f"not verify Ed25519 signatures yet.{tail}",
                {**_evidence(item), "key_type": key.key_type},
                "" if rsa else "Add a 2048-bit RSA key under a second selector.",
                "RFC 8463",
            )
        ]
    return []


def _judge_discovery(obs: DkimObservation, judged: list[_Judged]) -> list[Finding]:
    """When probing found no key: say how far it looked, and what `_domainkey` hints."""
    if any(j.found for j in judged):
        return []
    probed = len(obs.lookups)
    failed = sum(1 for j in judged if j.lookup.answer.outcome.is_failure)
    if failed == probed:
        return []  # every probe failed: the dns.* findings say so, and nothing more is known
    domainkey = obs.domainkey.outcome
    name = f"_domainkey.{obs.domain}"
    evidence = {
        "domain": obs.domain,
        "probed": probed,
        "failed": failed,
        "domainkey": domainkey.value,
        "selectors": [j.lookup.selector for j in judged],
    }
    answered = (
        f"the {probed - failed} of {probed} selectors" if failed else f"the {probed} selectors"
    )
    remedy = (
        "If the domain sends mail, sign it with DKIM (your provider's DKIM setup publishes the "
        "key). If it already does, take the s= tag of the DKIM-Signature header of a message "
        "it sent and run again with --dkim-selector SELECTOR."
    )
    if domainkey is Outcome.NODATA:
        return [
            dkim_finding(
                "dkim.selector-unknown",
                Severity.INFO,
                f"No DKIM key was found under {answered} probed for {obs.domain}, but {name} "
                "exists, so names exist under it (RFC 8020): DKIM is probably set up under a "
                "selector no list can guess, and its key was not checked.",
                evidence,
                "Take the s= tag of the DKIM-Signature header of a message the domain sent and "
                "run again with --dkim-selector SELECTOR.",
                "RFC 8020 §2",
            )
        ]
    hint = {
        Outcome.NXDOMAIN: f"{name} does not exist, and under RFC 8020 no name exists below it "
        "either, so most likely no DKIM key is published at all",
        Outcome.ANSWER: f"{name} has a TXT record of its own, which says nothing about selectors",
    }.get(domainkey, f"the lookup of {name} failed, so there is no hint either way")
    return [
        dkim_finding(
            "dkim.not-found",
            Severity.WARNING,
            f"No DKIM key was found under {answered} probed for {obs.domain}. Selectors cannot "
            f"be listed, so this does not prove there is none; but {hint}. Gmail and Yahoo "
            "require DKIM from bulk senders.",
            evidence,
            remedy,
            "RFC 6376 §3.6.2.1, RFC 8020 §2",
        )
    ]


class DkimCheck:
    """The `dkim` check."""

    name = CHECK
    description = "DKIM public keys under named or common selectors"

    async def run(self, ctx: CheckContext) -> CheckResult:
        """Gather (the named selectors, or the common ones) and judge."""
        obs = await observe_dkim(ctx)
        if obs is None:
            return CheckResult(CHECK, Status.SKIPPED)
        return evaluate_dkim(obs)
