"""Scripted misbehaving SMTP servers that can do real STARTTLS, for the tls probe's tests.

Each `Scenario` says how one server behaves: its greeting (and how long it waits before it),
its EHLO and HELO replies, whether it advertises STARTTLS (or a firewall-masked `XXXXXXXA`),
its reply to STARTTLS, what it does after `220` (real TLS, hang up, plaintext, a TLS alert),
which TLS versions it speaks, how it answers inside TLS, and whether it keeps plaintext that
was pipelined after STARTTLS (the CVE-2011-0411 bug), throws it away as RFC 3207 §4.2
requires, or chokes on it. A reply with code 421 closes the connection (RFC 5321 §3.8). The
SNI name each server was sent is recorded (`sni_seen`).
Every server runs in one asyncio loop on a background thread, on its own 127.0.0.x address and
a free port; `start()` returns once all listen (bounded).

    with TlsSmtpLab({"good": Scenario()}, pki.issue("mx", ["mx.tls.test"])) as lab:
        ip, port = lab.address("good")

Unlike tests/lab/smtpd.py (the queue tests' servers, which never do TLS), commands are read
from the lab's own buffer, so that what a client pipelined after STARTTLS is visible and can be
kept or discarded on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tests.lab.loop_servers import LoopServers
from tests.lab.pki import LabCert

LINE_LIMIT = 4096
HOST_BASE = "127.0.0."
FIRST_HOST = 110
"""Servers bind 127.0.0.110, .111, ... (tls_world's Postfix uses .70-.78), port 0."""
NAME = "mx.tls.test"
TLS_ALERT_HANDSHAKE_FAILURE = bytes.fromhex("15030100020228")
"""A TLS record: alert, TLS 1.0 framing, length 2, fatal (2), handshake_failure (40)."""
SPAMHAUS_554 = (
    "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org;"
    " https://www.spamhaus.org/query/ip/127.0.0.1"
)
ATT_553 = (
    "553 5.3.0 flpd575 DNSBL:RBL 521< 127.0.0.1 >_is_blocked. For assistance forward this"
    " email to abuse_rbl@abuse-att.net"
)

AfterReady = Literal["tls", "close", "plaintext", "alert"]


@dataclass(frozen=True)
class Scenario:
    """How one scripted server behaves. Replies may hold several lines, separated by `\\n`."""

    greeting: str = f"220 {NAME} ESMTP tls-lab"
    """The greeting; a 421 greeting closes the connection right after it."""
    greeting_delay: float = 0.0
    """Seconds to wait before greeting (a tarpit, or postscreen's pregreet wait)."""
    reply_delay: float = 0.0
    """Seconds to wait before each reply to a command (a tarpit that answers every step)."""
    ehlo: str | None = None
    """The whole EHLO reply; None: a normal one (with STARTTLS when advertised)."""
    helo: str = f"250 {NAME}"
    """The reply to HELO (outside TLS)."""
    advertise_starttls: bool = True
    """List STARTTLS among the EHLO keywords."""
    masked: bool = False
    """List `XXXXXXXA` in place of STARTTLS, as Cisco ESMTP inspection does."""
    starttls: str = "220 2.0.0 Ready to start TLS"
    """The reply to STARTTLS, whether advertised or not."""
    after_ready: AfterReady = "tls"
    """After a 220 to STARTTLS: handshake, hang up, answer in plaintext, or send an alert."""
    tls_max: ssl.TLSVersion | None = None
    """The highest TLS version spoken (TLSv1_1 for a legacy-only server); None: any."""
    post_tls_ehlo: str | None = None
    """The reply to EHLO inside TLS; None: a normal one."""
    post_tls_helo: str = f"250 {NAME}"
    """The reply to HELO inside TLS."""
    close_after_tls: bool = False
    """Hang up at the first command inside TLS."""
    mail: str = "250 2.1.0 Ok"
    """The reply to MAIL FROM."""
    injectable: bool = False
    """Keep plaintext pipelined after STARTTLS and execute it inside TLS (CVE-2011-0411)."""
    strict_sync: bool = False
    """Refuse a pipelined STARTTLS as a synchronisation error and hang up (Postfix 3.9+ style)."""
    fragile_pipelining: bool = False
    """Say 220 to a pipelined STARTTLS, then hang up instead of the handshake (a server that our
    injection test, not a sender, would break)."""


def _wire(reply: str) -> bytes:
    return b"".join(line.encode() + b"\r\n" for line in reply.split("\n"))


def _ehlo_reply(scenario: Scenario, inside_tls: bool) -> str:
    if inside_tls and scenario.post_tls_ehlo is not None:
        return scenario.post_tls_ehlo
    if not inside_tls and scenario.ehlo is not None:
        return scenario.ehlo
    lines = [f"250-{NAME} Hello", "250-PIPELINING", "250-SIZE 10240000"]
    if not inside_tls and scenario.masked:
        lines.append("250-XXXXXXXA")
    elif not inside_tls and scenario.advertise_starttls:
        lines.append("250-STARTTLS")
    lines += ["250-ENHANCEDSTATUSCODES", "250 8BITMIME"]
    return "\n".join(lines)


class _Client:
    """One connection: the lab's own input buffer, so pipelined input can be kept or dropped."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    async def line(self) -> str | None:
        while b"\n" not in self.buffer:
            if len(self.buffer) > LINE_LIMIT:
                return None
            chunk = await self.reader.read(4096)
            if not chunk:
                return None
            self.buffer += chunk
        raw, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return raw.rstrip(b"\r").decode(errors="replace")

    async def say(self, reply: str) -> None:
        self.writer.write(_wire(reply))
        await self.writer.drain()


class TlsSmtpLab(LoopServers):
    """Runs scripted STARTTLS servers until stopped."""

    def __init__(self, scenarios: Mapping[str, Scenario], cert: LabCert) -> None:
        super().__init__()
        self.scenarios = dict(scenarios)
        self.cert = cert
        self._addresses: dict[str, tuple[str, int]] = {}
        self.received: list[tuple[str, str]] = []
        """(server name, line received), inside TLS too, for assertions and post-mortems."""
        self.sni_seen: list[tuple[str, str | None]] = []
        """(server name, SNI name of a handshake, None when the client sent none)."""

    def address(self, name: str) -> tuple[str, int]:
        """Where a server listens: (ip, port)."""
        return self._addresses[name]

    def context(self, scenario: Scenario) -> ssl.SSLContext:
        """The server's TLS context: the lab certificate and chain, the scenario's versions."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert.chain_path, self.cert.key_path)
        if scenario.tls_max is not None:
            # OpenSSL 3 allows TLS 1.0/1.1 only at security level 0 (SHA-1 signatures).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = scenario.tls_max
            context.set_ciphers("ALL:@SECLEVEL=0")
        return context

    async def _start_all(self) -> None:
        for index, (name, scenario) in enumerate(self.scenarios.items()):
            context = self.context(scenario)
            context.sni_callback = functools.partial(self._note_sni, name)
            handler = functools.partial(self._spawn, name, scenario, context)
            server = await asyncio.start_server(handler, f"{HOST_BASE}{FIRST_HOST + index}", 0)
            self._servers.append(server)
            self._addresses[name] = server.sockets[0].getsockname()[:2]

    def _note_sni(
        self, name: str, _conn: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        self.sni_seen.append((name, server_name))

    def _spawn(
        self,
        name: str,
        scenario: Scenario,
        context: ssl.SSLContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.ensure_future(self._session(name, scenario, context, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _session(
        self,
        name: str,
        scenario: Scenario,
        context: ssl.SSLContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            await self._converse(name, scenario, context, _Client(reader, writer))
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _converse(
        self, name: str, scenario: Scenario, context: ssl.SSLContext, client: _Client
    ) -> None:
        if scenario.greeting_delay:
            await asyncio.sleep(scenario.greeting_delay)
        await client.say(scenario.greeting)
        if scenario.greeting.startswith("421"):
            return  # RFC 5321 §3.8: 421 closes the channel
        refusing = not scenario.greeting.startswith("2")
        inside_tls = False
        while (text := await client.line()) is not None:
            self.received.append((name, text))
            if scenario.reply_delay:
                await asyncio.sleep(scenario.reply_delay)
            verb = text.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "QUIT":
                await client.say("221 2.0.0 Bye")
                return
            if refusing:
                # RFC 5321 §3.1: after a 554 greeting, everything but QUIT gets 503.
                await client.say("503 5.5.1 Error: no SMTP service here")
                continue
            if inside_tls and scenario.close_after_tls:
                return
            if verb == "STARTTLS" and not inside_tls:
                if scenario.strict_sync and client.buffer:
                    await client.say("554 5.5.0 Error: SMTP protocol synchronization")
                    return
                await client.say(scenario.starttls)
                if not scenario.starttls.startswith("220"):
                    continue
                if scenario.fragile_pipelining and client.buffer:
                    return
                if not await self._ready(scenario, context, client):
                    return
                inside_tls = True
                continue
            reply = self._reply(scenario, verb, inside_tls)
            await client.say(reply)
            if reply.startswith("421"):
                return  # RFC 5321 §3.8

    async def _ready(self, scenario: Scenario, context: ssl.SSLContext, client: _Client) -> bool:
        """What follows a 220 to STARTTLS; True when a TLS session is up."""
        if scenario.after_ready == "close":
            return False
        if scenario.after_ready in ("plaintext", "alert"):
            await client.reader.read(4096)  # the ClientHello
            if scenario.after_ready == "plaintext":
                await client.say("500 5.5.1 Error: command not recognized")
            else:
                client.writer.write(TLS_ALERT_HANDSHAKE_FAILURE)
                await client.writer.drain()
            return False
        if not scenario.injectable:
            client.buffer.clear()  # RFC 3207 §4.2: forget everything from before TLS
        await client.writer.start_tls(context)
        return True

    @staticmethod
    def _reply(scenario: Scenario, verb: str, inside_tls: bool) -> str:
        if verb == "EHLO":
            return _ehlo_reply(scenario, inside_tls)
        if verb == "HELO":
            return scenario.post_tls_helo if inside_tls else scenario.helo
        if verb == "STARTTLS":
            return "554 5.5.1 Error: TLS already active"
        if verb == "MAIL":
            return scenario.mail
        if verb in ("RSET", "NOOP"):
            return "250 2.0.0 Ok"
        return "502 5.5.2 Error: command not recognized"


SCENARIOS: dict[str, Scenario] = {
    "good": Scenario(),
    "banner-554": Scenario(greeting=SPAMHAUS_554),
    "att-hidden": Scenario(advertise_starttls=False, starttls=ATT_553, mail=ATT_553),
    "ehlo-550": Scenario(
        ehlo="550 5.7.1 Client host [127.0.0.1] rejected: listed at bl.example.test",
        starttls="502 5.5.1 Error: command not implemented",
    ),
    "no-esmtp": Scenario(
        greeting=f"220 {NAME} Sendmail 5.65 ready",
        ehlo="502 5.5.2 Error: command not recognized",
        starttls="502 5.5.1 Error: command not implemented",
    ),
    "masked": Scenario(
        greeting="220 ******************************************",
        masked=True,
        starttls='500 5.5.1 Command unrecognized: "XXXXXXXX"',
    ),
    "not-offered": Scenario(
        advertise_starttls=False, starttls="502 5.5.1 Error: command not implemented"
    ),
    "starttls-454": Scenario(starttls="454 4.7.0 TLS not available due to local problem"),
    "close-after-220": Scenario(after_ready="close"),
    "plaintext-after-220": Scenario(after_ready="plaintext"),
    "alert-after-220": Scenario(after_ready="alert"),
    "greeting-421": Scenario(
        greeting=f"421 4.7.0 {NAME} Too many concurrent SMTP connections; please try again later"
    ),
    "slow-greeting": Scenario(greeting_delay=0.5),
    "post-tls-554": Scenario(
        post_tls_ehlo="554 5.7.0 TLS session rejected by policy",
        post_tls_helo="554 5.7.0 TLS session rejected by policy",
    ),
    "post-tls-421": Scenario(post_tls_ehlo="421 4.3.2 Service shutting down"),
    "post-tls-helo-only": Scenario(post_tls_ehlo="502 5.5.2 Error: command not recognized"),
    "ehlo-421": Scenario(ehlo="421 4.7.0 Too many connections from your address"),
    "helo-rejected": Scenario(
        ehlo="550 5.7.1 Client host [127.0.0.1] rejected: listed at bl.example.test",
        helo="550 5.7.1 Client host [127.0.0.1] rejected: listed at bl.example.test",
        starttls="503 5.5.1 Error: send HELO/EHLO first",
        mail="503 5.5.1 Error: send HELO/EHLO first",
    ),
    "fragile-pipelining": Scenario(fragile_pipelining=True),
    "escapes": Scenario(greeting="220-mx.tls.test \x1b[31mred\x00\n220 ok \x9b2J\x7f"),
    "asterisks-x": Scenario(greeting="220 " + "*" * 2000 + "x"),
    "close-after-tls": Scenario(close_after_tls=True),
    "legacy-tls": Scenario(tls_max=ssl.TLSVersion.TLSv1_1),
    "unadvertised": Scenario(advertise_starttls=False),
    "unadvertised-alert": Scenario(advertise_starttls=False, after_ready="alert"),
    "injectable": Scenario(injectable=True),
    "multiline-220": Scenario(starttls="220-2.0.0 Ready to start TLS\n220 2.0.0 (really)"),
    "strict-sync": Scenario(strict_sync=True),
    "tarpit": Scenario(reply_delay=0.3),
    "tarpit-not-offered": Scenario(
        advertise_starttls=False,
        starttls="502 5.5.1 Error: command not implemented",
        reply_delay=0.3,
    ),
}
"""Every scripted scenario the probe is tested against, by name."""
