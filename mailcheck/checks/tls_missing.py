"""Why STARTTLS is missing, from one SMTP session (pure): the troubleshooting story.

A sender that requires TLS logs only "TLS is required, but was not offered by host". The real
cause is one of: EHLO refused (the sender falls back to HELO, which has no STARTTLS), no ESMTP
at all, a firewall masking the keyword (Cisco ESMTP inspection), an IP block that the server
admits to only when asked anyway (STARTTLS, then `MAIL FROM:<>`), STARTTLS that works but is
not advertised, or TLS simply not enabled. Each is its own finding, with the server's words
as evidence, and each message says only what the probe really asked and heard. A server that
refuses HELO as well (or says 421 to EHLO) refuses the whole session: no sender gets as far as
STARTTLS, and Postfix says "refused to talk to me" (`hello_refused`).
tls_session.py calls in here and judges the rest of the session.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mailcheck.checks.tls_probe_result import SmtpProbe
from mailcheck.model import Finding, Severity
from mailcheck.smtp import Reply

CHECK = "tls"
NOT_OFFERED = "'TLS is required, but was not offered by host'"
"""What Postfix logs when a sender that requires TLS finds no STARTTLS."""

_BLOCK_WORDS = re.compile(
    r"dnsbl|\brbl\b|rbl\b|blocked|block ?list|black ?list|(?<![a-z])listed\b|reputation"
    r"|spamhaus|spamcop|barracuda|sorbs|\bbl\.",
    re.I,
)
"""Words with which receivers name an IP reputation block (DNSBL) in a reply."""


def block_words(reply: Reply | None) -> str | None:
    """The blocklist words in a non-2xx reply (e.g. `DNSBL, RBL, blocked`), or None."""
    if reply is None or reply.positive:
        return None
    found = dict.fromkeys(m[0] for m in _BLOCK_WORDS.finditer(reply.text))
    return ", ".join(found) or None


def block_reply(*replies: Reply | None) -> Reply | None:
    """The first reply that names a blocklist."""
    return next((r for r in replies if block_words(r)), None)


def stopped_by_deadline(p: SmtpProbe) -> bool:
    """The probe ran out of its whole-probe time limit (the rest of the session is unknown)."""
    return p.stopped is not None and p.stopped.deadline


def hidden_evidence(p: SmtpProbe) -> dict[str, Any]:
    """The replies of the hidden-reason probe, and where the session stopped, as evidence."""
    out: dict[str, Any] = {}
    for key, reply in (
        ("ehlo", p.ehlo),
        ("helo", p.helo),
        ("starttls_anyway", p.starttls_anyway),
        ("mail_from", p.mail_from),
    ):
        if reply is not None:
            out[key] = reply.text
    if p.stopped is not None:
        out["stopped"] = p.stopped.to_json()
    return out


def refused_before_tls(p: SmtpProbe) -> Reply | None:
    """The reply that refuses the session before TLS: a non-2xx greeting, 421 to EHLO, or
    HELO's non-2xx reply after a refused EHLO; None when the session was not refused."""
    if p.greeting is not None and not p.greeting.positive:
        return p.greeting
    if p.ehlo is not None and p.ehlo.code == 421:
        return p.ehlo
    if p.ehlo is not None and not p.ehlo.positive and p.helo is not None:
        return None if p.helo.positive else p.helo
    return None


def hello_refused(p: SmtpProbe, refusal: Reply, where: str, base: dict[str, Any]) -> Finding:
    """The server refuses the session at its hello: 421 to EHLO, or EHLO and then HELO refused.

    Postfix smtp(8) gives up there ("host H[ip] refused to talk to me: <reply>") at every TLS
    level: the question of STARTTLS never comes up.
    """
    evidence = {**base, **hidden_evidence(p)}
    blocked = block_reply(p.ehlo, p.helo, p.starttls_anyway, p.mail_from)
    temporary = refusal.code // 100 == 4
    said = (
        f"closes the session at EHLO: '{refusal.text}'"
        if p.helo is None
        else f"rejects EHLO ('{p.ehlo.text if p.ehlo else '?'}') and HELO too: '{refusal.text}'"
    )
    why = _block_note(blocked)
    return tls_finding(
        "tls.helo-rejected", Severity.WARNING if temporary else Severity.ERROR,
        f"{where} {said}. Senders log 'host {p.host}[{p.ip}] refused to talk to me: "
        f"{refusal.text}' and cannot deliver, whatever their TLS settings: the session ends "
        f"before STARTTLS.{why}",
        {**evidence, "block": block_words(blocked)} if blocked else evidence,
        "Get the sending address delisted (see the dnsbl check)."
        if blocked
        else "Retry later; if it persists, check the server's connection and rate limits."
        if temporary
        else "Find the rule that rejects EHLO and HELO (HELO name checks, client "
        "restrictions applied at HELO) and let the session go on; reject later, at RCPT, if you "
        "must.",
        "RFC 5321 §3.8" if refusal.code == 421 else "RFC 5321 §4.1.1.1",
        indeterminate=temporary,
    )  # fmt: skip


def ehlo_refused(p: SmtpProbe, ehlo: Reply, where: str, base: dict[str, Any]) -> Finding:
    """EHLO got a non-2xx reply (not 421) and HELO was accepted: no ESMTP, or EHLO rejected."""
    evidence = {**base, **hidden_evidence(p)}
    if ehlo.code in (500, 502):
        return tls_finding(
            "tls.no-esmtp", Severity.ERROR,
            f"{where} does not understand EHLO ('{ehlo.text}'): it speaks only old SMTP "
            f"without extensions, so STARTTLS is impossible. Senders that require TLS report "
            f"{NOT_OFFERED}.",
            evidence,
            "Upgrade or replace the mail server, or the proxy in front of it, with one that "
            "supports ESMTP and STARTTLS.",
            "RFC 5321 §4.1.1.1; RFC 3207 §4",
        )  # fmt: skip
    blocked = block_reply(p.ehlo, p.helo, p.starttls_anyway, p.mail_from)
    why = _block_note(blocked)
    return tls_finding(
        "tls.ehlo-rejected", Severity.ERROR,
        f"{where} rejects EHLO: '{ehlo.text}'. Senders then fall back to HELO, which cannot "
        f"negotiate TLS, so a sender that requires TLS reports {NOT_OFFERED}: the real cause "
        f"is this EHLO rejection.{why}",
        {**evidence, "block": block_words(blocked)} if blocked else evidence,
        "Get the sending address delisted (see the dnsbl check)."
        if blocked
        else "Find the rule that rejects EHLO (HELO name checks, client restrictions applied "
        "at EHLO) and let EHLO succeed; reject later, at RCPT, if you must.",
        "RFC 5321 §4.1.1.1; RFC 3207 §4",
    )  # fmt: skip


def not_advertised(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    """EHLO worked but did not list STARTTLS: masked, hidden by a block, unadvertised (but
    working), or missing. The TLS session of a 220 to STARTTLS sent anyway is judged by the
    caller."""
    evidence = {**base, **hidden_evidence(p)}
    if p.masked_keywords or p.masked_banner:
        shown = ", ".join(p.masked_keywords) or "none"
        return tls_finding(
            "tls.starttls-masked", Severity.ERROR,
            f"A firewall in front of {where} hides STARTTLS: the EHLO keywords include masked "
            f"ones ({shown}){' and the greeting is asterisks' if p.masked_banner else ''}, "
            "the mark of Cisco ESMTP inspection, which overwrites what it does not know. "
            f"Mail arrives unencrypted, and senders that require TLS report {NOT_OFFERED}.",
            {**evidence, "masked_keywords": list(p.masked_keywords),
             "masked_banner": p.masked_banner},
            "Turn off SMTP/ESMTP inspection on the firewall (Cisco ASA: `no inspect esmtp`) or "
            "let STARTTLS through it.",
            "RFC 3207 §4",
        )  # fmt: skip
    blocked = block_reply(p.starttls_anyway, p.mail_from)
    if blocked is not None:
        return tls_finding(
            "tls.starttls-hidden-block", Severity.ERROR,
            f"{where} does not offer STARTTLS to the address we probed from, and the reason is "
            f"an IP block: asked anyway, it answered '{blocked.text}'. A sender that requires "
            f"TLS logs only {NOT_OFFERED}; the cause is this blocklisting, not the server's "
            "TLS configuration.",
            {**evidence, "block": block_words(blocked)},
            "Get the sending address delisted with the operator named in the reply (see the "
            "dnsbl check). The receiving server's TLS configuration is not the problem.",
            "RFC 3207 §4",
        )  # fmt: skip
    if p.tls is not None and p.tls.ok:
        return tls_finding(
            "tls.starttls-unadvertised", Severity.ERROR,
            f"{where} accepts STARTTLS ({p.tls.version} works) but does not list it in its "
            "EHLO reply, so senders never try it: mail arrives unencrypted, and senders that "
            f"require TLS report {NOT_OFFERED}.",
            {**evidence, "tls_version": p.tls.version},
            "Make the server advertise STARTTLS in EHLO (Postfix: smtpd_tls_security_level = "
            "may; check smtpd_discard_ehlo_keywords and any proxy that filters EHLO).",
            "RFC 3207 §4",
        )  # fmt: skip
    handshake_failed = p.tls is not None and not stopped_by_deadline(p)
    return tls_finding(
        "tls.starttls-missing", Severity.ERROR,
        f"{where} does not offer STARTTLS. Mail to it travels unencrypted, and senders that "
        f"require TLS (DANE, MTA-STS enforce, mandatory-TLS policies) report {NOT_OFFERED}. "
        f"{_asked_anyway(p)}",
        evidence,
        "Fix the server's TLS setup (see tls.handshake-failed), then let it advertise STARTTLS "
        "(Postfix: smtpd_tls_security_level = may)."
        if handshake_failed
        else "Enable STARTTLS with a certificate for the MX host name (Postfix: "
        "smtpd_tls_security_level = may and smtpd_tls_chain_files = key, certificate, chain).",
        "RFC 3207 §4",
    )  # fmt: skip


def _asked_anyway(p: SmtpProbe) -> str:
    """What the hidden-reason probe asked and heard, in words: only what was really sent."""
    stop = p.stopped.failure.detail if p.stopped is not None else "no reply"
    anyway = p.starttls_anyway
    if anyway is None:
        return (
            f"STARTTLS sent anyway got no answer ({stop}), so whether an IP block hides it is "
            "unknown."
        )
    if anyway.code == 220:
        if p.tls is None or stopped_by_deadline(p):
            return (
                f"Sent anyway, STARTTLS got '{anyway.text}', but the TLS handshake did not "
                f"complete ({stop})."
            )
        return (
            f"Sent anyway, STARTTLS got '{anyway.text}', but the TLS handshake then failed "
            "(tls.handshake-failed): TLS is set up, but broken and not advertised."
        )
    if p.mail_from is None:
        return (
            f"Sent anyway, STARTTLS got '{anyway.text}', naming no block; MAIL FROM then got no "
            f"answer ({stop}), so whether an IP block hides STARTTLS is unknown."
        )
    return (
        f"Sent anyway, STARTTLS got '{anyway.text}' and MAIL FROM got '{p.mail_from.text}': "
        "neither names a block, so TLS is simply not enabled."
    )


tls_finding = functools.partial(Finding, CHECK)
"""A finding of the tls check: Finding without its first argument."""


def _block_note(blocked: Reply | None) -> str:
    """The sentence that names an IP reputation block, when a reply has blocklist words."""
    if blocked is None:
        return ""
    return (
        f" It names a blocklist ('{block_words(blocked)}'): an IP reputation block against the "
        "address we probed from, not a TLS problem."
    )
