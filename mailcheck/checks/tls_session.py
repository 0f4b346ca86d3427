"""What one SMTP session with an MX address says about STARTTLS (pure).

`session_findings` turns an `SmtpProbe` into findings: could not probe (from here), refused
or delayed at the greeting, EHLO refused (and HELO too), STARTTLS missing and why (an IP block
the server only admits to on the next command, a firewall masking it, or simply not
configured), STARTTLS refused, handshake failures, legacy TLS, what happens inside TLS
(tls_inside.py), STARTTLS command injection, and an informative finding when all is well.
The server's own words are quoted as evidence. Why STARTTLS is missing is worked out in
tls_missing.py. A probe cut short by its whole-probe deadline gets `tls.probe-deadline`, and
nothing that would claim what happened after the cut. Certificates are judged elsewhere, from
`probe.tls.chain_der`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mailcheck.checks.tls_inside import after_tls_finding
from mailcheck.checks.tls_missing import (
    CHECK,
    block_words,
    ehlo_refused,
    hello_refused,
    hidden_evidence,
    not_advertised,
    stopped_by_deadline,
    tls_finding,
)
from mailcheck.checks.tls_probe import INJECTED
from mailcheck.checks.tls_probe_result import HandshakeError, SmtpProbe, Step
from mailcheck.model import Finding, Severity
from mailcheck.smtp import FailureKind, Reply

__all__ = [
    "CHECK",
    "MODERN_VERSIONS",
    "NO_TLS_CODES",
    "SLOW_GREETING_S",
    "block_words",
    "cause_of",
    "probe_json",
    "session_findings",
    "starttls_cause",
]

SLOW_GREETING_S = 10.0
"""A greeting slower than this is reported (RFC 5321 §4.5.3.2.1 lets senders wait 5 min)."""
MODERN_VERSIONS = ("TLSv1.2", "TLSv1.3")

NO_TLS_CODES = (
    "tls.unreachable",
    "tls.greeting-timeout",
    "tls.session-broken",
    "tls.probe-deadline",
    "tls.greeting-rejected",
    "tls.greeting-tempfail",
    "tls.helo-rejected",
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


def session_findings(
    probe: SmtpProbe, *, slow_greeting_s: float = SLOW_GREETING_S
) -> tuple[Finding, ...]:
    """Judge one probed session (pure).

    A probe stopped by its whole-probe deadline always has `tls.probe-deadline`; what it saw
    before still counts (STARTTLS not advertised is a fact however the probe ended).
    """
    found = tuple(_judge(probe, slow_greeting_s))
    if stopped_by_deadline(probe) and all(f.code != "tls.probe-deadline" for f in found):
        where = f"{probe.host}[{probe.ip}]:{probe.port}"
        base = {"host": probe.host, "ip": probe.ip, "port": probe.port}
        found += (_ran_out(probe, where, base),)
    return found


def starttls_cause(probe: SmtpProbe) -> str | None:
    """The code of the finding that explains why a sender gets no usable TLS session here.

    None when STARTTLS works (a legacy version or an injection bug still counts as working).
    """
    return cause_of(session_findings(probe))


def cause_of(findings: Iterable[Finding]) -> str | None:
    """starttls_cause from a session's findings already judged."""
    return next((f.code for f in findings if f.code in NO_TLS_CODES), None)


def probe_json(probe: SmtpProbe) -> dict[str, Any]:
    """The probe's JSON form, with its `cause`."""
    return probe.to_json(cause=starttls_cause(probe))


def _judge(p: SmtpProbe, slow_s: float) -> Iterator[Finding]:
    where = f"{p.host}[{p.ip}]:{p.port}"
    base: dict[str, Any] = {"host": p.host, "ip": p.ip, "port": p.port}
    if not p.connected:
        yield _ran_out(p, where, base) if stopped_by_deadline(p) else _unreachable(p, where, base)
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
        yield tls_finding(
            "tls.slow-greeting", Severity.WARNING,
            f"{where} took {seconds:.1f} s to send its greeting. Senders may wait up to 5 "
            "minutes, but some give up after 30 or 60 s, and every delivery to you is slowed.",
            {**base, "greeting_ms": p.greeting_ms},
            "Greet within a few seconds: check greeting delays and tarpits (postscreen_greet_wait"
            "), slow reverse DNS lookups of clients at connect, and the server's load.",
            "RFC 5321 §4.5.3.2.1",
        )  # fmt: skip
    if p.ehlo is not None and p.ehlo.code == 421:
        yield hello_refused(p, p.ehlo, where, base)  # RFC 5321 §3.8: the server closes
        return
    if p.ehlo is None or (not p.ehlo.positive and p.helo is None):
        yield _broken(p, where, base)
        return
    base["ehlo"] = p.ehlo.text
    if p.helo is not None and not p.helo.positive:
        yield hello_refused(p, p.helo, where, base)
        return
    if not p.ehlo.positive:
        yield ehlo_refused(p, p.ehlo, where, base)
        return
    if p.starttls_offered:
        yield from _advertised(p, where, base)
        return
    yield not_advertised(p, where, base)
    # STARTTLS sent anyway got 220: judge that TLS session too, unless the deadline cut the
    # handshake short (the wrapper reports that).
    if p.tls is not None and (p.tls.ok or not stopped_by_deadline(p)):
        yield from _inside_tls(p, where, base)


def _unreachable(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    error = p.connect_error
    kind = error.kind.value if error else "error"
    detail = error.detail if error else "unknown"
    return tls_finding(
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
    if stopped_by_deadline(p):
        return _ran_out(p, where, base)
    stopped = p.stopped
    # Without a recorded stop (odd data), name the last step that got a reply.
    step = (
        stopped.step
        if stopped
        else (
            Step.HELO if p.helo is not None else Step.EHLO if p.ehlo is not None else Step.GREETING
        )
    )
    failure = stopped.failure if stopped else None
    evidence = {**base, "step": step.value}
    if failure is not None:
        evidence.update(failure.to_json())
    if failure is not None and failure.kind is FailureKind.TIMEOUT and step is Step.GREETING:
        seconds = failure.waited_ms / 1000
        return tls_finding(
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
    detail = failure.detail if failure else "unknown"
    timeout = failure is not None and failure.kind is FailureKind.TIMEOUT
    return tls_finding(
        "tls.session-broken", Severity.ERROR,
        f"The SMTP session with {where} broke at {step.value}: {detail}. Senders fail the same "
        "way, before TLS can start.",
        evidence,
        "Read the transcript and the server's log for this session; check the server and any "
        "proxy or firewall in front of it that speaks SMTP.",
        "RFC 5321 §4.2", indeterminate=timeout,
    )  # fmt: skip


def _greeting_refused(greeting: Reply, where: str, base: dict[str, Any]) -> Finding:
    if greeting.code // 100 == 4:
        return tls_finding(
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
        return tls_finding(
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
    return tls_finding(
        "tls.greeting-rejected", Severity.ERROR,
        f"{where} refuses SMTP sessions at the greeting: '{greeting.text}'. Senders read 'host "
        "... refused to talk to me' and cannot deliver; TLS is never offered.",
        base,
        "Find the rule that refuses connections (client access rules, a disabled service).",
        "RFC 5321 §3.1",
    )  # fmt: skip


def _advertised(p: SmtpProbe, where: str, base: dict[str, Any]) -> Iterator[Finding]:
    if stopped_by_deadline(p) and (p.tls is None or not p.tls.ok):
        yield _ran_out(p, where, base)  # whatever STARTTLS would have led to is unknown
        return
    reply = p.starttls
    if reply is None:
        yield _broken(p, where, base)
        return
    if reply.code != 220:
        yield tls_finding(
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
        yield (
            _ran_out(p, where, base)
            if stopped_by_deadline(p)
            else _handshake_failed(p, where, base)
        )
        return
    about = {**base, "tls_version": tls.version, "cipher": tls.cipher, "bits": tls.bits}
    problems = False
    if tls.version not in MODERN_VERSIONS:
        problems = True
        yield tls_finding(
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
    if stopped_by_deadline(p):
        problems = True
        yield _ran_out(p, where, base)  # no EHLO reply inside TLS: that part is unknown
    after = None if stopped_by_deadline(p) else after_tls_finding(p, where, about)
    if after is not None:
        problems = True
        yield after
    if p.injection:
        problems = True
        shown = p.injection_reply.text if p.injection_reply else "?"
        yield tls_finding(
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
        yield tls_finding(
            "tls.ok", Severity.INFO,
            f"STARTTLS with {where} works: {tls.version}, {tls.cipher} ({tls.bits} bits).",
            {**about, "handshake_ms": tls.handshake_ms, "certificates": len(tls.chain_der),
             "post_tls_ehlo": list(p.post_tls_keywords), "injection": tested,
             "pipelining_refused": p.pipelining_refused.text if p.pipelining_refused else None,
             "reprobe": p.reprobe},
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
    asked = "" if p.starttls_offered else ", sent although not advertised,"
    return tls_finding(
        "tls.handshake-failed", Severity.ERROR,
        f"STARTTLS with {where}{asked} fails: {what}; error: {tls.error}. Senders log 'Cannot "
        "start TLS: handshake failure'; those that require TLS defer, the others retry in "
        "plaintext.",
        {**base, "starttls": p.starttls.text if p.starttls else None,
         "starttls_anyway": p.starttls_anyway.text if p.starttls_anyway else None,
         "failure": kind.value, "error": tls.error, "discarded_plaintext": tls.discarded},
        "Check the server's TLS settings and its log (key and certificate loading, protocol "
        "and cipher settings), and any middlebox that intercepts SMTP; `openssl s_client "
        f"-starttls smtp -connect {p.ip}:{p.port}` shows the same failure.",
        "RFC 3207 §4",
    )  # fmt: skip


def _ran_out(p: SmtpProbe, where: str, base: dict[str, Any]) -> Finding:
    stopped = p.stopped
    assert stopped is not None
    return tls_finding(
        "tls.probe-deadline", Severity.ERROR,
        f"The probe of {where} was stopped at {stopped.step.value}: {stopped.failure.detail}. "
        "What would have come next is unknown; what came before is in the evidence and the "
        "transcript. A server this slow also delays senders, and some give up; a tarpit aimed "
        "at the address we probed from looks the same.",
        {**base, **hidden_evidence(p), "elapsed_ms": p.elapsed_ms,
         "greeting_ms": p.greeting_ms, "tls_version": p.tls.version if p.tls else None},
        "Probe again with a larger --smtp-timeout (and --check-timeout), ideally from the "
        "sending host; check the server for greeting and command delays (tarpits, "
        "postscreen), slow lookups at connect, and its load.",
        "RFC 5321 §4.5.3.2", indeterminate=True,
    )  # fmt: skip
