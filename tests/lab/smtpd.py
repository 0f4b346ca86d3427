"""Scripted SMTP servers on loopback, for building a Postfix queue that defers for known reasons.

Each server follows a `Script`: what to send as a greeting (or nothing, or a hang-up), whether
to offer STARTTLS and how to answer it, and the replies to MAIL, RCPT and end of DATA. Every
server runs in one asyncio loop on a background thread and reads the client line by line
(multi-line replies are sent whole). No TLS is ever negotiated: STARTTLS is only advertised
and refused.

    with SmtpLab({"notls": Script(), "tls454": Script(starttls="454 4.7.0 ...")}) as lab:
        host, port = lab.address("notls")
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Self

from tests.lab.loop_servers import LoopServers

LINE_LIMIT = 64 * 1024
HOST_BASE = "127.0.0."
FIRST_HOST = 10
"""Servers bind 127.0.0.10, .11, ... (distinct next hops in Postfix's reasons), port 0."""

RcptRule = Callable[[str], str]
"""The reply to `RCPT TO:<address>` for an address."""


def always(reply: str) -> RcptRule:
    """A RCPT rule with one reply for every address."""
    return lambda _address: reply


@dataclass(frozen=True)
class Script:
    """How one scripted server behaves. Replies may hold several lines, separated by `\\n`."""

    greeting: str | None = "220 lab.mailcheck.test ESMTP scripted"
    """The greeting; None never greets (the client times out)."""
    hang_up: bool = False
    """Close the connection right after accepting it (the client sees a lost connection)."""
    close_after_greeting: bool = False
    """Close after sending the greeting (for a 421 greeting)."""
    starttls: str | None = None
    """None: STARTTLS is not advertised; otherwise the reply to STARTTLS."""
    mail: str = "250 2.1.0 Ok"
    """The reply to MAIL FROM."""
    rcpt: RcptRule = field(default=always("250 2.1.5 Ok"))
    """The reply to RCPT TO for each address."""
    data_end: str = "250 2.0.0 Ok: queued as LAB"
    """The reply after the message's final dot."""


def _wire(reply: str) -> bytes:
    return b"".join(line.encode() + b"\r\n" for line in reply.split("\n"))


class SmtpLab(LoopServers):
    """Runs scripted servers (and reserves closed ports) until stopped."""

    def __init__(self, scripts: Mapping[str, Script], closed: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.scripts = dict(scripts)
        self.closed_names = closed
        self._addresses: dict[str, tuple[str, int]] = {}
        self._reserved: list[socket.socket] = []
        self.transcript: list[tuple[str, str]] = []
        """(server name, line received) for post-mortems."""

    def address(self, name: str) -> tuple[str, int]:
        """Where a server (or a closed port) is."""
        return self._addresses[name]

    def nexthop(self, name: str) -> str:
        """The server as a Postfix next hop: `[ip]:port` (no DNS, no MX lookup)."""
        host, port = self._addresses[name]
        return f"[{host}]:{port}"

    def start(self) -> Self:
        """Start every server and reserve the closed ports (bounded by READY_TIMEOUT)."""
        super().start()
        for index, name in enumerate(self.closed_names, start=len(self.scripts)):
            # Bound but not listening: a connection is refused at once, and nobody else can
            # take the port while the lab runs.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((_host(index), 0))
            self._reserved.append(sock)
            self._addresses[name] = sock.getsockname()[:2]
        return self

    async def _start_all(self) -> None:
        for index, (name, script) in enumerate(self.scripts.items()):
            server = await asyncio.start_server(
                functools.partial(self._spawn, name, script), _host(index), 0, limit=LINE_LIMIT
            )
            self._servers.append(server)
            self._addresses[name] = server.sockets[0].getsockname()[:2]

    def _spawn(
        self, name: str, script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.ensure_future(self._session(name, script, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _session(
        self, name: str, script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self._converse(name, script, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _converse(
        self, name: str, script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if script.hang_up:
            return
        if script.greeting is None:
            await reader.read()  # never greet: wait until the client gives up
            return
        writer.write(_wire(script.greeting))
        await writer.drain()
        if script.close_after_greeting:
            return
        while line := await reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            self.transcript.append((name, text))
            verb = text.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "EHLO":
                lines = ["250-lab.mailcheck.test", "250-PIPELINING", "250-8BITMIME"]
                if script.starttls is not None:
                    lines.append("250-STARTTLS")
                lines.append("250 SMTPUTF8")
                reply = "\n".join(lines)
            elif verb == "HELO":
                reply = "250 lab.mailcheck.test"
            elif verb == "STARTTLS" and script.starttls is not None:
                reply = script.starttls
            elif verb == "MAIL":
                reply = script.mail
            elif verb == "RCPT":
                address = text.partition(":")[2].strip().split(" ")[0].strip("<>")
                reply = script.rcpt(address)
            elif verb == "DATA":
                writer.write(_wire("354 End data with <CR><LF>.<CR><LF>"))
                await writer.drain()
                while (body := await reader.readline()) and body.rstrip(b"\r\n") != b".":
                    pass
                reply = script.data_end
            elif verb in ("RSET", "NOOP"):
                reply = "250 2.0.0 Ok"
            elif verb == "QUIT":
                writer.write(_wire("221 2.0.0 Bye"))
                await writer.drain()
                return
            else:
                reply = "502 5.5.2 Error: command not recognized"
            writer.write(_wire(reply))
            await writer.drain()
            if reply.startswith("421"):
                return  # RFC 5321 §3.8: 421 closes the channel

    def stop(self) -> None:
        """Stop every server and session, and release the reserved ports (bounded)."""
        super().stop()
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()


def _host(index: int) -> str:
    return f"{HOST_BASE}{FIRST_HOST + index}"
