"""What a Postfix sender at each `smtp_tls_security_level` does with one MX address — pure.

The answer to "why did my mail to X bounce?": the same server facts give different outcomes
per level (postconf(5), RFC 7672 §2.2), and Postfix logs them in its own words (the texts
below are Postfix 3.7's, captured from smtp(8) in the research lab; ../shared/research/tls.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, assert_never


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
    """The greeting was a 4xx/5xx: no sender gets to TLS."""
    UNKNOWN = "unknown"
    """Could not be probed from here (refused, filtered, timed out, --no-smtp)."""


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
    """The server's words where the session stopped (greeting or STARTTLS reply)."""
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


def predict(facts: SenderFacts, level: Level) -> Prediction:
    """The outcome at `level` for the address in `facts`."""
    peer = f"{facts.host}[{facts.ip}]"
    if facts.session is Session.UNKNOWN:
        return Prediction(level, Outcome.UNKNOWN, "not probed: the outcome depends on the session")
    if facts.session is Session.REJECTED:
        return Prediction(
            level, Outcome.DEFER, f"host {peer} refused to talk to me: {facts.reply}", "4.7.1"
        )
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


def _opportunistic(level: Level, facts: SenderFacts) -> Prediction:
    if facts.session is Session.TLS:
        return Prediction(level, Outcome.DELIVER, "Untrusted TLS connection established")
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
            "4.7.0",
        )
    failed = Prediction(level, Outcome.DEFER, "Cannot start TLS: handshake failure", "4.7.5")
    if facts.session is Session.HANDSHAKE_FAILED:
        return failed
    if not authenticate:
        return Prediction(level, Outcome.DELIVER, "Untrusted TLS connection established")
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
    return Prediction(level, Outcome.DELIVER, "Verified TLS connection established")


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
            mandatory = _mandatory(level, facts, peer, authenticate=False)
            if mandatory.outcome is not Outcome.DELIVER:
                return mandatory
            if facts.legacy_tls:
                return Prediction(
                    level, Outcome.DEFER, "Cannot start TLS: handshake failure", "4.7.5"
                )
            if facts.dane is Dane.MISMATCH:
                return Prediction(level, Outcome.DEFER, "Server certificate not verified", "4.7.5")
            return Prediction(level, Outcome.DELIVER, "Verified TLS connection established")
        case _:
            assert_never(facts.dane)


def predict_all(facts: SenderFacts, levels: tuple[Level, ...] = tuple(Level)) -> dict[str, Any]:
    """Every asked level's prediction, JSON-ready, keyed by level name."""
    return {level.value: predict(facts, level).to_json() for level in levels}
