"""DNSSEC through a real validating resolver: Debian's unbound in front of the lab server.

No mocks: zones are signed at test time with dnspython, the lab server serves them with
their RRSIGs, unbound validates them against trust anchors made in the same session, and
mailcheck's own DNS client reads the AD bit and the outcome from unbound's replies.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import jsonschema
import pytest

from mailcheck.checks import CheckName
from mailcheck.dns import DnsAnswer, DnsClient, DnsConfig, Nameserver, Outcome
from mailcheck.model import Status
from tests.conftest import ROOT, ZONES, require_binary
from tests.integration.helpers import codes, result, run_domain
from tests.lab.dnsserver import LabHandle, run_in_thread, zone_origin
from tests.lab.signing import EXPIRED, SignedZone, sign_zone_file
from tests.lab.unbound import UnboundHandle, run_unbound

SIGNED_SOURCES = ROOT / "fixtures" / "zones-signed"
SCHEMA = json.loads((ROOT / "docs" / "schema" / "report-v1.json").read_text())
# RFC 8914 codes that mean "DNSSEC validation failed"; which one unbound picks depends on
# whether the key or the data failed first, and on what is already cached.
VALIDATION_FAILED = frozenset(dns.edns.EDECode(code) for code in range(6, 13))


@dataclass(frozen=True)
class DnssecLab:
    """The lab server with signed zones, and a validating unbound in front of it."""

    lab: LabHandle
    unbound: UnboundHandle
    secure: SignedZone
    bogus: SignedZone

    @property
    def config(self) -> DnsConfig:
        """mailcheck talking to unbound only; generous timeout, since unbound recurses."""
        return DnsConfig((Nameserver(self.unbound.host, self.unbound.port),), 2.0, retries=0)


@pytest.fixture(scope="session")
def dnssec_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnssecLab]:
    """Sign, serve and validate once per session: unbound starts in well under a second."""
    binary = require_binary("unbound")
    root = tmp_path_factory.mktemp("dnssec")
    zones = root / "zones"
    zones.mkdir()
    # The unsigned fixture zones come along (good.test., reverse zones) to show AD=0 for
    # insecure data; BEHAVIOURS does not, as its timeouts would only slow the resolver down.
    for path in ZONES.glob("*.zone"):
        shutil.copy2(path, zones)
    secure = sign_zone_file(SIGNED_SOURCES / "secure.test.zone", zones)
    bogus = sign_zone_file(SIGNED_SOURCES / "bogus.test.zone", zones, validity=EXPIRED)
    # One stub per lab zone, at its apex (see tests/lab/unbound.py for why not one "test.").
    stubs = sorted(zone_origin(path).to_text() for path in zones.glob("*.zone"))
    anchors = [secure.trust_anchor, bogus.trust_anchor]
    with (
        run_in_thread(zones) as lab,
        run_unbound(lab.port, anchors, stubs, binary=binary, workdir=root / "unbound") as ub,
    ):
        yield DnssecLab(lab, ub, secure, bogus)


def ask(config: DnsConfig, name: str, rdtype: str) -> DnsAnswer:
    """One lookup through mailcheck's DNS layer, with a fresh cache."""

    async def go() -> DnsAnswer:
        return await DnsClient(config).query(name, rdtype)

    return asyncio.run(go())


def lab_sends_nsec(lab: LabHandle) -> bool:
    """Whether the lab server puts NSEC records in negative answers to DO queries.

    Without them no validator can prove a name or type absent in a signed zone, so it must
    call such answers bogus (SERVFAIL) instead of NXDOMAIN/NODATA with AD.
    """
    query = dns.message.make_query("nope.secure.test.", "A", want_dnssec=True)
    reply = dns.query.udp(query, lab.host, port=lab.port, timeout=2.0)
    return any(rrset.rdtype == dns.rdatatype.NSEC for rrset in reply.authority)


def test_signed_mx_is_authenticated(dnssec_lab: DnssecLab) -> None:
    answer = ask(dnssec_lab.config, "secure.test", "MX")
    assert answer.outcome is Outcome.ANSWER, dnssec_lab.unbound.log_text()
    assert answer.mx() == ((10, "mx.secure.test."),)
    assert answer.authenticated is True


def test_signed_address_is_authenticated(dnssec_lab: DnssecLab) -> None:
    answer = ask(dnssec_lab.config, "mx.secure.test", "A")
    assert answer.outcome is Outcome.ANSWER, dnssec_lab.unbound.log_text()
    assert answer.addresses() == ("192.0.2.50",)
    assert answer.authenticated is True


def test_unsigned_zone_is_answered_without_ad(dnssec_lab: DnssecLab) -> None:
    answer = ask(dnssec_lab.config, "good.test", "MX")
    assert answer.outcome is Outcome.ANSWER
    assert sorted(answer.mx()) == [(10, "mx1.good.test."), (20, "mx2.good.test.")]
    assert answer.authenticated is False  # insecure: no trust anchor covers good.test.


def test_expired_signatures_are_servfail(dnssec_lab: DnssecLab) -> None:
    # The data is there: straight from the lab (no validation) the MX comes back...
    lab = DnsConfig((Nameserver(dnssec_lab.lab.host, dnssec_lab.lab.port),), 2.0, retries=0)
    assert ask(lab, "bogus.test", "MX").outcome is Outcome.ANSWER
    # ...so the SERVFAIL through unbound is DNSSEC validation failing, as its log says.
    answer = ask(dnssec_lab.config, "bogus.test", "MX")
    assert answer.outcome is Outcome.SERVFAIL
    assert answer.records == () and answer.authenticated is False
    log = dnssec_lab.unbound.log_text()
    assert "bogus.test." in log and "signature expired" in log, log


def test_bogus_domain_is_a_servfail_finding(dnssec_lab: DnssecLab) -> None:
    report = run_domain(dnssec_lab.config, "bogus.test", checks=(CheckName.MX,))
    mx = result(report, "mx")
    assert mx.status is Status.ERROR  # unknown, not "no MX": the lookup failed
    assert codes(report, "mx") == ["dns.servfail"]


@pytest.mark.parametrize(
    ("name", "rdtype", "outcome"),
    [("nope.secure.test", "A", Outcome.NXDOMAIN), ("mx.secure.test", "AAAA", Outcome.NODATA)],
)
def test_signed_denial_is_authenticated(
    dnssec_lab: DnssecLab, name: str, rdtype: str, outcome: Outcome
) -> None:
    assert lab_sends_nsec(dnssec_lab.lab)
    answer = ask(dnssec_lab.config, name, rdtype)
    assert answer.outcome is outcome, dnssec_lab.unbound.log_text()
    assert answer.authenticated is True


def test_names_outside_the_lab_never_leave_unbound(dnssec_lab: DnssecLab) -> None:
    # unbound refuses them itself (local-zone "." refuse): no root servers, no lab query.
    dnssec_lab.lab.reset_log()
    answer = ask(dnssec_lab.config, "example.com", "A")
    assert answer.outcome is Outcome.REFUSED
    assert dnssec_lab.lab.query_log == []


def test_cli_trace_shows_ad_for_signed_mx(dnssec_lab: DnssecLab) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAILCHECK_NAMESERVER"}
    env.update({"NO_COLOR": "1", "TERM": "dumb"})
    proc = subprocess.run(
        [sys.executable, "-m", "mailcheck", "domain", "secure.test", "--json", "--trace"]
        + ["-n", dnssec_lab.unbound.address, "--timeout", "2", "--retries", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    # 1 is fine: 192.0.2.50 has no PTR, so forward-confirmed reverse DNS fails.
    assert proc.returncode in (0, 1), proc.stderr
    document = json.loads(proc.stdout)
    jsonschema.validate(document, SCHEMA)
    trace: list[dict[str, Any]] = document["dns"]["trace"]
    assert all(q["outcome"] != "timeout" for q in trace), trace  # unbound never stalled
    mx = [q for q in trace if q["name"] == "secure.test." and q["type"] == "MX"]
    assert len(mx) == 1 and mx[0]["outcome"] == "answer"
    assert mx[0]["ad"] is True
    host = [q for q in trace if q["name"] == "mx.secure.test." and q["type"] == "A"]
    assert host and host[0]["ad"] is True
    # The reverse zone is not signed: its answers must not claim authentication.
    assert all(q["ad"] is False for q in trace if q["name"].endswith(".in-addr.arpa."))


def test_bogus_servfail_says_why_in_an_extended_error(dnssec_lab: DnssecLab) -> None:
    query = dns.message.make_query("mx.bogus.test.", "A", want_dnssec=True)
    ub = dnssec_lab.unbound
    reply = dns.query.udp(query, ub.host, port=ub.port, timeout=2.0)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert {e.code for e in reply.extended_errors()} & VALIDATION_FAILED, reply
    # mailcheck keeps the reason (RFC 8914) in the answer's detail and the finding's message.
    answer = ask(dnssec_lab.config, "mx.bogus.test", "A")
    assert answer.outcome is Outcome.SERVFAIL
    assert re.search(r"EDE (6|7|8|9|10|11|12) ", answer.detail), answer.detail
    report = run_domain(dnssec_lab.config, "bogus.test", checks=(CheckName.MX,))
    assert "EDE" in result(report, "mx").findings[0].message


def test_unbound_does_not_validate_when_asked_not_to(dnssec_lab: DnssecLab) -> None:
    # CD set (RFC 4035 §3.2.2): unbound hands out bogus data unvalidated, without AD. This
    # proves the SERVFAIL above is validation, and that the lab's CD echo does not matter.
    query = dns.message.make_query("bogus.test.", "MX", want_dnssec=True)
    query.flags |= dns.flags.CD
    ub = dnssec_lab.unbound
    reply = dns.query.udp(query, ub.host, port=ub.port, timeout=2.0)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert not reply.flags & dns.flags.AD


def test_the_client_tells_bogus_from_broken_with_checking_disabled(dnssec_lab: DnssecLab) -> None:
    async def both() -> tuple[DnsAnswer, DnsAnswer]:
        client = DnsClient(dnssec_lab.config)
        validated = await client.query("bogus.test", "MX")
        unchecked = await client.query("bogus.test", "MX", cd=True)
        return validated, unchecked

    validated, unchecked = asyncio.run(both())
    assert validated.outcome is Outcome.SERVFAIL
    # Cached apart from the validated lookup: CD=1 brings the bogus data back, without AD.
    assert unchecked.outcome is Outcome.ANSWER and unchecked.mx() == ((10, "mx.bogus.test."),)
    assert unchecked.authenticated is False
