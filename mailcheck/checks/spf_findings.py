"""The findings of the SPF audit, from the tree of records (pure functions, no DNS).

Severity follows what receivers do: what they answer permerror, and what authorizes
everyone, is an error; what weakens delivery is a warning; advice is info.
"""

from __future__ import annotations

from typing import Any

from mailcheck.checks.base import lookup_failed
from mailcheck.checks.spf_audit import SpfNode, SpfObservation
from mailcheck.checks.spf_eval import why_none
from mailcheck.checks.spf_parse import Mechanism, SpfRecord, is_spf_record, printable
from mailcheck.checks.spf_terms import MAX_LOOKUPS, MAX_NAMES
from mailcheck.model import Finding, Severity

CHECK = "spf"
RECORD_ADVISED = 450  # RFC 7208 §3.4: keep the record under 450 octets
UDP_ANSWER = 512  # RFC 7208 §3.4: the answer should fit a DNS reply over UDP without EDNS
STRING_MAX = 255  # RFC 1035 §3.3: one character-string holds at most 255 octets
WIDE_IP4, WIDE_IP6 = 8, 32


def finding(
    code: str,
    severity: Severity,
    message: str,
    evidence: dict[str, Any],
    remedy: str = "",
    rfc: str = "RFC 7208",
) -> Finding:
    """A finding of the spf check."""
    return Finding(CHECK, code, severity, message, evidence, remedy, rfc)


def owned(node: SpfNode, domain: str) -> bool:
    """The node is the domain's own (itself or a subdomain), not a provider's."""
    return node.domain == domain or node.domain.endswith("." + domain)


def judge_tree(obs: SpfObservation) -> list[Finding]:
    """Every finding about the records themselves, node by node (spf_limits has the totals)."""
    findings: list[Finding] = []
    for node in obs.root.walk():
        findings.extend(judge_node(node, obs.domain))
    return findings


def judge_node(node: SpfNode, domain: str) -> list[Finding]:
    """Findings about one record, or about why there is none."""
    if node.error is not None:
        return _judge_missing(node)
    record = node.record
    assert record is not None  # a node without an error has its record
    findings = _judge_syntax(node, record)
    if owned(node, domain):
        findings.extend(_judge_size(node))
        findings.extend(_judge_shape(node, record))
    findings.extend(_judge_policy(node, record))
    for term in node.lookups:
        # An include's or redirect's TXT is the child's own lookup: judged with the child.
        for answer in term.failed if term.kind not in ("include", "redirect") else ():
            purpose = f"what {term.text} of {node.domain} finds"
            findings.append(lookup_failed(CHECK, answer, purpose, term=term.text))
        if term.target is None and not term.dynamic and term.kind in ("a", "mx", "exists"):
            findings.append(
                finding(
                    "spf.invalid-target",
                    Severity.ERROR,
                    f"{printable(term.text)} at {node.domain} names something that cannot be a "
                    "domain name (an empty label, or a label over 63 octets): receivers answer "
                    "permerror or treat it as matching nothing; RFC 7208 leaves it undefined.",
                    {"domain": node.domain, "term": printable(term.text)},
                    remedy="Correct the name.",
                    rfc="RFC 7208 §4.3, §4.8",
                )
            )
        if term.kind == "mx" and term.answers and len(term.answers[0].mx()) > MAX_NAMES:
            count = len(term.answers[0].mx())
            findings.append(
                finding(
                    "spf.mx-too-many",
                    Severity.ERROR,
                    f"{term.text} at {node.domain} names {term.target}, which has {count} MX "
                    f"records: more than {MAX_NAMES} makes the mx mechanism a permerror.",
                    {"domain": node.domain, "term": term.text, "mx_records": count},
                    remedy="List the sending hosts with ip4:/ip6: instead of mx, or trim the MX "
                    "records to 10.",
                    rfc="RFC 7208 §4.6.4",
                )
            )
    return findings


def _judge_missing(node: SpfNode) -> list[Finding]:
    kind = "redirect" if node.via and node.via.lower().startswith("redirect") else "include"
    where = f"{node.via} in the record of {node.parent}" if node.via else node.domain
    if node.error == "lookup-failed" and node.txt is not None:
        return [lookup_failed(CHECK, node.txt, f"the SPF record of {node.domain}")]
    if node.error == "multiple":
        return [
            finding(
                "spf.multiple-records",
                Severity.ERROR,
                f"{node.domain} publishes {len(node.records)} SPF records: receivers answer "
                "permerror" + (f" for {where}." if node.via else "."),
                {"domain": node.domain, "records": [printable(r) for r in node.records]},
                remedy="Merge them into one v=spf1 record.",
                rfc="RFC 7208 §4.5",
            )
        ]
    if node.error == "loop":
        return [
            finding(
                "spf.loop",
                Severity.ERROR,
                f"{where} leads back to {node.domain}, which is already being evaluated: "
                f"receivers loop until the limit of {MAX_LOOKUPS} lookups and answer permerror.",
                {"domain": node.domain, "term": node.via},
                remedy=f"Remove {node.via}.",
                rfc="RFC 7208 §4.6.4",
            )
        ]
    if node.error in ("none", "invalid-name") and node.via is not None:
        why = (
            "is not a valid domain name"
            if node.error == "invalid-name"
            else f"has no SPF record ({why_none(node.txt)})"
            if node.txt
            else "has no SPF record"
        )
        return [
            finding(
                "spf.redirect-no-spf" if kind == "redirect" else "spf.include-no-spf",
                Severity.ERROR,
                f"{where}: {node.domain} {why}, so receivers answer permerror when they reach it.",
                {"term": node.via, "domain": node.domain, "error": node.error},
                remedy=f"Correct or remove {node.via} (the provider may have renamed it).",
                rfc="RFC 7208 §5.2" if kind == "include" else "RFC 7208 §6.1",
            )
        ]
    return []  # the root without a record (spf.none) and dynamic targets are judged elsewhere


def _judge_syntax(node: SpfNode, record: SpfRecord) -> list[Finding]:
    findings = []
    bounds = []
    offset = 0
    for string in node.strings[:-1]:
        offset += len(string)
        bounds.append(offset)
    for problem in record.problems:
        end = problem.offset + len(problem.term)
        joined = [b for b in bounds if problem.offset < b < end]
        evidence = {"domain": node.domain, "record": printable(record.text)}
        if problem.term and joined:
            cut = joined[0] - problem.offset
            left, right = printable(problem.term[:cut]), printable(problem.term[cut:])
            findings.append(
                finding(
                    "spf.string-join",
                    Severity.ERROR,
                    f"The TXT strings of {node.domain}'s SPF record are joined without a "
                    f"space: '{left}' + '{right}' makes '{printable(problem.term)}', which is "
                    f"invalid ({problem.message}); receivers answer permerror.",
                    {**evidence, "term": printable(problem.term), "strings": [left, right]},
                    remedy="End the first string with a space (or start the next with one): "
                    "strings are concatenated as they are.",
                    rfc="RFC 7208 §3.3",
                )
            )
            continue
        term = f" '{printable(problem.term)}'" if problem.term else ""
        findings.append(
            finding(
                "spf.duplicate-modifier" if problem.code == "duplicate-modifier" else "spf.syntax",
                Severity.ERROR,
                f"The SPF record of {node.domain} is invalid at{term}: {problem.message}. "
                "Receivers answer permerror for the whole record.",
                {**evidence, "term": printable(problem.term), "problem": problem.message},
                remedy="Correct or remove the term.",
                rfc="RFC 7208 §4.6, §6"
                if problem.code == "duplicate-modifier"
                else "RFC 7208 §4.6",
            )
        )
    return findings


def _judge_size(node: SpfNode) -> list[Finding]:
    findings = []
    length = len(node.records[0]) if node.records else 0
    evidence = {"domain": node.domain, "length": length}
    if length > RECORD_ADVISED:
        findings.append(
            finding(
                "spf.record-too-long",
                Severity.WARNING,
                f"The SPF record of {node.domain} is {length} octets; RFC 7208 advises staying "
                f"under {RECORD_ADVISED} so that the DNS answer fits one UDP datagram.",
                evidence,
                remedy="Move parts of it into an include: on a subdomain.",
                rfc="RFC 7208 §3.4",
            )
        )
    size = answer_size(node)
    if size > UDP_ANSWER:
        findings.append(
            finding(
                "spf.answer-too-large",
                Severity.WARNING,
                f"The TXT answer for {node.domain} is about {size} octets, over {UDP_ANSWER}: "
                "it needs EDNS or a retry over TCP, which some receivers do not do.",
                {**evidence, "answer_octets": size},
                remedy=f"Remove TXT records at {node.domain} that are no longer needed, or move "
                "the SPF record's content into an include.",
                rfc="RFC 7208 §3.4",
            )
        )
    long = [len(s) for s in node.strings if len(s) > STRING_MAX]
    if long:
        findings.append(
            finding(
                "spf.string-too-long",
                Severity.WARNING,
                f"The SPF record of {node.domain} has a string of {long[0]} octets; a TXT "
                f"string holds at most {STRING_MAX}.",
                {**evidence, "string_lengths": long},
                remedy="Split the record into strings of at most 255 octets.",
                rfc="RFC 7208 §3.3",
            )
        )
    return findings


def answer_size(node: SpfNode) -> int:
    """The octets of the TXT answer without EDNS: header, question, then each record."""
    if node.txt is None:
        return 0
    name = len(node.domain) + 2
    records = sum(2 + 10 + sum(1 + len(s) for s in t) for t in node.txt.txt_strings())
    return 12 + name + 4 + records


def _judge_shape(node: SpfNode, record: SpfRecord) -> list[Finding]:
    findings = []
    redirect = record.redirect
    if redirect is not None and record.all is not None:
        findings.append(
            finding(
                "spf.redirect-ignored",
                Severity.WARNING,
                f"{node.domain} has both {record.all.text} and {redirect.text}: receivers stop "
                f"at {record.all.text}, so the redirect is never used.",
                {"domain": node.domain, "all": record.all.text, "redirect": redirect.text},
                remedy="Remove one of them: redirect= for the provider's policy, all for yours.",
                rfc="RFC 7208 §6.1",
            )
        )
    if record.unreached:
        terms = [m.text for m in record.unreached]
        findings.append(
            finding(
                "spf.unreachable-terms",
                Severity.WARNING,
                f"In the SPF record of {node.domain}, {', '.join(terms)} come after "
                f"{record.all.text if record.all else 'all'} and are never evaluated.",
                {"domain": node.domain, "terms": terms},
                remedy="Move all to the end of the record.",
                rfc="RFC 7208 §5.1",
            )
        )
    for modifier in record.modifiers:
        if modifier.name not in ("redirect", "exp"):
            findings.append(
                finding(
                    "spf.unknown-modifier",
                    Severity.INFO,
                    f"{modifier.text} in the SPF record of {node.domain} is not a modifier "
                    "receivers know; they ignore it.",
                    {"domain": node.domain, "term": modifier.text},
                    remedy="Remove it, or check its spelling (redirect=, exp=).",
                    rfc="RFC 7208 §6",
                )
            )
    return findings


def _judge_policy(node: SpfNode, record: SpfRecord) -> list[Finding]:
    findings = []
    uses_p = [m.text for m in record.mechanisms if m.domain_spec and "p" in m.domain_spec.letters]
    ptr = [m.text for m in record.mechanisms if m.name == "ptr"] + uses_p
    if ptr:
        findings.append(
            finding(
                "spf.ptr",
                Severity.WARNING,
                f"The SPF record of {node.domain} uses {', '.join(ptr)}: ptr is deprecated, "
                "slow and unreliable, and some receivers ignore it.",
                {"domain": node.domain, "terms": ptr},
                remedy="Replace ptr with ip4:/ip6: ranges or a:/include: of the sending hosts.",
                rfc="RFC 7208 §5.5",
            )
        )
    if not node.authorizing:
        return findings
    everyone = record.all is not None and record.all.qualifier == "+"
    if everyone and record.all is not None:
        findings.append(
            finding(
                "spf.plus-all",
                Severity.ERROR,
                f"{record.all.text} in the SPF record of {node.domain}"
                + (f" (reached by {node.via})" if node.via else "")
                + " authorizes every host on the internet to send its mail.",
                {"domain": node.domain, "term": record.all.text},
                remedy="End the record with -all (or ~all) after listing your real senders.",
                rfc="RFC 7208 §5.1",
            )
        )
    for mech in record.mechanisms:
        wide = _width(mech)
        if mech.qualifier == "+" and wide is not None:
            findings.append(
                finding(
                    "spf.wide-range",
                    Severity.ERROR,
                    f"{mech.text} in the SPF record of {node.domain} authorizes {wide}: a large "
                    "part of the internet.",
                    {"domain": node.domain, "term": mech.text},
                    remedy="List the sending hosts' own addresses or small ranges.",
                    rfc="RFC 7208 §5.6",
                )
            )
    return findings


def _width(mech: Mechanism) -> str | None:
    """How much of the address space a mechanism authorizes, when that is too much."""
    network = mech.network
    if network is not None:
        limit = WIDE_IP4 if network.version == 4 else WIDE_IP6
        if network.prefixlen >= limit:
            return None
        share = f"1/{2**network.prefixlen:,} of all IPv{network.version} addresses"
        return f"{share} ({network.num_addresses:,} addresses)" if network.version == 4 else share
    if mech.name in ("a", "mx"):
        if mech.cidr4 is not None and mech.cidr4 < WIDE_IP4:
            return f"a /{mech.cidr4} around each address"
        if mech.cidr6 is not None and mech.cidr6 < WIDE_IP6:
            return f"a /{mech.cidr6} around each address"
    return None


def is_selected_join(strings: tuple[bytes, ...]) -> bool:
    """A TXT record whose first string alone would start an SPF record."""
    return bool(strings) and is_spf_record(strings[0].decode("latin-1"))
