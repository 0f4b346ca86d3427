"""The SPF record grammar of RFC 7208 (§4.5, §4.6.1, §5, §6, §7.1), as a pure parser.

One parser serves both the evaluator (spf_eval) and the static audit (spf_audit): it never
raises on bad input; every problem is a `SyntaxProblem` naming the offending term, and a record
with problems is a permerror for receivers (RFC 7208 §4.6: syntax is checked before any term is
evaluated). Record text is handled as Latin-1, one character per octet, so that non-ASCII octets
survive to be reported instead of being replaced.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
DNS_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
"""RFC 7208 §4.6.4: the mechanisms that cause DNS queries (with the `redirect` modifier)."""
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MACRO_LETTERS = frozenset("slodiphv")
EXP_ONLY_LETTERS = frozenset("crt")
"""RFC 7208 §7.1: c, r and t are allowed only in explanation text."""
STATIC_LETTERS = frozenset("d")
"""Macro letters whose value is known without a connecting client: the current domain."""

_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)", re.S)
_MACRO_EXPAND = re.compile(r"%\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}")
_TOPLABEL = re.compile(r"[0-9A-Za-z]*[A-Za-z][0-9A-Za-z]*|[0-9A-Za-z]+-[0-9A-Za-z-]*[0-9A-Za-z]")
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4 = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}")
_DUAL_CIDR = re.compile(r"(.*?)(?:/([0-9]+))?(?://([0-9]+))?", re.S)
_CIDR4 = re.compile(r"0|[1-9][0-9]?")
_CIDR6 = re.compile(r"0|[1-9][0-9]{0,2}")


@dataclass(frozen=True)
class Macro:
    """One `%{...}` macro-expand of RFC 7208 §7.1."""

    letter: str
    """The macro letter as written; upper case means URL-escape the result (§7.3)."""
    digits: int | None
    """How many right-hand parts to keep, or None for all."""
    reverse: bool
    """The `r` transformer: reverse the parts first."""
    delimiters: str
    """Characters to split on; empty means `.`."""


MacroToken = str | Macro
"""A literal run of text (with %%, %_ and %- already resolved) or a macro."""


@dataclass(frozen=True)
class MacroString:
    """A parsed macro-string: literal text and macros, in order."""

    tokens: tuple[MacroToken, ...]
    """The pieces, in order."""
    ends_with_macro: bool
    """The last piece was a macro-expand (%{..}, %%, %_ or %-), which RFC 7208 §7.1 accepts
    as a domain-end."""

    @property
    def letters(self) -> frozenset[str]:
        """The macro letters used, lower case."""
        return frozenset(t.letter.lower() for t in self.tokens if isinstance(t, Macro))

    @property
    def is_static(self) -> bool:
        """True when the expansion depends only on the current domain (no client data)."""
        return self.letters <= STATIC_LETTERS


def parse_macro_string(text: str, *, explanation: bool = False) -> MacroString | str:
    """Parse a macro-string (or, with `explanation`, an explain-string); a str is the problem."""
    tokens: list[MacroToken] = []
    literal: list[str] = []
    ends_with_macro = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            pair = text[i : i + 2]
            escapes = {"%%": "%", "%_": " ", "%-": "%20"}
            if pair in escapes:
                literal.append(escapes[pair])
                i += 2
                ends_with_macro = True
                continue
            match = _MACRO_EXPAND.match(text, i)
            if match is None:
                return f"invalid macro at '{printable(text[i : i + 8])}' (RFC 7208 §7.1)"
            letter, digits, reverse, delimiters = match.groups()
            lower = letter.lower()
            if lower in EXP_ONLY_LETTERS and not explanation:
                return f"macro %{{{letter}}} is allowed only in explanation text (RFC 7208 §7.1)"
            if lower not in MACRO_LETTERS | EXP_ONLY_LETTERS:
                return f"unknown macro letter '{letter}' (RFC 7208 §7.1)"
            if digits and int(digits) == 0:
                return f"macro '{match.group(0)}' keeps zero parts (RFC 7208 §7.3)"
            if literal:
                tokens.append("".join(literal))
                literal = []
            tokens.append(Macro(letter, int(digits) if digits else None, bool(reverse), delimiters))
            i = match.end()
            ends_with_macro = True
            continue
        if not ("\x21" <= char <= "\x7e" or (explanation and char == " ")):
            return f"character '{printable(char)}' is not allowed here (RFC 7208 §7.1)"
        literal.append(char)
        ends_with_macro = False
        i += 1
    if literal:
        tokens.append("".join(literal))
    return MacroString(tuple(tokens), ends_with_macro)


def parse_domain_spec(text: str) -> MacroString | str:
    """A domain-spec: a macro-string ending in a macro or in `.toplabel` (RFC 7208 §7.1)."""
    if not text:
        return "empty domain-spec"
    parsed = parse_macro_string(text)
    if isinstance(parsed, str) or parsed.ends_with_macro:
        return parsed
    tail = parsed.tokens[-1]
    assert isinstance(tail, str)  # a macro-string that does not end in a macro ends in text
    tail = tail[:-1] if tail.endswith(".") else tail
    head, dot, toplabel = tail.rpartition(".")
    if not dot or not _TOPLABEL.fullmatch(toplabel):
        return f"'{printable(text)}' does not end in a valid top-level label (RFC 7208 §7.1)"
    del head
    return parsed


@dataclass(frozen=True)
class Mechanism:
    """A directive: an optional qualifier and a mechanism (RFC 7208 §4.6.1, §5)."""

    text: str
    """The term as written."""
    offset: int
    """Where the term starts in the record text."""
    qualifier: str
    """`+`, `-`, `~` or `?` (`+` when none is written)."""
    name: str
    """The mechanism, lower case."""
    domain_spec: MacroString | None = None
    """The target of include/a/mx/ptr/exists, when one is written."""
    domain_text: str | None = None
    """The domain-spec as written."""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    """For ip4/ip6: the network, host bits cleared."""
    cidr4: int | None = None
    """For a/mx: the IPv4 prefix length, when written."""
    cidr6: int | None = None
    """For a/mx: the IPv6 prefix length, when written."""

    @property
    def causes_lookup(self) -> bool:
        """RFC 7208 §4.6.4: this term counts towards the limit of 10."""
        return self.name in DNS_MECHANISMS


@dataclass(frozen=True)
class Modifier:
    """A `name=value` term (RFC 7208 §6)."""

    text: str
    """The term as written."""
    offset: int
    """Where the term starts in the record text."""
    name: str
    """The modifier name, lower case."""
    value: str
    """Everything after `=`."""
    macro: MacroString | None = None
    """The parsed value, when it is valid."""


@dataclass(frozen=True)
class SyntaxProblem:
    """Why a term (or the record) is invalid; receivers answer permerror."""

    term: str
    """The offending term as written (empty for the record as a whole)."""
    message: str
    """What is wrong, in words."""
    offset: int = 0
    """Where the term starts in the record text."""
    code: str = "syntax"
    """`syntax`, or `duplicate-modifier` for a second redirect= or exp=."""


@dataclass(frozen=True)
class SpfRecord:
    """A parsed SPF record."""

    text: str
    """The record (TXT strings joined, RFC 7208 §3.3), one character per octet."""
    mechanisms: tuple[Mechanism, ...]
    """Directives in order."""
    modifiers: tuple[Modifier, ...]
    """Modifiers in order, unknown ones included."""
    problems: tuple[SyntaxProblem, ...]
    """Syntax problems; any one makes the record a permerror."""

    @property
    def valid(self) -> bool:
        """No syntax problems."""
        return not self.problems

    def modifier(self, name: str) -> Modifier | None:
        """The first modifier called `name`."""
        return next((m for m in self.modifiers if m.name == name), None)

    @property
    def redirect(self) -> Modifier | None:
        """The redirect= modifier."""
        return self.modifier("redirect")

    @property
    def exp(self) -> Modifier | None:
        """The exp= modifier."""
        return self.modifier("exp")

    @property
    def all(self) -> Mechanism | None:
        """The first `all` mechanism: evaluation never goes past it (RFC 7208 §5.1)."""
        return next((m for m in self.mechanisms if m.name == "all"), None)

    @property
    def reached(self) -> tuple[Mechanism, ...]:
        """The mechanisms up to and including the first `all`: the ones ever evaluated."""
        out = []
        for mech in self.mechanisms:
            out.append(mech)
            if mech.name == "all":
                break
        return tuple(out)

    @property
    def unreached(self) -> tuple[Mechanism, ...]:
        """Mechanisms after the first `all`: never evaluated."""
        return self.mechanisms[len(self.reached) :]


def printable(text: str) -> str:
    """Text with control and non-ASCII characters shown as \\xNN, for messages."""
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)


def is_spf_record(text: str) -> bool:
    """RFC 7208 §4.5: starts with `v=spf1` (any case) followed by a space or the end."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


_LOOKALIKE = re.compile(r"""^[\s"']*(?:v\s*[=:]\s*spf|spf1)""", re.I)


def is_lookalike(text: str) -> bool:
    """A TXT record that looks meant as SPF but that receivers ignore (`v=spf10`, ` v=spf1`)."""
    return not is_spf_record(text) and bool(_LOOKALIKE.match(text))


def parse_spf(text: str) -> SpfRecord:
    """Parse a record that `is_spf_record`; every problem is reported, nothing raises."""
    mechanisms: list[Mechanism] = []
    modifiers: list[Modifier] = []
    problems: list[SyntaxProblem] = []
    if not is_spf_record(text):
        problems.append(SyntaxProblem("", "the record does not start with 'v=spf1 '"))
        return SpfRecord(text, (), (), tuple(problems))
    next_start = 6
    for term in text[6:].split(" "):
        start, next_start = next_start, next_start + len(term) + 1
        if not term:
            continue  # RFC 7208 §4.6.1: terms are separated by one or more spaces
        parsed = _parse_term(term, start)
        if isinstance(parsed, SyntaxProblem):
            problems.append(parsed)
        elif isinstance(parsed, Modifier):
            if parsed.name in ("redirect", "exp") and any(m.name == parsed.name for m in modifiers):
                problems.append(
                    SyntaxProblem(
                        term,
                        f"{parsed.name}= appears more than once (RFC 7208 §6)",
                        start,
                        "duplicate-modifier",
                    )
                )
            modifiers.append(parsed)
        else:
            mechanisms.append(parsed)
    return SpfRecord(text, tuple(mechanisms), tuple(modifiers), tuple(problems))


def _parse_term(term: str, offset: int) -> Mechanism | Modifier | SyntaxProblem:
    modifier = _MODIFIER.fullmatch(term)
    if modifier is not None:
        return _parse_modifier(term, offset, modifier.group(1).lower(), modifier.group(2))
    qualifier = term[0] if term[0] in QUALIFIERS else "+"
    body = term[1:] if term[0] in QUALIFIERS else term
    cut = min((i for i in (body.find(":"), body.find("/")) if i >= 0), default=len(body))
    name, rest = body[:cut].lower(), body[cut:]

    def problem(message: str) -> SyntaxProblem:
        return SyntaxProblem(term, message, offset)

    if name not in MECHANISMS:
        return problem(f"unknown mechanism '{printable(body[:cut] or body)}' (RFC 7208 §5)")
    if name == "all":
        return (
            Mechanism(term, offset, qualifier, name)
            if not rest
            else problem("all takes no argument")
        )
    if name in ("ip4", "ip6"):
        return _parse_ip(term, offset, qualifier, name, rest)
    spec_text, cidr4, cidr6 = rest, None, None
    if name in ("a", "mx"):
        match = _DUAL_CIDR.fullmatch(rest)
        assert match is not None  # the pattern matches any string
        spec_text = match.group(1)
        for raw, pattern, limit, family in (
            (match.group(2), _CIDR4, 32, "IPv4"),
            (match.group(3), _CIDR6, 128, "IPv6"),
        ):
            if raw is not None and (not pattern.fullmatch(raw) or int(raw) > limit):
                return problem(f"invalid {family} prefix length /{raw} (0-{limit}, RFC 7208 §5.6)")
        cidr4 = int(match.group(2)) if match.group(2) is not None else None
        cidr6 = int(match.group(3)) if match.group(3) is not None else None
    if not spec_text:
        if name in ("include", "exists"):
            return problem(f"{name} needs ':' and a domain (RFC 7208 §5)")
        return Mechanism(term, offset, qualifier, name, cidr4=cidr4, cidr6=cidr6)
    if not spec_text.startswith(":"):
        return problem(f"unexpected '{printable(spec_text)}' after {name} (RFC 7208 §5)")
    spec = parse_domain_spec(spec_text[1:])
    if isinstance(spec, str):
        return problem(spec)
    return Mechanism(term, offset, qualifier, name, spec, spec_text[1:], None, cidr4, cidr6)


def _parse_ip(
    term: str, offset: int, qualifier: str, name: str, rest: str
) -> Mechanism | SyntaxProblem:
    if not rest.startswith(":") or len(rest) < 2:
        return SyntaxProblem(term, f"{name} needs ':' and an address (RFC 7208 §5.6)", offset)
    address, slash, cidr = rest[1:].partition("/")
    pattern, limit = (_CIDR4, 32) if name == "ip4" else (_CIDR6, 128)
    if slash and (not pattern.fullmatch(cidr) or int(cidr) > limit):
        return SyntaxProblem(
            term, f"invalid prefix length /{printable(cidr)} (0-{limit}, RFC 7208 §5.6)", offset
        )
    length = int(cidr) if slash else limit
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    if name == "ip4":
        if not _IP4.fullmatch(address):
            return SyntaxProblem(term, f"'{printable(address)}' is not an IPv4 address", offset)
        network = ipaddress.IPv4Network(f"{address}/{length}", strict=False)
    else:
        try:
            if "%" in address or not address.isascii():
                raise ValueError(address)
            network = ipaddress.IPv6Network(f"{address}/{length}", strict=False)
        except ValueError:
            return SyntaxProblem(term, f"'{printable(address)}' is not an IPv6 address", offset)
    return Mechanism(term, offset, qualifier, name, network=network)


def _parse_modifier(term: str, offset: int, name: str, value: str) -> Modifier | SyntaxProblem:
    if name in ("redirect", "exp"):
        # RFC 7208 §6.1, §6.2: the value is a domain-spec; a known modifier name is never an
        # unknown-modifier (the suite's redirect-syntax-error and exp-syntax-error).
        parsed = parse_domain_spec(value)
    else:
        parsed = parse_macro_string(value)  # RFC 7208 §6: unknown-modifier = name "=" macro-string
    if isinstance(parsed, str):
        return SyntaxProblem(term, f"{name}=: {parsed}", offset)
    return Modifier(term, offset, name, value, parsed)
