"""`mailcheck relay HOST[:PORT]`: does your server relay for strangers? Never sends DATA.

Conversation (RFC 5321 §3.3): greeting, EHLO, on 587 STARTTLS and EHLO again (RFC 3207),
`MAIL FROM:<probe@outside.invalid>`, `RCPT TO:<external>`, RSET, QUIT. On 465 TLS comes first
(RFC 8314 §3.3). `data` (docs/json.md): {"host", "port", "mode", "greeting", "ehlo_plain",
"ehlo_tls", "starttls", "mail", "rcpt", "error"}: replies as text, lists of EHLO keywords.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def _keywords(reply: Reply) -> list[str]:
    # RFC 5321 §4.1.1.1: the first line is the greeting, the rest are extension keywords.
    return [line.split()[0].upper() for line in reply.lines[1:] if line.split()]


def probe_relay(host: str, port: int, timeout: float = 10.0) -> RelayObservation:
    """Run the probe against host:port; every step bounded by timeout."""
    mode = {587: "submission", 465: "implicit"}.get(port, "relay")
    obs = RelayObservation(host, port, mode)
    step = "connect"
    conn: SmtpConnection | None = None
    try:
        conn = SmtpConnection.open(host, port, timeout, implicit_tls=mode == "implicit")
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
        if mode == "submission" and "STARTTLS" in (obs.ehlo_plain or []):
            step = "starttls"
            reply = conn.command("STARTTLS")
            obs.starttls = reply.text
            if reply.code == 220:
                conn.starttls(host)
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


def _f(
    code: str,
    sev: Severity,
    msg: str,
    obs: RelayObservation,
    remedy: str = "",
    rfc: str = "",
    indeterminate: bool = False,
) -> Finding:
    evidence = {"host": obs.host, "port": obs.port, "rcpt": obs.rcpt, "error": obs.error}
    return Finding(CHECK, code, sev, msg, evidence, remedy, rfc, indeterminate)


def evaluate_relay(obs: RelayObservation) -> CheckResult:
    """Pure: the observation → the `relay` CheckResult."""
    where = f"{obs.host}:{obs.port}"
    found: list[Finding] = []
    err = obs.error
    if err and err["step"] in ("connect", "greeting") and obs.greeting is None:
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
        if any(k == "AUTH" or k.startswith("AUTH=") for k in obs.ehlo_plain):
            found.append(
                _f(
                    "relay.auth-before-tls",
                    Severity.ERROR,
                    f"{where} offers AUTH before STARTTLS: a client may send its "
                    "password in plain text.",
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
