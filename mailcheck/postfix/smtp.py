"""A minimal blocking SMTP client for probes: bounded reads, multi-line replies (RFC 5321 §4.2)."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

LINE_LIMIT = 2048
"""RFC 5321 §4.5.3.1.5: reply lines are at most 512 octets; be generous, but bounded."""
MAX_LINES = 100


class SmtpError(Exception):
    """The conversation failed; `kind` is `timeout`, `closed`, `malformed` or `tls`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Reply:
    """One whole SMTP reply."""

    code: int
    """The three-digit code."""
    lines: tuple[str, ...]
    """The text of each line, without code and separator."""

    @property
    def text(self) -> str:
        """All lines joined, for evidence."""
        return f"{self.code} " + " / ".join(self.lines)


class SmtpConnection:
    """One TCP (or TLS) connection with a deadline per step."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.buffer = b""

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        timeout: float,
        implicit_tls: bool = False,
        server_name: str | None = None,
    ) -> SmtpConnection:
        """Connect to an address (bounded by timeout); with implicit_tls, handshake first
        (RFC 8314 §3.3), sending server_name (default: host) as SNI."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError:
            raise SmtpError("timeout", f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise SmtpError(
                "connect", f"cannot connect to {host}:{port}: {exc.strerror or exc}"
            ) from None
        conn = cls(sock, timeout)
        if implicit_tls:
            try:
                conn.starttls(server_name or host)
            except SmtpError:
                conn.close()
                raise
        return conn

    def starttls(self, host: str) -> None:
        """Wrap the socket in TLS; certificates are not judged here (the tls check does that)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            self.sock.settimeout(self.timeout)
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
        except TimeoutError:
            raise SmtpError("tls", f"TLS handshake timed out after {self.timeout:g} s") from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            # ValueError: a server_name ssl refuses (e.g. an empty label)
            raise SmtpError("tls", f"TLS handshake failed: {exc}") from None
        self.buffer = b""  # RFC 3207 §4.2: discard anything read before the handshake

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            if len(self.buffer) > LINE_LIMIT:
                raise SmtpError("malformed", "reply line longer than 2048 octets")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SmtpError("timeout", f"no complete reply within {self.timeout:g} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise SmtpError("timeout", f"no complete reply within {self.timeout:g} s") from None
            except OSError as exc:
                raise SmtpError("closed", f"connection failed: {exc.strerror or exc}") from None
            if not chunk:
                raise SmtpError("closed", "the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def read_reply(self) -> Reply:
        """Read lines until one with `CODE ` (RFC 5321 §4.2.1: `CODE-` continues)."""
        deadline = time.monotonic() + self.timeout
        code: int | None = None
        lines: list[str] = []
        for _ in range(MAX_LINES):
            raw = self._line(deadline).decode("utf-8", errors="replace")
            if len(raw) < 3 or not raw[:3].isdigit() or (len(raw) > 3 and raw[3] not in " -"):
                raise SmtpError("malformed", f"malformed reply line {raw[:60]!r}")
            if code is not None and int(raw[:3]) != code:
                raise SmtpError("malformed", "reply code changed inside a multi-line reply")
            code = int(raw[:3])
            lines.append(raw[4:])
            if len(raw) == 3 or raw[3] == " ":
                return Reply(code, tuple(lines))
        raise SmtpError("malformed", f"reply longer than {MAX_LINES} lines")

    def command(self, line: str) -> Reply:
        """Send one command line and read its whole reply."""
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(line.encode("ascii") + b"\r\n")
        except TimeoutError:
            raise SmtpError("timeout", f"sending {line.split()[0]} timed out") from None
        except OSError as exc:
            raise SmtpError("closed", f"connection failed: {exc.strerror or exc}") from None
        return self.read_reply()

    def close(self) -> None:
        """Close without waiting."""
        try:
            self.sock.close()
        except OSError:
            pass
