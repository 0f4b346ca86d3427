"""Tests for the fixture lab's DNS server, through real UDP/TCP sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from tests.lab.dnsserver import LabHandle, QueryRecord, run_in_thread

ZONES = Path(__file__).parent / "fixture_zones"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab() -> Iterator[LabHandle]:
    with run_in_thread(ZONES) as handle:
        yield handle


def ask(
    lab: LabHandle,
    name: str | dns.name.Name,
    rdtype: str,
    *,
    tcp: bool = False,
    edns: bool = True,
    do: bool = False,
    timeout: float = 2.0,
) -> dns.message.Message:
    """Query like the mailcheck stub: RD, AD, EDNS0 payload 1232, optional DO."""
    query = dns.message.make_query(
        name, rdtype, use_edns=0 if edns else False, want_dnssec=do, payload=1232
    )
    query.flags |= dns.flags.AD
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, lab.host, timeout=timeout, port=lab.port)


def texts(rrset: dns.rrset.RRset) -> set[str]:
    return {rdata.to_text() for rdata in rrset}


def test_answers_a_mx_txt_like_a_resolver(lab: LabHandle) -> None:
    a = ask(lab, "mx1.lab.test", "A")
    assert a.rcode() == dns.rcode.NOERROR
    for flag in (dns.flags.QR, dns.flags.AA, dns.flags.RA, dns.flags.RD):
        assert a.flags & flag
    assert not a.flags & dns.flags.AD
    assert a.edns == 0 and a.payload == 1232
    assert texts(a.answer[0]) == {"192.0.2.10"}

    mx = ask(lab, "lab.test", "MX", tcp=True)
    assert texts(mx.answer[0]) == {"10 mx1.lab.test.", "20 mx2.lab.test."}
    txt = ask(lab, "LAB.test", "TXT")  # case-insensitive
    assert texts(txt.answer[0]) == {'"v=spf1 ip4:192.0.2.10 -all"'}


def test_nxdomain_carries_soa(lab: LabHandle) -> None:
    r = ask(lab, "nope.lab.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
    (soa,) = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name == dns.name.from_text("lab.test")
    assert soa.ttl == 60  # min(SOA TTL, SOA MINIMUM)


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("mx1.lab.test", "TXT"), ("ent.lab.test", "A"), ("deep.ent.lab.test", "MX")],
)
def test_nodata_for_missing_type_and_empty_non_terminal(
    lab: LabHandle, name: str, rdtype: str
) -> None:
    r = ask(lab, name, rdtype)
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA


def test_cname_chain_is_followed_within_and_across_zones(lab: LabHandle) -> None:
    r = ask(lab, "alias2.lab.test", "A")
    assert [(str(s.name), dns.rdatatype.to_text(s.rdtype)) for s in r.answer] == [
        ("alias2.lab.test.", "CNAME"),
        ("alias.lab.test.", "CNAME"),
        ("mx1.lab.test.", "A"),
    ]
    cross = ask(lab, "cross.lab.test", "A", tcp=True)
    assert cross.rcode() == dns.rcode.NOERROR
    assert str(cross.answer[-1].name) == "www.other.example."  # zone origin from $ORIGIN
    assert texts(cross.answer[-1]) == {"198.51.100.80"}
    only_cname = ask(lab, "alias.lab.test", "CNAME")
    assert len(only_cname.answer) == 1 and texts(only_cname.answer[0]) == {"mx1.lab.test."}


def test_cname_to_missing_name_is_nxdomain_with_chain(lab: LabHandle) -> None:
    r = ask(lab, "dangling.lab.test", "MX")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.answer[0].rdtype == dns.rdatatype.CNAME
    assert r.authority[0].rdtype == dns.rdatatype.SOA


@pytest.mark.parametrize("name", ["loop1.lab.test", "out.lab.test", "broken.lab.test"])
def test_unresolvable_cname_chains_servfail(lab: LabHandle, name: str) -> None:
    assert ask(lab, name, "A").rcode() == dns.rcode.SERVFAIL


def test_wildcard_synthesises_answers_for_the_query_name(lab: LabHandle) -> None:
    for name in ("foo.wild.lab.test.", "a.b.wild.lab.test."):
        r = ask(lab, name, "A")
        assert str(r.answer[0].name) == name and texts(r.answer[0]) == {"192.0.2.99"}
    assert texts(ask(lab, "bar.wild.lab.test", "MX").answer[0]) == {"5 mx1.lab.test."}
    nodata = ask(lab, "foo.wild.lab.test", "TXT")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    # The wildcard's parent exists only as an empty non-terminal: NODATA, not a match.
    assert not ask(lab, "wild.lab.test", "A").answer


@pytest.mark.parametrize("address", ["192.0.2.10", "2001:db8::1"])
def test_reverse_zones(lab: LabHandle, address: str) -> None:
    r = ask(lab, dns.reversename.from_address(address), "PTR")
    assert texts(r.answer[0]) == {"mx1.lab.test."}


def test_large_answer_truncates_over_udp_and_is_whole_over_tcp(lab: LabHandle) -> None:
    udp = ask(lab, "big.lab.test", "TXT", edns=False)
    assert udp.flags & dns.flags.TC and not udp.answer and not udp.authority
    tcp = ask(lab, "big.lab.test", "TXT", edns=False, tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.to_wire()) > 512
    assert len(tcp.answer[0][0].strings) == 12
    big_udp = ask(lab, "big.lab.test", "TXT")  # EDNS 1232 is enough
    assert not big_udp.flags & dns.flags.TC and big_udp.answer


def test_names_outside_the_lab_are_refused(lab: LabHandle) -> None:
    r = ask(lab, "example.com", "A")
    assert r.rcode() == dns.rcode.REFUSED and not r.answer
    assert ask(lab, "example.com", "A", tcp=True).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize(
    ("name", "rcode"),
    [
        ("servfail.test", dns.rcode.SERVFAIL),
        ("mx.deeper.servfail.test", dns.rcode.SERVFAIL),
        ("refused.test", dns.rcode.REFUSED),
        ("formerr.test", dns.rcode.FORMERR),
    ],
)
def test_error_behaviours(lab: LabHandle, name: str, rcode: dns.rcode.Rcode) -> None:
    assert ask(lab, name, "MX").rcode() == rcode
    assert ask(lab, name, "MX", tcp=True).rcode() == rcode


@pytest.mark.parametrize("name", ["timeout.test", "x.timeout.test", "slow.lab.test"])
def test_timeout_behaviour_never_answers(lab: LabHandle, name: str) -> None:
    with pytest.raises(dns.exception.Timeout):
        ask(lab, name, "A", timeout=0.2)
    with pytest.raises(dns.exception.Timeout):
        ask(lab, name, "A", timeout=0.2, tcp=True)


def test_truncate_behaviour(lab: LabHandle) -> None:
    udp = ask(lab, "tc.lab.test", "A")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(lab, "tc.lab.test", "A", tcp=True)
    assert texts(tcp.answer[0]) == {"192.0.2.5"}


def test_rrsigs_only_with_do_bit(lab: LabHandle) -> None:
    signed = ask(lab, "lab.test", "A", do=True)
    assert signed.ednsflags & dns.flags.DO
    assert [s.rdtype for s in signed.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
    plain = ask(lab, "lab.test", "A")
    assert not plain.ednsflags & dns.flags.DO
    assert [s.rdtype for s in plain.answer] == [dns.rdatatype.A]


def test_query_log_records_do_bit(lab: LabHandle) -> None:
    lab.reset_log()
    ask(lab, "MX1.Lab.Test", "AAAA", do=True)
    ask(lab, "lab.test", "MX", tcp=True)
    assert [(r.proto, r.qname, r.qtype, r.do_bit) for r in lab.query_log] == [
        ("udp", "mx1.lab.test.", "AAAA", True),
        ("tcp", "lab.test.", "MX", False),
    ]
    assert isinstance(lab.query_log[0], QueryRecord)
    assert lab.query_log[0].at <= lab.query_log[1].at <= time.monotonic()


def test_several_queries_on_one_tcp_connection(lab: LabHandle) -> None:
    with socket.create_connection((lab.host, lab.port), timeout=2) as sock:
        for name in ("mx1.lab.test", "mx2.lab.test", "nope.lab.test"):
            query = dns.message.make_query(name, "A")
            r = dns.query.tcp(query, lab.host, timeout=2, port=lab.port, sock=sock)
            assert r.id == query.id


def test_malformed_packets_do_not_hurt(lab: LabHandle) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(b"\x12\x34\x01\x00" + b"\xff" * 20, (lab.host, lab.port))
        reply = dns.message.from_wire(sock.recv(4096))
        assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
        sock.sendto(b"\x00", (lab.host, lab.port))  # not even a header: silence
        with pytest.raises(TimeoutError):
            sock.recv(4096)
    assert ask(lab, "mx1.lab.test", "A").answer


def test_delay_is_applied_in_parallel() -> None:
    with run_in_thread(ZONES, delay_ms=100) as slow:
        names = [f"h{i}.wild.lab.test" for i in range(20)]
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda n: ask(slow, n, "A"), names))
        elapsed = time.monotonic() - start
    assert all(a.answer for a in answers)
    assert 0.1 <= elapsed < 0.6


def test_ipv6_loopback() -> None:
    try:
        handle = run_in_thread(ZONES, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with handle:
        assert handle.address == f"[::1]:{handle.port}"
        assert ask(handle, "mx1.lab.test", "AAAA").answer
        assert ask(handle, "mx1.lab.test", "AAAA", tcp=True).answer


def test_bad_zone_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.test.zone").write_text("@ IN A 192.0.2.1\n")  # no SOA
    with pytest.raises(ValueError, match="bad.test.zone"):
        run_in_thread(tmp_path)


def test_cli_ready_file_query_log_and_sigterm(tmp_path: Path) -> None:
    ready, log = tmp_path / "port", tmp_path / "queries.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.lab.dnsserver", "--zones", str(ZONES)]
        + ["--ready-file", str(ready), "--query-log", str(log)],
        cwd=REPO,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 8
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.02)
        port = int(ready.read_text())
        query = dns.message.make_query("mx1.lab.test", "A", want_dnssec=True)
        assert dns.query.udp(query, "127.0.0.1", timeout=2, port=port).answer
        assert dns.query.tcp(query, "127.0.0.1", timeout=2, port=port).answer
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().splitlines() == [
        "udp mx1.lab.test. A 1",
        "tcp mx1.lab.test. A 1",
    ]
    assert not ready.exists()  # removed on clean exit


def test_failure_while_answering_gives_servfail_and_server_lives_on(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # An rrset too big even for TCP (> 64 KiB) makes rendering raise inside the server.
    strings = "\n".join(f'huge IN TXT "{i:04d}{"x" * 240}"' for i in range(300))
    (tmp_path / "huge.test.zone").write_text(
        "$TTL 60\n@ IN SOA ns hostmaster 1 60 60 60 60\n@ IN NS ns\nns IN A 192.0.2.1\n"
        + strings
        + "\n"
    )
    with run_in_thread(tmp_path) as handle:
        assert ask(handle, "huge.huge.test", "TXT", tcp=True).rcode() == dns.rcode.SERVFAIL
        assert ask(handle, "huge.huge.test", "TXT").flags & dns.flags.TC
        assert ask(handle, "ns.huge.test", "A", tcp=True).answer
    assert "TooBig" in capfd.readouterr().err
