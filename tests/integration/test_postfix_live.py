"""The audit through the real `postconf -c DIR` of a private configuration directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.config import ConfigUnavailable, read_live
from tests.conftest import ROOT, require_binary


def test_live_postconf_finds_the_open_relay(tmp_path: Path) -> None:
    postconf = require_binary("postconf")
    for name in ("main", "master"):
        text = (ROOT / "fixtures" / "postfix" / f"open-relay.{name}.cf").read_text()
        # real postconf refuses the fixture's deliberately broken line (a one-line error)
        (tmp_path / f"{name}.cf").write_text(text.replace("this line is broken\n", ""))
        # dated back: postconf waits ~1.5 s before reading a main.cf modified just now
        os.utime(tmp_path / f"{name}.cf", (time.time() - 60, time.time() - 60))
    codes = {f.code for f in evaluate_postfix(read_live(str(tmp_path), postconf)).findings}
    assert {"postfix.mynetworks-wide", "postfix.relay-permit-early"} <= codes


def test_missing_directory_is_one_line() -> None:
    postconf = require_binary("postconf")
    with pytest.raises(ConfigUnavailable, match="postconf"):
        read_live("/nonexistent-mailcheck", postconf)
