"""The one async SMTP layer: a connection to an IP address, whole replies, STARTTLS in place.

Like dns.py for DNS, every SMTP conversation of a run goes through this module. It connects to
an address (never a name: names are resolved by the DNS layer), reads whole multi-line
replies with bounded line length and line count (RFC 5321 §4.2), sends commands (several at
once when a probe pipelines on purpose), upgrades the connection to TLS in place, and keeps a
transcript of every line in both directions with milliseconds since connect. Every wait has
its own timeout. Outcomes are values: a timeout, a closed connection or a malformed reply is
an `SmtpFailure`, never an exception for the caller to catch.

Whatever a server sends is kept as text people can safely read: control characters (C0, DEL,
C1) in reply lines are written as `\\xNN` when the line is read, so that an escape sequence in
a greeting never reaches a terminal through --transcript or a quoted reply.

The connection is a plain asyncio Protocol rather than streams, because STARTTLS needs to see
(and throw away) plaintext that arrived after the server's 220 (RFC 3207 §4.2), which a
StreamReader keeps hidden in its buffer.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import ipaddress
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from mailcheck.text import escape_controls

LINE_LIMIT = 2048
"""RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; be generous, but bounded."""
MAX_LINES = 100
"""The most lines one reply may have (a real EHLO reply has about a dozen)."""
MAX_BUFFER = 256 * 1024
"""Stop reading from a server that floods us beyond this (more than any legal reply)."""

_REPLY_LINE = re.compile(r"([0-9]{3})([ -]?)(.*)", re.S)
_LDH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_SSL_LOCATION = "(_ssl.c:"
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
"""Linux's TCP_QUICKACK (None elsewhere): acknowledge at once rather than after up to 40 ms.

After a TLS 1.3 handshake the server sends its session tickets and then, a moment later, the
reply to our EHLO; with Nagle on (Postfix) that reply waits until the tickets are ACKed, and
our kernel, taking the conversation for interactive, delays that ACK. The tickets never reach
the protocol (SSLProtocol consumes them), so the socket is told before they arrive: after the
handshake and after each write. The flag is not sticky (the kernel re-enters delayed-ACK mode
on its own), hence every time."""


def printable(text: str) -> str:
    """`text` with control characters written as `\\xNN` (tab kept): safe on a terminal."""
    return escape_controls(text)


def sni_name(name: str | None) -> str | None:
    """The name to send as SNI, or None: only a host name of letters, digits and hyphens.

    RFC 6066 §3: a DNS host name, no trailing dot, never an address literal. RFC 1035 §2.3.4:
    labels of at most 63 octets, at most 253 in all. An MX target may hold any octets (a
    binary label prints as `\\255...`), which OpenSSL's IDNA encoding refuses: no SNI then.
    """
    host = (name or "").removesuffix(".")
    if not host or len(host) > 253:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    for label in host.split("."):
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return None
        if not _LDH.issuperset(label):
            return None
    return host


class FailureKind(enum.StrEnum):
    """Why a step of an SMTP conversation failed."""

    REFUSED = "refused"
    """The TCP connection was refused (nothing listens, or a firewall rejects)."""
    UNREACHABLE = "unreachable"
    """No route to the address (network or host unreachable)."""
    TIMEOUT = "timeout"
    """Nothing (or not enough) arrived within the step's time limit."""
    CLOSED = "closed"
    """The server closed or reset the connection."""
    MALFORMED = "malformed"
    """The server sent something that is not an SMTP reply."""
    TLS = "tls"
    """The TLS handshake failed (see `reason`)."""
    ERROR = "error"
    """Any other network error, or a bad argument (e.g. a host name instead of an address)."""


@dataclass(frozen=True)
class SmtpFailure:
    """A step that did not complete, as data."""

    kind: FailureKind
    """What went wrong."""
    detail: str
    """The error text (the errno text for connect errors, OpenSSL's text for TLS)."""
    waited_ms: int
    """How long the step ran before it failed."""
    reason: str = ""
    """For TLS failures, OpenSSL's reason code (e.g. WRONG_VERSION_NUMBER); else empty."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {"kind": self.kind.value, "detail": self.detail}
        out["waited_ms"] = self.waited_ms
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Reply:
    """One whole SMTP reply."""

    code: int
    """The three-digit code."""
    lines: tuple[str, ...]
    """The text of each line, without the code and the separator."""

    @property
    def text(self) -> str:
        """The reply as evidence: the code, then every line, joined by ` / `."""
        return f"{self.code} " + " / ".join(self.lines)

    @property
    def positive(self) -> bool:
        """A 2xx reply."""
        return 200 <= self.code < 300


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the conversation, or one event (connect, TLS, failure)."""

    ms: int
    """Milliseconds since the connection attempt began."""
    direction: str
    """`C` sent by us, `S` received from the server, `*` an event noted by the client."""
    text: str
    """The line without CRLF, or the event's description."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ms": self.ms, "dir": self.direction, "text": self.text}


@dataclass(frozen=True)
class TlsEstablished:
    """What a successful TLS handshake negotiated."""

    version: str
    """The protocol, as Python names it (`TLSv1.3`, `TLSv1.2`, `TLSv1.1`, `TLSv1`)."""
    cipher: str
    """The OpenSSL cipher suite name."""
    bits: int
    """The cipher's secret bits."""
    chain_der: tuple[bytes, ...]
    """The certificates the server sent, DER, leaf first (only the leaf on old Pythons)."""
    handshake_ms: int
    """How long the handshake took."""


class _Pipe(asyncio.Protocol):
    """Collects bytes (plaintext or decrypted) and wakes up the reader."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.lost: Exception | None = None
        self.arrived = asyncio.Event()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # the TCP transport; TLS reads through it too

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()
        if len(self.buffer) > MAX_BUFFER and isinstance(self.transport, asyncio.ReadTransport):
            self.transport.pause_reading()  # memory stays bounded; the reader fails the reply

    def eof_received(self) -> bool:
        self.eof = True
        self.arrived.set()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self.arrived.set()


class SmtpConnection:
    """One TCP connection to an SMTP server, upgradable to TLS, with a transcript."""

    def __init__(self, transport: asyncio.Transport, pipe: _Pipe, started: float) -> None:
        self._transport = transport
        self._pipe = pipe
        self._started = started
        self._transcript: list[TranscriptLine] = []
        self._socket = transport.get_extra_info("socket")
        self.tls = False
        """True once the connection has been upgraded to TLS."""

    @classmethod
    async def open(
        cls, ip: str, port: int, timeout: float, started: float | None = None
    ) -> SmtpConnection | SmtpFailure:
        """Connect to `ip`:`port` within `timeout` seconds; `ip` must be an address literal."""
        began = time.monotonic() if started is None else started
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return SmtpFailure(FailureKind.ERROR, f"{ip!r} is not an IP address", 0)
        loop = asyncio.get_running_loop()
        pipe = _Pipe()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(lambda: pipe, ip, port)
        except TimeoutError:
            return SmtpFailure(
                FailureKind.TIMEOUT, f"no answer within {round(timeout, 3):g} s", _ms_since(began)
            )
        except OSError as exc:
            return SmtpFailure(_connect_kind(exc), _errno_text(exc), _ms_since(began))
        conn = cls(transport, pipe, began)
        conn.note(f"connected to {ip} port {port}")
        return conn

    @property
    def transcript(self) -> tuple[TranscriptLine, ...]:
        """Every line and event so far."""
        return tuple(self._transcript)

    def elapsed_ms(self) -> int:
        """Milliseconds since the connection attempt began."""
        return _ms_since(self._started)

    def note(self, text: str) -> None:
        """Add an event to the transcript."""
        self._transcript.append(TranscriptLine(self.elapsed_ms(), "*", text))

    def send(self, *lines: str) -> SmtpFailure | None:
        """Write command lines in one go (more than one = deliberate pipelining)."""
        if self._transport.is_closing() or self._pipe.eof:
            return SmtpFailure(FailureKind.CLOSED, "the connection is already closed", 0)
        for line in lines:
            self._transcript.append(TranscriptLine(self.elapsed_ms(), "C", line))
        data = b"".join(line.encode("ascii", errors="replace") + b"\r\n" for line in lines)
        self._transport.write(data)
        self._quickack()
        return None

    async def command(self, line: str, timeout: float) -> Reply | SmtpFailure:
        """Send one command line and read its whole reply."""
        failure = self.send(line)
        if failure is not None:
            return failure
        return await self.read_reply(timeout)

    async def read_reply(self, timeout: float) -> Reply | SmtpFailure:
        """Read lines until one with `CODE ` (RFC 5321 §4.2.1: `CODE-` continues)."""
        began = time.monotonic()
        code: int | None = None
        lines: list[str] = []
        for _ in range(MAX_LINES):
            raw = await self._line(began, timeout)
            if isinstance(raw, SmtpFailure):
                return raw
            self._transcript.append(TranscriptLine(self.elapsed_ms(), "S", raw))
            match = _REPLY_LINE.fullmatch(raw)
            if match is None or (match[2] == "" and match[3] != ""):
                return self._malformed(f"not an SMTP reply line: {raw[:80]!r}", began)
            if code is not None and int(match[1]) != code:
                return self._malformed("the reply code changed inside a multi-line reply", began)
            code = int(match[1])
            lines.append(match[3])
            if match[2] != "-":
                return Reply(code, tuple(lines))
        return self._malformed(f"a reply longer than {MAX_LINES} lines", began)

    def take_buffered(self) -> bytes:
        """Remove and return what arrived but was not read yet (RFC 3207 §4.2: discard it)."""
        data = bytes(self._pipe.buffer)
        self._pipe.buffer.clear()
        return data

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> TlsEstablished | SmtpFailure:
        """Upgrade this connection to TLS in place; on failure the connection is closed.

        SNI is `server_hostname` when it is a valid host name (`sni_name`), else none is sent.
        """
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        sni = sni_name(server_hostname)
        self.note(f"TLS handshake, SNI {sni}" if sni else "TLS handshake, no SNI")
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._pipe,
                    context,
                    server_hostname=sni,
                    ssl_handshake_timeout=timeout + 1,  # our own timeout fires first
                )
        except TimeoutError:
            failure = SmtpFailure(
                FailureKind.TIMEOUT,
                f"no handshake within {round(timeout, 3):g} s",
                _ms_since(began),
            )
        except ssl.SSLError as exc:
            failure = SmtpFailure(
                FailureKind.TLS, _ssl_text(exc), _ms_since(began), exc.reason or type(exc).__name__
            )
        except (ConnectionError, OSError) as exc:
            failure = SmtpFailure(FailureKind.CLOSED, _errno_text(exc), _ms_since(began))
        except ValueError as exc:  # e.g. a name the ssl module cannot encode: never a crash
            failure = SmtpFailure(FailureKind.ERROR, printable(str(exc)), _ms_since(began))
        else:
            if transport is None:  # pragma: no cover - only for a closed transport
                failure = SmtpFailure(FailureKind.CLOSED, "connection closed", _ms_since(began))
            else:
                self._transport = transport
                self.tls = True
                self._quickack()
                established = _established(transport, _ms_since(began))
                self.note(
                    f"TLS established: {established.version} {established.cipher} "
                    f"({established.bits} bits), {len(established.chain_der)} certificate(s)"
                )
                return established
        self._pipe.eof = True
        self._transport.close()
        self.note(f"TLS handshake failed: {failure.detail}")
        return failure

    def _quickack(self) -> None:
        """Ask the kernel to ACK what arrives next at once (see QUICKACK); no-op elsewhere."""
        if QUICKACK is None or self._socket is None:
            return
        try:
            self._socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        except OSError:  # a closed socket, or a platform without the option after all
            pass

    def close(self) -> None:
        """Close without waiting (abort: nothing is left to say after QUIT)."""
        if not self._transport.is_closing():
            self._transport.abort()

    async def _line(self, began: float, timeout: float) -> str | SmtpFailure:
        pipe = self._pipe
        while True:
            end = pipe.buffer.find(b"\n")
            if end >= 0:
                if end > LINE_LIMIT:
                    return self._malformed(f"a reply line longer than {LINE_LIMIT} octets", began)
                raw = bytes(pipe.buffer[:end])
                del pipe.buffer[: end + 1]
                return printable(raw.rstrip(b"\r").decode("utf-8", errors="replace"))
            if len(pipe.buffer) > LINE_LIMIT:
                return self._malformed(f"a reply line longer than {LINE_LIMIT} octets", began)
            if pipe.eof:
                detail = "the server closed the connection"
                if pipe.buffer:
                    detail += f" in the middle of a line ({bytes(pipe.buffer[:80])!r})"
                elif pipe.lost is not None:
                    detail = f"the connection failed: {_errno_text(pipe.lost)}"
                self.note(detail)
                return SmtpFailure(FailureKind.CLOSED, detail, _ms_since(began))
            left = timeout - (time.monotonic() - began)
            pipe.arrived.clear()
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    await pipe.arrived.wait()
            except TimeoutError:
                detail = f"no complete reply within {round(timeout, 3):g} s"
                self.note(detail)
                return SmtpFailure(FailureKind.TIMEOUT, detail, _ms_since(began))

    def _malformed(self, detail: str, began: float) -> SmtpFailure:
        self.note(detail)
        return SmtpFailure(FailureKind.MALFORMED, detail, _ms_since(began))


def peer_chain(ssl_object: Any) -> tuple[bytes, ...]:
    """The peer's certificate chain as DER, leaf first, without verifying it.

    Python 3.13 has a public `get_unverified_chain()`; 3.10-3.12 have it on the private
    `_sslobj` (returning Certificate objects); older ones give only the leaf.
    """
    try:
        public = getattr(ssl_object, "get_unverified_chain", None)
        if public is not None:
            return tuple(bytes(c) for c in public() or ())
        inner = getattr(ssl_object, "_sslobj", None)
        private = getattr(inner, "get_unverified_chain", None)
        if private is not None:
            der = 2  # _ssl.ENCODING_DER
            return tuple(c.public_bytes(der) for c in private() or ())
    except (AttributeError, TypeError, ValueError, ssl.SSLError):
        pass
    leaf = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return (leaf,) if leaf else ()


def _established(transport: asyncio.Transport, handshake_ms: int) -> TlsEstablished:
    ssl_object = transport.get_extra_info("ssl_object")
    cipher = ssl_object.cipher() if ssl_object is not None else None
    return TlsEstablished(
        version=(ssl_object.version() if ssl_object is not None else None) or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        bits=int(cipher[2]) if cipher and cipher[2] is not None else 0,
        chain_der=peer_chain(ssl_object),
        handshake_ms=handshake_ms,
    )


def _connect_kind(exc: OSError) -> FailureKind:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return FailureKind.REFUSED
    if exc.errno in _UNREACHABLE:
        return FailureKind.UNREACHABLE
    if exc.errno == errno.ETIMEDOUT:
        return FailureKind.TIMEOUT
    return FailureKind.ERROR


def _errno_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        # The C library's words: asyncio's own strerror repeats the address we dialled
        # ("Connect call failed ('192.0.2.1', 25)"), which every caller already says.
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{os.strerror(exc.errno)} ({name})"
    if isinstance(exc, ConnectionError):
        return f"the server closed the connection ({str(exc) or type(exc).__name__})"
    return str(exc) or type(exc).__name__


def _ssl_text(exc: ssl.SSLError) -> str:
    # str(SSLError) carries a source location ("(_ssl.c:1006)") that means nothing to a reader.
    # Cut at its last occurrence (no regex: a `\s*` before it would be quadratic on spaces).
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    at = text.rfind(_SSL_LOCATION)
    if at >= 0 and text.endswith(")") and text[at + len(_SSL_LOCATION) : -1].isdigit():
        text = text[:at].rstrip()
    return printable(text) or type(exc).__name__


def _ms_since(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
