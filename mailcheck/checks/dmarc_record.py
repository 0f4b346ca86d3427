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
