"""evaluate_tls on plain data: how a probed session becomes each sender level's prediction,
and which TLSA findings survive a session that could not be probed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from cryptography.x509.oid import ExtendedKeyUsageOID

from mailcheck.checks.tls_cert import load_roots
from mailcheck.checks.tls_dns import TlsaLookup, TlsaState
from mailcheck.checks.tls_probe_result import SmtpProbe, Step, Stopped, TlsResult
from mailcheck.checks.tls_report import HostAddress, TlsObservation, evaluate_tls
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import DnsAnswer, Outcome
from mailcheck.model import CheckResult
from mailcheck.smtp import FailureKind, Reply, SmtpFailure
from tests.lab.pki import LabPki

HOST, IP = "mx.example", "192.0.2.25"
OWNER = f"_25._tcp.{HOST}."
PEER = f"{HOST}[{IP}]"
DIGEST = "ab" * 32
CONNECTED = SmtpProbe(HOST, IP, 25, connected=True, greeting=Reply(220, ("mx ESMTP",)))
TLS = TlsResult("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, (), 3, None, None, "")
IN_TLS = replace(
    CONNECTED,
    ehlo=Reply(250, ("mx", "STARTTLS")),
    keywords=("STARTTLS",),
    starttls_offered=True,
    starttls=Reply(220, ("go ahead",)),
    tls=TLS,
)


def tlsa(*texts: str) -> TlsaLookup:
    records = tuple(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, t) for t in texts)
    answer = DnsAnswer(OWNER, "TLSA", Outcome.ANSWER, records, authenticated=True)
    return TlsaLookup(HOST, OWNER, TlsaState.SECURE, answer)


def judge(probe: SmtpProbe, lookup: TlsaLookup | None = None) -> CheckResult:
    obs = TlsObservation(
        domain=None,
        settings=TlsSettings(ehlo_name="probe.example"),
        mx=None,
        hosts=(HOST,),
        host_lookups={},
        tlsa={HOST: lookup} if lookup is not None else {},
        addresses=(HostAddress(HOST, IP, probe),),
        mta_sts=None,
    )
    return evaluate_tls(obs)


def senders(result: CheckResult) -> dict[str, Any]:
    found: dict[str, Any] = result.data["hosts"][0]["senders"]
    return found


def test_record_findings_survive_an_unreachable_host() -> None:
    # No chain is needed to say that usage 1 is unusable for SMTP or that selector 0 breaks
    # at every renewal; only what needs the served chain (matching) is left out.
    unreachable = SmtpProbe(
        HOST, IP, 25, connect_error=SmtpFailure(FailureKind.TIMEOUT, "no answer within 10 s", 1)
    )
    result = judge(unreachable, tlsa(f"1 1 1 {DIGEST}", f"3 0 1 {DIGEST}"))
    codes = {f.code for f in result.findings}
    assert {"tls.unreachable", "dane.usage-unusable", "dane.full-cert-selector"} <= codes
    assert not {"dane.no-starttls", "dane.match", "dane.mismatch"} & codes
    assert {s["outcome"] for s in senders(result).values()} == {"unknown"}


def test_helo_refused_is_refused_to_talk_to_me_at_every_level() -> None:
    refused = replace(
        CONNECTED, ehlo=Reply(550, ("5.7.1 go away",)), helo=Reply(550, ("5.7.1 go away",))
    )
    result = judge(refused)
    assert result.data["hosts"][0]["cause"] == "tls.helo-rejected"
    said = {"outcome": "bounce", "dsn": "5.7.1"}
    said["postfix_says"] = f"host {PEER} refused to talk to me: 550 5.7.1 go away"
    assert all(s == said for s in senders(result).values())
    assert result.facts is not None and result.facts.rows[0][1] == "rejected"


def test_a_5xx_greeting_defers_with_a_4xx_dsn() -> None:
    result = judge(replace(CONNECTED, greeting=Reply(554, ("blocked", "5.7.1 go away"))))
    may = senders(result)["may"]
    assert (
        may["postfix_says"] == f"host {PEER} refused to talk to me: 554-blocked 554 5.7.1 go away"
    )
    assert may["dsn"] == "4.7.1"


def test_421_to_ehlo_is_a_rejection_not_an_unknown() -> None:
    result = judge(replace(CONNECTED, ehlo=Reply(421, ("4.7.0 too many connections",))))
    encrypt = senders(result)["encrypt"]
    assert encrypt["outcome"] == "defer" and encrypt["dsn"] == "4.7.0"
    assert encrypt["postfix_says"].endswith("refused to talk to me: 421 4.7.0 too many connections")


def test_a_connection_lost_inside_tls() -> None:
    closed = SmtpFailure(FailureKind.CLOSED, "the server closed the connection", 2)
    lost = replace(
        IN_TLS, post_tls_error=closed, stopped=Stopped(Step.POST_TLS_EHLO, closed, deadline=False)
    )
    result = judge(lost)
    lost_text = f"lost connection with {PEER} while performing the EHLO handshake"
    assert senders(result)["may"] == {"outcome": "plaintext", "postfix_says": lost_text,
                                      "dsn": "4.4.2"}  # fmt: skip
    assert senders(result)["encrypt"] == {"outcome": "defer", "postfix_says": lost_text,
                                          "dsn": "4.4.2"}  # fmt: skip
    assert result.facts is not None and result.facts.rows[0][1] == "dropped in TLS"


def test_refused_inside_tls() -> None:
    refused = replace(
        IN_TLS, post_tls_ehlo=Reply(554, ("5.7.0 no",)), post_tls_helo=Reply(554, ("5.7.0 no",))
    )
    may = senders(judge(refused))["may"]
    assert may == {"outcome": "bounce", "dsn": "5.7.0",
                   "postfix_says": f"host {PEER} refused to talk to me: 554 5.7.0 no"}  # fmt: skip


def test_a_timeout_inside_tls_is_unknown_to_senders() -> None:
    timeout = SmtpFailure(FailureKind.TIMEOUT, "no complete reply within 10 s", 10_000)
    slow = replace(IN_TLS, post_tls_error=timeout, stopped=Stopped(Step.POST_TLS_EHLO, timeout))
    assert {s["outcome"] for s in senders(judge(slow)).values()} == {"unknown"}


def test_a_leaf_for_client_authentication_only_fails_verify_and_secure(tmp_path: Path) -> None:
    # Trusted, named right, in date: still, OpenSSL's sslserver purpose refuses an EKU of
    # clientAuth only, so verify and secure defer while encrypt delivers.
    pki = LabPki(tmp_path)
    leaf = pki.issue("client-only", [HOST], eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    probe = replace(IN_TLS, tls=replace(TLS, chain_der=leaf.chain_der))
    obs = TlsObservation(
        domain=HOST,
        settings=TlsSettings(ehlo_name="probe.example"),
        mx=None,
        hosts=(HOST,),
        host_lookups={},
        tlsa={},
        addresses=(HostAddress(HOST, IP, probe),),
        mta_sts=None,
        roots=load_roots(pki.ca_file),
    )
    said = evaluate_tls(obs).data["hosts"][0]["senders"]
    assert said["encrypt"]["outcome"] == "deliver"
    assert said["verify"] == {
        "outcome": "defer",
        "postfix_says": "Server certificate not trusted",
        "dsn": "4.7.5",
    }
    assert said["secure"]["outcome"] == "defer"
