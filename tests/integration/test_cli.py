"""The `mailcheck` command end to end against the lab: exit codes, JSON schema, golden output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT
from tests.lab.dnsserver import LabHandle

SCHEMA = json.loads((ROOT / "docs" / "schema" / "report-v1.json").read_text())
GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def mailcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command in a child process, with a fixed width and no colour."""
    full_env = {k: v for k, v in os.environ.items() if k != "MAILCHECK_NAMESERVER"}
    full_env.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    # The shipped blocklists are real zones the lab does not serve: use the lab's own lists.
    full_env["MAILCHECK_DNSBL_CONFIG"] = str(ROOT / "fixtures" / "dnsbl" / "lab-lists.toml")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mailcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        check=False,
    )


def run_json(lab: LabHandle, *args: str) -> tuple[int, dict[str, Any]]:
    proc = mailcheck(*args, "--json", "-n", lab.address, "--timeout", "0.5", "--retries", "0")
    document = json.loads(proc.stdout)
    jsonschema.validate(document, SCHEMA)
    return proc.returncode, document


def test_good_domain_exits_0_and_validates(lab: LabHandle) -> None:
    code, doc = run_json(lab, "domain", "good.test", "--ip", "192.0.2.20")
    assert code == 0
    assert doc["schema_version"] == 1 and doc["target"] == "good.test"
    assert [c["check"] for c in doc["checks"]] == [
        "mx",
        "fcrdns",
        "dnsbl",
        "spf",
        "dkim",
        "dmarc",
        "tls",
    ]
    assert doc["summary"]["status"] == "pass"
    assert doc["dns"]["queries"] > 0 and "trace" not in doc["dns"]


def test_broken_domain_exits_1_with_one_line(lab: LabHandle) -> None:
    proc = mailcheck("domain", "broken.test", "-n", lab.address)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "broken.test" in proc.stderr and "error" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("domain", "bad..name"),
        ("domain", "192.0.2.1"),
        ("domain", "good.test", "-n", "not-an-ip"),
        ("domain", "good.test", "-n", "[::1]:99999"),
        ("domain", "good.test", "--ip", "999.1.1.1"),
        ("domain", "good.test", "--only", "mx,nonsense"),
        ("domain", "good.test", "--fail-on", "sometimes"),
        ("domain", "good.test", "--no-such-option"),
        ("domain",),
        ("fcrdns", "not_a_host!"),
        ("dkim", "good.test", "--dkim-selector", "bad selector!"),
        ("dmarc", "bad..name"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...]) -> None:
    proc = mailcheck(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcheck: error: ")
    assert "Traceback" not in proc.stderr


def test_no_resolver_answering_exits_3() -> None:
    proc = mailcheck(
        "domain", "good.test", "-n", "127.0.0.1:9", "--timeout", "0.2", "--retries", "0"
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "mailcheck: no DNS resolver answered (asked 127.0.0.1:9); the results above are unknown"
    ]


def test_timeouts_exit_1_as_unknown_not_missing(lab: LabHandle) -> None:
    code, doc = run_json(lab, "domain", "slow.test")
    assert code == 1
    codes = [f["code"] for c in doc["checks"] for f in c["findings"]]
    assert "dns.timeout" in codes
    assert not {"mx.host-unresolvable", "fcrdns.no-ptr"} & set(codes)


def test_fail_on_threshold(lab: LabHandle) -> None:
    assert run_json(lab, "domain", "nomx.test", "--only", "mx")[0] == 0
    assert run_json(lab, "domain", "nomx.test", "--only", "mx", "--fail-on", "warning")[0] == 1
    assert run_json(lab, "domain", "nullmx.test", "--only", "mx", "--fail-on", "info")[0] == 1


def test_only_and_trace(lab: LabHandle) -> None:
    code, doc = run_json(lab, "domain", "good.test", "--only", "fcrdns,mx", "--trace")
    assert [c["check"] for c in doc["checks"]] == ["mx", "fcrdns"]
    _, only_mx = run_json(lab, "domain", "good.test", "--only", "mx")
    assert [c["check"] for c in only_mx["checks"]] == ["mx"]
    trace = doc["dns"]["trace"]
    assert len(trace) == doc["dns"]["queries"]
    assert {t["server"] for t in trace} == {lab.address}


def test_nameserver_from_environment(lab: LabHandle) -> None:
    proc = mailcheck("domain", "good.test", "--json", env={"MAILCHECK_NAMESERVER": lab.address})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dns"]["nameservers"] == [lab.address]


def test_fcrdns_command(lab: LabHandle) -> None:
    code, doc = run_json(lab, "fcrdns", "192.0.2.31")
    assert code == 1
    assert [c["check"] for c in doc["checks"]] == ["fcrdns"]
    assert doc["checks"][0]["findings"][0]["code"] == "fcrdns.no-ptr"
    code, doc = run_json(lab, "fcrdns", "mx1.good.test")
    assert code == 0
    assert {h["ip"] for h in doc["checks"][0]["data"]["hosts"]} == {"192.0.2.10", "2001:db8::10"}


def _normalise(text: str, lab: LabHandle) -> str:
    text = text.replace(lab.address, "LAB")
    return re.sub(r"  \d+ ms,", "  N ms,", text, count=1)


@pytest.mark.parametrize("domain", ["good.test", "broken.test"])
def test_rich_output_matches_golden(lab: LabHandle, domain: str) -> None:
    proc = mailcheck("domain", domain, "-n", lab.address)
    assert "\x1b[" not in proc.stdout  # plain when not a terminal
    out = _normalise(proc.stdout, lab)
    golden = GOLDEN / f"domain-{domain}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()


def test_readme_help_block_is_the_real_help() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- help -->\n```text\n(.*?)```", readme, re.S)
    assert block, "README.md lacks the help block"
    assert mailcheck("--help").stdout == block.group(1)


def test_rich_trace_lists_every_query(lab: LabHandle) -> None:
    proc = mailcheck("domain", "good.test", "-n", lab.address, "--trace")
    assert proc.returncode == 0
    assert "DNS queries" in proc.stdout
    assert "10.2.0.192.in-addr.arpa." in proc.stdout
    assert "ip6.arpa." in proc.stdout  # long names fold instead of being cut


def test_fcrdns_of_a_private_address_is_skipped_with_advice(lab: LabHandle) -> None:
    code, doc = run_json(lab, "fcrdns", "192.168.1.25")
    assert code == 0
    check = doc["checks"][0]
    assert check["status"] == "skipped"
    assert [f["code"] for f in check["findings"]] == ["fcrdns.non-public-address"]
    assert doc["dns"]["queries"] == 0
