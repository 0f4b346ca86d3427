"""Lookup and void counts against checkdmarc 6, on the SPF fixture zones.

Every difference is pinned here and explained in docs/checks-spf.md ("checkdmarc
differential") as a checkdmarc defect with its RFC section: if checkdmarc changes, this test
says which entry of the docs to revisit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import dns.nameserver
import pytest

from mailcheck.checks.spf_audit import gather_spf
from mailcheck.dns import DnsClient, DnsConfig, Nameserver
from tests.lab.dnsserver import LabHandle

Counts = tuple[int | None, int | None]

AGREE = [
    "spf.test",
    "good.test",
    "dmarc.test",
    "long.spf.test",
    "crowded.spf.test",
    "redirect.spf.test",  # both ignore redirect= beside all
    "unreach.spf.test",  # both skip terms after all
    "unknownmod.spf.test",
    "badlabel.spf.test",
    "toplimit.spf.test",  # an overflow in the record itself: both count 11
    "onevoid.spf.test",
    "aaaaonly.spf.test",  # an a: target with only AAAA is not void
    "mxnoaddr.spf.test",  # an MX host without addresses is not a void lookup
    "ipdep.spf.test",  # both count exists:%{i}... as one lookup and no void
    "macro.spf.test",
    "mxmany.spf.test",
    "dupinc.spf.test",  # a repeated include is counted again
    "plusall.spf.test",
    "neutral.spf.test",
    "noall.spf.test",
    "wide.spf.test",
    "softfail.spf.test",
    "exp.spf.test",
    "badmacro.spf.test",
    "unauthmx.spf.test",
]

DIFFER: dict[str, tuple[Counts, Counts, str]] = {
    # (ours, checkdmarc's, the entry in docs/checks-spf.md)
    "limit.spf.test": ((14, 0), (1, 0), "D1 nested overflow"),
    "redirlimit.spf.test": ((14, 0), (1, 0), "D1 nested overflow"),
    "fan.spf.test": ((399, 0), (1, 0), "D1 nested overflow"),
    "void.spf.test": ((3, 3), (None, 3), "D2 counts dropped on error"),
    "loop.spf.test": ((3, 0), (None, None), "D2 counts dropped on error"),
    "includenone.spf.test": ((1, 0), (None, None), "D2 counts dropped on error"),
    "includegone.spf.test": ((1, 1), (None, None), "D2 counts dropped on error"),
    "multi.spf.test": ((0, 0), (None, None), "D2 counts dropped on error"),
    "strjoin.spf.test": ((0, 0), (None, None), "D2 counts dropped on error"),
    "syntax.spf.test": ((0, 0), (None, None), "D2 counts dropped on error"),
    "nonascii.spf.test": ((0, 0), (None, None), "D2 counts dropped on error"),
    "dupmod.spf.test": ((0, 0), (None, None), "D2 counts dropped on error"),
    "redirnone.spf.test": ((1, 0), (None, None), "D3 redirect target blamed on the domain"),
    "ptr.spf.test": ((1, 0), (1, 1), "D4 ptr void from the target's A records"),
    "slow.spf.test": ((1, 0), (None, None), "D5 timeout reported as no record"),
    "none.spf.test": ((0, 0), (None, None), "no record: nothing to count"),
    "lookalike.spf.test": ((0, 0), (None, None), "no record: nothing to count"),
    "join.spf.test": ((0, 0), (None, None), "no record: nothing to count"),
}


@pytest.fixture
def fast_config(lab: LabHandle) -> DnsConfig:
    return DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.3, retries=0)


def _theirs(lab: LabHandle, domain: str) -> dict[str, Any]:
    checkdmarc_spf = pytest.importorskip("checkdmarc.spf")
    logging.getLogger("checkdmarc").setLevel(logging.CRITICAL)
    nameservers = [dns.nameserver.Do53Nameserver(lab.host, lab.port)]
    result: dict[str, Any] = checkdmarc_spf.check_spf(domain, nameservers=nameservers, timeout=0.3)
    return result


def _ours(config: DnsConfig, domain: str) -> Counts:
    obs = asyncio.run(gather_spf(DnsClient(config), domain))
    return obs.root.total_lookups, obs.root.total_voids


@pytest.mark.parametrize("domain", AGREE)
def test_counts_agree(lab: LabHandle, fast_config: DnsConfig, domain: str) -> None:
    theirs = _theirs(lab, domain)
    assert _ours(fast_config, domain) == (theirs["dns_lookups"], theirs["void_dns_lookups"])


@pytest.mark.parametrize("domain", sorted(DIFFER))
def test_every_difference_is_a_documented_checkdmarc_defect(
    lab: LabHandle, fast_config: DnsConfig, domain: str
) -> None:
    ours, expected_theirs, entry = DIFFER[domain]
    theirs = _theirs(lab, domain)
    assert _ours(fast_config, domain) == ours
    assert (theirs.get("dns_lookups"), theirs.get("void_dns_lookups")) == expected_theirs, entry
    if entry.startswith("D5"):
        assert "has no SPF record" in theirs["error"]  # a timeout, reported as missing


def test_the_documented_defects_are_in_the_docs() -> None:
    from tests.conftest import ROOT

    path = ROOT / "docs" / "checks-spf.md"  # merged into docs/checks.md later
    text = (path if path.exists() else ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    for _, _, entry in DIFFER.values():
        if entry[0] == "D":
            assert f"**{entry.split()[0]}**" in text, entry
