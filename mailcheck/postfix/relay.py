"""`mailcheck relay HOST[:PORT]`: does your server relay for strangers? Never sends DATA.

Conversation (RFC 5321 §3.3): greeting, EHLO, on 587 STARTTLS and EHLO again (RFC 3207),
`MAIL FROM:<probe@outside.invalid>`, `RCPT TO:<external>`, RSET, QUIT. On 465 TLS comes first
(RFC 8314 §3.3). `data` (docs/json.md): {"host", "port", "mode", "greeting", "ehlo_plain",
"ehlo_tls", "starttls", "mail", "rcpt", "error"}: replies as text, lists of EHLO keywords.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field

from mailcheck.dns import DnsClient, DnsConfig, system_nameservers
from mailcheck.model import CheckResult, Finding, Severity
from mailcheck.postfix.smtp import Reply, SmtpConnection, SmtpError

CHECK = "relay"
PROBE_SENDER = "probe@outside.invalid"
PROBE_RECIPIENT = "relay-probe@example.net"
EHLO_NAME = "mailcheck.invalid"


@dataclass
class RelayObservation:
    """What one probe saw; replies as text, None where the step was not reached."""

    host: str
    port: int
    mode: str
    """`relay` (25 and others), `submission` (587, STARTTLS) or `implicit` (465)."""
    greeting: str | None = None
    ehlo_plain: list[str] | None = None
    """EHLO keywords before TLS (None on 465)."""
    starttls: str | None = None
    ehlo_tls: list[str] | None = None
    mail: str | None = None
    rcpt: str | None = None
    rcpt_code: int | None = None
    error: dict[str, str] = field(default_factory=dict)
    """{"step", "kind", "message"} when the conversation broke off."""
    address: str | None = None
    """The address connected to: the host itself, or its first A (else AAAA) record."""
    auth_plain: str | None = None
    """The reply to `AUTH LOGIN` sent before TLS, when AUTH was advertised in plain text."""


def _keywords(reply: Reply) -> list[str]:
    # RFC 5321 §4.1.1.1: the first line is the greeting, the rest are extension keywords.
    return [line.split()[0].upper() for line in reply.lines[1:] if line.split()]


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


def probe_relay(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    dns: DnsClient | None = None,
    mode: str | None = None,
) -> RelayObservation:
    """Run the probe against host:port; every step bounded by timeout.

    A host name is resolved with `dns` (default: a DnsClient over the resolv.conf
    nameservers), A then AAAA, first address. `mode` overrides the one implied by the port
    (587 submission, 465 implicit, else relay), for services on other ports. Must not be
    called from a running event loop (it runs the lookup with asyncio.run).
    """
    mode = mode or {587: "submission", 465: "implicit"}.get(port, "relay")
    obs = RelayObservation(host, port, mode)
    step = "resolve"
    conn: SmtpConnection | None = None
    try:
        client = dns if dns is not None else DnsClient(DnsConfig(system_nameservers()))
        address = asyncio.run(resolve_host(client, host))
    except ResolveError as exc:
        obs.error = {"step": step, "kind": "dns", "message": str(exc)}
        return obs
    obs.address = address
    step = "connect"
    try:
        conn = SmtpConnection.open(address, port, timeout, implicit_tls=mode == "implicit")
        step = "greeting"
        greeting = conn.read_reply()
        obs.greeting = greeting.text
        if greeting.code != 220:
            return obs
        step = "ehlo"
        ehlo = conn.command(f"EHLO {EHLO_NAME}")
        if ehlo.code != 250:
            obs.error = {"step": step, "kind": "refused", "message": ehlo.text}
            return obs
        if mode == "implicit":
            obs.ehlo_tls = _keywords(ehlo)
        else:
            obs.ehlo_plain = _keywords(ehlo)
        if mode == "submission" and _offers_auth(obs.ehlo_plain or []):
            step = "auth"
            obs.auth_plain = _try_plain_auth(conn)
        if mode == "submission" and "STARTTLS" in (obs.ehlo_plain or []):
            step = "starttls"
            reply = conn.command("STARTTLS")
            obs.starttls = reply.text
            if reply.code == 220:
                conn.starttls(host)  # SNI: the name the user gave
                step = "ehlo"
                obs.ehlo_tls = _keywords(conn.command(f"EHLO {EHLO_NAME}"))
        step = "mail"
        mail = conn.command(f"MAIL FROM:<{PROBE_SENDER}>")
        obs.mail = mail.text
        if mail.code == 250:
            step = "rcpt"
            rcpt = conn.command(f"RCPT TO:<{PROBE_RECIPIENT}>")
            obs.rcpt, obs.rcpt_code = rcpt.text, rcpt.code
            step = "rset"
            conn.command("RSET")  # never DATA: the transaction is abandoned here
        step = "quit"
        conn.command("QUIT")
    except SmtpError as exc:
        if step not in ("rset", "quit"):
            obs.error = {"step": step, "kind": exc.kind, "message": str(exc)}
    finally:
        if conn is not None:
            conn.close()
    return obs


def _offers_auth(keywords: list[str]) -> bool:
    return any(k == "AUTH" or k.startswith("AUTH=") for k in keywords)


def _try_plain_auth(conn: SmtpConnection) -> str:
    """`AUTH LOGIN` before TLS (RFC 4954 §4): a 334 challenge means the server would take a
    password in plain text; the exchange is cancelled with `*` at once, no credentials sent."""
    reply = conn.command("AUTH LOGIN")
    if reply.code == 334:
        conn.command("*")  # RFC 4954 §4: cancel; the server answers 501
    return reply.text


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
        if _offers_auth(obs.ehlo_plain):
            accepted = obs.auth_plain is not None and obs.auth_plain.startswith("334")
            found.append(
                _f(
                    "relay.auth-before-tls",
                    Severity.ERROR,
                    f"{where} offers AUTH before STARTTLS: a client may send its "
                    "password in plain text"
                    + (" (it answered AUTH LOGIN with a challenge)." if accepted else "."),
                    obs,
                    "smtpd_tls_auth_only = yes",
                    "RFC 4954 §4",
                )
            )
        if obs.ehlo_tls is not None and "AUTH" in obs.ehlo_tls:
            found.append(
                _f(
                    "relay.auth-after-tls",
                    Severity.INFO,
                    f"{where} offers AUTH only after STARTTLS.",
                    obs,
                    rfc="RFC 4954 §4",
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
        "port": obs.port,
        "mode": obs.mode,
        "greeting": obs.greeting,
        "ehlo_plain": obs.ehlo_plain,
        "ehlo_tls": obs.ehlo_tls,
        "starttls": obs.starttls,
        "mail": obs.mail,
        "rcpt": obs.rcpt,
        "error": dict(obs.error),
    }
