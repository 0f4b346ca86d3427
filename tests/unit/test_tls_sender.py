"""What a Postfix sender at each TLS level does: pure predictions from server facts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mailcheck.checks.tls_sender import (
    Dane,
    Level,
    Outcome,
    SenderFacts,
    Session,
    postfix_reply,
    predict,
    reply_dsn,
)
from mailcheck.smtp import Reply

GOOD = SenderFacts(
    "mx.example.com",
    "192.0.2.1",
    25,
    Session.TLS,
    pkix_trusted=True,
    mx_name_matches=True,
    nexthop_name_matches=True,
    dane=Dane.MATCH,
)


def outcomes(facts: SenderFacts) -> dict[str, str]:
    return {level.value: predict(facts, level).outcome.value for level in Level}


def test_a_good_server_gets_mail_at_every_level() -> None:
    assert set(outcomes(GOOD).values()) == {"deliver"}
    assert predict(GOOD, Level.DANE).says == "Verified TLS connection established"


def test_missing_starttls_is_the_famous_bounce_for_every_mandatory_level() -> None:
    facts = SenderFacts("mx.example.com", "192.0.2.1", 25, Session.NO_STARTTLS, dane=Dane.NONE)
    assert outcomes(facts) == {
        "may": "plaintext",
        "encrypt": "defer",
        "dane": "plaintext",
        "dane-only": "defer",
        "verify": "defer",
        "secure": "defer",
    }
    said = predict(facts, Level.ENCRYPT)
    assert said.says == "TLS is required, but was not offered by host mx.example.com[192.0.2.1]"
    assert said.dsn == "4.7.4"


def test_published_tlsa_without_starttls_defers_even_opportunistic_dane() -> None:
    facts = SenderFacts("mx.example.com", "192.0.2.1", 25, Session.NO_STARTTLS, dane=Dane.MATCH)
    assert predict(facts, Level.DANE).outcome is Outcome.DEFER


def test_refused_starttls_quotes_the_reply() -> None:
    facts = SenderFacts("mx", "192.0.2.1", 25, Session.REFUSED, reply="454 4.7.0 TLS not available")
    said = predict(facts, Level.ENCRYPT)
    assert said.says.endswith("refused to start TLS: 454 4.7.0 TLS not available")
    assert predict(facts, Level.MAY).outcome is Outcome.PLAINTEXT


@pytest.mark.parametrize(
    ("dane", "dane_outcome", "dane_only_outcome", "text"),
    [
        (Dane.LOOKUP_ERROR, "defer", "defer", "TLSA lookup error for mx.example.com:25"),
        (Dane.UNUSABLE, "deliver", "defer", "TLSA records unusable"),
        (Dane.MISMATCH, "defer", "defer", "Server certificate not verified"),
        (Dane.INSECURE, "deliver", "defer", ""),
    ],
)
def test_dane_states(dane: Dane, dane_outcome: str, dane_only_outcome: str, text: str) -> None:
    facts = SenderFacts("mx.example.com", "192.0.2.1", 25, Session.TLS, dane=dane)
    assert predict(facts, Level.DANE).outcome.value == dane_outcome
    only = predict(facts, Level.DANE_ONLY)
    assert only.outcome.value == dane_only_outcome
    assert text in only.says


def test_legacy_tls_works_opportunistically_but_not_for_authenticating_senders() -> None:
    facts = SenderFacts(
        "mx",
        "192.0.2.1",
        25,
        Session.TLS,
        legacy_tls=True,
        pkix_trusted=True,
        mx_name_matches=True,
        nexthop_name_matches=True,
        dane=Dane.MATCH,
    )
    assert outcomes(facts) == {
        "may": "deliver",
        "encrypt": "deliver",
        "dane": "defer",
        "dane-only": "defer",
        "verify": "defer",
        "secure": "defer",
    }


def test_verify_checks_the_mx_name_and_secure_the_domain() -> None:
    facts = SenderFacts(
        "mx",
        "192.0.2.1",
        25,
        Session.TLS,
        pkix_trusted=True,
        mx_name_matches=True,
        nexthop_name_matches=False,
    )
    assert predict(facts, Level.VERIFY).outcome is Outcome.DELIVER
    assert predict(facts, Level.SECURE).says == "Server certificate not verified"
    untrusted = SenderFacts("mx", "192.0.2.1", 25, Session.TLS, mx_name_matches=True)
    assert predict(untrusted, Level.VERIFY).says == "Server certificate not trusted"


def test_a_rejecting_greeting_defers_everyone_and_an_unprobed_host_is_unknown() -> None:
    rejected = SenderFacts("mx", "192.0.2.1", 25, Session.REJECTED, reply="554 5.7.1 blocked")
    assert set(outcomes(rejected).values()) == {"defer"}
    assert "refused to talk to me: 554 5.7.1 blocked" in predict(rejected, Level.MAY).says
    unknown = SenderFacts("mx", "192.0.2.1", 25, Session.UNKNOWN)
    assert set(outcomes(unknown).values()) == {"unknown"}


def test_a_session_refused_at_helo_bounces_with_the_replys_own_dsn() -> None:
    # Postfix (smtp_proto.c): "host H[ip] refused to talk to me: <HELO reply>", its DSN the
    # reply's enhanced status code; a 5xx there is a hard error, at every level.
    refused = SenderFacts(
        "mx", "192.0.2.1", 25, Session.REJECTED, reply="550 5.7.1 go away", dsn="5.7.1"
    )
    assert set(outcomes(refused).values()) == {"bounce"}
    tempfail = SenderFacts(
        "mx", "192.0.2.1", 25, Session.REJECTED, reply="421 4.7.0 later", dsn="4.7.0"
    )
    assert set(outcomes(tempfail).values()) == {"defer"}
    said = predict(refused, Level.MAY)
    assert said.says == "host mx[192.0.2.1] refused to talk to me: 550 5.7.1 go away"
    assert said.dsn == "5.7.1"


@pytest.mark.parametrize(
    ("reply", "greeting", "dsn"),
    [
        (Reply(554, ("5.7.1 blocked",)), False, "5.7.1"),
        # smtp_skip_5xx_greeting = yes: a 5xx greeting is deferred, its class becomes 4.
        (Reply(554, ("5.7.1 blocked",)), True, "4.7.1"),
        (Reply(421, ("4.3.2 bye",)), False, "4.3.2"),
        (Reply(421, ("try later",)), False, "4.0.0"),
        (Reply(421, ("5.3.2 wrong class",)), False, "4.0.0"),
        (Reply(550, ("5.7.1234 too long",)), False, "5.0.0"),
        (Reply(550, ()), False, "5.0.0"),
        # Postfix reads the code from the last line of a multi-line reply.
        (Reply(554, ("5.7.1 blocked", "go away")), True, "4.0.0"),
        (Reply(554, ("blocked", "5.7.1 go away")), False, "5.7.1"),
    ],
)
def test_reply_dsn(reply: Reply, greeting: bool, dsn: str) -> None:
    assert reply_dsn(reply, greeting=greeting) == dsn


def test_postfix_quotes_a_multiline_reply_on_one_line() -> None:
    assert postfix_reply(Reply(421, ("4.7.0 busy", "try later"))) == "421-4.7.0 busy 421 try later"


LOST = SenderFacts(
    "mx",
    "192.0.2.1",
    25,
    Session.TLS_LOST,
    pkix_trusted=True,
    mx_name_matches=True,
    nexthop_name_matches=True,
    dane=Dane.MATCH,
)


def test_a_connection_lost_inside_tls() -> None:
    # smtp_trouble.c: "lost connection with H[ip] while performing the EHLO handshake" (4.4.2);
    # at `may` the session is retried later without TLS (RETRY_AS_PLAINTEXT).
    lost_text = "lost connection with mx[192.0.2.1] while performing the EHLO handshake"
    assert outcomes(LOST) == {
        "may": "plaintext",
        "encrypt": "defer",
        "dane": "defer",
        "dane-only": "defer",
        "verify": "defer",
        "secure": "defer",
    }
    for level in Level:
        said = predict(LOST, level)
        assert (said.says, said.dsn) == (lost_text, "4.4.2")
    helo = replace(LOST, lost_at="HELO", dane=Dane.NONE)
    assert predict(helo, Level.DANE).outcome is Outcome.PLAINTEXT  # no TLSA: opportunistic
    assert "performing the HELO handshake" in predict(helo, Level.ENCRYPT).says


def test_the_certificate_is_judged_before_the_ehlo_inside_tls() -> None:
    untrusted = replace(LOST, pkix_trusted=False, dane=Dane.MISMATCH)
    assert predict(untrusted, Level.VERIFY).says == "Server certificate not trusted"
    assert predict(untrusted, Level.DANE_ONLY).says == "Server certificate not verified"


def test_a_session_refused_inside_tls_defers_everyone() -> None:
    refused = replace(
        LOST, session=Session.TLS_REJECTED, reply="421 4.3.2 Service shutting down", dsn="4.3.2"
    )
    assert set(outcomes(refused).values()) == {"defer"}
    said = predict(refused, Level.MAY)
    assert said.says == "host mx[192.0.2.1] refused to talk to me: 421 4.3.2 Service shutting down"
    assert said.dsn == "4.3.2"
