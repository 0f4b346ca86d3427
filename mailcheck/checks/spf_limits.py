"""The limits of RFC 7208 §4.6.4 over the whole SPF tree, never stopping at 10 (pure).

Counted as a receiver would for a client that matches nothing (the most it ever spends);
terms that depend on the client count their worst case.
"""

from __future__ import annotations

from collections import Counter

from mailcheck.checks.spf_audit import MAX_TERM_LOOKUPS, MAX_TREE_NODES, SpfObservation
from mailcheck.checks.spf_findings import finding
from mailcheck.checks.spf_terms import MAX_LOOKUPS, MAX_VOIDS
from mailcheck.model import Finding, Severity


def judge_totals(obs: SpfObservation) -> list[Finding]:
    """The limits over the whole tree (RFC 7208 §4.6.4), never stopping at 10."""
    root = obs.root
    findings = []
    total, voids = root.total_lookups, root.total_voids
    per_node = [{"domain": n.domain, "lookups": n.own_lookups} for n in root.walk()]
    truncated = [n.via for n in root.walk() if n.error == "truncated"]
    at_least = "at least " if truncated or obs.unresolved else ""
    if total > MAX_LOOKUPS:
        findings.append(
            finding(
                "spf.lookup-limit",
                Severity.ERROR,
                f"The SPF record of {obs.domain} needs {at_least}{total} DNS lookups, over the "
                f"limit of "
                f"{MAX_LOOKUPS}: receivers answer permerror for any host not matched before "
                "the limit.",
                {"dns_lookups": total, "per_record": [p for p in per_node if p["lookups"]]},
                remedy="Replace includes by the ip4:/ip6: ranges they contain, or drop services "
                "you no longer use; 'SPF flattening' tools automate this.",
                rfc="RFC 7208 §4.6.4",
            )
        )
    void_terms = [
        {"domain": n.domain, "term": t.text, "kind": t.kind, "outcome": t.answers[0].outcome.value}
        for n in root.walk()
        for t in n.lookups
        if t.void
    ]
    if voids > MAX_VOIDS:
        findings.append(
            finding(
                "spf.void-limit",
                Severity.ERROR,
                f"The SPF tree of {obs.domain} has {voids} void lookups (names that do not exist "
                f"or have no records), over the limit of {MAX_VOIDS}: receivers answer "
                f"permerror. {', '.join(v['term'] for v in void_terms)}.",
                {"void_lookups": voids, "terms": void_terms},
                remedy="Remove the terms that name hosts or domains that no longer exist.",
                rfc="RFC 7208 §4.6.4",
            )
        )
    else:
        findings.extend(
            finding(
                "spf.void-lookup",
                Severity.WARNING,
                f"{v['term']} in the SPF record of {v['domain']} finds nothing ({v['outcome']}): "
                f"it authorizes no one and counts towards the limit of {MAX_VOIDS} void lookups.",
                v,
                remedy=f"Remove {v['term']} or publish the records it names.",
                rfc="RFC 7208 §4.6.4",
            )
            for v in void_terms
            if v["kind"] not in ("include", "redirect")  # spf.include-no-spf says it better
        )
    findings.extend(_judge_dynamic(obs, voids))
    findings.extend(_judge_duplicates(obs))
    if truncated or obs.unresolved:
        findings.append(
            finding(
                "spf.tree-truncated",
                Severity.WARNING,
                f"The SPF tree of {obs.domain} is too large to resolve whole: "
                f"{len(truncated)} includes past {MAX_TREE_NODES} records were not fetched and "
                f"{obs.unresolved} terms past {MAX_TERM_LOOKUPS} lookups were not resolved, "
                "so the counts are lower bounds.",
                {"includes_not_fetched": len(truncated), "terms_not_resolved": obs.unresolved},
                remedy="Flatten the record: no receiver evaluates a tree this large.",
                rfc="RFC 7208 §4.6.4",
            )
        )
    return findings


def _judge_dynamic(obs: SpfObservation, voids: int) -> list[Finding]:
    dynamic = [(n.domain, t.text) for n, t in obs.dynamic_terms]
    if not dynamic:
        return []
    names = ", ".join(term for _, term in dynamic)
    evidence = {"terms": [{"domain": d, "term": t} for d, t in dynamic], "void_lookups": voids}
    worst = obs.worst_case_voids
    out = [
        finding(
            "spf.ip-dependent",
            Severity.INFO,
            f"{names}: what these look up depends on the connecting host or sender, so they are "
            "counted as one lookup each and, at worst, one void lookup each (an include or "
            "redirect also leads to records that cannot be counted here).",
            {**evidence, "void_lookups_worst_case": worst},
            rfc="RFC 7208 §4.6.4, §7",
        )
    ]
    if voids <= MAX_VOIDS < worst:
        out.append(
            finding(
                "spf.void-limit-possible",
                Severity.WARNING,
                f"For some connecting hosts the SPF tree of {obs.domain} reaches {worst} void "
                f"lookups ({voids} always, plus {names}): over the limit of {MAX_VOIDS}, "
                "receivers answer permerror, even for senders listed later in the record.",
                {**evidence, "void_lookups_worst_case": worst},
                remedy="Put the terms that may find nothing (exists:, ptr, macros) last, and "
                "remove other terms that find nothing.",
                rfc="RFC 7208 §4.6.4",
            )
        )
    return out


def _judge_duplicates(obs: SpfObservation) -> list[Finding]:
    counts = Counter(n.domain for n in obs.root.walk() if n.via and n.error is None)
    repeated = {domain: count for domain, count in counts.items() if count > 1}
    if not repeated:
        return []
    listed = ", ".join(f"{domain} ({count}×)" for domain, count in repeated.items())
    return [
        finding(
            "spf.duplicate-include",
            Severity.INFO,
            f"Reached more than once in the SPF tree of {obs.domain}: {listed}; each time "
            "costs its lookups again.",
            {"records": [{"domain": d, "times": c} for d, c in repeated.items()]},
            remedy="Include each record once.",
            rfc="RFC 7208 §4.6.4",
        )
    ]
