"""What one SMTP session with an MX address says about STARTTLS (pure).

`session_findings` turns an `SmtpProbe` into findings: could not probe (from here), refused
or delayed at the greeting, EHLO refused, STARTTLS missing and why (an IP block the server
only admits to on the next command, a firewall masking it, or simply not configured), STARTTLS
refused, handshake failures, legacy TLS, rejection after TLS, STARTTLS command injection, and
an informative finding when all is well. The server's own words are quoted as evidence.
Certificates are judged elsewhere, from `probe.tls.chain_der`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mailcheck.checks.tls_probe import INJECTED, HandshakeError, SmtpProbe, Step
from mailcheck.model import Finding, Severity
from mailcheck.smtp import FailureKind, Reply

CHECK = "tls"
SLOW_GREETING_S = 10.0
"""A greeting slower than this is reported (RFC 5321 §4.5.3.2.1 lets senders wait 5 min)."""
MODERN_VERSIONS = ("TLSv1.2", "TLSv1.3")

_BLOCK_WORDS = re.compile(
    r"dnsbl|\brbl\b|rbl\b|blocked|block ?list|black ?list|(?<![a-z])listed\b|reputation"
    r"|spamhaus|spamcop|barracuda|sorbs|\bbl\.",
    re.I,
)
"""Words with which receivers name an IP reputation block (DNSBL) in a reply."""

NO_TLS_CODES = (
    "tls.unreachable",
    "tls.greeting-timeout",
    "tls.session-broken",
    "tls.greeting-rejected",
    "tls.greeting-tempfail",
    "tls.ehlo-rejected",
    "tls.no-esmtp",
    "tls.starttls-hidden-block",
    "tls.starttls-masked",
    "tls.starttls-unadvertised",
    "tls.starttls-missing",
    "tls.starttls-refused",
    "tls.handshake-failed",
    "tls.rejected-after-tls",
)
"""Codes that explain why a sender gets no usable TLS session; the first found is the `cause`."""
_NOT_OFFERED = "'TLS is required, but was not offered by host'"


def session_findings(
    probe: SmtpProbe, *, slow_greeting_s: float = SLOW_GREETING_S
) -> tuple[Finding, ...]:
    """Judge one probed session (pure)."""
    return tuple(_judge(probe, slow_greeting_s))


def starttls_cause(probe: SmtpProbe) -> str | None:
    """The code of the finding that explains why a sender gets no usable TLS session here.

    None when STARTTLS works (a legacy version or an injection bug still counts as working).
    """
    for finding in session_findings(probe):
        if finding.code in NO_TLS_CODES:
            return finding.code
    return None


def probe_json(probe: SmtpProbe) -> dict[str, Any]:
    """The probe's JSON form, with its `cause`."""
    return probe.to_json(cause=starttls_cause(probe))


def block_words(reply: Reply | None) -> str | None:
    """The blocklist words in a non-2xx reply (e.g. `DNSBL, RBL, blocked`), or None."""
    if reply is None or reply.positive:
        return None
    found = dict.fromkeys(m[0] for m in _BLOCK_WORDS.finditer(reply.text))
    return ", ".join(found) or None


def _judge(p: SmtpProbe, slow_s: float) -> Iterator[Finding]:
    where = f"{p.host}[{p.ip}]:{p.port}"
    base: dict[str, Any] = {"host": p.host, "ip": p.ip, "port": p.port}
    if not p.connected:
        yield _unreachable(p, where, base)
        return
    greeting = p.greeting
    if greeting is None:
        yield _broken(p, where, base)
        return
    base["greeting"] = greeting.text
    if not greeting.positive:
        yield _greeting_refused(greeting, where, base)
        return
    if p.greeting_ms is not None and p.greeting_ms > slow_s * 1000:
        seconds = p.greeting_ms / 1000
        yield _finding(
            "tls.slow-greeting", Severity.WARNING,
            f"{where} took {seconds:.1f} s to send its greeting. Senders may wait up to 5 "
            "minutes, but some give up after 30 or 60 s, and every delivery to you is slowed.",
            {**base, "greeting_ms": p.greeting_ms},
            "Greet within a few seconds: check greeting delays and tarpits (postscreen_greet_wait"
            "), slow reverse DNS lookups of clients at connect, and the server's load.",
            "RFC 5321 §4.5.3.2.1",
        )  # fmt: skip
    if p.ehlo is None or (not p.ehlo.positive and p.helo is None):
        yield _broken(p, where, base)
        return
    base["ehlo"] = p.ehlo.text
    if not p.ehlo.positive:
        yield _ehlo_refused(p, p.ehlo, where, base)
        return
    if p.starttls_offered:
        yield from _advertised(p, where, base)
    else:
        yield _not_advertised(p, where, base)
        if p.tls is not None and p.tls.ok:
            yield from _inside_tls(p, where, base)


def _unreachable(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    error = p.connect_error
    kind = error.kind.value if error else "error"
    detail = error.detail if error else "unknown"
    return _finding(
        "tls.unreachable", Severity.ERROR,
        f"Could not connect to {where} from here ({kind}: {detail}). This says nothing about "
        f"the server: outgoing port {p.port} is often blocked by ISPs, cloud providers and "
        "firewalls on the probing side, and mailcheck does not know which public address it "
        "probed from.",
        {**base, "error": kind, "detail": detail},
        f"Run mailcheck from the host that sends the mail, or from a network where port {p.port} "
        f"is open. If that host cannot connect either, check that the MX host listens on port "
        f"{p.port} and that no firewall in front of it drops connections.",
        indeterminate=True,
    )  # fmt: skip


def _broken(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    stopped = p.stopped
    # Without a recorded stop, the session ended on a reply: a 421 to HELO or EHLO.
    step = stopped.step if stopped else (
        Step.HELO if p.helo is not None else Step.EHLO if p.ehlo is not None else Step.GREETING
    )
    failure = stopped.failure if stopped else None
    evidence = {**base, "step": step.value}
    if failure is not None:
        evidence.update(failure.to_json())
    if failure is not None and failure.kind is FailureKind.TIMEOUT and step is Step.GREETING:
        seconds = failure.waited_ms / 1000
        return _finding(
            "tls.greeting-timeout", Severity.ERROR,
            f"{where} accepted the connection but sent no greeting within {seconds:.1f} s. "
            "Senders with shorter patience log 'timeout while reading server greeting'; a "
            "tarpit aimed at the address we probed from looks the same.",
            evidence,
            "Check the server's greeting delay (tarpits, postscreen), its load, and slow "
            "lookups at connect; a greeting should come within a few seconds. Retry from the "
            "sending host.",
            "RFC 5321 §4.5.3.2.1", indeterminate=True,
        )  # fmt: skip
    last = p.helo or p.ehlo
    reply_421 = last is not None and last.code == 421
    detail = last.text if reply_421 and last else (failure.detail if failure else "unknown")
    timeout = failure is not None and failure.kind is FailureKind.TIMEOUT
    return _finding(
        "tls.session-broken", Severity.ERROR,
        f"The SMTP session with {where} broke at {step.value}: {detail}. Senders fail the same "
        "way, before TLS can start.",
        evidence,
        "Read the transcript and the server's log for this session; check the server and any "
        "proxy or firewall in front of it that speaks SMTP.",
        "RFC 5321 §4.2", indeterminate=timeout or reply_421,
    )  # fmt: skip


def _greeting_refused(greeting: Reply, where: str, base: dict[str, Any]) -> Finding:
    if greeting.code // 100 == 4:
        return _finding(
            "tls.greeting-tempfail", Severity.WARNING,
            f"{where} temporarily refuses connections at the greeting: '{greeting.text}'. "
            "Senders defer and retry later; this probe could not see the TLS setup.",
            base,
            "Retry later. If it persists, check the server's connection limits (concurrency, "
            "rate limits) and any greylisting at connect.",
            "RFC 5321 §3.8", indeterminate=True,
        )  # fmt: skip
    word = block_words(greeting)
    if word:
        return _finding(
            "tls.greeting-rejected", Severity.ERROR,
            f"{where} refuses the address we probed from right at connect: '{greeting.text}'. "
            f"This is an IP reputation block ('{word}'), not a TLS problem: the server never "
            "gets as far as offering STARTTLS. Senders on a listed address read 'host ... "
            "refused to talk to me'.",
            {**base, "block": word},
            "If you probed from your sending host, get its address delisted (see the dnsbl "
            "check and the address in the reply); otherwise run mailcheck from the sending host.",
            "RFC 5321 §3.1",
        )  # fmt: skip
    return _finding(
        "tls.greeting-rejected", Severity.ERROR,
        f"{where} refuses SMTP sessions at the greeting: '{greeting.text}'. Senders read 'host "
        "... refused to talk to me' and cannot deliver; TLS is never offered.",
        base,
        "Find the rule that refuses connections (client access rules, a disabled service).",
        "RFC 5321 §3.1",
    )  # fmt: skip


def _ehlo_refused(p: SmtpProbe, ehlo: Reply, where: str, base: dict[str, Any]) -> Finding:
    evidence = {**base, **_hidden_evidence(p)}
    if ehlo.code in (500, 502):
        return _finding(
            "tls.no-esmtp", Severity.ERROR,
            f"{where} does not understand EHLO ('{ehlo.text}'): it speaks only old SMTP "
            f"without extensions, so STARTTLS is impossible. Senders that require TLS report "
            f"{_NOT_OFFERED}.",
            evidence,
            "Upgrade or replace the mail server, or the proxy in front of it, with one that "
            "supports ESMTP and STARTTLS.",
            "RFC 5321 §4.1.1.1; RFC 3207 §4",
        )  # fmt: skip
    blocked = _block_reply(p.ehlo, p.helo, p.starttls_anyway, p.mail_from)
    why = (
        f" It names a blocklist ('{block_words(blocked)}'): an IP reputation block against the "
        "address we probed from, not a TLS problem."
        if blocked
        else ""
    )
    return _finding(
        "tls.ehlo-rejected", Severity.ERROR,
        f"{where} rejects EHLO: '{ehlo.text}'. Senders then fall back to HELO, which cannot "
        f"negotiate TLS, so a sender that requires TLS reports {_NOT_OFFERED}: the real cause "
        f"is this EHLO rejection.{why}",
        {**evidence, "block": block_words(blocked)} if blocked else evidence,
        "Get the sending address delisted (see the dnsbl check)."
        if blocked
        else "Find the rule that rejects EHLO (HELO name checks, client restrictions applied "
        "at EHLO) and let EHLO succeed; reject later, at RCPT, if you must.",
        "RFC 5321 §4.1.1.1; RFC 3207 §4",
    )  # fmt: skip


def _not_advertised(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    evidence = {**base, **_hidden_evidence(p)}
    if p.masked_keywords or p.masked_banner:
        shown = ", ".join(p.masked_keywords) or "none"
        return _finding(
            "tls.starttls-masked", Severity.ERROR,
            f"A firewall in front of {where} hides STARTTLS: the EHLO keywords include masked "
            f"ones ({shown}){' and the greeting is asterisks' if p.masked_banner else ''}, "
            "the mark of Cisco ESMTP inspection, which overwrites what it does not know. "
            f"Mail arrives unencrypted, and senders that require TLS report {_NOT_OFFERED}.",
            {**evidence, "masked_keywords": list(p.masked_keywords),
             "masked_banner": p.masked_banner},
            "Turn off SMTP/ESMTP inspection on the firewall (Cisco ASA: `no inspect esmtp`) or "
            "let STARTTLS through it.",
            "RFC 3207 §4",
        )  # fmt: skip
    blocked = _block_reply(p.starttls_anyway, p.mail_from)
    if blocked is not None:
        return _finding(
            "tls.starttls-hidden-block", Severity.ERROR,
            f"{where} does not offer STARTTLS to the address we probed from, and the reason is "
            f"an IP block: asked anyway, it answered '{blocked.text}'. A sender that requires "
            f"TLS logs only {_NOT_OFFERED}; the cause is this blocklisting, not the server's "
            "TLS configuration.",
            {**evidence, "block": block_words(blocked)},
            "Get the sending address delisted with the operator named in the reply (see the "
            "dnsbl check). The receiving server's TLS configuration is not the problem.",
            "RFC 3207 §4",
        )  # fmt: skip
    if p.tls is not None and p.tls.ok:
        return _finding(
            "tls.starttls-unadvertised", Severity.ERROR,
            f"{where} accepts STARTTLS ({p.tls.version} works) but does not list it in its "
            "EHLO reply, so senders never try it: mail arrives unencrypted, and senders that "
            f"require TLS report {_NOT_OFFERED}.",
            {**evidence, "tls_version": p.tls.version},
            "Make the server advertise STARTTLS in EHLO (Postfix: smtpd_tls_security_level = "
            "may; check smtpd_discard_ehlo_keywords and any proxy that filters EHLO).",
            "RFC 3207 §4",
        )  # fmt: skip
    return _finding(
        "tls.starttls-missing", Severity.ERROR,
        f"{where} does not offer STARTTLS. Mail to it travels unencrypted, and senders that "
        f"require TLS (DANE, MTA-STS enforce, mandatory-TLS policies) report {_NOT_OFFERED}. "
        "Asked anyway, and at MAIL FROM, it named no block: TLS is simply not enabled.",
        evidence,
        "Enable STARTTLS with a certificate for the MX host name (Postfix: "
        "smtpd_tls_security_level = may and smtpd_tls_chain_files = key, certificate, chain).",
        "RFC 3207 §4",
    )  # fmt: skip


def _advertised(p: SmtpProbe, where: str, base: dict[str, Any]) -> Iterator[Finding]:
    reply = p.starttls
    if reply is None:
        yield _broken(p, where, base)
        return
    if reply.code != 220:
        yield _finding(
            "tls.starttls-refused", Severity.ERROR,
            f"{where} advertises STARTTLS but refuses it: '{reply.text}'. Senders that require "
            "TLS defer ('TLS is required, but host ... refused to start TLS'); the others send "
            "unencrypted. Usually the server cannot load its key or certificate.",
            {**base, "starttls": reply.text},
            "Check the server's TLS key and certificate (paths, permissions, key matching the "
            "certificate) and its log at the time of the probe.",
            "RFC 3207 §4",
        )  # fmt: skip
        return
    if p.tls is None:
        yield _broken(p, where, base)
        return
    yield from _inside_tls(p, where, base)


def _inside_tls(p: SmtpProbe, where: str, base: dict[str, Any]) -> Iterator[Finding]:
    tls = p.tls
    assert tls is not None
    if not tls.ok:
        yield _handshake_failed(p, where, base)
        return
    about = {**base, "tls_version": tls.version, "cipher": tls.cipher, "bits": tls.bits}
    problems = False
    if tls.version not in MODERN_VERSIONS:
        problems = True
        yield _finding(
            "tls.legacy-version", Severity.WARNING,
            f"{where} speaks at most {tls.version}, although we offered up to TLS 1.3. "
            "Opportunistic senders still deliver, but senders that authenticate the server "
            "(DANE, MTA-STS, 'verify' or 'secure' policies) on OpenSSL 3 refuse TLS below 1.2 "
            "and defer mail to you.",
            about,
            "Enable TLS 1.2 and 1.3: update the server's TLS library and remove any setting "
            "that caps the protocol version (Postfix: smtpd_tls_protocols).",
            "RFC 8996",
        )  # fmt: skip
    what = _after_tls_problem(p)
    if what:
        problems = True
        yield _finding(
            "tls.rejected-after-tls", Severity.ERROR,
            f"TLS with {where} works ({tls.version}), but the server then {what}. Senders "
            "cannot deliver over TLS; those that do not require it may retry in plaintext.",
            {**about, "post_tls_ehlo": p.post_tls_ehlo.text if p.post_tls_ehlo else None,
             "post_tls_error": p.post_tls_error.to_json() if p.post_tls_error else None},
            "Check the server's log for TLS sessions: a policy that rejects TLS clients, a "
            "crash after the handshake, or a proxy that cannot carry TLS.",
            "RFC 3207 §4.2",
        )  # fmt: skip
    if p.injection:
        problems = True
        shown = p.injection_reply.text if p.injection_reply else "?"
        yield _finding(
            "tls.starttls-injection", Severity.ERROR,
            f"{where} executes commands sent in plaintext together with STARTTLS as if they "
            f"had come inside TLS: it answered our pipelined {INJECTED} after the handshake "
            f"('{shown}'). Someone on the path can inject commands into the encrypted session "
            "(the CVE-2011-0411 class of bugs).",
            {**about, "unsolicited_reply": shown},
            "Update the mail server software: after STARTTLS it must discard all input received "
            "before the TLS handshake.",
            "RFC 3207 §4.2",
        )  # fmt: skip
    if not problems and p.starttls_offered:
        tested = {True: "vulnerable", False: "not vulnerable", None: "not tested"}[p.injection]
        yield _finding(
            "tls.ok", Severity.INFO,
            f"STARTTLS with {where} works: {tls.version}, {tls.cipher} ({tls.bits} bits).",
            {**about, "handshake_ms": tls.handshake_ms, "certificates": len(tls.chain_der),
             "post_tls_ehlo": list(p.post_tls_keywords), "injection": tested,
             "pipelining_refused": p.pipelining_refused.text if p.pipelining_refused else None},
        )  # fmt: skip


def _handshake_failed(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    tls = p.tls
    assert tls is not None and tls.error is not None
    kind = tls.error_kind or HandshakeError.OTHER
    what = {
        HandshakeError.CLOSED: "the server closed the connection right after its '220' to STARTTLS",
        HandshakeError.PLAINTEXT: "the server answered the TLS handshake in plaintext (it, or "
        "a proxy in front of it, does not really do TLS)",
        HandshakeError.ALERT: "the server ended the handshake with a TLS alert (no protocol "
        "version or cipher in common, or a broken key)",
        HandshakeError.TIMEOUT: "the handshake did not finish in time",
        HandshakeError.OTHER: "the handshake failed",
    }[kind]
    return _finding(
        "tls.handshake-failed", Severity.ERROR,
        f"STARTTLS with {where} fails: {what}; error: {tls.error}. Senders log 'Cannot start "
        "TLS: handshake failure'; those that require TLS defer, the others retry in plaintext.",
        {**base, "starttls": p.starttls.text if p.starttls else None,
         "starttls_anyway": p.starttls_anyway.text if p.starttls_anyway else None,
         "failure": kind.value, "error": tls.error, "discarded_plaintext": tls.discarded},
        "Check the server's TLS settings and its log (key and certificate loading, protocol "
        "and cipher settings), and any middlebox that intercepts SMTP; `openssl s_client "
        f"-starttls smtp -connect {p.ip}:{p.port}` shows the same failure.",
        "RFC 3207 §4",
    )  # fmt: skip


def _after_tls_problem(p: SmtpProbe) -> str:
    if p.post_tls_ehlo is not None and not p.post_tls_ehlo.positive:
        return f"rejects the session inside TLS: EHLO got '{p.post_tls_ehlo.text}'"
    if p.post_tls_error is not None:
        return f"drops it at the EHLO inside TLS ({p.post_tls_error.detail})"
    return ""


def _block_reply(*replies: Reply | None) -> Reply | None:
    return next((r for r in replies if block_words(r)), None)


def _hidden_evidence(p: SmtpProbe) -> dict[str, Any]:
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
        out["stopped"] = {"step": p.stopped.step.value, **p.stopped.failure.to_json()}
    return out


def _finding(
    code: str,
    severity: Severity,
    message: str,
    evidence: dict[str, Any],
    remedy: str = "",
    rfc: str = "",
    indeterminate: bool = False,
) -> Finding:
    return Finding(CHECK, code, severity, message, evidence, remedy, rfc, indeterminate)
