"""`mailcheck batch` end to end against the lab: outputs, storage, comparison, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from tests.conftest import ROOT
from tests.integration.test_cli import SCHEMA, mailcheck
from tests.lab.dnsserver import LabHandle

DOMAINS = "good.test\nbroken.test\n# comment\ngood.test\nbad..name\nbücher.test\n"


def _batch(lab: LabHandle, *args: str) -> tuple[int, str, str]:
    proc = mailcheck("batch", *args, "-n", lab.address, "--timeout", "0.5", "--retries", "0")
    return proc.returncode, proc.stdout, proc.stderr


def test_json_document_keeps_order_and_validates_each_report(
    lab: LabHandle, tmp_path: Path
) -> None:
    source = tmp_path / "domains.txt"
    source.write_text(DOMAINS)
    code, out, err = _batch(lab, str(source), "--json")
    assert code == 1 and err.strip().count("\n") == 0
    doc = json.loads(out)
    assert doc["schema_version"] == 1
    assert [r["target"] for r in doc["results"]] == [
        "good.test",
        "broken.test",
        "xn--bcher-kva.test",
    ]
    assert doc["results"][2]["target_unicode"] == "bücher.test"
    for report in doc["results"]:
        jsonschema.validate(report, SCHEMA)
    assert doc["input"]["duplicates"] == [{"domain": "good.test", "line": 4}]
    assert doc["input"]["invalid"][0]["line"] == 5
    assert doc["summary"]["domains"] == 3
    assert doc["dns"]["queries"] == sum(r["dns"]["queries"] for r in doc["results"])


def test_one_cache_for_the_run(lab: LabHandle) -> None:
    # nullmixed.test's MX is mx1.good.test: in one batch its lookups are not sent again.
    alone = 0
    for domain in ("good.test", "nullmixed.test"):
        proc = mailcheck("domain", domain, "--json", "-n", lab.address)
        alone += json.loads(proc.stdout)["dns"]["queries"]
    proc = mailcheck_stdin(lab, "good.test\nnullmixed.test\n", "--json")
    together = json.loads(proc.stdout)["dns"]
    assert together["queries"] < alone
    assert together["cache_hits"] > 0


def test_jsonl_streams_one_report_per_line(lab: LabHandle) -> None:
    proc = mailcheck("batch", "-", "--jsonl", "-n", lab.address)
    assert proc.returncode == 2  # stdin was empty: nothing to check
    assert "no domain to check" in proc.stderr
    source_lines = ["good.test", "nullmx.test"]
    proc = mailcheck_stdin(lab, "\n".join(source_lines), "--jsonl")
    reports = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["target"] for r in reports) == source_lines


def mailcheck_stdin(lab: LabHandle, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `mailcheck batch -` with `text` on stdin."""
    lists = str(ROOT / "fixtures" / "dnsbl" / "lab-lists.toml")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mailcheck",
            "batch",
            "-",
            *args,
            "-n",
            lab.address,
            "--dnsbl-config",
            lists,
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_out_keeps_reports_and_compares_with_latest(lab: LabHandle, tmp_path: Path) -> None:
    source = tmp_path / "domains.txt"
    source.write_text("good.test\nbroken.test\n")
    store = tmp_path / "reports"
    code, _, _ = _batch(lab, str(source), "--out", str(store), "--quiet")
    assert code == 1  # broken.test has errors and there is nothing to compare with yet
    latest = json.loads((store / "latest.json").read_text())
    assert len(list(store.glob("mailcheck-*.json"))) == 1
    # The same world again: nothing changed, so a quiet cron run prints nothing and exits 0.
    code, out, err = _batch(lab, str(source), "--out", str(store), "--quiet", "--keep", "1")
    assert (code, out, err) == (0, "", "")
    assert len(list(store.glob("mailcheck-*.json"))) == 1  # --keep 1 pruned the older one
    # Pretend last night broken.test had one error fewer: tonight it is a regression.
    broken = next(r for r in latest["results"] if r["target"] == "broken.test")
    fcrdns = next(c for c in broken["checks"] if c["check"] == "fcrdns")
    dropped = next(f for f in fcrdns["findings"] if f["severity"] == "error")
    fcrdns["findings"].remove(dropped)
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(latest))
    code, out, err = _batch(lab, str(source), "--compare", str(previous), "--quiet")
    assert code == 1
    assert "Changes since the previous run" in out and dropped["code"] in out
    assert "1 new finding(s) at or above error since last run" in err
    code, out, _ = _batch(lab, str(source), "--compare", str(previous), "--json")
    changes = json.loads(out)["changes"]
    assert {"domain": "broken.test", "check": "fcrdns", "kind": "appeared"}.items() <= next(
        c for c in changes if c["kind"] == "appeared"
    ).items()


def test_bad_inputs_are_one_line_exit_2(lab: LabHandle, tmp_path: Path) -> None:
    for args in (
        (str(tmp_path / "missing.txt"),),
        (str(tmp_path),),
    ):
        code, out, err = _batch(lab, *args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    source = tmp_path / "d.txt"
    source.write_text("good.test\n")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, out, err = _batch(lab, str(source), "--compare", str(bad))
    assert code == 2 and "not a mailcheck batch report" in err


def test_a_panels_dkim_selector_replaces_the_probe_for_every_domain(lab: LabHandle) -> None:
    probed = json.loads(mailcheck_stdin(lab, "good.test\nbroken.test\n", "--json").stdout)
    named = json.loads(
        mailcheck_stdin(
            lab, "good.test\nbroken.test\n", "--json", "--dkim-selector", "selector1"
        ).stdout
    )
    dkim = {
        r["target"]: next(c for c in r["checks"] if c["check"] == "dkim")["data"]
        for r in named["results"]
    }
    assert dkim["good.test"]["probed"] == 1 and dkim["good.test"]["selectors"][0]["found"]
    assert [
        f["code"]
        for f in next(c for c in named["results"][1]["checks"] if c["check"] == "dkim")["findings"]
    ] == ["dkim.selector-missing"]
    assert named["dns"]["queries"] < probed["dns"]["queries"] - 60
