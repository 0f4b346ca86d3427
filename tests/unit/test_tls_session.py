"""session_findings on plain SmtpProbe data: every class of B2/B3, the cause, the evidence."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from mailcheck.checks.tls_probe import asterisk_banner
from mailcheck.checks.tls_probe_result import (
    HandshakeError,
    SmtpProbe,
    Step,
    Stopped,
    TlsResult,
)
from mailcheck.checks.tls_session import (
    NO_TLS_CODES,
    block_words,
    probe_json,
    session_findings,
    starttls_cause,
)
from mailcheck.model import Severity, Status, status_of
from mailcheck.smtp import FailureKind, Reply, SmtpFailure

ATT = "553 5.3.0 flpd575 DNSBL:RBL 521< 192.0.2.1 >_is_blocked. For assistance forward this email"


def reply(text: str) -> Reply:
    """`250-a\\n250 b` -> Reply(250, ("a", "b"))."""
    lines = text.split("\n")
    return Reply(int(lines[0][:3]), tuple(line[4:] for line in lines))


EHLO_TLS = reply("250-mx.example Hello\n250-PIPELINING\n250-STARTTLS\n250 8BITMIME")
EHLO_PLAIN = reply("250-mx.example Hello\n250-PIPELINING\n250 8BITMIME")
TLS13 = TlsResult("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, (b"leaf", b"ca"), 3, None, None, "")
BASE = SmtpProbe(
    "mx.example",
    "192.0.2.25",
    25,
    connected=True,
    greeting=reply("220 mx.example ESMTP"),
    greeting_ms=40,
)
GOOD = replace(
    BASE,
    ehlo=EHLO_TLS,
    keywords=("PIPELINING", "STARTTLS", "8BITMIME"),
    starttls_offered=True,
    starttls=reply("220 2.0.0 Ready to start TLS"),
    tls=TLS13,
    post_tls_ehlo=EHLO_PLAIN,
    post_tls_keywords=("PIPELINING", "8BITMIME"),
    injection=False,
)
NOT_OFFERED = replace(BASE, ehlo=EHLO_PLAIN, keywords=("PIPELINING", "8BITMIME"))


def failure(kind: FailureKind, detail: str = "x", ms: int = 100) -> SmtpFailure:
    return SmtpFailure(kind, detail, ms)


def only(probe: SmtpProbe) -> str:
    found = session_findings(probe)
    assert len(found) == 1, [f.code for f in found]
    return found[0].code


def test_all_well_is_one_info_finding() -> None:
    (ok,) = session_findings(GOOD)
    assert ok.code == "tls.ok" and ok.severity is Severity.INFO
    assert "TLSv1.3" in ok.message and ok.evidence["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert ok.evidence["certificates"] == 2
    assert starttls_cause(GOOD) is None


def test_unreachable_is_not_a_server_fault() -> None:
    probe = replace(
        BASE,
        connected=False,
        greeting=None,
        connect_error=failure(FailureKind.TIMEOUT, "no answer within 10 s", 10000),
        stopped=Stopped(Step.CONNECT, failure(FailureKind.TIMEOUT)),
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.unreachable"
    assert finding.severity is Severity.ERROR and finding.indeterminate
    assert "port 25" in finding.message and "does not know" in finding.message
    assert finding.evidence["error"] == "timeout"
    assert status_of([finding]) is Status.ERROR  # "could not determine", never "fail"


def test_greeting_554_with_blocklist_words_is_a_reputation_block() -> None:
    probe = replace(BASE, greeting=reply("554 5.7.1 Client host blocked using zen.spamhaus.org"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.greeting-rejected" and not finding.indeterminate
    assert "reputation block" in finding.message and "not a TLS problem" in finding.message
    assert "dnsbl check" in finding.remedy
    assert finding.evidence["greeting"].startswith("554 5.7.1")


def test_greeting_554_without_blocklist_words() -> None:
    probe = replace(BASE, greeting=reply("554 5.3.2 Service currently unavailable"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.greeting-rejected" and "block" not in finding.evidence


def test_greeting_421_is_a_tempfail() -> None:
    probe = replace(BASE, greeting=reply("421 4.7.0 Too many connections"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.greeting-tempfail" and finding.indeterminate
    assert finding.severity is Severity.WARNING


def test_slow_greeting_says_how_long() -> None:
    probe = replace(GOOD, greeting_ms=12_345)
    found = session_findings(probe)
    assert [f.code for f in found] == ["tls.slow-greeting", "tls.ok"]
    assert "12.3 s" in found[0].message
    assert [f.code for f in session_findings(replace(GOOD, greeting_ms=9_000))] == ["tls.ok"]


def test_greeting_timeout_is_indeterminate() -> None:
    probe = replace(
        BASE,
        greeting=None,
        greeting_ms=None,
        stopped=Stopped(Step.GREETING, failure(FailureKind.TIMEOUT, "no reply", 30_000)),
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.greeting-timeout" and finding.indeterminate
    assert "30.0 s" in finding.message


def test_closed_before_greeting_is_a_broken_session() -> None:
    probe = replace(
        BASE, greeting=None, stopped=Stopped(Step.GREETING, failure(FailureKind.CLOSED))
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.session-broken" and not finding.indeterminate
    assert finding.evidence["step"] == "greeting" and finding.evidence["kind"] == "closed"


def test_ehlo_timeout_is_a_broken_session_and_indeterminate() -> None:
    probe = replace(BASE, stopped=Stopped(Step.EHLO, failure(FailureKind.TIMEOUT)))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.session-broken" and finding.indeterminate


def test_ehlo_rejected_explains_the_postfix_message() -> None:
    probe = replace(
        BASE,
        ehlo=reply("550 5.7.1 Client host rejected: listed at bl.example.test"),
        helo=reply("250 mx.example"),
        starttls_anyway=reply("502 5.5.1 Error: command not implemented"),
        mail_from=reply("250 2.1.0 Ok"),
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.ehlo-rejected"
    assert "fall back to HELO" in finding.message
    assert "TLS is required, but was not offered by host" in finding.message
    assert "reputation block" in finding.message and finding.evidence["helo"] == "250 mx.example"
    assert starttls_cause(probe) == "tls.ehlo-rejected"


def test_helo_refused_too_refuses_the_session() -> None:
    # EHLO and HELO both refused: Postfix gives up ("refused to talk to me"), whatever the
    # level; there is no "TLS is required, but was not offered" story to tell.
    probe = replace(
        BASE,
        ehlo=reply("550 5.7.1 go away"),
        helo=reply("550 5.7.1 go away"),
        starttls_anyway=reply("503 5.5.1 bad sequence"),
        mail_from=reply("503 5.5.1 send HELO first"),
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.helo-rejected" and finding.severity is Severity.ERROR
    assert "refused to talk to me: 550 5.7.1 go away" in finding.message
    assert "not offered" not in finding.message and "fall back" not in finding.message
    assert finding.evidence["helo"] == "550 5.7.1 go away"
    assert starttls_cause(probe) == "tls.helo-rejected"
    temporary = replace(probe, helo=reply("421 4.3.2 shutting down"))
    (finding,) = session_findings(temporary)
    assert finding.code == "tls.helo-rejected" and finding.indeterminate


def test_421_to_ehlo_refuses_the_session() -> None:
    probe = replace(BASE, ehlo=reply("421 4.7.0 too many connections"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.helo-rejected" and finding.indeterminate
    assert finding.severity is Severity.WARNING
    assert "closes the session at EHLO" in finding.message


def test_no_esmtp_but_helo_refused_is_a_refused_session() -> None:
    probe = replace(BASE, ehlo=reply("502 5.5.2 what?"), helo=reply("554 5.7.1 no"))
    assert only(probe) == "tls.helo-rejected"


def test_ehlo_rejected_without_block_words() -> None:
    probe = replace(BASE, ehlo=reply("554 5.7.1 Bad HELO name"), helo=reply("250 ok"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.ehlo-rejected" and "block" not in finding.evidence


@pytest.mark.parametrize("code", [500, 502])
def test_no_esmtp(code: int) -> None:
    probe = replace(BASE, ehlo=reply(f"{code} 5.5.2 command not recognized"), helo=reply("250 x"))
    assert only(probe) == "tls.no-esmtp"


def test_starttls_hidden_by_a_blocklist() -> None:
    probe = replace(NOT_OFFERED, starttls_anyway=reply(ATT), mail_from=reply(ATT))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.starttls-hidden-block"
    assert "IP block" in finding.message and ATT[:40] in finding.message
    assert finding.evidence["block"] == "DNSBL, RBL, blocked"
    assert finding.evidence["mail_from"] == ATT
    assert probe_json(probe)["cause"] == "tls.starttls-hidden-block"


def test_starttls_hidden_block_seen_only_at_mail_from() -> None:
    probe = replace(
        NOT_OFFERED,
        starttls_anyway=reply("502 5.5.1 Error: command not implemented"),
        mail_from=reply("550 5.7.1 Your IP has a poor reputation"),
    )
    assert only(probe) == "tls.starttls-hidden-block"


def test_starttls_missing_without_hidden_reason() -> None:
    probe = replace(
        NOT_OFFERED,
        starttls_anyway=reply("502 5.5.1 Error: command not implemented"),
        mail_from=reply("250 2.1.0 Ok"),
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.starttls-missing"
    assert finding.evidence["mail_from"] == "250 2.1.0 Ok"


def test_masked_by_a_firewall() -> None:
    probe = replace(
        NOT_OFFERED,
        keywords=("PIPELINING", "XXXXXXXA"),
        masked_keywords=("XXXXXXXA",),
        starttls_anyway=reply('500 5.5.1 Command unrecognized: "XXXXXXXX"'),
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.starttls-masked" and "XXXXXXXA" in finding.message
    banner_only = replace(NOT_OFFERED, masked_banner=True)
    assert only(banner_only) == "tls.starttls-masked"


def test_unadvertised_but_working() -> None:
    probe = replace(
        NOT_OFFERED,
        starttls_anyway=reply("220 2.0.0 Ready to start TLS"),
        tls=TLS13,
        post_tls_ehlo=EHLO_PLAIN,
    )
    assert only(probe) == "tls.starttls-unadvertised"
    legacy = replace(probe, tls=replace(TLS13, version="TLSv1"))
    assert [f.code for f in session_findings(legacy)] == [
        "tls.starttls-unadvertised",
        "tls.legacy-version",
    ]


def test_unadvertised_and_failing_handshake_is_missing_and_failed() -> None:
    failed = TlsResult(None, None, None, (), 5, "EOF", HandshakeError.CLOSED, "")
    probe = replace(NOT_OFFERED, starttls_anyway=reply("220 go ahead"), tls=failed)
    missing, handshake = session_findings(probe)
    assert (missing.code, handshake.code) == ("tls.starttls-missing", "tls.handshake-failed")
    assert "MAIL FROM" not in missing.message and "handshake then failed" in missing.message
    assert "tls.handshake-failed" in missing.remedy
    assert "sent although not advertised" in handshake.message
    assert handshake.evidence["starttls_anyway"] == "220 go ahead"
    assert starttls_cause(probe) == "tls.starttls-missing"  # senders never try STARTTLS


NOT_IMPLEMENTED = reply("502 5.5.1 Error: command not implemented")


@pytest.mark.parametrize(
    ("probe", "says", "never"),
    [
        (
            replace(NOT_OFFERED, starttls_anyway=NOT_IMPLEMENTED, mail_from=reply("250 2.1.0 Ok")),
            "MAIL FROM got '250 2.1.0 Ok': neither names a block",
            "unknown",
        ),
        (
            replace(
                NOT_OFFERED,
                starttls_anyway=NOT_IMPLEMENTED,
                stopped=Stopped(Step.MAIL_FROM, SmtpFailure(FailureKind.CLOSED, "closed", 3)),
            ),
            "MAIL FROM then got no answer (closed)",
            "neither names",
        ),
        (
            replace(
                NOT_OFFERED,
                stopped=Stopped(Step.STARTTLS_ANYWAY, SmtpFailure(FailureKind.TIMEOUT, "t", 9)),
            ),
            "STARTTLS sent anyway got no answer (t)",
            "MAIL FROM",
        ),
    ],
)
def test_starttls_missing_says_only_what_was_asked(probe: SmtpProbe, says: str, never: str) -> None:
    (finding,) = session_findings(probe)
    assert finding.code == "tls.starttls-missing"
    assert says in finding.message and never not in finding.message


LIMIT = SmtpFailure(FailureKind.TIMEOUT, "the whole-probe limit of 25 s was reached", 700)


def ran_out(step: Step) -> Stopped:
    return Stopped(step, LIMIT, deadline=True)


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        # Stopped before anything about TLS was known: only the deadline is reported.
        (replace(BASE, connected=False, connect_error=LIMIT, stopped=ran_out(Step.CONNECT)), []),
        (replace(BASE, greeting=None, stopped=ran_out(Step.GREETING)), []),
        (replace(BASE, stopped=ran_out(Step.EHLO)), []),
        (replace(GOOD, starttls=None, tls=None, stopped=ran_out(Step.STARTTLS)), []),
        # No time left to probe again after a refused pipelined STARTTLS: not a refusal.
        (
            replace(
                GOOD,
                starttls=reply("554 5.5.0 Error: SMTP protocol synchronization"),
                pipelining_refused=reply("554 5.5.0 Error: SMTP protocol synchronization"),
                tls=None,
                stopped=ran_out(Step.STARTTLS),
            ),
            [],
        ),
        # A handshake cut short is not a handshake failure; no EHLO reply is not a rejection.
        (
            replace(
                GOOD,
                tls=TlsResult(None, None, None, (), 700, LIMIT.detail, HandshakeError.TIMEOUT, ""),
                stopped=ran_out(Step.HANDSHAKE),
            ),
            [],
        ),
        (
            replace(
                GOOD,
                post_tls_ehlo=None,
                post_tls_keywords=(),
                post_tls_error=LIMIT,
                injection=None,
                stopped=ran_out(Step.POST_TLS_EHLO),
            ),
            [],
        ),
        # What was already certain stays: STARTTLS not advertised.
        (
            replace(NOT_OFFERED, stopped=ran_out(Step.STARTTLS_ANYWAY)),
            ["tls.starttls-missing"],
        ),
        (
            replace(
                NOT_OFFERED,
                starttls_anyway=reply("220 go ahead"),
                tls=TlsResult(None, None, None, (), 700, LIMIT.detail, HandshakeError.TIMEOUT, ""),
                stopped=ran_out(Step.HANDSHAKE),
            ),
            ["tls.starttls-missing"],
        ),
        (
            replace(
                NOT_OFFERED,
                starttls_anyway=reply("220 go ahead"),
                tls=TLS13,
                post_tls_error=LIMIT,
                stopped=ran_out(Step.POST_TLS_EHLO),
            ),
            ["tls.starttls-unadvertised"],
        ),
        (replace(NOT_OFFERED, masked_banner=True, stopped=ran_out(Step.STARTTLS_ANYWAY)),
         ["tls.starttls-masked"]),
    ],
)  # fmt: skip
def test_deadline_reports_what_is_known_and_says_the_rest_is_unknown(
    probe: SmtpProbe, expected: list[str]
) -> None:
    found = session_findings(probe)
    assert [f.code for f in found] == [*expected, "tls.probe-deadline"]
    deadline = found[-1]
    assert deadline.indeterminate and deadline.severity is Severity.ERROR
    assert "whole-probe limit of 25 s" in deadline.message
    assert deadline.evidence["stopped"]["deadline"] is True
    assert starttls_cause(probe) == (expected or ["tls.probe-deadline"])[0]
    assert probe_json(probe)["stopped"]["deadline"] is True
    json.dumps(deadline.to_json())


def test_step_timeout_is_not_the_deadline() -> None:
    stopped = Stopped(Step.EHLO, SmtpFailure(FailureKind.TIMEOUT, "no reply within 10 s", 10000))
    probe = replace(BASE, stopped=stopped)
    assert only(probe) == "tls.session-broken"
    assert probe_json(probe)["stopped"] == {
        "step": "ehlo",
        "kind": "timeout",
        "detail": "no reply within 10 s",
        "waited_ms": 10000,
        "deadline": False,
    }


@pytest.mark.parametrize("text", ["454 4.7.0 TLS not available", "554 5.7.0 no TLS for you"])
def test_starttls_refused(text: str) -> None:
    (finding,) = session_findings(replace(GOOD, starttls=reply(text), tls=None))
    assert finding.code == "tls.starttls-refused" and finding.evidence["starttls"] == text


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (HandshakeError.CLOSED, "closed the connection"),
        (HandshakeError.PLAINTEXT, "in plaintext"),
        (HandshakeError.ALERT, "TLS alert"),
        (HandshakeError.TIMEOUT, "did not finish"),
        (HandshakeError.OTHER, "handshake failed"),
    ],
)
def test_handshake_failures_say_which(kind: HandshakeError, words: str) -> None:
    failed = TlsResult(None, None, None, (), 5, "[SSL: X] x", kind, "")
    probe = replace(GOOD, tls=failed, post_tls_ehlo=None, post_tls_keywords=(), injection=None)
    (finding,) = session_findings(probe)
    assert finding.code == "tls.handshake-failed" and words in finding.message
    assert finding.evidence["failure"] == kind.value
    assert starttls_cause(probe) == "tls.handshake-failed"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1.1"])
def test_legacy_version(version: str) -> None:
    probe = replace(GOOD, tls=replace(TLS13, version=version, cipher="ECDHE-RSA-AES256-SHA"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.legacy-version" and finding.severity is Severity.WARNING
    assert version in finding.message and "DANE" in finding.message
    assert starttls_cause(probe) is None


REFUSED_IN_TLS = reply("554 5.7.0 TLS session rejected by policy")


def test_rejected_after_tls() -> None:
    rejected = replace(GOOD, post_tls_ehlo=REFUSED_IN_TLS, post_tls_helo=REFUSED_IN_TLS)
    (finding,) = session_findings(rejected)
    assert finding.code == "tls.rejected-after-tls" and "554 5.7.0" in finding.message
    assert "refused to talk to me" in finding.message and not finding.indeterminate
    assert finding.evidence["post_tls_helo"] == REFUSED_IN_TLS.text
    dropped = replace(
        GOOD,
        post_tls_ehlo=None,
        post_tls_error=failure(FailureKind.CLOSED, "the server closed the connection"),
    )
    (finding,) = session_findings(dropped)
    assert finding.code == "tls.rejected-after-tls" and "closed" in finding.message
    assert "lost connection with mx.example[192.0.2.25] while performing the EHLO" in (
        finding.message
    )


def test_421_inside_tls() -> None:
    probe = replace(GOOD, post_tls_ehlo=reply("421 4.3.2 shutting down"), post_tls_keywords=())
    (finding,) = session_findings(probe)
    assert finding.code == "tls.rejected-after-tls"
    assert "refused to talk to me: 421 4.3.2 shutting down" in finding.message


def test_ehlo_refused_inside_tls_but_helo_accepted() -> None:
    probe = replace(
        GOOD, post_tls_ehlo=REFUSED_IN_TLS, post_tls_helo=reply("250 mx"), post_tls_keywords=()
    )
    (finding,) = session_findings(probe)
    assert finding.code == "tls.ehlo-rejected-after-tls" and finding.severity is Severity.WARNING
    assert starttls_cause(probe) is None  # mail still goes over TLS


@pytest.mark.parametrize(
    ("probe", "words"),
    [
        # A timeout inside TLS: Postfix waits 300 s, this probe much less.
        (
            replace(
                GOOD,
                post_tls_ehlo=None,
                post_tls_error=failure(FailureKind.TIMEOUT, "no complete reply within 10 s"),
            ),
            "unknown",
        ),
        # EHLO refused, HELO never asked (data from elsewhere): what follows is unknown.
        (replace(GOOD, post_tls_ehlo=REFUSED_IN_TLS, post_tls_keywords=()), "did not"),
    ],
)
def test_what_is_not_known_inside_tls_is_indeterminate(probe: SmtpProbe, words: str) -> None:
    (finding,) = session_findings(probe)
    assert finding.code == "tls.rejected-after-tls" and finding.indeterminate
    assert words in finding.message


def test_asterisk_banner_is_linear() -> None:
    assert asterisk_banner("*" * 42) and asterisk_banner("2002 ****** ****** 0 ********** ")
    assert not asterisk_banner("*" * 9) and not asterisk_banner("mx ESMTP **********")
    started = time.perf_counter()
    assert not asterisk_banner("*" * 200_000 + "x")  # cubic for the old pattern
    assert time.perf_counter() - started < 0.1


def test_injection() -> None:
    probe = replace(GOOD, injection=True, injection_reply=reply("250 2.0.0 Ok"))
    (finding,) = session_findings(probe)
    assert finding.code == "tls.starttls-injection" and finding.severity is Severity.ERROR
    assert "CVE-2011-0411" in finding.message
    assert finding.evidence["unsolicited_reply"] == "250 2.0.0 Ok"


def test_injection_not_tested_is_said() -> None:
    probe = replace(GOOD, injection=None, pipelining_refused=reply("554 5.5.0 synchronization"))
    (finding,) = session_findings(probe)
    assert finding.evidence["injection"] == "not tested"
    assert finding.evidence["pipelining_refused"] == "554 5.5.0 synchronization"


def test_every_finding_is_complete_and_json_ready() -> None:
    probes = [
        GOOD,
        replace(BASE, greeting=reply("554 blocked")),
        replace(NOT_OFFERED, starttls_anyway=reply(ATT)),
        replace(GOOD, injection=True),
    ]
    for probe in probes:
        for finding in session_findings(probe):
            assert finding.check == "tls" and finding.code.startswith("tls.")
            assert finding.message and (finding.remedy or finding.severity is Severity.INFO)
            json.dumps(finding.to_json())
        json.dumps(probe_json(probe))


def test_cause_codes_are_real_codes() -> None:
    assert all(code.startswith("tls.") for code in NO_TLS_CODES)
    assert starttls_cause(NOT_OFFERED) == "tls.starttls-missing"


def test_block_words() -> None:
    assert block_words(reply(ATT)) == "DNSBL, RBL, blocked"
    assert block_words(reply("250 2.1.0 listed Ok")) is None  # positive replies never count
    assert block_words(reply("550 5.1.1 unlisted user")) is None
    assert block_words(None) is None


def test_odd_data_never_raises() -> None:
    odd = [
        replace(BASE, greeting=reply("250 greeting with the wrong code")),
        replace(BASE, greeting=reply("399 what")),
        replace(BASE, ehlo=reply("421 4.3.2 shutting down")),
        replace(GOOD, starttls=None),
        replace(GOOD, tls=None),
        replace(BASE, ehlo=reply("550 no"), helo=None),
        SmtpProbe("x", "192.0.2.1", 25),
    ]
    for probe in odd:
        assert session_findings(probe)
