"""A loader for the block-YAML subset the RFC 7208 test suite is written in.

The project does not depend on PyYAML, so this reads what `rfc7208-tests.yml` uses: `---`
documents, block mappings and sequences, plain (multi-line), single- and double-quoted
scalars (with `\\x..` escapes), `|`/`>` block scalars with chomping, one-line flow sequences,
and YAML 1.1 integers, floats, booleans and nulls. tests/unit/test_spf_suite_loader.py compares it
with PyYAML's `safe_load_all` whenever PyYAML is importable.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?")
_BOOLS = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_NULLS = ("", "~", "null", "Null", "NULL")
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_HEX_LENGTH = {"x": 2, "u": 4, "U": 8}


class YamlSubsetError(ValueError):
    """The text uses YAML this loader does not read."""


def load_all(text: str) -> list[Any]:
    """Every document of a multi-document stream, like `yaml.safe_load_all`."""
    documents: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.rstrip() == "---" or line.startswith("--- "):
            documents.append([])
        else:
            documents[-1].append(line)
    loaded = [_Parser(lines).document() for lines in documents]
    if not any(line.strip() and not line.lstrip().startswith("#") for line in documents[0]):
        loaded = loaded[1:]  # only comments before the first ---
    return loaded


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.i = 0

    def document(self) -> Any:
        line = self._next()
        if line is None:
            return None
        return self._node(_indent(line))

    def _next(self) -> str | None:
        """The next line with content (comments and blank lines skipped), not consumed."""
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and not line.lstrip().startswith("#"):
                return line
            self.i += 1
        return None

    def _node(self, indent: int) -> Any:
        line = self._next()
        assert line is not None
        if line.lstrip().startswith("- ") or line.strip() == "-":
            return self._sequence(_indent(line))
        return self._mapping(indent)

    def _mapping(self, indent: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        while (line := self._next()) is not None and _indent(line) == indent:
            if line.lstrip().startswith("- "):
                break
            key, rest = self._split_key(line.strip())
            self.i += 1
            out[key] = self._value(rest, indent)
        return out

    def _split_key(self, text: str) -> tuple[Any, str]:
        if text[0] in "\"'":
            key, end = _quoted(text, 0)
            if not text[end:].lstrip().startswith(":"):
                raise YamlSubsetError(f"expected ':' after key in {text!r}")
            return key, text[end:].lstrip()[1:].strip()
        at = text.find(": ")
        if at < 0:
            if not text.endswith(":"):
                raise YamlSubsetError(f"not a mapping entry: {text!r}")
            return _plain(text[:-1].strip()), ""
        return _plain(text[:at].strip()), text[at + 2 :].strip()

    def _value(self, rest: str, indent: int) -> Any:
        if not rest or rest.startswith("#"):
            line = self._next()
            if line is None:
                return None
            deeper = _indent(line) > indent
            same_level_list = _indent(line) == indent and line.lstrip().startswith("- ")
            return self._node(_indent(line)) if deeper or same_level_list else None
        if rest[0] in "|>":
            return self._block_scalar(rest, indent)
        if rest[0] in "\"'":
            return self._quoted_value(rest, indent)
        if rest[0] == "[":
            return _flow_sequence(rest)
        parts = [_strip_comment(rest)]
        while (line := self._next()) is not None and _indent(line) > indent:
            parts.append(_strip_comment(line.strip()))
            self.i += 1
        return _plain(" ".join(parts))

    def _quoted_value(self, rest: str, indent: int) -> Any:
        text = rest
        while True:
            try:
                value, _ = _quoted(text, 0)
                return value
            except YamlSubsetError:
                if self.i >= len(self.lines):
                    raise
                text += " " + self.lines[self.i].strip()  # a quoted scalar over several lines
                self.i += 1

    def _sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while (line := self._next()) is not None and _indent(line) == indent:
            stripped = line.strip()
            if not (stripped.startswith("- ") or stripped == "-"):
                break
            item = stripped[2:].strip()
            if not item:
                self.i += 1
                out.append(self._value("", indent))
            elif item[0] in "\"'[" or not (": " in item or item.endswith(":")):
                self.i += 1
                out.append(self._value(item, indent))
            else:  # "- key: value": a mapping whose keys sit two columns in
                self.lines[self.i] = " " * (indent + 2) + item
                out.append(self._mapping(indent + 2))
        return out

    def _block_scalar(self, header: str, indent: int) -> str:
        style, chomp = header[0], header[1:2] if header[1:2] in ("-", "+") else ""
        lines: list[str] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and _indent(line) <= indent:
                break
            lines.append(line)
            self.i += 1
        content = [ln for ln in lines if ln.strip()]
        base = min((_indent(ln) for ln in content), default=0)
        body = [ln[base:] if ln.strip() else "" for ln in lines]
        while body and not body[-1]:
            body.pop()
        text = "\n".join(body) if style == "|" else _fold(body)
        if not text:
            return ""
        return text if chomp == "-" else text + "\n"


def _fold(lines: list[str]) -> str:
    """Folded style (YAML 1.1 §9.2.3): a break between two plain lines becomes a space, empty
    lines become breaks, and breaks next to more-indented lines are kept."""
    out = ""
    previous: str | None = None
    empty = 0
    for line in lines:
        if not line:
            empty += 1
            continue
        if previous is not None:
            plain = not previous.startswith(" ") and not line.startswith(" ")
            if empty == 0:
                out += " " if plain else "\n"
            else:
                out += "\n" * (empty if plain else empty + 1)
        out += line
        previous, empty = line, 0
    return out


def _strip_comment(text: str) -> str:
    at = text.find(" #")
    return text if at < 0 else text[:at].rstrip()


def _plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT.fullmatch(text):
        return float(text.replace("_", ""))
    return text


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The scalar quoted at text[start], and the index after its closing quote."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if quote == "'" and char == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if quote == '"' and char == '"':
            return "".join(out), i + 1
        if quote == '"' and char == "\\":
            code = text[i + 1 : i + 2]
            if code in _HEX_LENGTH:
                digits = text[i + 2 : i + 2 + _HEX_LENGTH[code]]
                out.append(chr(int(digits, 16)))
                i += 2 + _HEX_LENGTH[code]
                continue
            if code not in _ESCAPES:
                raise YamlSubsetError(f"unknown escape \\{code} in {text!r}")
            out.append(_ESCAPES[code])
            i += 2
            continue
        out.append(char)
        i += 1
    raise YamlSubsetError(f"unterminated quoted scalar: {text!r}")


def _flow_sequence(text: str) -> list[Any]:
    if not text.rstrip().endswith("]"):
        raise YamlSubsetError(f"flow sequence must close on its line: {text!r}")
    inner = text.strip()[1:-1]
    items: list[Any] = []
    i = 0
    while i < len(inner):
        while i < len(inner) and inner[i] in " ,":
            i += 1
        if i >= len(inner):
            break
        if inner[i] in "\"'":
            value, i = _quoted(inner, i)
            items.append(value)
        else:
            end = inner.find(",", i)
            end = len(inner) if end < 0 else end
            items.append(_plain(inner[i:end].strip()))
            i = end
    return items
