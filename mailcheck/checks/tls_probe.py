"""The STARTTLS probe of one MX address: what a sending MTA would see, and a little more.

`probe_smtp` connects to one address, reads the greeting, says EHLO (HELO when EHLO is
refused, as Postfix does), and, when STARTTLS is advertised, upgrades to TLS with a permissive
client so that version, cipher and the whole certificate chain are always seen; then EHLO
again and QUIT. When STARTTLS is not advertised it sends STARTTLS anyway and then
`MAIL FROM:<>`, because some receivers (AT&T style) hide STARTTLS from blocklisted clients and
tell the reason only on the next command. It never sends RCPT or DATA.

The STARTTLS command carries a pipelined `RSET` in the same packet (the CVE-2011-0411 test).
A correct server throws it away (RFC 3207 §4.2); a vulnerable one answers it inside the TLS
session, so that our post-TLS EHLO gets the RSET's reply and our QUIT gets the EHLO's. This
costs no waiting. A server that refuses pipelined STARTTLS as a synchronisation error is
probed once more without it.

The judgement of what the session shows lives in tls_session.py; certificates are judged from
`SmtpProbe.tls.chain_der` elsewhere.
"""

from __future__ import annotations

import base64
import enum
import re
import ssl
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

from mailcheck.smtp import (
    FailureKind,
    Reply,
    SmtpConnection,
    SmtpFailure,
    TlsEstablished,
    TranscriptLine,
)

INJECTED = "RSET"
"""The command pipelined with STARTTLS: harmless, and answered with 250 by every server."""
_MASKED = re.compile(r"X{4,}[A-Z]?", re.I)
"""Cisco ESMTP inspection overwrites unknown keywords with X, e.g. STARTTLS -> XXXXXXXA."""
_ASTERISK_BANNER = re.compile(r"[\s*0-9]*\*{10,}[\s*0-9]*")
"""Cisco PIX/ASA SMTP fixup replaces the greeting text with asterisks."""
_SYNC_ERROR = re.compile(r"synchroni[sz]|pipelin|too soon|talk(ed|s)? too soon", re.I)


@dataclass(frozen=True)
class ProbeTimeouts:
    """Time limits per step, in seconds."""

    connect: float = 10.0
    """TCP connect."""
    greeting: float = 30.0
    """The 220 greeting (postscreen and tarpits delay it; Postfix waits up to 300 s)."""
    command: float = 20.0
    """The reply to each command."""
    handshake: float = 20.0
    """The TLS handshake."""
    quit: float = 5.0
    """The reply to QUIT (nothing depends on it)."""


class Step(enum.StrEnum):
    """The steps of the probe, in order."""

    CONNECT = "connect"
    GREETING = "greeting"
    EHLO = "ehlo"
    HELO = "helo"
    STARTTLS = "starttls"
    HANDSHAKE = "handshake"
    POST_TLS_EHLO = "post-tls-ehlo"
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


@dataclass(frozen=True)
class Stopped:
    """Where and why the session ended before its normal end."""

    step: Step
    """The step that did not complete."""
    failure: SmtpFailure
    """What happened (timeout after how long, closed, malformed reply)."""


@dataclass(frozen=True)
class SmtpProbe:
    """Everything one SMTP session with one MX address showed."""

    host: str
    """The MX host name (sent as SNI)."""
    ip: str
    """The address probed."""
    port: int
    """The port probed (25 for MX)."""
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
    post_tls_error: SmtpFailure | None = None
    """The connection broke (closed, timeout) at the EHLO inside TLS."""
    starttls_anyway: Reply | None = None
    """The reply to STARTTLS sent although it was not advertised."""
    mail_from: Reply | None = None
    """The reply to `MAIL FROM:<>` after an unadvertised STARTTLS was refused."""
    stopped: Stopped | None = None
    """Where the session ended early, and why; None when it ran to QUIT."""
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
            "post_tls_error": _failure(self.post_tls_error),
            "injection": self.injection,
            "starttls_anyway_reply": _text(self.starttls_anyway),
            "mail_from_reply": _text(self.mail_from),
            "stopped": (
                {"step": self.stopped.step.value, **self.stopped.failure.to_json()}
                if self.stopped
                else None
            ),
            "elapsed_ms": self.elapsed_ms,
            "cause": cause,
            "transcript": [t.to_json() for t in self.transcript],
        }

    def chain_base64(self) -> list[str]:
        """The DER chain as base64 strings, for callers that want it in their JSON."""
        return [base64.b64encode(d).decode() for d in (self.tls.chain_der if self.tls else ())]


def permissive_context() -> ssl.SSLContext:
    """A client context that completes a handshake with anything, so that we see everything.

    No verification, TLS 1.0 and up, every cipher at security level 0: judging happens later,
    from what was seen. (TLSVersion.TLSv1 warns as deprecated on 3.11; we mean it.)
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


async def probe_smtp(
    host: str, ip: str, port: int, *, helo: str, timeouts: ProbeTimeouts
) -> SmtpProbe:
    """Probe STARTTLS on one address (one connection at a time; two only when pipelined
    STARTTLS was refused as a synchronisation error)."""
    probe = await _Session(host, ip, port, helo, timeouts, inject=True).run()
    if probe.pipelining_refused is not None:
        note = f"probed again without pipelining: STARTTLS + {INJECTED} was refused"
        again = await _Session(host, ip, port, helo, timeouts, inject=False, note=note).run()
        return replace(again, pipelining_refused=probe.pipelining_refused)
    return probe


class _Session:
    """One connection's conversation; builds the SmtpProbe step by step."""

    def __init__(
        self,
        host: str,
        ip: str,
        port: int,
        helo: str,
        timeouts: ProbeTimeouts,
        inject: bool,
        note: str = "",
    ) -> None:
        self.helo_name = helo
        self.timeouts = timeouts
        self.inject = inject
        self.note = note
        self.p = SmtpProbe(host, ip, port)
        self.started = time.monotonic()

    async def run(self) -> SmtpProbe:
        opened = await SmtpConnection.open(
            self.p.ip, self.p.port, self.timeouts.connect, self.started
        )
        if isinstance(opened, SmtpFailure):
            return replace(
                self.p,
                connect_error=opened,
                stopped=Stopped(Step.CONNECT, opened),
                elapsed_ms=opened.waited_ms,
            )
        conn = opened
        if self.note:
            conn.note(self.note)
        self.p = replace(self.p, connected=True)
        try:
            await self._converse(conn)
        finally:
            conn.close()
        return replace(self.p, elapsed_ms=conn.elapsed_ms(), transcript=conn.transcript)

    async def _converse(self, conn: SmtpConnection) -> None:
        greeting = await conn.read_reply(self.timeouts.greeting)
        if isinstance(greeting, SmtpFailure):
            self.p = replace(self.p, stopped=Stopped(Step.GREETING, greeting))
            return
        masked = bool(_ASTERISK_BANNER.fullmatch(" ".join(greeting.lines)))
        self.p = replace(
            self.p, greeting=greeting, greeting_ms=conn.elapsed_ms(), masked_banner=masked
        )
        if not greeting.positive:
            # RFC 5321 §3.1: after a 554 greeting the server waits for QUIT; §3.8: after a
            # 421 it closes the channel.
            if greeting.code != 421:
                await self._quit(conn)
            return
        if not await self._hello(conn):
            return
        if self.p.starttls_offered:
            await self._starttls(conn)
        else:
            await self._hidden_reason(conn)

    async def _hello(self, conn: SmtpConnection) -> bool:
        ehlo = await self._command(conn, Step.EHLO, f"EHLO {self.helo_name}")
        if ehlo is None:
            return False
        self.p = replace(self.p, ehlo=ehlo)
        if ehlo.positive:
            keywords = _keywords(ehlo)
            self.p = replace(
                self.p,
                keywords=keywords,
                masked_keywords=tuple(k for k in keywords if _MASKED.fullmatch(k)),
                starttls_offered="STARTTLS" in keywords,
            )
            return True
        if ehlo.code == 421:  # RFC 5321 §3.8: the server is closing the channel
            return False
        # Postfix smtp(8) falls back to HELO on any other non-2xx EHLO reply; HELO has no
        # extensions, so no STARTTLS: "TLS is required, but was not offered by host".
        helo = await self._command(conn, Step.HELO, f"HELO {self.helo_name}")
        if helo is None:
            return False
        self.p = replace(self.p, helo=helo)
        return helo.code != 421

    async def _starttls(self, conn: SmtpConnection) -> None:
        lines = ("STARTTLS", INJECTED) if self.inject else ("STARTTLS",)
        failure = conn.send(*lines)
        reply = failure or await conn.read_reply(self.timeouts.command)
        if isinstance(reply, SmtpFailure):
            self.p = replace(self.p, stopped=Stopped(Step.STARTTLS, reply))
            return
        self.p = replace(self.p, starttls=reply)
        if reply.code != 220:
            if self.inject:
                # The pipelined RSET gets its own reply in plaintext; read it to stay in step.
                await conn.read_reply(self.timeouts.command)
                if _SYNC_ERROR.search(reply.text):
                    self.p = replace(self.p, pipelining_refused=reply)
                    return
            await self._quit(conn)
            return
        if not await self._handshake(conn):
            return
        await self._after_tls(conn, tested=self.inject)

    async def _hidden_reason(self, conn: SmtpConnection) -> None:
        anyway = await self._command(conn, Step.STARTTLS_ANYWAY, "STARTTLS")
        if anyway is None:
            return
        self.p = replace(self.p, starttls_anyway=anyway)
        if anyway.code == 220:
            if await self._handshake(conn):
                await self._after_tls(conn, tested=False)
            return
        mail = await self._command(conn, Step.MAIL_FROM, "MAIL FROM:<>")
        if mail is None:
            return
        self.p = replace(self.p, mail_from=mail)
        await self._quit(conn)

    async def _handshake(self, conn: SmtpConnection) -> bool:
        # RFC 3207 §4.2: anything the server sent after its 220 is not part of TLS; throw away.
        early = conn.take_buffered()
        if early:
            conn.note(f"discarded {len(early)} octets received after 220: {early[:80]!r}")
        result = await conn.start_tls(permissive_context(), self.p.host, self.timeouts.handshake)
        discarded = early.decode("utf-8", errors="replace")
        if isinstance(result, SmtpFailure):
            tls = TlsResult(
                None, None, None, (), result.waited_ms, result.detail,
                _handshake_kind(result), discarded,
            )  # fmt: skip
            self.p = replace(self.p, tls=tls, stopped=Stopped(Step.HANDSHAKE, result))
            return False
        self.p = replace(self.p, tls=_tls_result(result, discarded))
        return True

    async def _after_tls(self, conn: SmtpConnection, tested: bool) -> None:
        first = await conn.command(f"EHLO {self.helo_name}", self.timeouts.command)
        if isinstance(first, SmtpFailure):
            self.p = replace(
                self.p, post_tls_error=first, stopped=Stopped(Step.POST_TLS_EHLO, first)
            )
            return
        second = await conn.command("QUIT", self.timeouts.quit)
        # A correct server answers QUIT with 221. One that executed the RSET we pipelined
        # before the handshake answered it first, so our QUIT reads the EHLO's reply.
        injected = (
            tested
            and isinstance(second, Reply)
            and second.code != 221
            and first.code == 250
            and len(first.lines) == 1
        )
        ehlo = second if injected and isinstance(second, Reply) else first
        self.p = replace(
            self.p,
            post_tls_ehlo=ehlo,
            post_tls_keywords=_keywords(ehlo) if ehlo.positive else (),
            injection=injected if tested else None,
            injection_reply=first if injected else None,
        )

    async def _command(self, conn: SmtpConnection, step: Step, line: str) -> Reply | None:
        reply = await conn.command(line, self.timeouts.command)
        if isinstance(reply, SmtpFailure):
            self.p = replace(self.p, stopped=Stopped(step, reply))
            return None
        return reply

    async def _quit(self, conn: SmtpConnection) -> None:
        await conn.command("QUIT", self.timeouts.quit)  # the outcome changes nothing


def _keywords(reply: Reply) -> tuple[str, ...]:
    # RFC 5321 §4.1.1.1: the first line greets, each further line is `keyword [params]`.
    return tuple(line.split(" ", 1)[0].upper() for line in reply.lines[1:] if line.strip())


def _tls_result(established: TlsEstablished, discarded: str) -> TlsResult:
    return TlsResult(
        version=established.version,
        cipher=established.cipher,
        bits=established.bits,
        chain_der=established.chain_der,
        handshake_ms=established.handshake_ms,
        error=None,
        error_kind=None,
        discarded=discarded,
    )


def _handshake_kind(failure: SmtpFailure) -> HandshakeError:
    reason = failure.reason.upper()
    if failure.kind is FailureKind.TIMEOUT:
        return HandshakeError.TIMEOUT
    if failure.kind is FailureKind.CLOSED or "EOF" in reason or "SSLEOFERROR" in reason:
        return HandshakeError.CLOSED
    if "ALERT" in reason:
        return HandshakeError.ALERT
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG") or (
        "RECORD_LAYER" in reason
    ):
        return HandshakeError.PLAINTEXT
    return HandshakeError.OTHER


def _text(reply: Reply | None) -> str | None:
    return reply.text if reply is not None else None


def _failure(failure: SmtpFailure | None) -> dict[str, Any] | None:
    return failure.to_json() if failure is not None else None
