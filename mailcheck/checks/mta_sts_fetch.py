"""Gather MTA-STS and TLS-RPT facts: two TXT lookups and, when announced, the HTTPS policy fetch.

The policy host's addresses come from the run's DnsClient, never the OS resolver: httpx is
given the address in the URL, and `mta-sts.<domain>` as the SNI name (the `sni_hostname`
request extension) and Host header, so the certificate is verified against that name and not
the IP (RFC 8461 §3.3). Redirects are not followed, the body is capped, and every attempt is
bounded by `timeout`.

The body is read as sent (`aiter_raw`): httpx would otherwise undo any Content-Encoding itself,
whatever the request asked for, and a few hundred bytes of stacked gzip expand to gigabytes
before a cap on decoded bytes is reached. The cap applies to the bytes on the wire; gzip and
deflate are then undone here with zlib's `max_length`, so no step yields more than the cap.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import zlib
from collections.abc import Sequence
from typing import Any

import httpx

from mailcheck.checks.mta_sts_observation import (
    MAX_POLICY_BYTES,
    POLICY_PATH,
    FetchAttempt,
    FetchStep,
    MtaStsObservation,
    PolicyFetch,
    PolicyResponse,
    content_codings,
)
from mailcheck.checks.mta_sts_record import is_sts_candidate, join_txt
from mailcheck.dns import DnsClient

DEFAULT_TIMEOUT = 10.0
MAX_ADDRESSES = 4
"""Policy host addresses tried at most, in order (IPv4 first), before giving up."""
USER_AGENT = "mailcheck (MTA-STS policy check)"
MAX_CODINGS = 3
"""Content codings undone at most; a body with more stacked on it is not decoded."""
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""zlib's window bits per supported content coding (RFC 9110 §8.4.1: gzip; deflate = zlib)."""

Roots = ssl.SSLContext | str | os.PathLike[str] | None
"""Trust for the policy host: a ready context, a CA file (PEM), or None for the system store."""


def policy_context(roots: Roots) -> ssl.SSLContext:
    """A client context verifying certificates and names against `roots`.

    A CA file replaces the system store (`--ca-file`); a given context is used as it is.
    Raises ValueError when the CA file cannot be loaded.
    """
    if isinstance(roots, ssl.SSLContext):
        return roots
    try:
        context = ssl.create_default_context(cafile=None if roots is None else os.fspath(roots))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load CA file {roots}: {exc}") from None
    context.check_hostname = True  # PKIX validation of mta-sts.<domain> (RFC 8461 §3.3)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def gather_mta_sts(
    dns: DnsClient,
    domain: str,
    *,
    port: int = 443,
    roots: Roots = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> MtaStsObservation:
    """Look up `_mta-sts` and `_smtp._tls` TXT concurrently; fetch the policy when announced.

    `port` is the policy host's HTTPS port (443 except in labs); `timeout` bounds each
    address tried (connect, handshake, request and body together).
    """
    domain = domain.lower().rstrip(".")
    sts_txt, tlsrpt_txt = await asyncio.gather(
        dns.query(f"_mta-sts.{domain}", "TXT"), dns.query(f"_smtp._tls.{domain}", "TXT")
    )
    fetch = None
    # RFC 8461 §3.3: the policy is fetched only after a TXT record announces it. A broken or
    # duplicated record is fetched anyway, so the report can say what else needs fixing.
    if any(is_sts_candidate(join_txt(strings)) for strings in sts_txt.txt_strings()):
        context = policy_context(roots)
        fetch = await fetch_policy(dns, domain, port=port, context=context, timeout=timeout)
    return MtaStsObservation(domain, sts_txt, tlsrpt_txt, fetch)


async def fetch_policy(
    dns: DnsClient, domain: str, *, port: int, context: ssl.SSLContext, timeout: float
) -> PolicyFetch:
    """Resolve `mta-sts.<domain>` and GET the policy from its addresses, one after another."""
    host = f"mta-sts.{domain}"
    url = f"https://{host}{'' if port == 443 else f':{port}'}{POLICY_PATH}"
    a, aaaa = await asyncio.gather(dns.query(host, "A"), dns.query(host, "AAAA"))
    attempts: list[FetchAttempt] = []
    for address in (a.addresses() + aaaa.addresses())[:MAX_ADDRESSES]:
        outcome = await fetch_from(address, host, port, context, timeout)
        if isinstance(outcome, PolicyResponse):
            return PolicyFetch(host, url, a, aaaa, tuple(attempts), outcome)
        attempts.append(outcome)
    return PolicyFetch(host, url, a, aaaa, tuple(attempts), None)


async def fetch_from(
    address: str, host: str, port: int, context: ssl.SSLContext, timeout: float
) -> PolicyResponse | FetchAttempt:
    """GET the policy from one address, as `host`; a response, or how the attempt failed."""
    events: list[str] = []

    async def trace(event: str, _info: dict[str, Any]) -> None:
        events.append(event)  # httpcore reports connect_tcp / start_tls / ... as they happen

    literal = f"[{address}]" if ":" in address else address
    headers = {
        "Host": host if port == 443 else f"{host}:{port}",
        "Accept": "text/plain",
        "Accept-Encoding": "identity",
        "User-Agent": USER_AGENT,
    }
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(
                verify=context,
                follow_redirects=False,  # RFC 8461 §3.3: senders MUST NOT follow redirects
                trust_env=False,  # no proxies or CA bundles from the environment
                timeout=httpx.Timeout(timeout),
            ) as client,
            client.stream(
                "GET",
                f"https://{literal}:{port}{POLICY_PATH}",
                headers=headers,
                extensions={"sni_hostname": host, "trace": trace},
            ) as response,
        ):
            raw, oversize = b"", False
            if response.status_code == 200:
                raw, oversize = await _read_capped(response)
            encoding = response.headers.get("content-encoding")
            body, decode_error = None, None
            if response.status_code == 200 and not oversize:
                decoded = decode_content(raw, content_codings(encoding))
                if isinstance(decoded, str):
                    decode_error = decoded
                elif len(decoded) > MAX_POLICY_BYTES:
                    oversize = True
                else:
                    body = decoded.decode("utf-8", errors="replace")
            return PolicyResponse(
                address=address,
                status=response.status_code,
                reason=response.reason_phrase,
                content_type=response.headers.get("content-type"),
                location=response.headers.get("location"),
                body=body,
                body_bytes=len(raw),
                oversize=oversize,
                content_encoding=encoding,
                decode_error=decode_error,
            )
    except (TimeoutError, httpx.TimeoutException):
        return FetchAttempt(address, _step(events), f"no answer within {timeout:g} s", True, False)
    except (httpx.HTTPError, OSError, ssl.SSLError, ValueError) as exc:
        return _failed(address, _step(events), exc)


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    """The body as sent, content codings left alone, and whether it is over MAX_POLICY_BYTES.

    Stops reading one chunk past the cap and keeps at most one byte more than it.
    """
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > MAX_POLICY_BYTES:
            return bytes(body[: MAX_POLICY_BYTES + 1]), True
    return bytes(body), False


def decode_content(
    raw: bytes, codings: Sequence[str], limit: int = MAX_POLICY_BYTES
) -> bytes | str:
    """Undo `codings` (in the order applied) on `raw`, the last applied first.

    Returns the decoded body, or why it cannot be decoded. No step yields more than `limit + 1`
    bytes: a longer result means the body is too long, and decoding stopped there. Only gzip
    and deflate are supported, as in most HTTP clients.
    """
    if len(codings) > MAX_CODINGS:
        return f"{len(codings)} content codings stacked ({', '.join(codings)})"
    unsupported = [c for c in codings if c not in _WBITS]
    if unsupported:
        return f"content coding {unsupported[0]} is not supported (only gzip and deflate)"
    data = raw
    for coding in reversed(codings):
        decoded = _inflate(data, _WBITS[coding], limit)
        if isinstance(decoded, str) and coding == "deflate":
            # RFC 9110 §8.4.1.2: deflate is the zlib format, but some servers send raw deflate.
            raw_deflate = _inflate(data, -zlib.MAX_WBITS, limit)
            decoded = decoded if isinstance(raw_deflate, str) else raw_deflate
        if isinstance(decoded, str):
            return f"{coding}: {decoded}"
        if len(decoded) > limit:
            return decoded
        data = decoded
    return data


def _inflate(data: bytes, wbits: int, limit: int) -> bytes | str:
    """One zlib/gzip layer (gzip may have several members), stopping past `limit` bytes out."""
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            # max_length > 0 here (len(out) <= limit), and 0 would mean "no limit".
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            return f"corrupt data ({exc})"
        if len(out) > limit:
            return bytes(out)
        if not inflater.eof:
            return "truncated data"
        rest = inflater.unused_data
        if not rest:
            return bytes(out)
        if wbits != _WBITS["gzip"]:
            return "data after the end of the stream"


def _step(events: list[str]) -> FetchStep:
    """The step a failed attempt stopped in, from httpcore's trace events."""
    if "connection.connect_tcp.complete" not in events:
        return FetchStep.CONNECT
    if "connection.start_tls.complete" not in events:
        return FetchStep.TLS
    return FetchStep.HTTP


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _failed(address: str, step: FetchStep, exc: BaseException) -> FetchAttempt:
    chain = _causes(exc)
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = (cause.verify_message or str(cause)).rstrip(".")
            return FetchAttempt(address, FetchStep.TLS, detail, False, True)
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            return FetchAttempt(address, FetchStep.TLS, cause.reason or str(cause), False, False)
    for cause in chain:
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            detail = os.strerror(cause.errno) if cause.errno else str(cause.strerror)
            return FetchAttempt(address, step, detail, False, False)
    detail = next((str(c) for c in reversed(chain) if str(c)), type(exc).__name__)
    return FetchAttempt(address, step, detail, False, False)
