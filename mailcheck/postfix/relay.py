"""`mailcheck relay HOST[:PORT]`: does your server relay for strangers? Never sends DATA.

Conversation (RFC 5321 §3.3): greeting, EHLO, on 587 STARTTLS and EHLO again (RFC 3207),
`MAIL FROM:<probe@outside.invalid>`, `RCPT TO:<external>`, RSET, QUIT. On 465 TLS comes first
(RFC 8314 §3.3). When AUTH PLAIN or LOGIN is offered before TLS, `AUTH LOGIN` is sent and
cancelled at the challenge (no credentials). The conversation goes through the one async SMTP
layer (mailcheck.smtp), to the address the DNS layer resolved. `data` (docs/json.md): {"host",
"address", "port", "mode", "greeting", "ehlo_plain", "ehlo_tls", "starttls", "auth_plain",
"auth_mechanisms_plain", "auth_challenge", "mail", "rcpt", "error"}.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field

from mailcheck.dns import DnsClient, DnsConfig, system_nameservers
from mailcheck.model import CheckResult, Finding, Severity
from mailcheck.smtp import FailureKind, Reply, SmtpConnection, SmtpFailure

CHECK = "relay"
PROBE_SENDER = "probe@outside.invalid"
PROBE_RECIPIENT = "relay-probe@example.net"
EHLO_NAME = "mailcheck.invalid"
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
"""SASL mechanisms that carry the password itself (RFC 4616, draft-murchison-sasl-login)."""


@dataclass
class RelayObservation:
    """What one probe saw, filled in step by step; replies as text, None where not reached."""

    host: str
    """The host as the user named it (a name or an address)."""
    port: int
    """The TCP port probed."""
    mode: str
    """`relay` (25 and others), `submission` (587, STARTTLS) or `implicit` (465)."""
    greeting: str | None = None
    """The 220 greeting (after the TLS handshake on 465)."""
    ehlo_plain: list[str] | None = None
    """EHLO keywords before TLS (None on 465)."""
    starttls: str | None = None
    """The reply to STARTTLS (submission only)."""
    ehlo_tls: list[str] | None = None
    """EHLO keywords inside TLS (after STARTTLS, or on 465)."""
    mail: str | None = None
    """The reply to `MAIL FROM:<probe@outside.invalid>`."""
    rcpt: str | None = None
    """The reply to `RCPT TO:<relay-probe@example.net>`."""
    rcpt_code: int | None = None
    """Its code: 2xx is an open relay."""
    error: dict[str, str] = field(default_factory=dict)
    """{"step", "kind", "message"} when the conversation broke off."""
    address: str | None = None
    """The address connected to: the host itself, or its first A (else AAAA) record."""
    auth_mechanisms_plain: list[str] | None = None
    """SASL mechanisms advertised before TLS (None when no EHLO in plain text was answered)."""
    auth_challenge: str | None = None
    """The reply to `AUTH LOGIN` (or `AUTH PLAIN`) sent before TLS when PLAIN/LOGIN was offered
    there; the exchange is cancelled at once, no credentials are ever sent."""

    @property
    def auth_plain(self) -> bool | None:
        """Whether AUTH PLAIN or LOGIN (a password readable on the wire) was offered before TLS;
        None when there was no plain-text EHLO (465, or the probe broke off before it)."""
        if self.auth_mechanisms_plain is None:
            return None
        return bool(PLAINTEXT_MECHANISMS & set(self.auth_mechanisms_plain))


def _keywords(reply: Reply) -> list[str]:
    # RFC 5321 §4.1.1.1: the first line is the greeting, the rest are extension keywords.
    return [line.split()[0].upper() for line in reply.lines[1:] if line.split()]


def _auth_mechanisms(reply: Reply) -> list[str]:
    """The SASL mechanisms of an EHLO reply's AUTH line (RFC 4954 §3); old clients' `AUTH=`
    form counts too."""
    found: list[str] = []
    for line in reply.lines[1:]:
        words = line.upper().split()
        if words and (words[0] == "AUTH" or words[0].startswith("AUTH=")):
            first = words[0][5:] if words[0].startswith("AUTH=") else ""
            found += [m for m in [first, *words[1:]] if m and m not in found]
    return found


class ResolveError(Exception):
    """The host name has no usable address (or the lookup failed)."""


async def resolve_host(dns: DnsClient, host: str) -> str:
    """The address to probe: an IP literal as is, else the first A record, else the first AAAA.

    Names go through mailcheck's DNS layer, never the OS resolver (getaddrinfo).
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    failures: list[str] = []
    for rdtype in ("A", "AAAA"):
        answer = await dns.query(host, rdtype)
        addresses = [a for a in answer.addresses() if a]
        if addresses:
            return addresses[0]
        failures.append(
            f"{rdtype} {answer.outcome}" + (f" ({answer.detail})" if answer.detail else "")
        )
    raise ResolveError(f"{host} has no address: " + ", ".join(failures))


async def probe_relay(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    dns: DnsClient | None = None,
    mode: str | None = None,
) -> RelayObservation:
    """Run the probe against host:port through mailcheck.smtp; every step bounded by timeout.

    A host name is resolved with `dns` (default: a DnsClient over the resolv.conf
    nameservers), A then AAAA, first address; the SMTP layer connects to that address. `mode`
    overrides the one implied by the port (587 submission, 465 implicit, else relay), for
    services on other ports.
    """
    mode = mode or {587: "submission", 465: "implicit"}.get(port, "relay")
    obs = RelayObservation(host, port, mode)
    try:
        client = dns if dns is not None else DnsClient(DnsConfig(system_nameservers()))
        address = await resolve_host(client, host)
    except ResolveError as exc:
        obs.error = {"step": "resolve", "kind": "dns", "message": str(exc)}
        return obs
    obs.address = address
    opened = await SmtpConnection.open(address, port, timeout)
    if isinstance(opened, SmtpFailure):
        obs.error = _connect_error(opened, address, port)
        return obs
    try:
        await _converse(_Session(opened, obs, timeout), host)
    finally:
        opened.close()
    return obs


class _Session:
    """One probe conversation: each step's failure is recorded in the observation, once."""

    def __init__(self, conn: SmtpConnection, obs: RelayObservation, timeout: float) -> None:
        self.conn = conn
        self.obs = obs
        self.timeout = timeout

    def failed(self, step: str, failure: SmtpFailure) -> None:
        # A failure after the transaction (RSET, QUIT) changes nothing that was observed.
        if step not in ("rset", "quit"):
            kind = _READ_KINDS.get(failure.kind, "closed")
            self.obs.error = {"step": step, "kind": kind, "message": failure.detail}

    async def reply(self, step: str) -> Reply | None:
        """The next whole reply, or None (the failure recorded) when none came."""
        got = await self.conn.read_reply(self.timeout)
        if isinstance(got, SmtpFailure):
            self.failed(step, got)
            return None
        return got

    async def ask(self, step: str, line: str) -> Reply | None:
        """Send one command and read its reply, or None (the failure recorded)."""
        got = await self.conn.command(line, self.timeout)
        if isinstance(got, SmtpFailure):
            self.failed(step, got)
            return None
        return got

    async def handshake(self, step: str, server_name: str) -> bool:
        """TLS on this connection (SNI: the name the user gave); certificates are not judged
        here (the tls check does that). Any failure, a timeout too, is of kind `tls`."""
        # RFC 3207 §4.2: anything sent after the 220 to STARTTLS is not part of TLS.
        early = self.conn.take_buffered()
        if early:
            self.conn.note(f"discarded {len(early)} octets received before the handshake")
        got = await self.conn.start_tls(_tls_context(), server_name, self.timeout)
        if isinstance(got, SmtpFailure):
            message = (
                f"TLS handshake timed out after {self.timeout:g} s"
                if got.kind is FailureKind.TIMEOUT
                else f"TLS handshake failed: {got.detail}"
            )
            self.obs.error = {"step": step, "kind": "tls", "message": message}
            return False
        return True


async def _converse(session: _Session, host: str) -> None:
    obs = session.obs
    # RFC 8314 §3.3: on implicit TLS the handshake comes before the greeting.
    if obs.mode == "implicit" and not await session.handshake("connect", host):
        return
    greeting = await session.reply("greeting")
    if greeting is None:
        return
    obs.greeting = greeting.text
    if greeting.code != 220:
        return
    ehlo = await session.ask("ehlo", f"EHLO {EHLO_NAME}")
    if ehlo is None:
        return
    if ehlo.code != 250:
        obs.error = {"step": "ehlo", "kind": "refused", "message": ehlo.text}
        return
    if obs.mode == "implicit":
        obs.ehlo_tls = _keywords(ehlo)
    else:
        obs.ehlo_plain = _keywords(ehlo)
        obs.auth_mechanisms_plain = _auth_mechanisms(ehlo)
    if obs.auth_plain:
        obs.auth_challenge = await _try_plain_auth(session, obs.auth_mechanisms_plain or [])
        if obs.auth_challenge is None:
            return
    if obs.mode == "submission" and "STARTTLS" in (obs.ehlo_plain or []):
        reply = await session.ask("starttls", "STARTTLS")
        if reply is None:
            return
        obs.starttls = reply.text
        if reply.code == 220:
            if not await session.handshake("starttls", host):
                return
            again = await session.ask("ehlo", f"EHLO {EHLO_NAME}")
            if again is None:
                return
            obs.ehlo_tls = _keywords(again)
    mail = await session.ask("mail", f"MAIL FROM:<{PROBE_SENDER}>")
    if mail is None:
        return
    obs.mail = mail.text
    if mail.code == 250:
        rcpt = await session.ask("rcpt", f"RCPT TO:<{PROBE_RECIPIENT}>")
        if rcpt is None:
            return
        obs.rcpt, obs.rcpt_code = rcpt.text, rcpt.code
        # never DATA: the transaction is abandoned here
        if await session.ask("rset", "RSET") is None:
            return
    await session.ask("quit", "QUIT")


def _offers_auth(keywords: list[str]) -> bool:
    return any(k == "AUTH" or k.startswith("AUTH=") for k in keywords)


async def _try_plain_auth(session: _Session, mechanisms: list[str]) -> str | None:
    """`AUTH LOGIN` (else `AUTH PLAIN` without an initial response) before TLS (RFC 4954 §4):
    a 334 challenge means the server would take a password in plain text; the exchange is
    cancelled with `*` at once, no credentials sent. The reply, or None when the conversation
    broke off."""
    reply = await session.ask("auth", "AUTH LOGIN" if "LOGIN" in mechanisms else "AUTH PLAIN")
    if reply is None:
        return None
    if reply.code == 334 and await session.ask("auth", "*") is None:  # RFC 4954 §4: cancel
        return None
    return reply.text


def _tls_context() -> ssl.SSLContext:
    """Python's default client context without verification: the probe only needs the
    channel; the tls check judges certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _connect_error(failure: SmtpFailure, address: str, port: int) -> dict[str, str]:
    if failure.kind is FailureKind.TIMEOUT:
        return {
            "step": "connect",
            "kind": "timeout",
            "message": f"connecting to {address}:{port} timed out",
        }
    message = f"cannot connect to {address}:{port}: {failure.detail}"
    return {"step": "connect", "kind": "connect", "message": message}


_READ_KINDS = {
    FailureKind.TIMEOUT: "timeout",
    FailureKind.CLOSED: "closed",
    FailureKind.MALFORMED: "malformed",
}
"""The `error.kind` of a failed read or write (docs/json.md); anything else counts as closed."""


def _f(
    code: str,
    sev: Severity,
    msg: str,
    obs: RelayObservation,
    remedy: str = "",
    rfc: str = "",
    indeterminate: bool = False,
) -> Finding:
    evidence = {
        "host": obs.host,
        "address": obs.address,
        "port": obs.port,
        "rcpt": obs.rcpt,
        "error": obs.error,
    }
    if obs.auth_plain is not None:
        evidence["auth_plain"] = obs.auth_plain
    if obs.auth_challenge is not None:
        evidence["auth_challenge"] = obs.auth_challenge
    return Finding(CHECK, code, sev, msg, evidence, remedy, rfc, indeterminate)


def evaluate_relay(obs: RelayObservation) -> CheckResult:
    """Pure: the observation → the `relay` CheckResult."""
    where = f"{obs.host}:{obs.port}"
    found: list[Finding] = []
    err = obs.error
    if err and err["step"] in ("resolve", "connect", "greeting") and obs.greeting is None:
        code = {"tls": "relay.implicit-tls-failed", "malformed": "relay.malformed-reply"}.get(
            err["kind"], "relay.unreachable"
        )
        found.append(
            _f(
                code,
                Severity.ERROR,
                f"{where}: {err['message']}.",
                obs,
                "Check that the service listens there and is not firewalled.",
                "RFC 8314 §3.3" if code == "relay.implicit-tls-failed" else "",
                indeterminate=True,
            )
        )
        return CheckResult.from_findings(CHECK, found, _data(obs))
    if obs.greeting is not None and not obs.greeting.startswith("220"):
        found.append(
            _f(
                "relay.greeting-refused",
                Severity.ERROR,
                f"{where} refused the session: {obs.greeting}",
                obs,
                "The server refuses this client; probe from an address it accepts.",
                "RFC 5321 §3.1",
                indeterminate=True,
            )
        )
    elif err:
        kind = "relay.malformed-reply" if err["kind"] == "malformed" else "relay.incomplete"
        found.append(
            _f(
                kind,
                Severity.ERROR,
                f"{where}: the probe broke off at {err['step']}: {err['message']}",
                obs,
                indeterminate=True,
            )
        )
    if obs.mode == "submission" and obs.ehlo_plain is not None:
        if "STARTTLS" not in obs.ehlo_plain:
            found.append(
                _f(
                    "relay.starttls-missing",
                    Severity.ERROR,
                    f"{where} (submission) does not offer STARTTLS: passwords and mail "
                    "cross the network in plain text.",
                    obs,
                    "smtpd_tls_security_level=encrypt with a certificate on submission.",
                    "RFC 3207, RFC 8314 §3.3",
                )
            )
        if obs.ehlo_tls is not None and "AUTH" in obs.ehlo_tls and not _offers_auth(obs.ehlo_plain):
            found.append(
                _f(
                    "relay.auth-after-tls",
                    Severity.INFO,
                    f"{where} offers AUTH only after STARTTLS.",
                    obs,
                    rfc="RFC 4954 §4",
                )
            )
    if obs.auth_plain:
        challenged = obs.auth_challenge is not None and obs.auth_challenge.startswith("334")
        mechanisms = " ".join(
            m for m in obs.auth_mechanisms_plain or [] if m in PLAINTEXT_MECHANISMS
        )
        found.append(
            _f(
                "relay.auth-before-tls",
                Severity.ERROR,
                f"{where} offers AUTH {mechanisms} before TLS: a client may send its "
                "password in plain text"
                + (" (it answered with a challenge, so it would take one)." if challenged else "."),
                obs,
                "smtpd_tls_auth_only = yes",
                "RFC 4954 §4",
            )
        )
    if obs.mode == "implicit" and obs.ehlo_tls is not None:
        found.append(
            _f(
                "relay.implicit-tls",
                Severity.INFO,
                f"{where} speaks implicit TLS (submissions).",
                obs,
                rfc="RFC 8314 §3.3",
            )
        )
    if obs.mail is not None and not obs.mail.startswith("250"):
        found.append(
            _f(
                "relay.mail-refused",
                Severity.WARNING,
                f"{where} refused MAIL FROM:<{PROBE_SENDER}> ({obs.mail}): relaying "
                "could not be tested.",
                obs,
                indeterminate=True,
            )
        )
    rcpt_code = obs.rcpt_code
    if rcpt_code is not None and 200 <= rcpt_code < 300:
        found.append(
            _f(
                "relay.open",
                Severity.ERROR,
                f"{where} accepted RCPT TO:<{PROBE_RECIPIENT}> from an unauthenticated "
                f"client: it is an open relay ({obs.rcpt}).",
                obs,
                "smtpd_relay_restrictions = permit_mynetworks, "
                "permit_sasl_authenticated, reject_unauth_destination; narrow mynetworks.",
                "RFC 5321 §3.6.2",
            )
        )
    elif rcpt_code is not None and 500 <= rcpt_code < 600:
        found.append(
            _f(
                "relay.closed",
                Severity.INFO,
                f"{where} refused to relay to {PROBE_RECIPIENT} ({obs.rcpt}).",
                obs,
                rfc="RFC 5321 §3.6.2",
            )
        )
    elif rcpt_code is not None:
        found.append(
            _f(
                "relay.deferred",
                Severity.WARNING,
                f"{where} answered RCPT with a temporary refusal ({obs.rcpt}): not an open "
                "relay now, but defer_unauth_destination or a lookup problem may hide "
                "the final answer.",
                obs,
                "Use reject_unauth_destination for a definite refusal.",
            )
        )
    return CheckResult.from_findings(CHECK, found, _data(obs))


def _data(obs: RelayObservation) -> dict[str, object]:
    return {
        "host": obs.host,
        "address": obs.address,
        "port": obs.port,
        "mode": obs.mode,
        "greeting": obs.greeting,
        "ehlo_plain": obs.ehlo_plain,
        "ehlo_tls": obs.ehlo_tls,
        "starttls": obs.starttls,
        "auth_plain": obs.auth_plain,
        "auth_mechanisms_plain": obs.auth_mechanisms_plain,
        "auth_challenge": obs.auth_challenge,
        "mail": obs.mail,
        "rcpt": obs.rcpt,
        "error": dict(obs.error),
    }
