"""What a Postfix sender at each `smtp_tls_security_level` does with one MX address — pure.

The answer to "why did my mail to X bounce?": the same server facts give different outcomes
per level (postconf(5), RFC 7672 §2.2), and Postfix logs them in its own words (the texts
below are Postfix 3.7's, captured from smtp(8) in the research lab; ../shared/research/tls.md;
"refused to talk to me" and "lost connection with ... while performing the EHLO handshake"
are smtp_proto.c's and smtp_trouble.c's format strings). docs/checks.md marks the few that are
mailcheck's own wording.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, assert_never

from mailcheck.smtp import Reply


class Level(enum.StrEnum):
    """Postfix smtp_tls_security_level values mailcheck predicts."""

    MAY = "may"
    ENCRYPT = "encrypt"
    DANE = "dane"
    DANE_ONLY = "dane-only"
    VERIFY = "verify"
    SECURE = "secure"


class Session(enum.StrEnum):
    """How far an SMTP session with the address gets, as a sender sees it."""

    TLS = "tls"
    """STARTTLS offered and the handshake completed."""
    NO_STARTTLS = "no-starttls"
    """STARTTLS not offered (also: EHLO rejected, no ESMTP)."""
    REFUSED = "refused"
    """STARTTLS offered, then refused (454 and the like)."""
    HANDSHAKE_FAILED = "handshake-failed"
    """The TLS handshake failed."""
    REJECTED = "rejected"
    """Refused before TLS: a 4xx/5xx greeting, 421 to EHLO, or EHLO and HELO refused."""
    TLS_REJECTED = "rejected-after-tls"
    """The handshake completed, then 421 to EHLO, or EHLO and HELO refused, inside TLS."""
    TLS_LOST = "lost-after-tls"
    """The handshake completed, then the server closed the connection at EHLO (or HELO)
    inside TLS."""
    UNKNOWN = "unknown"
    """Could not be probed from here (refused, filtered, timed out, --no-smtp), or what a
    sender would see is not known (the probe was cut short, no reply inside TLS in time)."""


class Dane(enum.StrEnum):
    """The TLSA state of an MX host for DANE senders (RFC 7672 §2.2)."""

    NONE = "none"
    """No TLSA records, proven by DNSSEC (or no DNSSEC at all): DANE does not apply."""
    INSECURE = "insecure"
    """TLSA records exist but are not DNSSEC-validated: senders ignore them."""
    LOOKUP_ERROR = "lookup-error"
    """The TLSA lookup failed (SERVFAIL, bogus, timeout): DANE senders defer."""
    UNUSABLE = "unusable"
    """Validated TLSA records, none usable (usages 0/1, malformed)."""
    MATCH = "match"
    """A usable record matches the served chain."""
    MISMATCH = "mismatch"
    """Usable records, none matches."""


class Outcome(enum.StrEnum):
    """What the sender does."""

    DELIVER = "deliver"
    PLAINTEXT = "plaintext"
    DEFER = "defer"
    BOUNCE = "bounce"
    """Returned to the sender at once: a 5xx reply Postfix treats as a hard error."""
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SenderFacts:
    """What a sender's decision depends on, for one MX host and address."""

    host: str
    """The MX host name."""
    ip: str
    """The address."""
    port: int
    """The SMTP port."""
    session: Session
    """How far the session got."""
    reply: str = ""
    """The server's words where the session stopped (the refusing reply, or the reply to
    STARTTLS), as Postfix quotes them (`postfix_reply`)."""
    dsn: str = ""
    """The enhanced status code Postfix reads from the refusing reply (`reply_dsn`)."""
    lost_at: str = "EHLO"
    """For TLS_LOST: the command inside TLS that got no reply (EHLO, or HELO after a refused
    EHLO)."""
    legacy_tls: bool = False
    """Only TLS < 1.2: OpenSSL 3 refuses it whenever a sender authenticates the server."""
    pkix_trusted: bool = False
    """The chain builds to a trusted root."""
    mx_name_matches: bool = False
    """The certificate names the MX host (what `verify` checks)."""
    nexthop_name_matches: bool = False
    """The certificate names the domain or a name under it (what `secure` checks)."""
    dane: Dane = Dane.NONE
    """The TLSA state of the host."""


@dataclass(frozen=True)
class Prediction:
    """One level's outcome for one address."""

    level: Level
    """The sender's smtp_tls_security_level."""
    outcome: Outcome
    """deliver, plaintext, defer or unknown."""
    says: str
    """What Postfix logs (its own words), or why we cannot tell."""
    dsn: str = ""
    """The enhanced status code Postfix logs with a deferral."""

    def to_json(self) -> dict[str, Any]:
        """The prediction as it appears in the JSON report."""
        return {"outcome": self.outcome.value, "postfix_says": self.says, "dsn": self.dsn}


def postfix_reply(reply: Reply) -> str:
    """A reply as Postfix quotes it in its logs: every line with its code, on one line."""
    lines = reply.lines or ("",)
    last = len(lines) - 1
    return " ".join(
        f"{reply.code}{' ' if n == last else '-'}{line}".rstrip() for n, line in enumerate(lines)
    )


def reply_dsn(reply: Reply, *, greeting: bool = False) -> str:
    """The enhanced status code Postfix reads from a refusing reply (smtp_chat.c).

    The RFC 3463 code that opens the reply's last line when it has the reply's class, else
    `X.0.0`; a 5xx greeting is deferred, not bounced (smtp_skip_5xx_greeting = yes): `4.x.x`.
    """
    code = str(reply.code)
    first = (reply.lines[-1] if reply.lines else "").lstrip(" ").split(" ", 1)[0]
    parts = first.split(".")
    valid = (
        len(parts) == 3
        and parts[0] == code[:1]
        and parts[0] in ("2", "4", "5")
        and all(1 <= len(x) <= 3 and x.isdigit() for x in parts[1:])
    )
    # A reply outside 2xx/4xx/5xx is a protocol error to Postfix (5.5.0).
    dsn = first if valid else f"{code[0]}.0.0" if code[:1] in ("2", "4", "5") else "5.5.0"
    return "4" + dsn[1:] if greeting and dsn.startswith("5") else dsn


def predict(facts: SenderFacts, level: Level) -> Prediction:
    """The outcome at `level` for the address in `facts`."""
    peer = f"{facts.host}[{facts.ip}]"
    if facts.session is Session.UNKNOWN:
        return Prediction(level, Outcome.UNKNOWN, "not probed: the outcome depends on the session")
    if facts.session is Session.REJECTED:
        return _refused(level, facts, peer)
    match level:
        case Level.MAY:
            return _opportunistic(level, facts)
        case Level.ENCRYPT:
            return _mandatory(level, facts, peer, authenticate=False)
        case Level.DANE | Level.DANE_ONLY:
            return _dane(level, facts, peer)
        case Level.VERIFY | Level.SECURE:
            return _mandatory(level, facts, peer, authenticate=True)
        case _:
            assert_never(level)


def _refused(level: Level, facts: SenderFacts, peer: str) -> Prediction:
    # smtp_proto.c: smtp_site_fail(), no plaintext retry, whatever the level. A 5xx there is
    # a hard error (the greeting's 5xx is already turned 4xx: smtp_skip_5xx_greeting).
    says = f"host {peer} refused to talk to me: {facts.reply}"
    hard = facts.dsn.startswith("5")
    return Prediction(level, Outcome.BOUNCE if hard else Outcome.DEFER, says, facts.dsn)


def _lost(level: Level, facts: SenderFacts, peer: str, outcome: Outcome) -> Prediction:
    # smtp_trouble.c, smtp_stream_except(): at `may` it marks the session for a plaintext
    # retry (RETRY_AS_PLAINTEXT) once the message has waited $minimal_backoff_time.
    says = f"lost connection with {peer} while performing the {facts.lost_at} handshake"
    return Prediction(level, outcome, says, "4.4.2")


def _after_handshake(level: Level, facts: SenderFacts, peer: str, ok: Prediction) -> Prediction:
    """What follows a good handshake: `ok`, unless the session fails inside TLS."""
    if facts.session is Session.TLS_REJECTED:
        return _refused(level, facts, peer)
    if facts.session is Session.TLS_LOST:
        return _lost(level, facts, peer, Outcome.DEFER)
    return ok


def _opportunistic(level: Level, facts: SenderFacts) -> Prediction:
    peer = f"{facts.host}[{facts.ip}]"
    if facts.session is Session.TLS_LOST:
        return _lost(level, facts, peer, Outcome.PLAINTEXT)
    if facts.session in (Session.TLS, Session.TLS_REJECTED):
        ok = Prediction(level, Outcome.DELIVER, "Untrusted TLS connection established")
        return _after_handshake(level, facts, peer, ok)
    # `may` retries in plaintext after a failed STARTTLS or handshake (postconf(5)).
    return Prediction(level, Outcome.PLAINTEXT, "delivered without TLS")


def _mandatory(level: Level, facts: SenderFacts, peer: str, *, authenticate: bool) -> Prediction:
    if facts.session is Session.NO_STARTTLS:
        return Prediction(
            level, Outcome.DEFER, f"TLS is required, but was not offered by host {peer}", "4.7.4"
        )
    if facts.session is Session.REFUSED:
        return Prediction(
            level,
            Outcome.DEFER,
            f"TLS is required, but host {peer} refused to start TLS: {facts.reply}",
            facts.dsn or "4.7.0",
        )
    failed = Prediction(level, Outcome.DEFER, "Cannot start TLS: handshake failure", "4.7.5")
    if facts.session is Session.HANDSHAKE_FAILED:
        return failed
    # The certificate is judged right after the handshake, before EHLO inside TLS.
    if not authenticate:
        ok = Prediction(level, Outcome.DELIVER, "Untrusted TLS connection established")
        return _after_handshake(level, facts, peer, ok)
    if facts.legacy_tls:
        return failed  # OpenSSL 3: "legacy sigalg disallowed or unsupported"
    if not facts.pkix_trusted:
        text = (
            "Server certificate not trusted"
            if level is Level.VERIFY
            else ("Server certificate not verified")
        )
        return Prediction(level, Outcome.DEFER, text, "4.7.5")
    matches = facts.mx_name_matches if level is Level.VERIFY else facts.nexthop_name_matches
    if not matches:
        return Prediction(level, Outcome.DEFER, "Server certificate not verified", "4.7.5")
    ok = Prediction(level, Outcome.DELIVER, "Verified TLS connection established")
    return _after_handshake(level, facts, peer, ok)


def _dane(level: Level, facts: SenderFacts, peer: str) -> Prediction:
    lookup = f"{facts.host}:{facts.port}"
    match facts.dane:
        case Dane.LOOKUP_ERROR:
            return Prediction(level, Outcome.DEFER, f"TLSA lookup error for {lookup}", "4.7.5")
        case Dane.NONE | Dane.INSECURE:
            if level is Level.DANE:
                return _opportunistic(level, facts)
            return Prediction(
                level, Outcome.DEFER, f"no validated TLSA records for {lookup} (dane-only)", "4.7.5"
            )
        case Dane.UNUSABLE:
            if level is Level.DANE:  # RFC 7672 §2.2: unauthenticated, but mandatory, TLS
                return _mandatory(level, facts, peer, authenticate=False)
            return Prediction(level, Outcome.DEFER, "TLSA records unusable", "4.7.5")
        case Dane.MATCH | Dane.MISMATCH:
            if facts.session not in (Session.TLS, Session.TLS_REJECTED, Session.TLS_LOST):
                return _mandatory(level, facts, peer, authenticate=False)
            if facts.legacy_tls:
                return Prediction(
                    level, Outcome.DEFER, "Cannot start TLS: handshake failure", "4.7.5"
                )
            if facts.dane is Dane.MISMATCH:
                return Prediction(level, Outcome.DEFER, "Server certificate not verified", "4.7.5")
            ok = Prediction(level, Outcome.DELIVER, "Verified TLS connection established")
            return _after_handshake(level, facts, peer, ok)
        case _:
            assert_never(facts.dane)


def predict_all(facts: SenderFacts, levels: tuple[Level, ...] = tuple(Level)) -> dict[str, Any]:
    """Every asked level's prediction, JSON-ready, keyed by level name."""
    return {level.value: predict(facts, level).to_json() for level in levels}
