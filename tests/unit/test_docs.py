"""Docs stay true to the code: every finding code is documented, and only real ones are."""

from __future__ import annotations

import re

from mailcheck.checks import CHECK_ORDER
from mailcheck.dns import Outcome
from tests.conftest import ROOT

PREFIXES = [c.value for c in CHECK_ORDER] + [
    "dns",
    "engine",
    "queue",
    "postfix",
    "relay",
    "dane",
    "mta-sts",
    "tls-rpt",
]
CODE_LITERAL = re.compile(r'"((?:{})\.[a-z0-9-]+)"'.format("|".join(PREFIXES)))


def codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "mailcheck").rglob("*.py"):
        found |= set(CODE_LITERAL.findall(path.read_text()))
    # lookup_failed() builds dns.<outcome> for every failure outcome.
    found |= {f"dns.{o.value}" for o in Outcome if o.is_failure}
    return found


def codes_in_docs() -> set[str]:
    text = (ROOT / "docs" / "findings.md").read_text()
    return set(re.findall(r"^### `([a-z0-9.-]+)`", text, re.M))


def test_every_finding_code_is_documented() -> None:
    missing = codes_in_source() - codes_in_docs()
    assert not missing, f"document these codes in docs/findings.md: {sorted(missing)}"


def test_no_documented_code_is_stale() -> None:
    stale = codes_in_docs() - codes_in_source()
    assert not stale, f"docs/findings.md documents codes the code never emits: {sorted(stale)}"


def test_every_check_has_a_docs_section() -> None:
    text = (ROOT / "docs" / "checks.md").read_text()
    for check in CHECK_ORDER:
        assert f"## `{check.value}`" in text


def test_every_finding_code_is_exercised_by_a_test() -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    untested = {code for code in codes_in_source() if code not in tests}
    assert not untested, f"no test mentions these codes: {sorted(untested)}"
