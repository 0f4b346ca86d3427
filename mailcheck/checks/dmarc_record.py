"""Parsing and judging one DMARC policy record (RFC 9989 §4.7), with no I/O.

Report URIs are parsed with checkdmarc's `parse_dmarc_report_uri`, which is pure; everything
else that needs DNS (discovery, report authorization) lives in `mailcheck.checks.dmarc`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Imported here, not lazily: a first import inside a running check blocks the event loop for
# ~150 ms while other lookups are in flight, and shows up as DNS time in the trace.
from checkdmarc.dmarc import InvalidDMARCReportURI, parse_dmarc_report_uri

from mailcheck.model import Finding, Severity

CHECK = "dmarc"
POLICIES = ("none", "quarantine", "reject")
KNOWN_TAGS = ("v", "p", "sp", "np", "adkim", "aspf", "rua", "ruf", "fo", "psd", "t")
REMOVED_TAGS = ("pct", "rf", "ri")  # RFC 9989 Appendix C: removed from DMARCbis
DEFAULTS = {"adkim": "r", "aspf": "r", "fo": "0", "psd": "u", "t": "n"}

_TAG = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class TagProblem:
    """A defect of one tag: which, what kind, and in words."""

    code: str
    """Finding code, e.g. `dmarc.invalid-value`."""
    tag: str
    """The tag concerned (`v` for the record as a whole)."""
    message: str
    """What is wrong, naming the tag and value."""


@dataclass(frozen=True)
class ReportUri:
    """One rua/ruf destination."""

    uri: str
    """As written."""
    scheme: str
    """`mailto`, `https`, ..."""
    address: str
    """The mailbox for mailto, else the whole URI."""
    size_limit: str | None
    """The obsolete `!size` suffix, if any."""

    @property
    def domain(self) -> str | None:
        """The domain that receives the reports (mailto only)."""
        if self.scheme != "mailto" or "@" not in self.address:
            return None
        return self.address.rsplit("@", 1)[1].lower().rstrip(".")


@dataclass(frozen=True)
class DmarcRecord:
    """A parsed DMARC record: its tags and everything wrong with it."""

    text: str
    """The record as published (strings joined)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags as written, lower-case names, in order."""
    problems: tuple[TagProblem, ...] = ()
    """Syntax and value defects."""
    rua: tuple[ReportUri, ...] = ()
    """Aggregate report destinations that parsed."""
    ruf: tuple[ReportUri, ...] = ()
    """Failure report destinations that parsed."""

    def value(self, tag: str) -> str | None:
        """The tag's value as written, else its default, else None."""
        return self.tags.get(tag, DEFAULTS.get(tag))

    @property
    def policy(self) -> str | None:
        """`p`, when it is valid."""
        return _valid_policy(self.tags.get("p"))

    @property
    def subdomain_policy(self) -> str | None:
        """`sp`, falling back to `p` (RFC 9989 §4.7)."""
        return _valid_policy(self.tags.get("sp")) or self.policy

    @property
    def nonexistent_policy(self) -> str | None:
        """`np`, falling back to `sp`, then `p`."""
        return _valid_policy(self.tags.get("np")) or self.subdomain_policy

    def applied_to(self, domain: str, location: str, exists: bool) -> tuple[str | None, str]:
        """The policy receivers apply to mail from `domain`, found at `location`, and why."""
        if location == domain:
            return self.policy, "p: the record is the domain's own"
        if exists:
            return self.subdomain_policy, "sp: inherited by a subdomain"
        return self.nonexistent_policy, "np: the name does not exist"

    def tags_json(self) -> dict[str, Any]:
        """Every known tag with its value and whether it was written or defaulted."""
        out: dict[str, Any] = {}
        for tag in KNOWN_TAGS + REMOVED_TAGS:
            if tag in self.tags:
                out[tag] = {"value": self.tags[tag], "explicit": True}
            elif tag in DEFAULTS:
                out[tag] = {"value": DEFAULTS[tag], "explicit": False}
        return out


def _valid_policy(value: str | None) -> str | None:
    return value.lower() if value is not None and value.lower() in POLICIES else None


def is_dmarc_record(text: str) -> bool:
    """True for a TXT string that claims to be a DMARC record (RFC 9989 §4.7: `v=DMARC1` first)."""
    return re.match(r"^\s*v\s*=\s*DMARC1\s*(;|$)", text, re.I) is not None


def parse_dmarc_record(text: str) -> DmarcRecord:
    """Parse a DMARC record; every defect becomes a TagProblem, never an exception."""
    problems: list[TagProblem] = []
    tags: dict[str, str] = {}
    parts = text.split(";")
    if parts and not parts[-1].strip():
        parts.pop()  # a trailing ";" is allowed
    for index, part in enumerate(parts):
        match = _TAG.match(part)
        if match is None:
            shown = part.strip() or "(empty)"
            problems.append(TagProblem("dmarc.syntax", "v", f"{shown!r} is not a tag=value pair"))
            continue
        name, value = match.group(1).lower(), match.group(2)
        if index == 0 and name != "v":
            problems.append(TagProblem("dmarc.syntax", "v", "the record must start with v=DMARC1"))
        if name in tags:
            problems.append(
                TagProblem("dmarc.duplicate-tag", name, f"the {name} tag appears more than once")
            )
            continue
        tags[name] = value
    if tags.get("v") != "DMARC1" and not any(p.code == "dmarc.syntax" for p in problems):
        problems.append(
            TagProblem("dmarc.syntax", "v", f"v={tags.get('v', '')} must be exactly v=DMARC1")
        )
    problems.extend(_check_values(tags))
    rua, rua_problems = _parse_uris(tags, "rua")
    ruf, ruf_problems = _parse_uris(tags, "ruf")
    return DmarcRecord(text, tags, tuple(problems + rua_problems + ruf_problems), rua, ruf)


def _check_values(tags: dict[str, str]) -> list[TagProblem]:
    problems = []
    allowed: dict[str, tuple[str, ...]] = {
        "p": POLICIES,
        "sp": POLICIES,
        "np": POLICIES,
        "adkim": ("r", "s"),
        "aspf": ("r", "s"),
        "psd": ("y", "n", "u"),
        "t": ("y", "n"),
    }
    for tag, values in allowed.items():
        if tag in tags and tags[tag].lower() not in values:
            problems.append(
                TagProblem(
                    "dmarc.invalid-value",
                    tag,
                    f"{tag}={tags[tag]!r} is not one of {', '.join(values)}",
                )
            )
    if "fo" in tags and not all(o.strip() in ("0", "1", "d", "s") for o in tags["fo"].split(":")):
        problems.append(
            TagProblem(
                "dmarc.invalid-value", "fo", f"fo={tags['fo']!r} must be 0, 1, d or s, with ':'"
            )
        )
    if "pct" in tags and not (tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100):
        problems.append(
            TagProblem("dmarc.invalid-value", "pct", f"pct={tags['pct']!r} must be 0 to 100")
        )
    if "p" not in tags and "v" in tags:
        problems.append(
            TagProblem(
                "dmarc.missing-policy",
                "p",
                "the record has no p tag; RFC 7489 receivers ignore such a record and RFC 9989 "
                "receivers treat it as p=none",
            )
        )
    return problems


def _parse_uris(tags: dict[str, str], tag: str) -> tuple[tuple[ReportUri, ...], list[TagProblem]]:
    if tag not in tags:
        return (), []
    uris: list[ReportUri] = []
    problems: list[TagProblem] = []
    for raw in (u.strip() for u in tags[tag].split(",")):
        if not raw:
            continue
        try:
            parsed = parse_dmarc_report_uri(raw)
        except InvalidDMARCReportURI as exc:
            problems.append(TagProblem("dmarc.invalid-uri", tag, f"{tag}: {exc}"))
            continue
        uris.append(ReportUri(raw, parsed["scheme"], parsed["address"], parsed["size_limit"]))
    return tuple(uris), problems


def judge_record(record: DmarcRecord, location: str) -> list[Finding]:
    """Findings about the record itself: its defects, its tags, and the policy's strength."""
    name = f"_dmarc.{location}"
    findings = [
        Finding(
            CHECK,
            problem.code,
            Severity.ERROR,
            f"The DMARC record at {name} is invalid: {problem.message}.",
            {"name": name, "record": record.text, "tag": problem.tag},
            remedy="Correct the record; receivers may ignore an invalid DMARC record entirely.",
            rfc="RFC 9989 §4.7",
        )
        for problem in record.problems
    ]
    for tag in record.tags:
        if tag not in KNOWN_TAGS + REMOVED_TAGS:
            findings.append(
                Finding(
                    CHECK,
                    "dmarc.unknown-tag",
                    Severity.WARNING,
                    f"The DMARC record at {name} has an unknown tag {tag!r}; receivers ignore it "
                    "(a typo of a real tag does nothing).",
                    {"name": name, "tag": tag, "value": record.tags[tag]},
                    remedy=f"Remove {tag}= or correct its name.",
                    rfc="RFC 9989 §4.7",
                )
            )
    pct = record.tags.get("pct")
    if pct is not None and pct.isdigit() and int(pct) < 100:
        findings.append(
            Finding(
                CHECK,
                "dmarc.pct",
                Severity.WARNING,
                f"pct={pct} at {name}: receivers that still honour pct apply the policy to only "
                f"{pct}% of failing mail. RFC 9989 removed pct.",
                {"name": name, "pct": int(pct)},
                remedy="Remove pct (use t=y while testing instead).",
                rfc="RFC 9989 Appendix C",
            )
        )
    for tag in REMOVED_TAGS:
        if tag in record.tags and not (tag == "pct" and pct is not None and pct != "100"):
            findings.append(
                Finding(
                    CHECK,
                    "dmarc.removed-tag",
                    Severity.INFO,
                    f"The {tag} tag at {name} was removed by RFC 9989; receivers ignore it.",
                    {"name": name, "tag": tag, "value": record.tags[tag]},
                    remedy=f"Remove {tag}= from the record.",
                    rfc="RFC 9989 Appendix C",
                )
            )
    findings.extend(_judge_policy(record, name))
    return findings


def _judge_policy(record: DmarcRecord, name: str) -> list[Finding]:
    findings: list[Finding] = []
    if record.policy == "none":
        findings.append(
            Finding(
                CHECK,
                "dmarc.policy-none",
                Severity.WARNING,
                f"p=none at {name}: monitoring only; mail that fails DMARC is delivered as usual, "
                "so the domain is not protected against spoofing.",
                {"name": name, "p": "none"},
                remedy="Once the reports show your own mail passes, move to p=quarantine, then "
                "p=reject.",
                rfc="RFC 9989 §4.7",
            )
        )
    enforcing = record.policy in ("quarantine", "reject")
    for tag, code, what in (
        ("sp", "dmarc.sp-none", "subdomains"),
        ("np", "dmarc.np-none", "non-existent subdomains"),
    ):
        if enforcing and record.tags.get(tag, "").lower() == "none":
            findings.append(
                Finding(
                    CHECK,
                    code,
                    Severity.WARNING,
                    f"{tag}=none at {name} under p={record.policy}: mail from {what} is not "
                    "protected; spoofers use them.",
                    {"name": name, tag: "none", "p": record.policy},
                    remedy=f"Remove {tag}=none (it then follows p) or set it to quarantine/reject.",
                    rfc="RFC 9989 §4.7",
                )
            )
    if record.tags.get("t", "").lower() == "y":
        findings.append(
            Finding(
                CHECK,
                "dmarc.testing",
                Severity.WARNING,
                f"t=y at {name}: testing mode; receivers apply a policy one step weaker than "
                f"p={record.policy}.",
                {"name": name, "t": "y"},
                remedy="Remove t=y when the reports show your mail passes.",
                rfc="RFC 9989 §4.7",
            )
        )
    return findings
