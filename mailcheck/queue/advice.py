"""What each deferral class means for the postmaster, and the next step for one destination.

One entry per ReasonClass: the finding code (stable, documented in docs/findings.md), its
severity, a short title, and a next step naming the command to run. Severity is policy:
classes that retrying will not fix (a blocklisting, a TLS policy the peer cannot meet, an
unknown user) are errors; classes that usually clear by themselves are warnings; greylisting
is info.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailcheck.model import Severity
from mailcheck.queue.reasons import ParsedReason, ReasonClass


@dataclass(frozen=True)
class Destination:
    """Where a group of deferred recipients was going, and what its example reason says."""

    domain: str
    """The recipient domain."""
    next_hop: str | None
    """The host the reason names (`name[ip]:port`), if any."""
    reason: ParsedReason
    """The parsed example reason."""


@dataclass(frozen=True)
class ClassAdvice:
    """How mailcheck reports one deferral class."""

    code: str
    """The finding code."""
    severity: Severity
    """How much it matters."""
    title: str
    """A few words for people."""
    next_step: Callable[[Destination], str]
    """The next step for one destination."""


def _hop(d: Destination) -> str:
    return d.next_hop or "the next hop"


def _address(d: Destination) -> str:
    """`ip port` of the next hop for nc(1), or the domain when the text names no host."""
    hop = d.next_hop or ""
    if "[" not in hop:
        return d.domain + " 25"
    ip = hop[hop.index("[") + 1 : hop.index("]")]
    rest = hop[hop.index("]") + 1 :]
    return f"{ip} {rest[1:] if rest.startswith(':') else '25'}"


def _rate_limited(d: Destination) -> str:
    provider = d.reason.provider
    common = "slow down for it (smtp_destination_rate_delay, smtp_destination_concurrency_limit)"
    if provider == "gmail":
        return (
            f"Gmail limits your sending rate or reputation: {common}; authenticate every message "
            "(`mailcheck domain <your domain>`: SPF, DKIM, DMARC) and check Postmaster Tools."
        )
    if provider == "yahoo":
        return (
            f"Yahoo defers for volume or complaints (TSS codes): {common}; check complaint "
            "feedback and authentication (`mailcheck domain <your domain>`)."
        )
    if provider == "microsoft":
        return (
            f"Microsoft throttles your IP: {common}; check the IP's standing in SNDS and "
            "authentication (`mailcheck domain <your domain>`)."
        )
    return f"{d.domain} limits how fast you may send: {common}; the mail goes out on retry."


def _blocklisted(d: Destination) -> str:
    ip = d.reason.listed_ip
    zone = d.reason.dnsbl_zone
    command = f"mailcheck dnsbl {ip}" if ip else "mailcheck dnsbl <your sending IP>"
    if zone:
        command += f" --dnsbl {zone}"
    listed = f"{ip} is" if ip else "your sending IP is"
    where = f" on {zone}" if zone else ""
    return (
        f"{_hop(d)} says {listed} listed{where}: `{command}`, then request delisting from the "
        "list (and fix what got it listed)."
    )


ADVICE: dict[ReasonClass, ClassAdvice] = {
    ReasonClass.CONNECTION_REFUSED: ClassAdvice(
        "queue.connection-refused",
        Severity.WARNING,
        "connection refused",
        lambda d: (
            f"Nothing listens on {_hop(d)}: check it is {d.domain}'s MX or your relay "
            f"(`mailcheck mx {d.domain}`); if it is, that server is down."
        ),
    ),
    ReasonClass.CONNECTION_TIMED_OUT: ClassAdvice(
        "queue.connection-timed-out",
        Severity.WARNING,
        "connection timed out",
        lambda d: (
            f"Outbound port 25 may be blocked (hosting provider, firewall), or {_hop(d)} "
            f"is down: test with `nc -vz -w 10 {_address(d)}`; `mailcheck mx {d.domain}`."
        ),
    ),
    ReasonClass.NO_ROUTE: ClassAdvice(
        "queue.no-route",
        Severity.WARNING,
        "no route to host",
        lambda d: (
            f"This host has no route to {_hop(d)}: check routing and IPv6 "
            "(inet_protocols, smtp_address_preference)."
        ),
    ),
    ReasonClass.NO_GREETING: ClassAdvice(
        "queue.no-greeting",
        Severity.WARNING,
        "no greeting",
        lambda d: (
            f"{_hop(d)} accepts the connection but never greets: overloaded, or "
            f"tarpitting your IP; try `posttls-finger -c -l may '[{_address(d).split()[0]}]'` by "
            "hand and check your IP with the dnsbl check."
        ),
    ),
    ReasonClass.LOST_CONNECTION: ClassAdvice(
        "queue.lost-connection",
        Severity.WARNING,
        "lost connection",
        lambda d: (
            f"{_hop(d)} drops the session ({d.reason.stage or 'mid-conversation'}): often "
            "a filter refusing your IP; check your IP with the dnsbl check and retry by hand "
            "with posttls-finger."
        ),
    ),
    ReasonClass.GREETING_421: ClassAdvice(
        "queue.greeting-421",
        Severity.WARNING,
        "greeting 421",
        lambda d: (
            f"{_hop(d)} refuses sessions for now (421 at the greeting): lower "
            f"smtp_destination_concurrency_limit for {d.domain}; read the reply for the reason."
        ),
    ),
    ReasonClass.RATE_LIMITED: ClassAdvice(
        "queue.rate-limited", Severity.WARNING, "rate limited", _rate_limited
    ),
    ReasonClass.GREYLISTED: ClassAdvice(
        "queue.greylisted",
        Severity.INFO,
        "greylisted",
        lambda d: (
            "Nothing to do: greylisting accepts the mail on a later retry. If it lasts "
            "over an hour, make sure retries come from the same IP address."
        ),
    ),
    ReasonClass.MAILBOX_FULL: ClassAdvice(
        "queue.mailbox-full",
        Severity.WARNING,
        "mailbox full",
        lambda d: (
            "Only the recipient can fix a full mailbox: tell the sender; the mail "
            "bounces when maximal_queue_lifetime runs out."
        ),
    ),
    ReasonClass.BLOCKLISTED: ClassAdvice(
        "queue.blocklisted", Severity.ERROR, "DNSBL or reputation block", _blocklisted
    ),
    ReasonClass.TLS_NOT_OFFERED: ClassAdvice(
        "queue.tls-not-offered",
        Severity.ERROR,
        "TLS required but not offered",
        lambda d: (
            f"`mailcheck tls {d.domain}`: your policy requires TLS (smtp_tls_policy_maps "
            f"or smtp_tls_security_level) and {_hop(d)} does not offer STARTTLS; a server may also "
            "hide STARTTLS from a blocklisted IP."
        ),
    ),
    ReasonClass.STARTTLS_REFUSED: ClassAdvice(
        "queue.starttls-refused",
        Severity.ERROR,
        "STARTTLS refused",
        lambda d: (
            f"`mailcheck tls {d.domain}`: {_hop(d)} offers STARTTLS but refuses it "
            f"({d.reason.smtp_code or 'an error'}); its TLS setup is broken: tell its postmaster, "
            "or relax your TLS policy for it."
        ),
    ),
    ReasonClass.CERTIFICATE_NOT_VERIFIED: ClassAdvice(
        "queue.certificate-not-verified",
        Severity.ERROR,
        "certificate not verified",
        lambda d: (
            f"`mailcheck tls {d.domain}`: the certificate does not verify under your "
            "policy (verify, secure, dane): expired, self-signed, wrong name or TLSA mismatch."
        ),
    ),
    ReasonClass.TLS_HANDSHAKE_FAILED: ClassAdvice(
        "queue.tls-handshake-failed",
        Severity.ERROR,
        "TLS handshake failed",
        lambda d: (
            f"`mailcheck tls {d.domain}`: the TLS handshake fails (protocol or cipher "
            "mismatch, or a local TLS problem): check posttls-finger and your smtp_tls_* settings."
        ),
    ),
    ReasonClass.DNS_LOOKUP_FAILURE: ClassAdvice(
        "queue.dns-lookup-failure",
        Severity.WARNING,
        "DNS lookup failure",
        lambda d: (
            f"`mailcheck mx {d.domain}`: the lookup failed; check the domain's DNS and "
            "this host's resolver (also the copy in Postfix's chroot)."
        ),
    ),
    ReasonClass.USER_UNKNOWN: ClassAdvice(
        "queue.user-unknown",
        Severity.ERROR,
        "user unknown",
        lambda d: (
            "The address does not exist: tell the sender. It stays queued only because "
            "of soft_bounce or a 4xx reply; delete it with `postsuper -d QUEUEID`."
        ),
    ),
    ReasonClass.CONTENT_REJECTED: ClassAdvice(
        "queue.content-rejected",
        Severity.ERROR,
        "content rejected",
        lambda d: (
            f"{d.domain} rejects the message itself (spam, virus or policy): inspect it "
            "(`postcat -q QUEUEID`) and your authentication (`mailcheck domain <your domain>`)."
        ),
    ),
    ReasonClass.REMOTE_ERROR: ClassAdvice(
        "queue.remote-error",
        Severity.WARNING,
        "remote server error",
        lambda d: (
            f"{_hop(d)} has a problem of its own ({d.reason.smtp_code or 'no reply'}): "
            f"it usually clears on retry; tell postmaster@{d.domain} if it lasts."
        ),
    ),
    ReasonClass.OTHER: ClassAdvice(
        "queue.other",
        Severity.WARNING,
        "other",
        lambda d: (
            "Read the example reason; `postcat -q QUEUEID` shows the message and "
            f"`postqueue -s {d.domain}` retries the destination."
        ),
    ),
}
