"""Why a recipient is deferred: Postfix's `delay_reason` text, parsed and classified.

The texts come from a small set of Postfix templates (3.7: smtp_connect.c, smtp_proto.c,
smtp_trouble.c, qmgr_deliver.c, dns_lookup.c); a remote server's reply is embedded in
`host H[IP] said: REPLY (in reply to STAGE)`. Classification runs on a *masked* text:
addresses, `host[ip]:port`, bracketed IPs, URLs and queue IDs are replaced first, so that a
domain name such as `greylist.test` in `<full1@greylist.test>: Mailbox full` cannot decide
the class.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mailcheck.queue import reason_rules as rules

SUSPENDED_PREFIX = "delivery temporarily suspended: "
"""qmgr's prefix once it has marked the destination dead (the text after it is the original)."""


class ReasonClass(enum.StrEnum):
    """The documented set of deferral classes (docs/findings.md, `queue.*`)."""

    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_TIMED_OUT = "connection-timed-out"
    NO_ROUTE = "no-route"
    NO_GREETING = "no-greeting"
    LOST_CONNECTION = "lost-connection"
    GREETING_421 = "greeting-421"
    RATE_LIMITED = "rate-limited"
    GREYLISTED = "greylisted"
    MAILBOX_FULL = "mailbox-full"
    BLOCKLISTED = "blocklisted"
    TLS_NOT_OFFERED = "tls-not-offered"
    STARTTLS_REFUSED = "starttls-refused"
    CERTIFICATE_NOT_VERIFIED = "certificate-not-verified"
    TLS_HANDSHAKE_FAILED = "tls-handshake-failed"
    DNS_LOOKUP_FAILURE = "dns-lookup-failure"
    USER_UNKNOWN = "user-unknown"
    CONTENT_REJECTED = "content-rejected"
    REMOTE_ERROR = "remote-error"
    OTHER = "other"


TLS_CLASSES = frozenset(
    {
        ReasonClass.TLS_NOT_OFFERED,
        ReasonClass.STARTTLS_REFUSED,
        ReasonClass.CERTIFICATE_NOT_VERIFIED,
        ReasonClass.TLS_HANDSHAKE_FAILED,
    }
)
"""The classes `mailcheck tls DOMAIN` (and --probe) explains."""


@dataclass(frozen=True, slots=True)
class ParsedReason:
    """What one delay_reason says."""

    reason_class: ReasonClass
    """The class it falls in."""
    template: str
    """The text with addresses, hosts, IPs, URLs and queue IDs masked (for grouping)."""
    suspended: bool
    """It carried qmgr's "delivery temporarily suspended" prefix."""
    next_hop: str | None
    """The host the text names, as `name[ip]` or `name[ip]:port`."""
    smtp_code: str | None
    """The remote reply code (`450`) when the text embeds a reply."""
    enhanced_code: str | None
    """The enhanced status code (`4.2.1`, RFC 3463) when the reply has one."""
    stage: str | None
    """The SMTP stage (`RCPT TO command`, `receiving the initial server greeting`)."""
    provider: str | None = None
    """For rate limits: `gmail`, `yahoo` or `microsoft` when the reply's style says so."""
    listed_ip: str | None = None
    """For blocklisting: the address the reply says is listed."""
    dnsbl_zone: str | None = None
    """For blocklisting: the list named in the reply (`zen.spamhaus.org`)."""

    @property
    def permanent_reply(self) -> bool:
        """A 5xx reply sitting in the queue: `soft_bounce` turned a bounce into a deferral."""
        return self.smtp_code is not None and self.smtp_code.startswith("5")


_HOP = r"(?P<hop>[^\s\[\]]+\[[^\]\s]*\](?::\d+)?)"
_CONNECT = re.compile(rf"^connect to {_HOP}: (?P<err>.+)$")
_REPLY = re.compile(
    rf"^host {_HOP} (?P<verb>said|refused to talk to me): (?P<reply>.*?)"
    r"(?: \(in reply to (?P<stage>[^()]*)\))?$"
)
_SESSION = re.compile(
    rf"^(?P<kind>conversation|lost connection) with {_HOP} (?:timed out )?while (?P<stage>.+)$"
)
_TLS_NOT_OFFERED = re.compile(rf"^TLS is required, but was not offered by host {_HOP}")
_TLS_REFUSED = re.compile(
    rf"^TLS is required, but host {_HOP} refused to start TLS: (?P<reply>.*)$"
)
_ANY_HOP = re.compile(_HOP)
_CODES = re.compile(r"^(?P<code>[245]\d\d)(?:[ -](?P<esc>[245]\.\d{1,3}\.\d{1,3})\b)?")

_ANGLE = re.compile(r"<[^<>\s]*@[^<>\s]*>")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s)]+")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\];,@]+@[^\s<>()\[\];,]+")
_BRACKETED_IP = re.compile(r"\[(?:IPv6:)?[0-9A-Fa-f:.]+\]")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
# Postfix queue IDs: short (upper-case hex) and long (base 52, no vowels, a `z` inside).
_QUEUE_ID = re.compile(
    r"\b(?:[0-9A-F]{8,12}"
    r"|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]{6,}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]+)\b"
)


def mask(text: str) -> str:
    """Replace the parts of a reason that name a message, a host or a person.

    In order: URLs (before the addresses in them), `<addresses>`, bare addresses, `host[ip]`
    with its port, bracketed and bare IPv4 addresses, queue IDs.
    """
    if "://" in text:
        text = _URL.sub("URL", text)
    if "@" in text:
        text = _BARE_ADDRESS.sub("ADDR", _ANGLE.sub("<ADDR>", text))
    if "[" in text:
        text = _BRACKETED_IP.sub("[IP]", _ANY_HOP.sub("HOST", text))
    return _QUEUE_ID.sub("QID", _IPV4.sub("IP", text))


@dataclass(frozen=True, slots=True)
class _Reply:
    hop: str | None
    verb: str | None
    reply: str
    stage: str | None


def parse_reason(text: str) -> ParsedReason:
    """Parse and classify one `delay_reason`."""
    suspended = text.startswith(SUSPENDED_PREFIX)
    body = text[len(SUSPENDED_PREFIX) :] if suspended else text
    template = mask(body)

    def done(cls: ReasonClass, hop: str | None, stage: str | None = None) -> ParsedReason:
        return ParsedReason(cls, template, suspended, hop, None, None, stage)

    if match := _TLS_NOT_OFFERED.match(body):
        return done(ReasonClass.TLS_NOT_OFFERED, match["hop"])
    if match := _TLS_REFUSED.match(body):
        return _from_reply(
            ReasonClass.STARTTLS_REFUSED,
            template,
            suspended,
            _Reply(match["hop"], None, match["reply"], "STARTTLS command"),
        )
    if match := _CONNECT.match(body):
        error = match["err"].lower()
        if "refused" in error:
            cls = ReasonClass.CONNECTION_REFUSED
        elif "timed out" in error:
            cls = ReasonClass.CONNECTION_TIMED_OUT
        elif rules.NO_ROUTE.search(error):
            cls = ReasonClass.NO_ROUTE
        else:
            cls = ReasonClass.OTHER
        return done(cls, match["hop"])
    if match := _SESSION.match(body):
        greeting = match["stage"].startswith("receiving the initial server greeting")
        timed_out = match["kind"] == "conversation"
        cls = ReasonClass.NO_GREETING if greeting and timed_out else ReasonClass.LOST_CONNECTION
        return done(cls, match["hop"], match["stage"])
    if match := _REPLY.match(body):
        reply = _Reply(match["hop"], match["verb"], match["reply"], match["stage"])
        return _from_reply(_reply_class(reply, template), template, suspended, reply)
    any_hop = _ANY_HOP.search(body)
    hop = any_hop["hop"] if any_hop else None
    for rule, cls in (
        (rules.CERTIFICATE, ReasonClass.CERTIFICATE_NOT_VERIFIED),
        (rules.HANDSHAKE, ReasonClass.TLS_HANDSHAKE_FAILED),
        (rules.DNS, ReasonClass.DNS_LOOKUP_FAILURE),
        (rules.REMOTE_NON_SMTP, ReasonClass.REMOTE_ERROR),
    ):
        if rule.search(template):
            if cls is ReasonClass.DNS_LOOKUP_FAILURE and hop is None:
                tlsa = re.search(r"TLSA lookup error for (\S+)", body)
                hop = tlsa[1] if tlsa else None
            return done(cls, hop)
    return done(ReasonClass.OTHER, hop)


def _reply_class(reply: _Reply, masked: str) -> ReasonClass:
    for rule, cls in (
        (rules.RATE, ReasonClass.RATE_LIMITED),
        (rules.BLOCKLIST, ReasonClass.BLOCKLISTED),
        (rules.GREYLIST, ReasonClass.GREYLISTED),
        (rules.MAILBOX_FULL, ReasonClass.MAILBOX_FULL),
        (rules.USER_UNKNOWN, ReasonClass.USER_UNKNOWN),
        (rules.CONTENT, ReasonClass.CONTENT_REJECTED),
    ):
        if rule.search(masked):
            return cls
    if reply.verb == "refused to talk to me" and reply.reply.startswith("421"):
        return ReasonClass.GREETING_421
    if rules.REMOTE_ERROR.search(masked):
        return ReasonClass.REMOTE_ERROR
    return ReasonClass.OTHER


def _from_reply(cls: ReasonClass, template: str, suspended: bool, reply: _Reply) -> ParsedReason:
    codes = _CODES.match(reply.reply)
    provider = listed_ip = zone = None
    if cls is ReasonClass.RATE_LIMITED:
        for name, rule in (
            ("gmail", rules.GMAIL),
            ("yahoo", rules.YAHOO),
            ("microsoft", rules.MICROSOFT),
        ):
            if rule.search(reply.reply):
                provider = name
                break
    elif cls is ReasonClass.BLOCKLISTED:
        ip = rules.LISTED_IP.search(reply.reply)
        listed_ip = ip["ip"] if ip else None
        found = rules.ZONE.search(reply.reply)
        zone = found["zone"].lower() if found else None
    return ParsedReason(
        cls,
        template,
        suspended,
        reply.hop,
        codes["code"] if codes else None,
        codes["esc"] if codes else None,
        reply.stage,
        provider,
        listed_ip,
        zone,
    )


_LEAD = re.compile(
    rf"^(?:host |connect to |(?:conversation|lost connection) with "
    rf"|TLS is required, but (?:was not offered by )?host ){_HOP}"
)


def memo_key(body: str) -> str:
    """A cheap stand-in for the masked template: the leading host and `<addresses>` replaced.

    Texts with the same key have the same template except, at most, for parts the full mask
    also hides; they share one full parse.
    """
    lead = _LEAD.match(body)
    if lead is not None:
        body = body[: lead.start("hop")] + "HOST" + body[lead.end("hop") :]
    return _ANGLE.sub("<ADDR>", body) if "<" in body else body


class ReasonCache:
    """parse_reason() with bounded memos: texts differ by address and IP, templates rarely.

    The full parse (mask and classification) runs once per memo_key(); a text with a known key
    only has its own next hop (and, for a blocklisting, the listed IP) taken from it.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._texts: dict[str, ParsedReason] = {}
        self._keys: dict[str, ParsedReason] = {}

    def parse(self, text: str) -> ParsedReason:
        """The parsed reason of one delay_reason text."""
        found = self._texts.get(text)
        if found is not None:
            return found
        suspended = text.startswith(SUSPENDED_PREFIX)
        body = text[len(SUSPENDED_PREFIX) :] if suspended else text
        key = memo_key(body)
        base = self._keys.get(key)
        if base is None:
            found = parse_reason(text)
            _remember(self._keys, key, found, self.limit)
        else:
            hop = base.next_hop
            if hop is not None and (lead := _LEAD.match(body)) is not None:
                hop = lead["hop"]
            listed = base.listed_ip
            if listed is not None and (ip := rules.LISTED_IP.search(body)) is not None:
                listed = ip["ip"]
            found = ParsedReason(
                base.reason_class,
                base.template,
                suspended,
                hop,
                base.smtp_code,
                base.enhanced_code,
                base.stage,
                base.provider,
                listed,
                base.dnsbl_zone,
            )
        _remember(self._texts, text, found, self.limit)
        return found


def _remember(memo: dict[str, ParsedReason], key: str, value: ParsedReason, limit: int) -> None:
    if len(memo) >= limit:
        memo.clear()  # bounded memory; the texts that follow refill it
    memo[key] = value
