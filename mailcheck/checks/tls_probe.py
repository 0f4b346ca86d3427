"""The STARTTLS probe of one MX address: what a sending MTA would see, and a little more.

`probe_smtp` connects to one address, reads the greeting, says EHLO (HELO when EHLO is
refused, as Postfix does), and, when STARTTLS is advertised, upgrades to TLS with a permissive
client so that version, cipher and the whole certificate chain are always seen; then EHLO
again (HELO when that is refused, as Postfix does inside TLS too) and QUIT. SNI is the MX
host name, or the name the caller gives (the TLSA base domain of an aliased MX host, RFC 7672
§8.1), and none at all when it is not a valid host name. When STARTTLS is not advertised it
sends STARTTLS anyway and then `MAIL FROM:<>`, because some receivers (AT&T style) hide
STARTTLS from blocklisted clients and tell the reason only on the next command. It never
sends RCPT or DATA.

The STARTTLS command carries a pipelined `RSET` in the same packet (the CVE-2011-0411 test).
A correct server throws it away (RFC 3207 §4.2); a vulnerable one answers it inside the TLS
session, so that our post-TLS EHLO gets the RSET's reply and our QUIT gets the EHLO's. This
costs no waiting. A server that refuses pipelined STARTTLS as a synchronisation error is
probed once more without it, and so is one whose session with it ends in a failed handshake
or a failure inside TLS: our test must never be the cause of what is reported. `reprobe`
says when the facts come from that second session.

Every step has its own time limit (`ProbeTimeouts`), and the whole probe may have one more
(`deadline`): a tarpit that answers each step just in time would otherwise hold one address for
six or more step limits. When the deadline runs out, the probe stops where it is and reports
that step as stopped, keeping everything seen before.

The facts it returns (`SmtpProbe` and its parts, in tls_probe_result.py, importable from here)
are judged in tls_session.py; certificates from `SmtpProbe.tls.chain_der` elsewhere.
"""

from __future__ import annotations

import re
import ssl
import time
import warnings
from dataclasses import dataclass, replace

from mailcheck.checks.tls_probe_result import (
    HandshakeError,
    SmtpProbe,
    Step,
    Stopped,
    TlsResult,
)
from mailcheck.smtp import (
    FailureKind,
    Reply,
    SmtpConnection,
    SmtpFailure,
    TranscriptLine,
    printable,
    sni_name,
)

__all__ = [
    "INJECTED",
    "HandshakeError",
    "ProbeTimeouts",
    "SmtpProbe",
    "Step",
    "Stopped",
    "TlsResult",
    "asterisk_banner",
    "permissive_context",
    "probe_smtp",
]

INJECTED = "RSET"
"""The command pipelined with STARTTLS: harmless, and answered with 250 by every server."""
_MASKED = re.compile(r"X{4,}[A-Z]?", re.I)
"""Cisco ESMTP inspection overwrites unknown keywords with X, e.g. STARTTLS -> XXXXXXXA."""
_BANNER_FIXUP = frozenset("0123456789* \t")
"""What a greeting masked by Cisco PIX/ASA SMTP fixup holds (Postfix: strspn "20 *\\t\\n")."""
_SYNC_ERROR = re.compile(r"synchroni[sz]|pipelin|too soon|talk(ed|s)? too soon", re.I)
# Both run on server text: alternatives of fixed words and one repeat with a fixed tail, so
# each takes time linear in the text (no nested or adjacent overlapping repeats).
_SLACK = 0.005
"""A step that timed out this close to the deadline (seconds) ran into the deadline."""
_NO_TIME_LEFT = SmtpFailure(FailureKind.TIMEOUT, "no time left", 0)


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


def asterisk_banner(text: str) -> bool:
    """The greeting text is what Cisco PIX/ASA SMTP fixup leaves: asterisks (ten or more in a
    row), digits and blanks only. Linear in the text, whatever a server sends."""
    return "*" * 10 in text and _BANNER_FIXUP.issuperset(text)


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


@dataclass(frozen=True)
class _Deadline:
    """The whole probe's time limit, shared by its sessions."""

    seconds: float
    """The limit as given."""
    end: float
    """`time.monotonic()` when it runs out."""

    def left(self) -> float:
        return self.end - time.monotonic()

    def failure(self, waited_ms: int) -> SmtpFailure:
        detail = f"the whole-probe limit of {self.seconds:g} s was reached"
        return SmtpFailure(FailureKind.TIMEOUT, detail, waited_ms)


async def probe_smtp(
    host: str,
    ip: str,
    port: int,
    *,
    helo: str,
    timeouts: ProbeTimeouts,
    deadline: float | None = None,
    sni: str | None = None,
) -> SmtpProbe:
    """Probe STARTTLS on one address (one connection at a time; a second one only when the
    first, with `RSET` pipelined after STARTTLS, was refused or failed in or after the TLS
    handshake).

    `sni` is the name for SNI (default `host`; sent only when it is a valid host name).
    `deadline` bounds the whole probe, in seconds (None: only the step limits). When it runs
    out the probe stops at the step it is in, with `stopped.deadline` set and a TIMEOUT failure
    that says so; what was seen before is kept, transcript included.
    """
    limit = None if deadline is None else _Deadline(deadline, time.monotonic() + deadline)
    name = host if sni is None else sni
    probe = await _Session(host, name, ip, port, helo, timeouts, limit, inject=True).run()
    why = _why_again(probe)
    if why is None:
        return probe
    refused = probe.pipelining_refused
    if limit is not None and limit.left() <= 0:
        failure = limit.failure(0)
        said = TranscriptLine(probe.elapsed_ms, "*", f"{failure.detail}: not probed again")
        if refused is None:  # the first session's facts stand, and say they may be ours
            note = f"{why}; no time left to probe again: this session's facts stand"
            return replace(probe, reprobe=note, transcript=(*probe.transcript, said))
        # No time for the second session: keep what the first one saw, stopped at STARTTLS.
        stopped = Stopped(Step.STARTTLS, failure, deadline=True)
        return replace(probe, stopped=stopped, transcript=(*probe.transcript, said))
    note = f"probed again without pipelining: {why}"
    second = _Session(host, name, ip, port, helo, timeouts, limit, inject=False, note=note)
    again = await second.run()
    if refused is None and again.stopped is not None and again.stopped.deadline:
        # The second session ran out of time: what the first one saw is all there is.
        note = f"{why}; probed again without it, but the whole-probe limit ran out there"
        return replace(probe, reprobe=note)
    return replace(again, pipelining_refused=refused, reprobe=note)


def _why_again(p: SmtpProbe) -> str | None:
    """Why the session with the pipelined RSET cannot be the verdict; None when it can."""
    if p.pipelining_refused is not None:
        return f"STARTTLS + {INJECTED} was refused"
    if not p.starttls_offered or (p.stopped is not None and p.stopped.deadline):
        return None  # no RSET was pipelined (STARTTLS sent anyway), or no time is left
    ended = ""
    ehlo = p.post_tls_ehlo
    if p.tls is not None and not p.tls.ok:
        ended = f"a failed TLS handshake ({p.tls.error})"
    elif p.post_tls_error is not None:
        ended = f"a failure inside TLS ({p.post_tls_error.detail})"
    elif ehlo is not None and not ehlo.positive:
        ended = f"'{ehlo.text}' to EHLO inside TLS"
    if not ended or p.injection:
        return None  # a vulnerable server's answer to our RSET is the finding itself
    return f"the session with STARTTLS + {INJECTED} ended in {ended}"


class _Session:
    """One connection's conversation; builds the SmtpProbe step by step."""

    def __init__(
        self,
        host: str,
        sni: str,
        ip: str,
        port: int,
        helo: str,
        timeouts: ProbeTimeouts,
        deadline: _Deadline | None,
        inject: bool,
        note: str = "",
    ) -> None:
        self.helo_name = helo
        self.timeouts = timeouts
        self.deadline = deadline
        self.inject = inject
        self.note = note
        self.p = SmtpProbe(host, ip, port, sni=sni_name(sni))
        self.started = time.monotonic()

    async def run(self) -> SmtpProbe:
        limit = self._limit(self.timeouts.connect)
        opened = (
            await SmtpConnection.open(self.p.ip, self.p.port, limit, self.started)
            if limit > 0
            else _NO_TIME_LEFT
        )
        if isinstance(opened, SmtpFailure):
            failure = self._stop(None, Step.CONNECT, opened)
            return replace(self.p, connect_error=failure, elapsed_ms=failure.waited_ms)
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
        greeting = await conn.read_reply(self._limit(self.timeouts.greeting))
        if isinstance(greeting, SmtpFailure):
            self._stop(conn, Step.GREETING, greeting)
            return
        masked = asterisk_banner(" ".join(greeting.lines))
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
        if self._expired(conn, Step.STARTTLS):
            return
        lines = ("STARTTLS", INJECTED) if self.inject else ("STARTTLS",)
        failure = conn.send(*lines)
        reply = failure or await conn.read_reply(self._limit(self.timeouts.command))
        if isinstance(reply, SmtpFailure):
            self._stop(conn, Step.STARTTLS, reply)
            return
        self.p = replace(self.p, starttls=reply)
        if reply.code != 220:
            if self.inject:
                # The pipelined RSET gets its own reply in plaintext; read it to stay in step.
                await conn.read_reply(self._limit(self.timeouts.command))
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
        if self._expired(conn, Step.HANDSHAKE):
            return False
        context = permissive_context()
        result = await conn.start_tls(context, self.p.sni, self._limit(self.timeouts.handshake))
        discarded = printable(early.decode("utf-8", errors="replace"))
        if isinstance(result, SmtpFailure):
            result = self._stop(conn, Step.HANDSHAKE, result)
            tls = TlsResult(
                None, None, None, (), result.waited_ms, result.detail,
                _handshake_kind(result), discarded,
            )  # fmt: skip
            self.p = replace(self.p, tls=tls)
            return False
        self.p = replace(self.p, tls=TlsResult.established(result, discarded))
        return True

    async def _after_tls(self, conn: SmtpConnection, tested: bool) -> None:
        if self._expired(conn, Step.POST_TLS_EHLO):
            return
        first = await conn.command(f"EHLO {self.helo_name}", self._limit(self.timeouts.command))
        if isinstance(first, SmtpFailure):
            failure = self._stop(conn, Step.POST_TLS_EHLO, first)
            self.p = replace(self.p, post_tls_error=failure)
            return
        if first.code == 421:  # RFC 5321 §3.8: the server is closing the channel, no QUIT
            self.p = replace(self.p, post_tls_ehlo=first, injection=None)
            return
        if not first.positive:
            # Postfix smtp(8) says HELO inside TLS too when EHLO there is refused (smtp_helo).
            await self._helo_inside_tls(conn, first)
            return
        second = await conn.command("QUIT", self._limit(self.timeouts.quit))
        # A correct server answers QUIT with 221. One that executed the RSET we pipelined
        # before the handshake answered it first, so our QUIT reads the EHLO's reply. No reply
        # because the deadline ran out answers nothing.
        tested = tested and (isinstance(second, Reply) or not self._out_of_time())
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

    async def _helo_inside_tls(self, conn: SmtpConnection, ehlo: Reply) -> None:
        self.p = replace(self.p, post_tls_ehlo=ehlo)
        if self._expired(conn, Step.POST_TLS_HELO):
            return
        helo = await conn.command(f"HELO {self.helo_name}", self._limit(self.timeouts.command))
        if isinstance(helo, SmtpFailure):
            failure = self._stop(conn, Step.POST_TLS_HELO, helo)
            self.p = replace(self.p, post_tls_error=failure)
            return
        self.p = replace(self.p, post_tls_helo=helo)
        if helo.code != 421:
            await self._quit(conn)

    async def _command(self, conn: SmtpConnection, step: Step, line: str) -> Reply | None:
        if self._expired(conn, step):
            return None
        reply = await conn.command(line, self._limit(self.timeouts.command))
        if isinstance(reply, SmtpFailure):
            self._stop(conn, step, reply)
            return None
        return reply

    async def _quit(self, conn: SmtpConnection) -> None:
        limit = self._limit(self.timeouts.quit)
        if limit > 0:  # past the deadline, just close
            await conn.command("QUIT", limit)  # the outcome changes nothing

    def _limit(self, step_seconds: float) -> float:
        """A step's own time limit, cut to what is left of the whole probe (never below 0)."""
        if self.deadline is None:
            return step_seconds
        return max(0.0, min(step_seconds, self.deadline.left()))

    def _out_of_time(self) -> bool:
        return self.deadline is not None and self.deadline.left() <= _SLACK

    def _expired(self, conn: SmtpConnection, step: Step) -> bool:
        """Stop at `step` before it starts when the whole probe's time is used up."""
        if not self._out_of_time():
            return False
        self._stop(conn, step, _NO_TIME_LEFT)
        return True

    def _stop(self, conn: SmtpConnection | None, step: Step, failure: SmtpFailure) -> SmtpFailure:
        """Record where the session ended, and how; a timeout that ran into the deadline is
        reported as the deadline's."""
        ran_out = failure.kind is FailureKind.TIMEOUT and self._out_of_time()
        if ran_out and self.deadline is not None:
            failure = self.deadline.failure(failure.waited_ms)
            if conn is not None:
                conn.note(f"{failure.detail} at step {step.value}: the probe stops here")
        self.p = replace(self.p, stopped=Stopped(step, failure, deadline=ran_out))
        return failure


def _keywords(reply: Reply) -> tuple[str, ...]:
    # RFC 5321 §4.1.1.1: the first line greets, each further line is `keyword [params]`.
    return tuple(line.split(" ", 1)[0].upper() for line in reply.lines[1:] if line.strip())


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
