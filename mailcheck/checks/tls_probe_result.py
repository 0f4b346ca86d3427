"""What one STARTTLS probe of an MX address saw: frozen facts, no I/O and no judgement.

tls_probe.py gathers an `SmtpProbe` over the wire; tls_session.py judges it; tls_report.py
puts it into the JSON report with `SmtpProbe.to_json`. The probe's steps, the classes of
handshake failure and where a session stopped are enums and small dataclasses here, so that
judging code and tests can build probes from plain data.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import Any

from mailcheck.smtp import Reply, SmtpFailure, TlsEstablished, TranscriptLine


class Step(enum.StrEnum):
    """The steps of the probe, in order."""

    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    HELO = "helo"
    STARTTLS = "starttls"
    HANDSHAKE = "handshake"
    POST_TLS_EHLO = "post-tls-ehlo"
    POST_TLS_HELO = "post-tls-helo"
    STARTTLS_ANYWAY = "starttls-anyway"
    MAIL_FROM = "mail-from"


class HandshakeError(enum.StrEnum):
    """How a TLS handshake after `220` failed."""

    CLOSED = "closed"
    """The server closed or reset the connection."""
    PLAINTEXT = "plaintext"
    """The server answered in plaintext (OpenSSL: wrong version number)."""
    ALERT = "alert"
    """The server sent a TLS alert (e.g. handshake failure, protocol version)."""
    TIMEOUT = "timeout"
    """The handshake did not finish in time."""
    OTHER = "other"
    """Any other TLS error."""


@dataclass(frozen=True)
class TlsResult:
    """The TLS handshake after a `220` to STARTTLS."""

    version: str | None
    """The negotiated protocol (`TLSv1.3`...), None when the handshake failed."""
    cipher: str | None
    """The negotiated cipher suite."""
    bits: int | None
    """The cipher's secret bits."""
    chain_der: tuple[bytes, ...]
    """The certificates the server sent, DER, leaf first."""
    handshake_ms: int
    """How long the handshake took (or ran until it failed)."""
    error: str | None
    """OpenSSL's or the network's error text when the handshake failed."""
    error_kind: HandshakeError | None
    """The class of that error."""
    discarded: str
    """Plaintext that arrived after the 220 and was discarded (RFC 3207 §4.2); usually empty."""

    @property
    def ok(self) -> bool:
        """The handshake succeeded."""
        return self.error is None

    @classmethod
    def established(cls, tls: TlsEstablished, discarded: str) -> TlsResult:
        """A successful handshake, from what the SMTP layer saw."""
        return cls(
            tls.version,
            tls.cipher,
            tls.bits,
            tls.chain_der,
            tls.handshake_ms,
            None,
            None,
            discarded,
        )


@dataclass(frozen=True)
class Stopped:
    """Where and why the session ended before its normal end."""

    step: Step
    """The step that did not complete."""
    failure: SmtpFailure
    """What happened (timeout after how long, closed, malformed reply)."""
    deadline: bool = False
    """The whole-probe time limit ran out here (a TIMEOUT), not the step's own limit."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: the step, the failure's members, and `deadline`."""
        return {"step": self.step.value, **self.failure.to_json(), "deadline": self.deadline}


@dataclass(frozen=True)
class SmtpProbe:
    """Everything one SMTP session with one MX address showed."""

    host: str
    """The MX host name."""
    ip: str
    """The address probed."""
    port: int
    """The port probed (25 for MX)."""
    sni: str | None = None
    """The name sent as SNI in the handshake: the MX host, or the TLSA base domain of an
    aliased one (RFC 7672 §8.1); None when no name was sent (not a valid host name)."""
    connected: bool = False
    """True when the TCP connection was established."""
    connect_error: SmtpFailure | None = None
    """Why it was not (refused, timeout, unreachable, with the errno text)."""
    greeting: Reply | None = None
    """The server's greeting."""
    greeting_ms: int | None = None
    """Milliseconds from connect to the complete greeting."""
    masked_banner: bool = False
    """The greeting text is asterisks (Cisco SMTP fixup)."""
    ehlo: Reply | None = None
    """The reply to EHLO."""
    helo: Reply | None = None
    """The reply to HELO, sent when EHLO was refused (None otherwise)."""
    keywords: tuple[str, ...] = ()
    """The EHLO keywords, upper case, in order (e.g. PIPELINING, SIZE, STARTTLS)."""
    masked_keywords: tuple[str, ...] = ()
    """Keywords overwritten with X by a firewall (e.g. XXXXXXXA)."""
    starttls_offered: bool = False
    """STARTTLS is among the EHLO keywords."""
    starttls: Reply | None = None
    """The reply to the advertised STARTTLS."""
    injection: bool | None = None
    """The server answered a command pipelined with STARTTLS inside TLS; None: not tested."""
    injection_reply: Reply | None = None
    """That unsolicited reply, as evidence."""
    pipelining_refused: Reply | None = None
    """The server's refusal of pipelined STARTTLS, which made us probe again without it."""
    tls: TlsResult | None = None
    """The TLS handshake, when STARTTLS was answered 220 (advertised or not)."""
    post_tls_ehlo: Reply | None = None
    """The reply to EHLO inside TLS."""
    post_tls_keywords: tuple[str, ...] = ()
    """The EHLO keywords inside TLS."""
    post_tls_helo: Reply | None = None
    """The reply to HELO inside TLS, sent when EHLO there got a non-2xx reply other than 421
    (as Postfix does)."""
    post_tls_error: SmtpFailure | None = None
    """The connection broke (closed, timeout) at the EHLO (or HELO) inside TLS."""
    starttls_anyway: Reply | None = None
    """The reply to STARTTLS sent although it was not advertised."""
    mail_from: Reply | None = None
    """The reply to `MAIL FROM:<>` after an unadvertised STARTTLS was refused."""
    stopped: Stopped | None = None
    """Where the session ended early, and why; None when it ran to QUIT."""
    reprobe: str | None = None
    """Why these facts come from a second session, made without the `RSET` pipelined with
    STARTTLS (pipelining refused, or the first session failed in or after the handshake);
    None when they come from the first and only session."""
    elapsed_ms: int = 0
    """The whole session, connect to close."""
    transcript: tuple[TranscriptLine, ...] = ()
    """Every line in both directions, and events, with milliseconds since connect."""

    def to_json(self, cause: str | None = None) -> dict[str, Any]:
        """JSON-ready form; `cause` is tls_session.starttls_cause(probe). DER is left out."""
        tls = self.tls
        return {
            "host": self.host,
            "ip": self.ip,
            "port": self.port,
            "sni": self.sni,
            "connected": self.connected,
            "connect_error": _failure(self.connect_error),
            "banner": _text(self.greeting),
            "greeting_ms": self.greeting_ms,
            "ehlo": list(self.keywords),
            "ehlo_reply": _text(self.ehlo),
            "helo_reply": _text(self.helo),
            "masked_keywords": list(self.masked_keywords),
            "starttls_offered": self.starttls_offered,
            "starttls_reply": _text(self.starttls),
            "tls_version": tls.version if tls else None,
            "cipher": tls.cipher if tls else None,
            "cipher_bits": tls.bits if tls else None,
            "handshake_ms": tls.handshake_ms if tls else None,
            "handshake_error": tls.error if tls else None,
            "chain_length": len(tls.chain_der) if tls else 0,
            "post_tls_ehlo": list(self.post_tls_keywords) if self.post_tls_ehlo else None,
            "post_tls_reply": _text(self.post_tls_ehlo),
            "post_tls_helo_reply": _text(self.post_tls_helo),
            "post_tls_error": _failure(self.post_tls_error),
            "injection": self.injection,
            "starttls_anyway_reply": _text(self.starttls_anyway),
            "mail_from_reply": _text(self.mail_from),
            "stopped": self.stopped.to_json() if self.stopped else None,
            "reprobe": self.reprobe,
            "elapsed_ms": self.elapsed_ms,
            "cause": cause,
            "transcript": [t.to_json() for t in self.transcript],
        }

    def chain_base64(self) -> list[str]:
        """The DER chain as base64 strings, for callers that want it in their JSON."""
        return [base64.b64encode(d).decode() for d in (self.tls.chain_der if self.tls else ())]


def _text(reply: Reply | None) -> str | None:
    return reply.text if reply is not None else None


def _failure(failure: SmtpFailure | None) -> dict[str, Any] | None:
    return failure.to_json() if failure is not None else None
