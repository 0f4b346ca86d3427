"""The keyword rules that sort a masked deferral reason into its class.

Each rule is one case-insensitive pattern of alternatives, matched against the masked text
(mailcheck/queue/reasons.py applies them in order: the first match wins). Sources: Postfix's
own templates (smtp_*.c, dns_lookup.c), the research lab's captures, and the published
refusal texts of Gmail, Yahoo and Microsoft.
"""

from __future__ import annotations

import re


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


# Rules on the masked reply text, in order: the first match wins. Rate limits come before
# blocklists because Microsoft's "rate limited due to IP reputation" is a rate limit.
RATE = _rx(
    r"\brate[- ]?limit",
    r"receiving mail at a rate",
    r"unusual rate",
    r"\bsending rate",
    r"too many (?:messages|mails|e-?mails|recipients)",
    r"\bthrottl",
    r"\[tss?\d\d\]",
    r"unexpected volume",
    r"server busy",
    r"\bs77714\b",
    r"\b4\.7\.(?:28|500|650)\b",
)
BLOCKLIST = _rx(
    r"blocked using",
    r"\bblock ?list",
    r"\bblack ?list",
    r"\bdnsbl\b",
    r"\brbl\b",
    r"spamhaus",
    r"spamcop",
    r"barracuda",
    r"\blisted (?:on|in|at|by)\b",
    r"(?:poor|bad|low) reputation",
    r"\bs3150\b",
    r"\b5\.7\.(?:606|511)\b",
    r"banned sending ip",
)
GREYLIST = _rx(r"gr[ae]y-?list")
MAILBOX_FULL = _rx(
    r"mailbox (?:is )?full",
    r"over ?quota",
    r"quota exceeded",
    r"exceed(?:s|ed)? (?:the |its |their )?(?:storage|quota)",
    r"mailbox size limit",
    r"\b[45]\.2\.2\b",
)
USER_UNKNOWN = _rx(
    r"user unknown",
    r"unknown user",
    r"no such (?:user|mailbox|recipient|address)",
    r"does ?n[o']t exist",
    r"recipient not found",
    r"unknown recipient",
    r"invalid recipient",
    r"mailbox (?:unavailable|not found)",
    r"undeliverable address",
    r"unrouteable address",
    r"\b[45]\.1\.(?:1|10)\b",
)
CONTENT = _rx(
    r"\bspam",
    r"\bvirus",
    r"malware",
    r"\bcontent\b",
    r"unsolicited",
    r"message rejected",
    r"\bphish",
    r"\b[45]\.6\.\d{1,3}\b",
    r"\b[45]\.7\.1\b.*\bmessage\b",
)
REMOTE_ERROR = _rx(
    r"\b4\.3\.\d{1,3}\b",
    r"local error",
    r"queue file write error",
    r"temporary (?:local )?(?:failure|problem)",
    r"internal (?:server )?error",
    r"insufficient system storage",
    r"system not accepting",
)
CERTIFICATE = _rx(
    r"server certificate not (?:verified|trusted)",
    r"tlsa records unusable",
    r"certificate verification failed",
    r"no matching dane tlsa",
)
HANDSHAKE = _rx(
    r"cannot start tls",
    r"tls is required, but (?:our tls engine is )?unavailable",
    r"handshake fail",
)
DNS = _rx(
    r"tlsa lookup error",
    r"host or domain name not found",
    r"name service error",
    r"unable to look up host",
)
REMOTE_NON_SMTP = _rx(
    r"server unavailable or unable to receive mail",
    r"local data error while talking",
)
NO_ROUTE = _rx(
    r"no route to host",
    r"network is unreachable",
    r"host is unreachable",
    r"cannot assign requested address",
)
GMAIL = _rx(r"gsmtp", r"receiving mail at a rate", r"\b4\.7\.28\b")
YAHOO = _rx(r"\[tss?\d\d\]", r"yahoo")
MICROSOFT = _rx(r"\bs77714\b", r"\b4\.7\.(?:500|650)\b", r"protocol filter agent", r"outlook")
LISTED_IP = re.compile(
    r"\b(?:client host|ip|address|from)\s*\[?"
    r"(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4})\b",
    re.IGNORECASE,
)
ZONE = re.compile(r"blocked using (?P<zone>[A-Za-z0-9.-]+[A-Za-z0-9])", re.IGNORECASE)
