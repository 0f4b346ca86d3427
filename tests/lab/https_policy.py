"""An HTTPS MTA-STS policy host on loopback, with one virtual host per scenario, chosen by SNI.

fixtures/zones/sts.test.zone points `mta-sts.<scenario>.sts.test` at ADDRESS; this server
binds ADDRESS on a free port and serves each scenario's reply (a good policy, a redirect, a
404, a wrong media type, bad policies, a hang, an oversized body). `encoded_reply` builds
replies with a Content-Encoding (gzip, a gzip bomb, brotli); sts.test has no names of their own
for them, so a test serves one as `good` from a host of its own:
`PolicyHost(pki, {"good": encoded_reply("bomb")})`. The certificate comes from the lab PKI
and names every scenario host except `wrongcert`, which gets a certificate for another name.
A request whose Host header differs from its SNI name gets 421.

    with PolicyHost(LabPki(tmp_path)) as host:
        ...  # gather_mta_sts(dns, "good.sts.test", port=host.port, roots=host.ca_file, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import threading
import zlib
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.lab.pki import LabCert, LabPki

ADDRESS = "127.0.0.60"
"""Where every policy host of sts.test points."""
DEAD_ADDRESS = "127.0.0.61"
"""The `refused` scenario's policy host: nothing listens there."""
ZONE = "sts.test"
POLICY_PATH = "/.well-known/mta-sts.txt"
WRONG_NAME_SCENARIO = "wrongcert"
READY_TIMEOUT = 10.0
REQUEST_TIMEOUT = 5.0
HEAD_LIMIT = 16 * 1024


def policy_text(*lines: str, eol: str = "\r\n") -> bytes:
    """A policy file from its lines, each ended with `eol` (RFC 8461 §3.2 wants CRLF)."""
    return "".join(line + eol for line in lines).encode()


@dataclass(frozen=True)
class Reply:
    """How one virtual host answers a GET of the policy URL."""

    status: int = 200
    """The HTTP status."""
    body: bytes = b""
    """The body."""
    content_type: str | None = "text/plain; charset=utf-8"
    """The Content-Type header (None: none sent)."""
    location: str | None = None
    """A Location header (redirects)."""
    hang: bool = False
    """Read the request and never answer (the client must time out)."""
    content_encoding: str | None = None
    """A Content-Encoding header, sent whatever the request's Accept-Encoding says."""


def _enforce(label: str, *patterns: str) -> bytes:
    mx = patterns or (f"mx1.{label}.{ZONE}",)
    return policy_text(
        "version: STSv1", "mode: enforce", *(f"mx: {p}" for p in mx), "max_age: 604800"
    )


SCENARIOS: Mapping[str, Reply] = {
    "good": Reply(body=_enforce("good", f"mx1.good.{ZONE}", f"*.mx.good.{ZONE}")),
    "redirect": Reply(301, b"moved\r\n", location=f"https://www.redirect.{ZONE}/mta-sts.txt"),
    "notfound": Reply(404, b"<h1>Not Found</h1>", "text/html"),
    "badct": Reply(body=_enforce("badct"), content_type="text/html; charset=utf-8"),
    "nomatch": Reply(
        body=_enforce("nomatch", "mail.example.net", f"x1.nomatch.{ZONE}", f"*.mx.nomatch.{ZONE}")
    ),
    "testing": Reply(
        body=policy_text(
            "version: STSv1",
            "mode: testing",
            f"mx: mx1.testing.{ZONE}",
            "max_age: 31557601",
            eol="\n",
        )
    ),
    "short": Reply(
        body=policy_text(
            "version: STSv1", "mode: testing", f"mx: mx1.short.{ZONE}", "max_age: 3600", eol="\n"
        )
    ),
    "none": Reply(body=policy_text("version: STSv1", "mode: none", "max_age: 86400")),
    "syntax": Reply(
        body=policy_text(
            "mode: enforcing",
            "max_age: 86400",
            "max_age: 604800",
            f"mx mx1.syntax.{ZONE}",
            f"mx: mx1.syntax.{ZONE}",
        )
    ),
    "twotxt": Reply(body=_enforce("twotxt")),
    "badtxt": Reply(body=_enforce("badtxt")),
    "badrua": Reply(body=_enforce("badrua")),
    WRONG_NAME_SCENARIO: Reply(body=_enforce(WRONG_NAME_SCENARIO)),
    "slow": Reply(hang=True),
    "big": Reply(body=_enforce("big") + b"# padding\r\n" * 7000),
}


def gzip_bomb(decoded_bytes: int, layers: int = 2) -> bytes:
    """`decoded_bytes` zero bytes gzip-compressed `layers` times: a few hundred bytes that
    expand a thousandfold per layer. Built a MiB at a time, never holding the zeros."""
    zeros = bytes(1 << 20)
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [inner.compress(zeros) for _ in range(decoded_bytes >> 20)]
    parts += [inner.compress(bytes(decoded_bytes % len(zeros))), inner.flush()]
    data = b"".join(parts)
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


BOMB_BYTES = 64 << 20
"""What the `bomb` reply expands to (a quarter of a second to build)."""


def encoded_reply(name: str) -> Reply:
    """One reply of ENCODED: `gzip` (a good enforce policy for good.sts.test, compressed),
    `bomb` (`Content-Encoding: gzip, gzip`, BOMB_BYTES of zeros), `brotli` (a coding mailcheck
    does not undo). Built on demand: the bomb takes a moment."""
    if name == "gzip":
        policy = _enforce("good", f"mx1.good.{ZONE}", f"*.mx.good.{ZONE}")
        return Reply(body=gzip.compress(policy), content_encoding="gzip")
    if name == "bomb":
        return Reply(body=gzip_bomb(BOMB_BYTES), content_encoding="gzip, gzip")
    if name == "brotli":
        return Reply(body=b"\x1b\x00 (never decoded)", content_encoding="br")
    raise KeyError(name)


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    sni: str | None
    """The TLS server name the client sent."""
    host: str | None
    """The Host header."""
    target: str
    """The request target (path)."""


def _host_name(label: str) -> str:
    return f"mta-sts.{label}.{ZONE}"


class PolicyHost:
    """The policy host, serving on its own event loop in a daemon thread."""

    def __init__(
        self,
        pki: LabPki,
        scenarios: Mapping[str, Reply] = SCENARIOS,
        host: str = ADDRESS,
        port: int = 0,
    ) -> None:
        self.scenarios = dict(scenarios)
        self.host = host
        self.port = port
        self.ca_file: Path = pki.ca_file
        self.requests: list[Request] = []
        self._sni: dict[int, str | None] = {}
        names = [_host_name(s) for s in self.scenarios if s != WRONG_NAME_SCENARIO]
        self._context = self._server_context(pki.issue("mta-sts-hosts", names))
        wrong = pki.issue("mta-sts-wrongname", [f"www.{WRONG_NAME_SCENARIO}.{ZONE}"])
        wrong_context = self._server_context(wrong)
        wrong_sni = _host_name(WRONG_NAME_SCENARIO)

        def choose(ssl_object: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            # A server learns the client's SNI name only here; the handler looks it up.
            self._sni[id(ssl_object)] = name
            if name == wrong_sni:
                ssl_object.context = wrong_context

        self._context.sni_callback = choose
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @staticmethod
    def _server_context(cert: LabCert) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.chain_path, cert.key_path)
        return context

    def start(self) -> PolicyHost:
        """Bind and serve; returns once the socket listens."""
        ready: Future[int] = Future()

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                server = await asyncio.start_server(
                    self._track, self.host, self.port, ssl=self._context
                )
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(server.sockets[0].getsockname()[1])
            try:
                await self._stop.wait()
            finally:
                server.close()
                for task in list(self._handlers):
                    task.cancel()
                await asyncio.gather(*self._handlers, return_exceptions=True)
                await server.wait_closed()

        self._thread = threading.Thread(
            target=lambda: asyncio.run(serve()), name="lab-mta-sts", daemon=True
        )
        self._thread.start()
        self.port = ready.result(timeout=READY_TIMEOUT)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._thread and self._thread.is_alive() and self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=READY_TIMEOUT)

    def __enter__(self) -> PolicyHost:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client went away or sent garbage: nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > HEAD_LIMIT:
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        target = parts[1] if len(parts) == 3 else ""
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        ssl_object = writer.get_extra_info("ssl_object")
        sni = self._sni.pop(id(ssl_object), None)
        host = headers.get("host")
        self.requests.append(Request(sni, host, target))
        label = (sni or "").removeprefix("mta-sts.").removesuffix(f".{ZONE}")
        reply = self.scenarios.get(label)
        if host is None or host.rsplit(":", 1)[0].lower() != (sni or "").lower():
            reply = Reply(421, b"Host does not match SNI\r\n")
        elif reply is None or target != POLICY_PATH:
            reply = Reply(404, b"no such policy\r\n")
        if reply.hang:
            await reader.read()  # until the client gives up and closes
            return
        writer.write(_response(reply))
        await writer.drain()


_REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found", 421: "Misdirected Request"}


def _response(reply: Reply) -> bytes:
    head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
    if reply.content_type is not None:
        head.append(f"Content-Type: {reply.content_type}")
    if reply.location is not None:
        head.append(f"Location: {reply.location}")
    if reply.content_encoding is not None:
        head.append(f"Content-Encoding: {reply.content_encoding}")
    head += [f"Content-Length: {len(reply.body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + reply.body
