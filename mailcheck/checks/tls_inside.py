"""What the server does inside TLS, after a good handshake (pure): Postfix's EHLO again.

Postfix smtp(8) repeats its hello inside TLS (smtp_start_tls -> smtp_helo): EHLO, HELO when
EHLO is refused with anything but 421. A 421, or HELO refused too, is "host H[ip] refused to
talk to me" at every level; a connection lost there is "lost connection with H[ip] while
performing the EHLO handshake", after which opportunistic senders retry without TLS; EHLO
refused but HELO accepted still carries mail over TLS, without ESMTP. tls_session.py calls
`after_tls_finding`; tls_report.py turns the same facts into the sender's session.
"""

from __future__ import annotations

from typing import Any

from mailcheck.checks.tls_missing import tls_finding
from mailcheck.checks.tls_probe_result import SmtpProbe
from mailcheck.model import Finding, Severity
from mailcheck.smtp import FailureKind, Reply


def refused_inside_tls(p: SmtpProbe) -> Reply | None:
    """The reply that refuses the session inside TLS: 421 to EHLO, or HELO's non-2xx reply
    after a refused EHLO; None when the server did not refuse it (or it is not known)."""
    ehlo, helo = p.post_tls_ehlo, p.post_tls_helo
    if ehlo is None or ehlo.positive:
        return None
    if helo is None:
        return ehlo if ehlo.code == 421 else None
    return None if helo.positive else helo


def lost_inside_tls(p: SmtpProbe) -> str | None:
    """The command inside TLS (`EHLO`, or `HELO` after a refused EHLO) at which the server
    closed the connection; None when it did not."""
    error = p.post_tls_error
    if error is None or error.kind is not FailureKind.CLOSED:
        return None
    return "HELO" if p.post_tls_ehlo is not None and not p.post_tls_ehlo.positive else "EHLO"


def after_tls_finding(p: SmtpProbe, where: str, about: dict[str, Any]) -> Finding | None:
    """The EHLO (and HELO) inside TLS, as Postfix's smtp_helo() goes through them again."""
    ehlo, helo, error = p.post_tls_ehlo, p.post_tls_helo, p.post_tls_error
    peer = f"{p.host}[{p.ip}]"
    evidence = {**about, "post_tls_ehlo": ehlo.text if ehlo else None,
                "post_tls_helo": helo.text if helo else None,
                "post_tls_error": error.to_json() if error else None}  # fmt: skip
    refused = ehlo is not None and not ehlo.positive
    if refused and helo is not None and helo.positive:
        assert ehlo is not None
        return tls_finding(
            "tls.ehlo-rejected-after-tls", Severity.WARNING,
            f"TLS with {where} works ({p.tls.version if p.tls else '?'}), but inside TLS the "
            f"server rejects EHLO ('{ehlo.text}') and accepts only HELO. Senders go on with "
            "HELO and deliver over TLS, but without ESMTP extensions (SIZE, 8BITMIME, "
            "SMTPUTF8, DSN, PIPELINING): 8-bit mail is converted, SMTPUTF8 mail cannot be "
            "delivered.",
            evidence,
            "Let EHLO succeed inside TLS too (check restrictions that apply to TLS sessions, "
            "and any proxy that terminates TLS in front of the server).",
            "RFC 5321 §4.1.1.1; RFC 3207 §4.2",
        )  # fmt: skip
    refusal = refused_inside_tls(p)
    if refusal is not None:
        what = (
            f"closes the session at the EHLO inside TLS: '{refusal.text}'"
            if helo is None
            else f"rejects EHLO ('{ehlo.text if ehlo else '?'}') and HELO ('{refusal.text}') "
            "inside TLS"
        )
        said = (
            f"Senders log 'host {peer} refused to talk to me: {refusal.text}' and defer at "
            "every TLS level; this is no TLS failure, so opportunistic senders do not fall back "
            "to plaintext."
        )
        return _rejected_after_tls(p, where, what, said, evidence)
    lost = lost_inside_tls(p)
    if lost is not None and error is not None:
        what = f"drops the connection at the {lost} inside TLS ({error.detail})"
        said = (
            f"Senders log 'lost connection with {peer} while performing the {lost} "
            "handshake' and defer; opportunistic ones (Postfix `may`) retry later without "
            "TLS, those that require TLS keep deferring."
        )
        return _rejected_after_tls(p, where, what, said, evidence)
    if error is not None:
        command = "HELO" if refused else "EHLO"
        what = f"fails at the {command} inside TLS ({error.kind.value}: {error.detail})"
        said = (
            "Senders wait longer than this probe (Postfix up to 300 s) and may read a reply "
            "that never came here, so what they do is unknown."
            if error.kind is FailureKind.TIMEOUT
            else "What senders do with that is unknown."
        )
        return _rejected_after_tls(p, where, what, said, evidence, indeterminate=True)
    if refused and ehlo is not None:  # HELO inside TLS was never asked (odd data)
        what = f"rejects the EHLO inside TLS: '{ehlo.text}'"
        said = "Senders then try HELO inside TLS; this probe did not, so what follows is unknown."
        return _rejected_after_tls(p, where, what, said, evidence, indeterminate=True)
    return None


def _rejected_after_tls(
    p: SmtpProbe,
    where: str,
    what: str,
    said: str,
    evidence: dict[str, Any],
    *,
    indeterminate: bool = False,
) -> Finding:
    return tls_finding(
        "tls.rejected-after-tls", Severity.ERROR,
        f"TLS with {where} works ({p.tls.version if p.tls else '?'}), but the server then "
        f"{what}. {said}",
        evidence,
        "Check the server's log for TLS sessions: a policy that rejects TLS clients, a "
        "crash after the handshake, or a proxy that cannot carry TLS.",
        "RFC 3207 §4.2", indeterminate=indeterminate,
    )  # fmt: skip
