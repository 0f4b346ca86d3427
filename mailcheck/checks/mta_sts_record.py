"""MTA-STS and TLS-RPT texts, parsed with no I/O: the TXT records, the policy file, MX patterns.

RFC 8461 (MTA-STS) §3.1 and §3.2 give the TXT and policy grammars, §4.1 the MX matching rule;
RFC 8460 (TLS-RPT) §3 the `_smtp._tls` record. Parsers never raise: every defect becomes a
`Problem`, marked fatal when a conforming sender would discard the whole record or policy.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2: max_age is at most 31557600 s (one year)
STS_VERSION = "STSv1"
TLSRPT_VERSION = "TLSRPTv1"

# RFC 8461 §3.1: senders keep only the TXT records that begin with the version; a record that
# starts with it but is otherwise broken still counts (and makes the policy invalid).
# Every pattern here reads text a server controls (TXT records, the policy file), so each is
# linear: a fixed prefix, or one character class per position with no nested or adjacent
# repeats that could overlap; used with match/fullmatch, never search. Policy lines are split
# with str.partition, not a regex (`(.*?)[ \t]*$` backtracks quadratically over blanks).
_STS_CANDIDATE = re.compile(r"v=STSv1(?![A-Za-z0-9])")
_TLSRPT_CANDIDATE = re.compile(r"v=TLSRPTv1(?![A-Za-z0-9])")
_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")  # RFC 8461 §3.1: sts-id = 1*32(ALPHA / DIGIT)
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")  # §3.1, §3.2, RFC 8460 §3
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")  # printable, no "=", ";" or space
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # RFC 5321 sub-domain
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986 §3.1
_WSP = " \t"
POLICY_FIELDS = ("version", "mode", "max_age", "mx")


class StsMode(enum.StrEnum):
    """The `mode` of an MTA-STS policy (RFC 8461 §3.2)."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class Problem:
    """One defect of a record or policy, in words."""

    where: str
    """What is concerned: `line 3`, `id`, `rua`, `record`..."""
    text: str
    """The offending text as written (may be empty when something is missing)."""
    reason: str
    """What is wrong, for a person."""
    fatal: bool
    """True when a conforming sender discards the whole record or policy because of it."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for evidence."""
        return {"where": self.where, "text": self.text, "reason": self.reason, "fatal": self.fatal}


@dataclass(frozen=True)
class StsRecord:
    """One `_mta-sts` TXT record that begins with `v=STSv1` (RFC 8461 §3.1)."""

    text: str
    """The record, its character-strings joined."""
    id: str | None
    """The policy id when one is well formed."""
    extensions: tuple[tuple[str, str], ...]
    """Other `name=value` fields, in order (senders ignore them)."""
    problems: tuple[Problem, ...]
    """Defects; any fatal one means senders see no policy."""

    @property
    def valid(self) -> bool:
        """True when senders accept the record."""
        return not any(p.fatal for p in self.problems)


@dataclass(frozen=True)
class StsPolicy:
    """An MTA-STS policy file, parsed (RFC 8461 §3.2)."""

    version: str | None
    """The `version` value (the first one when repeated)."""
    mode: StsMode | None
    """The mode, when valid."""
    max_age: int | None
    """Seconds, when valid and in range."""
    mx: tuple[str, ...]
    """Well-formed `mx` patterns, lower case, in order."""
    extensions: tuple[tuple[str, str], ...]
    """Unknown `key: value` lines (ignored by senders, RFC 8461 §3.2)."""
    problems: tuple[Problem, ...]
    """Defects; any fatal one means senders discard the policy."""
    line_ending: str
    """`CRLF`, `LF`, `mixed` or `none` (a one-line file)."""

    @property
    def valid(self) -> bool:
        """True when senders accept the policy."""
        return not any(p.fatal for p in self.problems)

    def patterns_for(self, host: str) -> tuple[str, ...]:
        """The `mx` patterns that cover `host` (RFC 8461 §4.1)."""
        return tuple(p for p in self.mx if mx_pattern_matches(p, host))

    def covers(self, host: str) -> bool:
        """True when `host` matches at least one `mx` pattern."""
        return bool(self.patterns_for(host))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "version": self.version,
            "mode": self.mode.value if self.mode else None,
            "max_age": self.max_age,
            "mx": list(self.mx),
            "extensions": dict(self.extensions),
            "line_ending": self.line_ending,
            "valid": self.valid,
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class TlsRptRecord:
    """One `_smtp._tls` TXT record that begins with `v=TLSRPTv1` (RFC 8460 §3)."""

    text: str
    """The record, its character-strings joined."""
    rua: tuple[str, ...]
    """Well-formed report URIs (`mailto:` or `https:`), in order."""
    problems: tuple[Problem, ...]
    """Defects; any fatal one means senders send no reports."""

    @property
    def valid(self) -> bool:
        """True when senders accept the record."""
        return not any(p.fatal for p in self.problems)


def join_txt(strings: Iterable[bytes]) -> str:
    """A TXT record's character-strings joined into one text (RFC 8461 §3.1, RFC 7208 §3.3)."""
    return b"".join(strings).decode("utf-8", errors="replace")


def is_sts_candidate(text: str) -> bool:
    """True when a TXT record counts as an MTA-STS record (begins with `v=STSv1`, §3.1)."""
    return bool(_STS_CANDIDATE.match(text))


def is_tlsrpt_candidate(text: str) -> bool:
    """True when a TXT record counts as a TLS-RPT record (begins with `v=TLSRPTv1`)."""
    return bool(_TLSRPT_CANDIDATE.match(text))


def _split_fields(text: str, version: str) -> tuple[list[str], list[Problem]]:
    """Split `v=X; a=b; c=d;` into its fields after the version; a trailing `;` is allowed."""
    parts = [p.strip(_WSP) for p in text.split(";")]
    problems: list[Problem] = []
    if parts[0] != f"v={version}":
        problems.append(
            Problem("v", parts[0], f"the record must start with exactly `v={version};`", fatal=True)
        )
    fields = parts[1:]
    if fields and fields[-1] == "":
        fields = fields[:-1]  # the optional final delimiter
    for index, part in enumerate(fields):
        if part == "":
            problems.append(Problem("record", text, f"empty field (`;;`) at {index + 2}", True))
    return [f for f in fields if f], problems


def _name_value(part: str) -> tuple[str, str] | Problem:
    name, sep, value = part.partition("=")
    if not sep or not _EXT_NAME.fullmatch(name) or not _EXT_VALUE.fullmatch(value):
        return Problem(name if sep else "record", part, "not a valid `name=value` field", True)
    return name, value


def parse_sts_record(text: str) -> StsRecord:
    """Parse one `_mta-sts` TXT record (RFC 8461 §3.1)."""
    fields, problems = _split_fields(text, STS_VERSION)
    record_id: str | None = None
    extensions: list[tuple[str, str]] = []
    for part in fields:
        if part.startswith("id="):
            value = part[3:]
            if record_id is not None:
                # §3.2 (also for the TXT fields): repeated fields after the first are ignored.
                problems.append(Problem("id", part, "id appears twice; the first is used", False))
            elif _STS_ID.fullmatch(value):
                record_id = value
            else:
                problems.append(
                    Problem("id", part, "id must be 1 to 32 letters and digits, nothing else", True)
                )
            continue
        pair = _name_value(part)
        if isinstance(pair, Problem):
            problems.append(pair)
        else:
            extensions.append(pair)
    if record_id is None and not any(p.where == "id" for p in problems):
        problems.append(Problem("id", "", "the required id field is missing", True))
    return StsRecord(text, record_id, tuple(extensions), tuple(problems))


def _line_ending(text: str) -> str:
    crlf = text.count("\r\n")
    lf = text.count("\n") - crlf
    if crlf and lf:
        return "mixed"
    if crlf:
        return "CRLF"
    return "LF" if lf else "none"


def parse_sts_policy(text: str) -> StsPolicy:
    """Parse a policy file (RFC 8461 §3.2; LF line ends are accepted too, erratum 6253)."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    patterns: dict[str, None] = {}  # ordered and deduplicated in linear time
    extensions: list[tuple[str, str]] = []
    first_key: str | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip(_WSP):
            continue
        where = f"line {number}"
        # §3.2: a field is its name, ":", optional blanks and the value (trailing blanks are
        # allowed too); names have no ":", so the first colon ends the name.
        key, colon, value = line.partition(":")
        if not colon or not _EXT_NAME.fullmatch(key):
            problems.append(Problem(where, line, "not a `key: value` line; ignored", False))
            continue
        value = value.strip(_WSP)
        first_key = first_key or key
        if key == "mx":
            problems.extend(_check_pattern(where, value, patterns))
        elif key in POLICY_FIELDS:
            if key in seen:
                problems.append(
                    Problem(where, line, f"`{key}` appears again; senders use the first", False)
                )
            else:
                seen[key] = value
        else:
            if key.lower() in POLICY_FIELDS:
                reason = f"field names are case-sensitive: `{key}` is not `{key.lower()}`"
                problems.append(Problem(where, line, reason + "; ignored", False))
            extensions.append((key, value))
    version, mode, max_age = _check_required(seen, patterns, first_key, problems)
    return StsPolicy(
        version,
        mode,
        max_age,
        tuple(patterns),
        tuple(extensions),
        tuple(problems),
        _line_ending(text),
    )


def _check_required(
    seen: dict[str, str], patterns: dict[str, None], first_key: str | None, problems: list[Problem]
) -> tuple[str | None, StsMode | None, int | None]:
    version = seen.get("version")
    if version is None:
        problems.append(Problem("version", "", "the `version: STSv1` line is missing", True))
    elif version != STS_VERSION:
        problems.append(Problem("version", version, "version must be exactly `STSv1`", True))
    elif first_key != "version":
        problems.append(
            Problem(
                "version",
                version,
                "`version` should be the first line; some senders require it",
                False,
            )
        )
    mode: StsMode | None = None
    mode_text = seen.get("mode")
    if mode_text is None:
        problems.append(Problem("mode", "", "the `mode` line is missing", True))
    elif mode_text not in {m.value for m in StsMode}:
        problems.append(
            Problem("mode", mode_text, "mode must be `enforce`, `testing` or `none`", True)
        )
    else:
        mode = StsMode(mode_text)
    max_age: int | None = None
    age_text = seen.get("max_age")
    if age_text is None:
        problems.append(Problem("max_age", "", "the `max_age` line is missing", True))
    elif not (age_text.isascii() and age_text.isdigit()) or len(age_text) > 10:
        problems.append(Problem("max_age", age_text, "max_age must be a number of seconds", True))
    elif int(age_text) > MAX_AGE_LIMIT:
        problems.append(
            Problem("max_age", age_text, f"max_age must be at most {MAX_AGE_LIMIT} (a year)", True)
        )
    else:
        max_age = int(age_text)
    if not patterns and mode in (StsMode.ENFORCE, StsMode.TESTING):
        problems.append(
            Problem("mx", "", f"mode {mode.value} needs at least one valid `mx` line", True)
        )
    return version, mode, max_age


def _check_pattern(where: str, value: str, patterns: dict[str, None]) -> list[Problem]:
    """Validate one `mx` value: `["*."] Domain` (RFC 8461 §3.2); keep it when valid."""
    reason = pattern_defect(value)
    if reason:
        return [Problem(where, f"mx: {value}", reason + "; it matches nothing", False)]
    patterns.setdefault(value.lower())
    return []


def pattern_defect(pattern: str) -> str | None:
    """Why an `mx` pattern is malformed, or None when it is a valid `["*."] Domain`."""
    if not pattern:
        return "empty mx pattern"
    if pattern.endswith("."):
        return "an mx pattern must not end with a dot"
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.split(".")
    if "*" in name:
        return "a wildcard may only be the whole leftmost label, as in `*.example.com`"
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return "not a valid host name"
    return None


def mx_pattern_matches(pattern: str, host: str) -> bool:
    """True when MX host `host` matches `pattern` (RFC 8461 §4.1).

    Anchored and case-insensitive; `*.example.com` covers exactly one leftmost label, so it
    matches `mx.example.com` but neither `example.com` nor `a.b.example.com`. A trailing dot on
    the host (DNS presentation form) is ignored; malformed patterns match nothing.
    """
    if pattern_defect(pattern) is not None:
        return False
    name = host.lower().removesuffix(".")
    pattern = pattern.lower()
    if not name or name.endswith(".") or ".." in name:
        return False
    if pattern.startswith("*."):
        first, dot, rest = name.partition(".")
        return bool(first) and bool(dot) and first != "*" and rest == pattern[2:]
    return name == pattern


def covering_patterns(patterns: Sequence[str], host: str) -> tuple[str, ...]:
    """The patterns among `patterns` that cover `host`."""
    return tuple(p for p in patterns if mx_pattern_matches(p, host))


def parse_tlsrpt_record(text: str) -> TlsRptRecord:
    """Parse one `_smtp._tls` TXT record (RFC 8460 §3)."""
    fields, problems = _split_fields(text, TLSRPT_VERSION)
    rua: list[str] = []
    seen_rua = False
    for part in fields:
        if part.startswith("rua="):
            if seen_rua:
                problems.append(Problem("rua", part, "rua appears twice; the first is used", False))
                continue
            seen_rua = True
            rua_problems, rua_uris = _check_rua(part[4:])
            problems.extend(rua_problems)
            rua.extend(rua_uris)
            continue
        pair = _name_value(part)
        if isinstance(pair, Problem):
            problems.append(pair)
    if not seen_rua:
        problems.append(Problem("rua", "", "the required rua field is missing", True))
    elif not rua and not any(p.fatal for p in problems):
        problems.append(Problem("rua", "", "rua lists no valid reporting URI", True))
    return TlsRptRecord(text, tuple(rua), tuple(problems))


def _check_rua(value: str) -> tuple[list[Problem], list[str]]:
    """rua = tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri), each `mailto:` or `https:` (RFC 8460 §3)."""
    problems: list[Problem] = []
    uris: list[str] = []
    for raw in value.split(","):
        uri = raw.strip(_WSP)
        reason = rua_defect(uri)
        if reason:
            # RFC 8460 §3: a URI outside the grammar makes the whole record invalid.
            problems.append(Problem("rua", uri, reason, True))
        else:
            uris.append(uri)
    return problems, uris


def rua_defect(uri: str) -> str | None:
    """Why a TLS-RPT reporting URI is malformed, or None when it is a usable one."""
    scheme, colon, rest = uri.partition(":")
    if not uri:
        return "empty reporting URI"
    if not colon or not _URI_SCHEME.fullmatch(scheme):
        if "@" in uri:
            return f"a bare address is not a URI: write `mailto:{uri}`"
        return "not a URI: expected `mailto:` or `https:`"
    scheme = scheme.lower()
    if scheme == "mailto":
        local, at, domain = rest.partition("?")[0].rpartition("@")
        if not at or not local or not domain or any(c in rest for c in _WSP):
            return f"`{uri}` is not a mailto: URI with an address"
        return None
    if scheme == "https":
        host = rest.removeprefix("//").split("/", 1)[0]
        if not rest.startswith("//") or not host or any(c in rest for c in _WSP):
            return f"`{uri}` is not an https:// URL with a host"
        return None
    return f"scheme `{scheme}:` is not allowed: only mailto: and https: (RFC 8460 §3)"


def problem_list(problems: Sequence[Problem]) -> str:
    """Problems in words, `; `-separated, for a message."""
    return "; ".join(
        (f"{p.where}: " if p.where.startswith("line") else "")
        + (f"`{p.text}`: " if p.text else "")
        + p.reason
        for p in problems
    )
