"""The STARTTLS probe against every scripted server of tests/lab/tls_smtpd.py, over loopback.

Each scenario is probed for real (TCP, SMTP, TLS with the lab PKI), and the findings of
tls_session are asserted by code, together with the facts the probe recorded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Iterator

import dns.name
import pytest

from mailcheck.checks.tls_probe import (
    HandshakeError,
    ProbeTimeouts,
    SmtpProbe,
    Step,
    probe_smtp,
)
from mailcheck.checks.tls_probes import ProbeCache
from mailcheck.checks.tls_session import probe_json, session_findings, starttls_cause
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.smtp import FailureKind, Reply, SmtpConnection, SmtpFailure, TlsEstablished
from tests.lab.pki import LabCert, LabPki
from tests.lab.tls_smtpd import NAME, SCENARIOS, Scenario, TlsSmtpLab

HELO = "probe.mailcheck.test"
FAST = ProbeTimeouts(connect=2.0, greeting=2.0, command=2.0, handshake=2.0, quit=1.0)

BROKEN_REPLIES = {
    "not-smtp": Scenario(greeting="SSH-2.0-OpenSSH_9.2"),
    "long-line": Scenario(greeting="220 " + "x" * 3000),
    "code-change": Scenario(greeting=f"220-{NAME} hello\n250 and goodbye"),
    "too-many-lines": Scenario(greeting="\n".join(["220-spam"] * 150 + ["220 end"])),
}


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> LabCert:
    pki = LabPki(tmp_path_factory.mktemp("pki"))
    return pki.issue("mx", [NAME])


@pytest.fixture(scope="module")
def lab(cert: LabCert) -> Iterator[TlsSmtpLab]:
    with TlsSmtpLab({**SCENARIOS, **BROKEN_REPLIES}, cert) as running:
        yield running


def probe(
    lab: TlsSmtpLab, name: str, timeouts: ProbeTimeouts = FAST, deadline: float | None = None
) -> SmtpProbe:
    ip, port = lab.address(name)
    return asyncio.run(probe_smtp(NAME, ip, port, helo=HELO, timeouts=timeouts, deadline=deadline))


def codes(result: SmtpProbe, slow_greeting_s: float = 10.0) -> list[str]:
    return [f.code for f in session_findings(result, slow_greeting_s=slow_greeting_s)]


def sent(result: SmtpProbe) -> list[str]:
    return [t.text for t in result.transcript if t.direction == "C"]


EXPECTED = {
    "good": ["tls.ok"],
    "banner-554": ["tls.greeting-rejected"],
    "att-hidden": ["tls.starttls-hidden-block"],
    "ehlo-550": ["tls.ehlo-rejected"],
    "no-esmtp": ["tls.no-esmtp"],
    "masked": ["tls.starttls-masked"],
    "not-offered": ["tls.starttls-missing"],
    "starttls-454": ["tls.starttls-refused"],
    "close-after-220": ["tls.handshake-failed"],
    "plaintext-after-220": ["tls.handshake-failed"],
    "alert-after-220": ["tls.handshake-failed"],
    "greeting-421": ["tls.greeting-tempfail"],
    "slow-greeting": ["tls.ok"],
    "post-tls-554": ["tls.rejected-after-tls"],
    "post-tls-421": ["tls.rejected-after-tls"],
    "post-tls-helo-only": ["tls.ehlo-rejected-after-tls"],
    "close-after-tls": ["tls.rejected-after-tls"],
    "ehlo-421": ["tls.helo-rejected"],
    "helo-rejected": ["tls.helo-rejected"],
    "fragile-pipelining": ["tls.ok"],
    "escapes": ["tls.ok"],
    "asterisks-x": ["tls.ok"],
    "legacy-tls": ["tls.legacy-version"],
    "unadvertised": ["tls.starttls-unadvertised"],
    "unadvertised-alert": ["tls.starttls-missing", "tls.handshake-failed"],
    "injectable": ["tls.starttls-injection"],
    "multiline-220": ["tls.ok"],
    "strict-sync": ["tls.ok"],
    "tarpit": ["tls.ok"],  # slow, but within every step's limit
    "tarpit-not-offered": ["tls.starttls-missing"],
    "not-smtp": ["tls.session-broken"],
    "long-line": ["tls.session-broken"],
    "code-change": ["tls.session-broken"],
    "too-many-lines": ["tls.session-broken"],
}


def test_every_scenario_is_covered() -> None:
    assert set(EXPECTED) == set(SCENARIOS) | set(BROKEN_REPLIES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_findings(lab: TlsSmtpLab, name: str) -> None:
    result = probe(lab, name)
    assert codes(result) == EXPECTED[name]
    assert result.connected
    # Never a message: no RCPT, no DATA, nothing after MAIL FROM but RSET or QUIT.
    verbs = [line.split(" ")[0].split(":")[0] for line in sent(result)]
    assert not {"RCPT", "DATA"} & set(verbs)
    if "MAIL" in verbs:
        assert set(verbs[verbs.index("MAIL") + 1 :]) <= {"RSET", "QUIT"}
    json.dumps(probe_json(result))  # always JSON-ready


def test_good_server_full_session(lab: TlsSmtpLab, cert: LabCert) -> None:
    result = probe(lab, "good")
    assert result.greeting is not None and result.greeting.code == 220
    assert result.starttls_offered and "STARTTLS" in result.keywords
    assert result.tls is not None and result.tls.version == "TLSv1.3"
    assert result.tls.chain_der == cert.chain_der  # leaf and intermediate, as sent
    assert result.tls.bits == 256 and result.tls.cipher
    assert "STARTTLS" not in result.post_tls_keywords and "PIPELINING" in result.post_tls_keywords
    assert result.injection is False  # the RSET pipelined with STARTTLS was discarded
    assert sent(result) == [f"EHLO {HELO}", "STARTTLS", "RSET", f"EHLO {HELO}", "QUIT"]
    assert result.stopped is None
    assert result.elapsed_ms < 1000  # the injection test waits for nothing
    ms = [t.ms for t in result.transcript]
    assert ms == sorted(ms)
    ok = session_findings(result)[0]
    assert ok.evidence["tls_version"] == "TLSv1.3" and ok.evidence["injection"] == "not vulnerable"


def test_contract_json(lab: TlsSmtpLab) -> None:
    data = probe_json(probe(lab, "att-hidden"))
    contract = {"host", "ip", "port", "connected", "banner", "ehlo", "starttls_offered"}
    assert contract | {"tls_version", "cipher", "cause", "transcript"} <= set(data)
    assert data["cause"] == "tls.starttls-hidden-block"
    assert data["starttls_offered"] is False and data["tls_version"] is None
    assert data["banner"].startswith("220 ")
    assert {"ms", "dir", "text"} == set(data["transcript"][0])


def test_att_hidden_block_is_revealed(lab: TlsSmtpLab) -> None:
    result = probe(lab, "att-hidden")
    assert result.starttls_anyway is not None and result.starttls_anyway.code == 553
    assert result.mail_from is not None and result.mail_from.code == 553
    finding = session_findings(result)[0]
    assert "DNSBL" in finding.evidence["block"]
    assert "abuse_rbl@abuse-att.net" in finding.evidence["mail_from"]
    assert "IP block" in finding.message and finding.severity == "error"


def test_greeting_554_quits_without_ehlo(lab: TlsSmtpLab) -> None:
    result = probe(lab, "banner-554")
    assert sent(result) == ["QUIT"]
    finding = session_findings(result)[0]
    assert "spamhaus" in finding.evidence["block"] and "dnsbl check" in finding.remedy


def test_ehlo_rejected_falls_back_to_helo(lab: TlsSmtpLab) -> None:
    result = probe(lab, "ehlo-550")
    assert result.ehlo is not None and result.ehlo.code == 550
    assert result.helo is not None and result.helo.code == 250
    assert sent(result)[:4] == [f"EHLO {HELO}", f"HELO {HELO}", "STARTTLS", "MAIL FROM:<>"]
    finding = session_findings(result)[0]
    assert "TLS is required, but was not offered" in finding.message
    assert finding.evidence["block"] == "listed, bl."


def test_masked_starttls(lab: TlsSmtpLab) -> None:
    result = probe(lab, "masked")
    assert result.masked_keywords == ("XXXXXXXA",) and result.masked_banner
    assert not result.starttls_offered


def test_starttls_refused_keeps_in_step(lab: TlsSmtpLab) -> None:
    result = probe(lab, "starttls-454")
    assert result.starttls is not None and result.starttls.code == 454
    received = [t.text for t in result.transcript if t.direction == "S"]
    assert received[-2:] == ["250 2.0.0 Ok", "221 2.0.0 Bye"]  # RSET's reply, then QUIT's


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("close-after-220", HandshakeError.CLOSED),
        ("plaintext-after-220", HandshakeError.PLAINTEXT),
        ("alert-after-220", HandshakeError.ALERT),
    ],
)
def test_handshake_failure_kinds(lab: TlsSmtpLab, name: str, kind: HandshakeError) -> None:
    result = probe(lab, name)
    assert result.tls is not None and not result.tls.ok and result.tls.error_kind is kind
    assert result.stopped is not None and result.stopped.step is Step.HANDSHAKE
    assert session_findings(result)[0].evidence["failure"] == kind.value


def test_greeting_421_is_inconclusive(lab: TlsSmtpLab) -> None:
    result = probe(lab, "greeting-421")
    assert sent(result) == []  # RFC 5321 §3.8: nothing after a 421
    finding = session_findings(result)[0]
    assert finding.indeterminate and starttls_cause(result) == "tls.greeting-tempfail"


def test_slow_greeting_is_measured(lab: TlsSmtpLab) -> None:
    result = probe(lab, "slow-greeting")
    assert result.greeting_ms is not None and result.greeting_ms >= 450
    assert codes(result, slow_greeting_s=0.3) == ["tls.slow-greeting", "tls.ok"]


def test_greeting_timeout(lab: TlsSmtpLab) -> None:
    started = time.monotonic()
    result = probe(lab, "slow-greeting", ProbeTimeouts(greeting=0.2))
    assert time.monotonic() - started < 0.45  # bounded by the step's timeout
    assert result.stopped is not None and result.stopped.step is Step.GREETING
    assert result.stopped.failure.kind is FailureKind.TIMEOUT and not result.stopped.deadline
    finding = session_findings(result)[0]
    assert finding.code == "tls.greeting-timeout" and finding.indeterminate


def test_rejected_after_tls(lab: TlsSmtpLab) -> None:
    rejected = probe(lab, "post-tls-554")
    assert rejected.post_tls_ehlo is not None and rejected.post_tls_ehlo.code == 554
    # As Postfix does, HELO follows a refused EHLO inside TLS; it is refused too.
    assert rejected.post_tls_helo is not None and rejected.post_tls_helo.code == 554
    assert sent(rejected)[-3:] == [f"EHLO {HELO}", f"HELO {HELO}", "QUIT"]
    dropped = probe(lab, "close-after-tls")
    assert dropped.post_tls_error is not None and dropped.post_tls_error.kind is FailureKind.CLOSED
    assert dropped.stopped is not None and dropped.stopped.step is Step.POST_TLS_EHLO
    assert starttls_cause(dropped) == "tls.rejected-after-tls"
    (finding,) = session_findings(dropped)
    assert "while performing the EHLO handshake" in finding.message
    assert not finding.indeterminate


def test_421_inside_tls_ends_the_session(lab: TlsSmtpLab) -> None:
    result = probe(lab, "post-tls-421")
    assert result.post_tls_ehlo is not None and result.post_tls_ehlo.code == 421
    assert result.post_tls_helo is None and sent(result)[-1] == f"EHLO {HELO}"
    (finding,) = session_findings(result)
    assert "refused to talk to me: 421 4.3.2" in finding.message


def test_helo_inside_tls_after_a_refused_ehlo(lab: TlsSmtpLab) -> None:
    result = probe(lab, "post-tls-helo-only")
    assert result.post_tls_ehlo is not None and result.post_tls_ehlo.code == 502
    assert result.post_tls_helo is not None and result.post_tls_helo.code == 250
    assert sent(result)[-3:] == [f"EHLO {HELO}", f"HELO {HELO}", "QUIT"]
    assert starttls_cause(result) is None  # mail still goes over TLS, without ESMTP
    (finding,) = session_findings(result)
    assert finding.severity == "warning" and "without ESMTP" in finding.message


def test_421_to_ehlo_is_a_refused_session(lab: TlsSmtpLab) -> None:
    result = probe(lab, "ehlo-421")
    assert sent(result) == [f"EHLO {HELO}"]  # RFC 5321 §3.8: the server closes after 421
    (finding,) = session_findings(result)
    assert finding.code == "tls.helo-rejected" and finding.indeterminate
    assert "refused to talk to me: 421 4.7.0" in finding.message


def test_helo_refused_too_is_a_refused_session(lab: TlsSmtpLab) -> None:
    result = probe(lab, "helo-rejected")
    assert result.helo is not None and result.helo.code == 550
    (finding,) = session_findings(result)
    assert finding.code == "tls.helo-rejected" and not finding.indeterminate
    assert "refused to talk to me: 550 5.7.1" in finding.message
    assert "TLS is required" not in finding.message and finding.evidence["block"]
    assert starttls_cause(result) == "tls.helo-rejected"


def test_legacy_tls_only(lab: TlsSmtpLab) -> None:
    # OpenSSL 3 still speaks TLS 1.0/1.1 at security level 0, on both sides.
    result = probe(lab, "legacy-tls")
    assert result.tls is not None and result.tls.version == "TLSv1.1"
    assert starttls_cause(result) is None  # opportunistic senders still get TLS


def test_unadvertised_starttls_works(lab: TlsSmtpLab) -> None:
    result = probe(lab, "unadvertised")
    assert not result.starttls_offered and result.tls is not None and result.tls.ok
    assert result.injection is None  # only tested when STARTTLS is advertised
    assert result.mail_from is None  # TLS worked: no MAIL FROM needed


def test_unadvertised_starttls_whose_handshake_fails(lab: TlsSmtpLab) -> None:
    result = probe(lab, "unadvertised-alert")
    assert not result.starttls_offered
    assert result.starttls_anyway is not None and result.starttls_anyway.code == 220
    assert result.tls is not None and result.tls.error_kind is HandshakeError.ALERT
    assert result.mail_from is None and sent(result) == [f"EHLO {HELO}", "STARTTLS"]
    assert result.reprobe is None  # nothing was pipelined: no second session
    missing, failed = session_findings(result)
    assert "MAIL FROM" not in missing.message and "handshake then failed" in missing.message
    assert "not advertised" in failed.message and failed.evidence["failure"] == "alert"
    assert starttls_cause(result) == "tls.starttls-missing"  # a sender never tries STARTTLS


def test_deadline_stops_a_tarpit_where_it_is(lab: TlsSmtpLab) -> None:
    # Each reply comes after 0.3 s, well within the 2 s step limits: only the deadline stops it.
    started = time.monotonic()
    result = probe(lab, "tarpit", deadline=0.45)
    assert time.monotonic() - started < 0.7
    stopped = result.stopped
    assert stopped is not None and stopped.deadline and stopped.step is Step.STARTTLS
    assert stopped.failure.kind is FailureKind.TIMEOUT
    assert "whole-probe limit of 0.45 s" in stopped.failure.detail
    assert result.starttls_offered and result.starttls is None  # what came before is kept
    assert sent(result) == [f"EHLO {HELO}", "STARTTLS", "RSET"]
    assert "whole-probe limit" in result.transcript[-1].text
    (finding,) = session_findings(result)
    assert finding.code == "tls.probe-deadline" and finding.indeterminate
    assert "stopped at starttls" in finding.message
    data = probe_json(result)
    assert data["stopped"]["deadline"] is True and data["cause"] == "tls.probe-deadline"


def test_deadline_in_the_hidden_reason_probe(lab: TlsSmtpLab) -> None:
    result = probe(lab, "tarpit-not-offered", deadline=0.75)
    assert result.stopped is not None and result.stopped.deadline
    assert result.stopped.step is Step.MAIL_FROM and result.mail_from is None
    assert result.starttls_anyway is not None and result.starttls_anyway.code == 502
    missing, ran_out = session_findings(result)
    assert (missing.code, ran_out.code) == ("tls.starttls-missing", "tls.probe-deadline")
    assert "MAIL FROM then got no answer" in missing.message
    assert "neither names a block" not in missing.message
    assert starttls_cause(result) == "tls.starttls-missing"  # not advertised is still a fact


def test_deadline_at_the_greeting(lab: TlsSmtpLab) -> None:
    result = probe(lab, "slow-greeting", deadline=0.2)
    assert result.stopped is not None and result.stopped.deadline
    assert result.stopped.step is Step.GREETING and result.greeting is None
    assert codes(result) == ["tls.probe-deadline"]


def test_deadline_not_reached_changes_nothing(lab: TlsSmtpLab) -> None:
    result = probe(lab, "good", deadline=5.0)
    assert result.stopped is None and codes(result) == ["tls.ok"]


def test_injection_is_detected(lab: TlsSmtpLab) -> None:
    result = probe(lab, "injectable")
    assert result.injection is True
    assert result.injection_reply is not None and result.injection_reply.text == "250 2.0.0 Ok"
    assert result.post_tls_ehlo is not None and "PIPELINING" in result.post_tls_keywords
    assert ("injectable", "RSET") in lab.received  # the server executed it


def test_multiline_220_to_starttls(lab: TlsSmtpLab) -> None:
    result = probe(lab, "multiline-220")
    assert result.starttls is not None and len(result.starttls.lines) == 2
    assert result.tls is not None and result.tls.ok


def test_pipelining_refusal_probes_again(lab: TlsSmtpLab) -> None:
    result = probe(lab, "strict-sync")
    assert result.pipelining_refused is not None and result.pipelining_refused.code == 554
    assert result.injection is None and result.tls is not None and result.tls.ok
    assert "RSET" not in sent(result)
    assert any("probed again" in t.text for t in result.transcript)
    assert result.reprobe is not None and "was refused" in result.reprobe


def test_a_failure_our_pipelined_rset_caused_is_not_reported(lab: TlsSmtpLab) -> None:
    result = probe(lab, "fragile-pipelining")
    assert codes(result) == ["tls.ok"] and result.tls is not None and result.tls.ok
    assert result.reprobe is not None and "failed TLS handshake" in result.reprobe
    assert result.injection is None and "RSET" not in sent(result)
    (ok,) = session_findings(result)
    assert ok.evidence["injection"] == "not tested" and ok.evidence["reprobe"] == result.reprobe
    assert probe_json(result)["reprobe"] == result.reprobe


@pytest.mark.parametrize("name", ["close-after-220", "post-tls-554", "close-after-tls"])
def test_a_real_failure_is_confirmed_without_the_rset(lab: TlsSmtpLab, name: str) -> None:
    result = probe(lab, name)
    assert result.reprobe is not None and "session with STARTTLS + RSET ended in" in result.reprobe
    assert "RSET" not in sent(result) and result.injection is None
    assert codes(result) == EXPECTED[name]


def test_a_good_session_is_not_probed_again(lab: TlsSmtpLab) -> None:
    result = probe(lab, "good")
    assert result.reprobe is None and "RSET" in sent(result)


def sni_seen(lab: TlsSmtpLab, name: str) -> str | None:
    return [sni for server, sni in lab.sni_seen if server == name][-1]


def test_sni_is_the_mx_host_name(lab: TlsSmtpLab) -> None:
    result = probe(lab, "good")
    assert result.sni == NAME and sni_seen(lab, "good") == NAME
    assert probe_json(result)["sni"] == NAME


def test_sni_may_be_the_tlsa_base_domain(lab: TlsSmtpLab) -> None:
    ip, port = lab.address("good")
    base = "mx-base.tls.test"
    result = asyncio.run(probe_smtp(NAME, ip, port, helo=HELO, timeouts=FAST, sni=base))
    assert result.host == NAME and result.sni == base and sni_seen(lab, "good") == base
    assert any(t.text == f"TLS handshake, SNI {base}" for t in result.transcript)


def test_a_hostile_mx_name_is_probed_without_sni(lab: TlsSmtpLab) -> None:
    # A 20-octet binary label, as dnspython prints it: OpenSSL's IDNA encoding refuses it.
    hostile = dns.name.Name([b"\xff" * 20, b"example", b""]).to_text().rstrip(".")
    ip, port = lab.address("good")
    result = asyncio.run(probe_smtp(hostile, ip, port, helo=HELO, timeouts=FAST))
    assert result.tls is not None and result.tls.ok and codes(result) == ["tls.ok"]
    assert result.sni is None and sni_seen(lab, "good") is None


class _IdnaRefusing(ssl.SSLContext):
    """A client context that fails as the ssl module does for a name it cannot encode."""

    def wrap_bio(self, *args: object, **kwargs: object) -> ssl.SSLObject:
        raise UnicodeError("encoding with 'idna' codec failed (label empty or too long)")


def test_an_unusable_tls_argument_is_a_failure_not_a_crash(lab: TlsSmtpLab) -> None:
    async def upgrade() -> TlsEstablished | SmtpFailure:
        opened = await SmtpConnection.open(*lab.address("good"), 2.0)
        assert isinstance(opened, SmtpConnection)
        await opened.read_reply(2.0)
        assert isinstance(await opened.command("STARTTLS", 2.0), Reply)
        return await opened.start_tls(_IdnaRefusing(ssl.PROTOCOL_TLS_CLIENT), NAME, 2.0)

    failure = asyncio.run(upgrade())
    assert isinstance(failure, SmtpFailure) and failure.kind is FailureKind.ERROR
    assert "idna" in failure.detail


def test_a_greeting_of_asterisks_is_judged_in_linear_time(lab: TlsSmtpLab) -> None:
    # `220 ****...x` made the old pattern cubic, blocking the loop past every deadline.
    started = time.monotonic()
    result = probe(lab, "asterisks-x", deadline=2.0)
    assert time.monotonic() - started < 1.0
    assert result.greeting is not None and not result.masked_banner
    assert probe(lab, "masked").masked_banner


def test_control_characters_in_replies_are_escaped(lab: TlsSmtpLab) -> None:
    result = probe(lab, "escapes")
    assert result.greeting is not None
    assert result.greeting.lines == ("mx.tls.test \\x1b[31mred\\x00", "ok \\x9b2J\\x7f")
    assert probe_json(result)["banner"] == "220 mx.tls.test \\x1b[31mred\\x00 / ok \\x9b2J\\x7f"
    controls = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} - {"\t"}
    assert not any(set(t.text) & controls for t in result.transcript)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("not-smtp", "not an SMTP reply"),
        ("long-line", "longer than 2048"),
        ("code-change", "code changed"),
        ("too-many-lines", "longer than 100 lines"),
    ],
)
def test_malformed_replies_are_data(lab: TlsSmtpLab, name: str, words: str) -> None:
    result = probe(lab, name)
    assert result.stopped is not None and result.stopped.failure.kind is FailureKind.MALFORMED
    assert words in result.stopped.failure.detail
    assert not session_findings(result)[0].indeterminate


def test_refused_connection() -> None:
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.109", 0))  # bound, not listening: connections are refused
        port = reserved.getsockname()[1]
        result = asyncio.run(probe_smtp(NAME, "127.0.0.109", port, helo=HELO, timeouts=FAST))
    assert not result.connected and result.connect_error is not None
    assert result.connect_error.kind is FailureKind.REFUSED
    assert "ECONNREFUSED" in result.connect_error.detail
    finding = session_findings(result)[0]
    assert finding.code == "tls.unreachable" and finding.indeterminate
    assert f"port {port}" in finding.message


def test_a_name_is_never_resolved() -> None:
    # The network guard fails the test if anything asks the OS resolver.
    opened = asyncio.run(SmtpConnection.open("mx.tls.test", 25, 1.0))
    assert isinstance(opened, SmtpFailure) and opened.kind is FailureKind.ERROR


def test_names_sharing_a_tarpit_share_one_budget(lab: TlsSmtpLab) -> None:
    # Every reply 0.3 s late, a 0.5 s step: one probe's budget is min(3 × 0.5, 25) = 1.5 s.
    # Three MX names on that one address are probed one after another, inside that budget:
    # the check's other hosts keep their time, and the later names say why they were cut.
    ip, port = lab.address("tarpit")
    settings = TlsSettings(port=port, ehlo_name=HELO, step_timeout=0.5)

    async def three_names() -> tuple[list[SmtpProbe], float, SmtpProbe]:
        cache = ProbeCache()
        started = time.monotonic()
        names = ("mx1.tls.test", "mx2.tls.test", "mx3.tls.test")
        results = await asyncio.gather(*(cache.probe(n, ip, settings) for n in names))
        elapsed = time.monotonic() - started
        later = await cache.probe("mx4.tls.test", ip, settings)  # the address is idle again
        return list(results), elapsed, later

    results, elapsed, later = asyncio.run(three_names())
    assert elapsed < 2.5, elapsed  # one budget (1.5 s) and the closing, not three (4.5 s)
    cut = [r for r in results if r.stopped is not None and r.stopped.deadline]
    assert cut and all("tls.probe-deadline" in codes(r) for r in cut)
    # A fresh budget: the 0.3 s greeting arrives (a spent one would have cut it at 0.05 s).
    assert later.greeting is not None and later.greeting.code == 220
