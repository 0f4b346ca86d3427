"""delay_reason parsing and classification: every captured text, masking, and the rest of the
documented classes from Postfix's templates (smtp_connect.c, smtp_proto.c, dns_lookup.c)."""

from __future__ import annotations

import json
import re

import pytest

from mailcheck.queue.advice import ADVICE, Destination
from mailcheck.queue.reasons import ReasonCache, ReasonClass, mask, memo_key, parse_reason
from tests.conftest import ROOT

QUEUE_FIXTURES = ROOT / "fixtures" / "queue"
LISTINGS = (
    "fresh-postqueue-j.jsonl",
    "during-flush-postqueue-j.jsonl",
    "longids-postqueue-j.jsonl",
)

# What the research lab's scripted servers did to each domain (queue.md §3).
CAPTURED = {
    "refused.test": ReasonClass.CONNECTION_REFUSED,
    "corp.test": ReasonClass.CONNECTION_REFUSED,
    "shop.example": ReasonClass.CONNECTION_REFUSED,
    "blackhole.test": ReasonClass.CONNECTION_TIMED_OUT,
    "slowbanner.test": ReasonClass.NO_GREETING,
    "yahoo-like.test": ReasonClass.RATE_LIMITED,
    "gmail-like.test": ReasonClass.RATE_LIMITED,
    "gmail-spam.test": ReasonClass.RATE_LIMITED,
    "outlook-like.test": ReasonClass.RATE_LIMITED,
    "notls.test": ReasonClass.TLS_NOT_OFFERED,
    "tls454.test": ReasonClass.STARTTLS_REFUSED,
    "dnsbl.test": ReasonClass.BLOCKLISTED,
    "lostconn.test": ReasonClass.LOST_CONNECTION,
    "dataerr.test": ReasonClass.REMOTE_ERROR,
}


def _captured_reasons() -> list[tuple[str, str]]:
    found = []
    for name in LISTINGS:
        for line in (QUEUE_FIXTURES / name).read_text().splitlines():
            for rcpt in json.loads(line)["recipients"]:
                if "delay_reason" in rcpt:
                    found.append((rcpt["address"], rcpt["delay_reason"]))
    return found


def test_every_captured_reason_falls_in_its_class() -> None:
    reasons = _captured_reasons()
    assert len(reasons) > 150
    for address, text in reasons:
        domain = address.rpartition("@")[2].lower()
        if domain == "greylist.test":
            expected = (
                ReasonClass.MAILBOX_FULL if address.startswith("full") else ReasonClass.GREYLISTED
            )
        else:
            expected = CAPTURED[".".join(domain.split(".")[-2:])]
        assert parse_reason(text).reason_class is expected, text


@pytest.mark.parametrize(
    ("text", "cls", "hop", "code", "esc", "stage"),
    [
        (
            "delivery temporarily suspended: connect to 127.0.0.1[127.0.0.1]:2741: Connection "
            "refused",
            ReasonClass.CONNECTION_REFUSED,
            "127.0.0.1[127.0.0.1]:2741",
            None,
            None,
            None,
        ),
        (
            "host 127.0.0.1[127.0.0.1] said: 450-4.2.1 The user you are trying to contact is "
            "receiving mail at a rate that 450-4.2.1 prevents additional messages from being "
            "delivered. fake.2 - gsmtp (in reply to RCPT TO command)",
            ReasonClass.RATE_LIMITED,
            "127.0.0.1[127.0.0.1]",
            "450",
            "4.2.1",
            "RCPT TO command",
        ),
        (
            "host 127.0.0.1[127.0.0.1] said: 451 4.7.500 Server busy. Please try again later "
            "from [127.0.0.1]. (S77714) [Name=Protocol Filter Agent][AGT=PFA] (in reply to RCPT "
            "TO command)",
            ReasonClass.RATE_LIMITED,
            "127.0.0.1[127.0.0.1]",
            "451",
            "4.7.500",
            "RCPT TO command",
        ),
        (
            "TLS is required, but host mx.example.net[192.0.2.5] refused to start TLS: 454 4.7.0 "
            "TLS not available due to local problem",
            ReasonClass.STARTTLS_REFUSED,
            "mx.example.net[192.0.2.5]",
            "454",
            "4.7.0",
            "STARTTLS command",
        ),
        (
            "conversation with mx.example.net[192.0.2.5] timed out while sending RCPT TO",
            ReasonClass.LOST_CONNECTION,
            "mx.example.net[192.0.2.5]",
            None,
            None,
            "sending RCPT TO",
        ),
        (
            "connect to mx.example.net[2001:db8::25]:25: No route to host",
            ReasonClass.NO_ROUTE,
            "mx.example.net[2001:db8::25]:25",
            None,
            None,
            None,
        ),
        (
            "connect to mx.example.net[192.0.2.5]:25: Permission denied",
            ReasonClass.OTHER,
            "mx.example.net[192.0.2.5]:25",
            None,
            None,
            None,
        ),
        (
            "Host or domain name not found. Name service error for name=example.invalid type=MX: "
            "Host not found, try again",
            ReasonClass.DNS_LOOKUP_FAILURE,
            None,
            None,
            None,
            None,
        ),
        (
            "unable to look up host mx.example.net: Name or service not known",
            ReasonClass.DNS_LOOKUP_FAILURE,
            None,
            None,
            None,
            None,
        ),
        (
            "TLSA lookup error for mx-bogustlsa.mailcheck.test:2525",
            ReasonClass.DNS_LOOKUP_FAILURE,
            "mx-bogustlsa.mailcheck.test:2525",
            None,
            None,
            None,
        ),
        (
            "host mx.example.net[192.0.2.5] said: 550 5.1.1 <ann@example.net>: Recipient address "
            "rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
            ReasonClass.USER_UNKNOWN,
            "mx.example.net[192.0.2.5]",
            "550",
            "5.1.1",
            "RCPT TO command",
        ),
        (
            "host mx.example.net[192.0.2.5] said: 554 5.7.1 Message rejected as spam (in reply to "
            "end of DATA command)",
            ReasonClass.CONTENT_REJECTED,
            "mx.example.net[192.0.2.5]",
            "554",
            "5.7.1",
            "end of DATA command",
        ),
        (
            "host mx.example.net[192.0.2.5] refused to talk to me: 421 4.7.0 mx1.example.net Too "
            "many concurrent SMTP connections; please try again later",
            ReasonClass.GREETING_421,
            "mx.example.net[192.0.2.5]",
            "421",
            "4.7.0",
            None,
        ),
        (
            "host mx.example.net[192.0.2.5] said: 554 5.7.1 <a@b.example>: Relay access denied "
            "(in reply to RCPT TO command)",
            ReasonClass.OTHER,
            "mx.example.net[192.0.2.5]",
            "554",
            "5.7.1",
            "RCPT TO command",
        ),
        ("mail for example.net loops back to myself", ReasonClass.OTHER, None, None, None, None),
        (
            "Cannot start TLS: handshake failure",
            ReasonClass.TLS_HANDSHAKE_FAILED,
            None,
            None,
            None,
            None,
        ),
        (
            "TLS is required, but our TLS engine is unavailable",
            ReasonClass.TLS_HANDSHAKE_FAILED,
            None,
            None,
            None,
            None,
        ),
        (
            "Server certificate not verified",
            ReasonClass.CERTIFICATE_NOT_VERIFIED,
            None,
            None,
            None,
            None,
        ),
        ("TLSA records unusable", ReasonClass.CERTIFICATE_NOT_VERIFIED, None, None, None, None),
    ],
)
def test_templates_parse(
    text: str,
    cls: ReasonClass,
    hop: str | None,
    code: str | None,
    esc: str | None,
    stage: str | None,
) -> None:
    parsed = parse_reason(text)
    assert (parsed.reason_class, parsed.next_hop, parsed.smtp_code, parsed.enhanced_code) == (
        cls,
        hop,
        code,
        esc,
    )
    assert parsed.stage == stage
    assert parsed.suspended is text.startswith("delivery temporarily suspended: ")


def test_classification_ignores_what_masking_hides() -> None:
    # The domain says greylist, the text says mailbox full (the research prototype's bug).
    full = parse_reason(
        "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <full1@greylist.test>: Recipient address "
        "rejected: Mailbox full (in reply to RCPT TO command)"
    )
    assert full.reason_class is ReasonClass.MAILBOX_FULL
    # An address or a host named "spam" or "blacklist" decides nothing.
    unknown = parse_reason(
        "host blacklist.example[192.0.2.9] said: 550 5.1.1 <spam@example.net>: Recipient "
        "address rejected: User unknown (in reply to RCPT TO command)"
    )
    assert unknown.reason_class is ReasonClass.USER_UNKNOWN


def test_providers_and_blocklist_details() -> None:
    microsoft = parse_reason(
        "host outlook-com.olc.protection.outlook.com[52.101.1.2] said: 451 4.7.650 The mail "
        "server [192.0.2.7] has been temporarily rate limited due to IP reputation. (in reply "
        "to MAIL FROM command)"
    )
    assert (microsoft.reason_class, microsoft.provider) == (ReasonClass.RATE_LIMITED, "microsoft")
    yahoo = parse_reason(
        "host mta5.am0.yahoodns.net[67.195.204.72] refused to talk to me: 421 4.7.0 [TSS04] "
        "Messages from 192.0.2.7 temporarily deferred due to unexpected volume or user complaints"
    )
    assert (yahoo.reason_class, yahoo.provider) == (ReasonClass.RATE_LIMITED, "yahoo")
    spamhaus = parse_reason(
        "host 127.0.0.1[127.0.0.1] said: 554 5.7.1 Service unavailable; Client host "
        "[198.51.100.7] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/"
        "198.51.100.7 (in reply to RCPT TO command)"
    )
    assert (spamhaus.listed_ip, spamhaus.dnsbl_zone) == ("198.51.100.7", "zen.spamhaus.org")
    assert spamhaus.permanent_reply
    s3150 = parse_reason(
        "host mx.example.net[192.0.2.5] said: 550 5.7.1 Unfortunately, messages from "
        "[192.0.2.7] weren't sent. Please contact your Internet service provider since part of "
        "their network is on our block list (S3150). (in reply to MAIL FROM command)"
    )
    assert (s3150.reason_class, s3150.listed_ip) == (ReasonClass.BLOCKLISTED, "192.0.2.7")


def test_the_neighbouring_tls_lab_texts_classify() -> None:
    log = (QUEUE_FIXTURES / "postfix-smtp-client-mandatory-tls-deferrals.log").read_text()
    texts = re.findall(r"status=deferred \((.*)\)$", log, re.M)
    classes = {parse_reason(t).reason_class for t in texts}
    assert classes == {
        ReasonClass.TLS_NOT_OFFERED,
        ReasonClass.BLOCKLISTED,
        ReasonClass.STARTTLS_REFUSED,
        ReasonClass.TLS_HANDSHAKE_FAILED,
        ReasonClass.GREETING_421,
        ReasonClass.CERTIFICATE_NOT_VERIFIED,
        ReasonClass.DNS_LOOKUP_FAILURE,
    }


def test_masking() -> None:
    text = (
        "host mx.example.net[192.0.2.5]:25 said: 550 <a@b.example> c@d.example "
        "http://x.example/a@b [IPv6:2001:db8::1] 198.51.100.1 queued as 3AC6421A7EA, "
        "4jX1kB3zblzJc3D"
    )
    assert mask(text) == "host HOST said: 550 <ADDR> ADDR URL [IP] IP queued as QID, QID"
    assert memo_key("host a.example[192.0.2.1] said: 450 <x@y.example>: busy") == (
        "host HOST said: 450 <ADDR>: busy"
    )


def test_the_cache_answers_as_the_parser_does() -> None:
    cache = ReasonCache(limit=8)  # small: the memos are cleared and refilled on the way
    texts = [t for _, t in _captured_reasons()]
    texts += [t.replace("127.0.0.1[127.0.0.1]", "mx9.example[192.0.2.9]") for t in texts]
    for text in texts:
        assert cache.parse(text) == parse_reason(text), text


@pytest.mark.parametrize("cls", list(ReasonClass))
def test_every_class_has_a_next_step(cls: ReasonClass) -> None:
    advice = ADVICE[cls]
    assert advice.code == f"queue.{cls.value}"
    step = advice.next_step(
        Destination(
            "example.net",
            "mx.example.net[192.0.2.5]:25",
            parse_reason("Server certificate not verified"),
        )
    )
    assert step and "{" not in step


def test_tls_and_dnsbl_next_steps_name_the_commands() -> None:
    tls = parse_reason("TLS is required, but was not offered by host mx.example.net[192.0.2.5]")
    step = ADVICE[tls.reason_class].next_step(Destination("example.net", tls.next_hop, tls))
    assert step.startswith("`mailcheck tls example.net`")
    dnsbl = parse_reason(
        "host mx[192.0.2.5] said: 554 5.7.1 Client host [198.51.100.7] blocked using "
        "bl.spamcop.net (in reply to RCPT TO command)"
    )
    step = ADVICE[dnsbl.reason_class].next_step(Destination("example.net", dnsbl.next_hop, dnsbl))
    assert "`mailcheck dnsbl 198.51.100.7 --dnsbl bl.spamcop.net`" in step
