"""The official RFC 7208 test suite (openspf.org, BSD licensed), over real DNS.

Each scenario's zonedata is served by a lab DNS server on loopback (tests/lab/zonedata.py),
and each test runs through the evaluator the `spf` check and CLI use (check_identity), with the
suite's host, mailfrom and helo. A list of results means any of them. An expected explanation
of `DEFAULT` means none from exp= (our evaluator returns None).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailcheck.checks.spf_eval import check_identity
from mailcheck.dns import DnsClient, DnsConfig, Nameserver
from tests.conftest import ROOT
from tests.lab.dnsserver import LabHandle
from tests.lab.zonedata import run_scenario_server, write_zone_dir

SUITE = ROOT / "fixtures" / "spf" / "rfc7208-tests.yml"
SCENARIOS: list[dict[str, Any]] = list(yaml.safe_load_all(SUITE.read_text(encoding="utf-8")))

EXCLUDED: dict[str, str] = {}
"""`scenario/test` → why a DNS server cannot serve it at all (none: every test runs)."""

REDUCED: dict[str, str] = {
    "initial-processing/null-text": (
        "its second record, a TXT record with no strings at all, is left out: RFC 1035 "
        "§3.3.14 wants one or more strings, and zone parsers (BIND's, dnspython's) refuse it. "
        "What the test is about, strings glued without a separator (§3.3), is still served. "
        "Were a server to send such a record anyway, dnspython (under mailcheck's DNS layer) "
        "rejects the whole reply as FORMERR, so the result would be temperror, not pass."
    ),
}
"""`scenario/test` → what of its zonedata a DNS server cannot serve (the rest runs)."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


CASES = [
    pytest.param(index, name, test, id=f"{_slug(scenario['description'])}/{name}")
    for index, scenario in enumerate(SCENARIOS)
    for name, test in scenario["tests"].items()
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, LabHandle]]:
    """One lab server per scenario, started on first use, all stopped at the end."""
    started: dict[int, LabHandle] = {}

    class Lazy(dict[int, LabHandle]):
        def __missing__(self, index: int) -> LabHandle:
            zone_dir: Path = tmp_path_factory.mktemp(f"spf-scenario-{index}")
            write_zone_dir(SCENARIOS[index]["zonedata"], zone_dir)
            handle = run_scenario_server(zone_dir)
            self[index] = started[index] = handle
            return handle

    yield Lazy()
    for handle in started.values():
        handle.stop()


def test_the_suite_is_complete() -> None:
    assert len(SCENARIOS) == 16
    assert len(CASES) == 203
    names = {f"{_slug(s['description'])}/{n}" for s in SCENARIOS for n in s["tests"]}
    assert set(EXCLUDED) | set(REDUCED) <= names


@pytest.mark.parametrize(("index", "name", "test"), CASES)
def test_rfc7208(
    servers: dict[int, LabHandle], index: int, name: str, test: dict[str, Any]
) -> None:
    key = f"{_slug(SCENARIOS[index]['description'])}/{name}"
    if key in EXCLUDED:
        pytest.skip(EXCLUDED[key])
    lab = servers[index]
    config = DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.3, retries=0)
    evaluation = asyncio.run(
        check_identity(DnsClient(config), test["host"], test["mailfrom"], test["helo"])
    )
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    detail = f"{evaluation.reason}\n" + "\n".join(evaluation.trace)
    assert evaluation.result.value in expected, detail
    if "explanation" in test:
        assert (evaluation.explanation or "DEFAULT") == test["explanation"], detail
