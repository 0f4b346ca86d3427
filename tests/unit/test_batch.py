"""Batch input, comparison and storage: pure parts and the file system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailcheck.batch.compare import compare_batches
from mailcheck.batch.inputs import read_batch
from mailcheck.batch.store import load_previous, store_report, write_atomic
from mailcheck.model import Severity


def test_list_input_keeps_order_and_reports_duplicates_and_invalid_lines() -> None:
    batch = read_batch(
        "b.example\n# note\n\nA.example  # inline\nb.example.\nbad..name\nbücher.example\n"
    )
    assert [e.domain for e in batch.entries] == ["b.example", "a.example", "xn--bcher-kva.example"]
    assert batch.entries[2].unicode == "bücher.example"
    assert batch.duplicates == (("b.example", 5),)
    assert batch.invalid[0][0] == 6 and "empty label" in batch.invalid[0][1]


def test_zone_file_input_takes_the_origin_and_the_names_with_mx() -> None:
    zone = (
        "$ORIGIN example.net.\n$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\n"
        "@ MX 10 mx\nshop MX 10 mx\nwww A 192.0.2.1\nmx A 192.0.2.2\n"
    )
    batch = read_batch(zone)
    assert [e.domain for e in batch.entries] == ["example.net", "shop.example.net"]


def test_unreadable_zone_file_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a readable zone file"):
        read_batch("$ORIGIN example.net.\n@ SOA broken\n")


def _doc(*results: dict[str, Any]) -> dict[str, Any]:
    return {"results": list(results)}


def _result(target: str, status: str, *findings: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "target": target,
        "checks": [
            {
                "check": "mx",
                "status": status,
                "findings": [{"code": c, "severity": s, "message": m} for c, s, m in findings],
            }
        ],
    }


def test_compare_finds_appeared_gone_status_and_domains() -> None:
    before = _doc(
        _result("a.example", "warning", ("mx.implicit", "warning", "no MX")),
        _result("old.example", "pass"),
    )
    after = _doc(
        _result("a.example", "fail", ("mx.none", "error", "nothing")),
        _result("new.example", "pass"),
    )
    changes = compare_batches(before, after)
    kinds = {(c.domain, c.kind, c.code) for c in changes}
    assert kinds == {
        ("old.example", "domain-removed", None),
        ("a.example", "status", None),
        ("a.example", "appeared", "mx.none"),
        ("a.example", "gone", "mx.implicit"),
        ("new.example", "domain-added", None),
    }
    worse = [c for c in changes if c.worse_at(Severity.ERROR)]
    assert [c.code for c in worse] == ["mx.none"]
    assert not any(c.worse_at(Severity.ERROR) for c in compare_batches(after, before))


def test_store_writes_atomically_updates_latest_and_prunes(tmp_path: Path) -> None:
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        store_report(tmp_path, {"results": [], "stamp": stamp}, stamp, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "latest.json",
        "mailcheck-20260102T000000Z.json",
        "mailcheck-20260103T000000Z.json",
    ]
    assert json.loads((tmp_path / "latest.json").read_text())["stamp"] == "20260103T000000Z"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "latest.json"
    write_atomic(target, {"results": [], "v": 1})
    with pytest.raises(TypeError):
        write_atomic(target, {"results": [], "v": object()})
    assert json.loads(target.read_text())["v"] == 1
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(("content", "why"), [("{", "not a mailcheck"), ("[]", "no results")])
def test_previous_report_must_be_a_batch_document(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "prev.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=why):
        load_previous(path)
    with pytest.raises(ValueError, match="no such file"):
        load_previous(tmp_path / "missing.json")
