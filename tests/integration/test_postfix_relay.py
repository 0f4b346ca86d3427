"""The relay probe against a real private Postfix on loopback, and against scripted servers.

One module fixture starts a Postfix (tests/lab/postfix_smtpd.py) with four smtpd listeners:
an open relay (mynetworks holds the probe's 127.0.0.1), a safe one (mynetworks elsewhere,
reject_unauth_destination), a submission service (TLS required, AUTH only after STARTTLS,
Cyrus SASL), and a bad submission (AUTH offered in plain text). Postfix logs each session's
command counts at disconnect: the tests check there was never a DATA. Needs root and the
Debian package postfix (fails under CI=true without it, skips otherwise).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from mailcheck.dns import DnsClient, DnsConfig
from mailcheck.model import CheckResult
from mailcheck.postfix.relay import PROBE_RECIPIENT, evaluate_relay, probe_relay
from mailcheck.postfix.smtp import SmtpConnection
from tests.conftest import require_binary
from tests.lab.postfix_smtpd import Listener, PostfixSmtpdLab
from tests.lab.smtpd import Script, SmtpLab, always

TIMEOUT = 5.0
RESTRICTIONS = (
    "smtpd_relay_restrictions=permit_mynetworks,permit_sasl_authenticated,reject_unauth_destination"
)
ELSEWHERE = "mynetworks=192.0.2.0/24"  # TEST-NET-1: never the probe's source
LISTENERS = {
    "open": Listener("127.0.0.40", ("mynetworks=127.0.0.0/8", RESTRICTIONS)),
    # On 127.0.0.1: ns1.lab.test (the lab zone) points here, for the DNS test.
    "safe": Listener("127.0.0.1", (ELSEWHERE, RESTRICTIONS)),
    "submission": Listener(
        "127.0.0.41",
        (
            ELSEWHERE,
            "smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination",
            "smtpd_tls_security_level=encrypt",
            "smtpd_tls_auth_only=yes",
        ),
        tls=True,
        sasl=True,
    ),
    "authplain": Listener(
        "127.0.0.42",
        (
            ELSEWHERE,
            "smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination",
            "smtpd_tls_security_level=none",
            "smtpd_tls_auth_only=no",
        ),
        sasl=True,
    ),
}


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixSmtpdLab]:
    require_binary("postfix")
    require_binary("openssl")
    with PostfixSmtpdLab(LISTENERS) as pf:
        yield pf


def codes(result: CheckResult) -> set[str]:
    return {f.code for f in result.findings}


def sessions(pf: PostfixSmtpdLab, name: str, expected: int = 1) -> list[str]:
    """The `disconnect from ...` lines of a listener (its command counts), bounded wait."""
    pattern = re.compile(rf"postfix-relaylab/{name}/smtpd\[\d+\]: disconnect from .*")
    deadline = time.monotonic() + 5.0
    found: list[str] = []
    while time.monotonic() < deadline:
        found = [m.group(0) for m in pattern.finditer(pf.log_text(tail=100_000))]
        # The lab's readiness check connects once without a command: skip that session.
        found = [line for line in found if "ehlo=" in line]
        if len(found) >= expected:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no session of {name} logged\n{pf.log_text()}")


def assert_no_data(lines: list[str]) -> None:
    for line in lines:
        assert "data=" not in line and "bdat=" not in line, line
        assert "mail=1" in line and "quit=1" in line, line


def test_open_relay_is_found(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("open")
    obs = probe_relay(host, port, TIMEOUT)
    result = evaluate_relay(obs)
    assert obs.rcpt_code == 250, obs
    assert "relay.open" in codes(result)
    assert not obs.error
    assert_no_data(sessions(postfix, "open"))


def test_safe_server_refuses_to_relay(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("safe")
    obs = probe_relay(host, port, TIMEOUT)
    result = evaluate_relay(obs)
    assert obs.rcpt_code is not None and 500 <= obs.rcpt_code < 600, obs
    assert "Relay access denied" in (obs.rcpt or "")
    assert codes(result) == {"relay.closed"}
    assert_no_data(sessions(postfix, "safe"))


def test_submission_requires_tls_and_offers_auth_only_after_it(
    postfix: PostfixSmtpdLab,
) -> None:
    host, port = postfix.address("submission")
    obs = probe_relay(host, port, TIMEOUT, mode="submission")
    result = evaluate_relay(obs)
    assert obs.ehlo_plain is not None and "STARTTLS" in obs.ehlo_plain
    assert "AUTH" not in obs.ehlo_plain
    assert obs.starttls is not None and obs.starttls.startswith("220")
    assert obs.ehlo_tls is not None and "AUTH" in obs.ehlo_tls
    assert obs.auth_plain is None  # nothing to try: AUTH was not offered in plain text
    assert obs.rcpt_code is not None and 500 <= obs.rcpt_code < 600, obs
    assert codes(result) == {"relay.auth-after-tls", "relay.closed"}
    assert_no_data(sessions(postfix, "submission"))


def test_submission_refuses_mail_before_starttls(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("submission")
    conn = SmtpConnection.open(host, port, TIMEOUT)
    try:
        assert conn.read_reply().code == 220
        assert conn.command("EHLO mailcheck.invalid").code == 250
        refused = conn.command("MAIL FROM:<probe@outside.invalid>")
        assert refused.code == 530, refused  # "Must issue a STARTTLS command first"
        conn.command("QUIT")
    finally:
        conn.close()


def test_auth_offered_in_plain_text_is_found_and_never_given_credentials(
    postfix: PostfixSmtpdLab,
) -> None:
    host, port = postfix.address("authplain")
    obs = probe_relay(host, port, TIMEOUT, mode="submission")
    result = evaluate_relay(obs)
    assert obs.ehlo_plain is not None and "AUTH" in obs.ehlo_plain
    # Postfix answers AUTH LOGIN with a challenge (334): it would take a password in plain
    # text. The probe cancels with `*` and sends no credentials (auth=0/1 in the log).
    assert obs.auth_plain is not None and obs.auth_plain.startswith("334"), obs
    assert {"relay.starttls-missing", "relay.auth-before-tls", "relay.closed"} <= codes(result)
    finding = next(f for f in result.findings if f.code == "relay.auth-before-tls")
    assert "challenge" in finding.message
    [line] = sessions(postfix, "authplain")
    assert "auth=0/1" in line, line
    assert_no_data([line])


def test_host_name_is_resolved_through_the_lab(
    postfix: PostfixSmtpdLab, lab_config: DnsConfig
) -> None:
    _, port = postfix.address("safe")
    client = DnsClient(lab_config)
    obs = probe_relay("ns1.lab.test", port, TIMEOUT, dns=client)
    assert obs.address == "127.0.0.1"
    assert obs.host == "ns1.lab.test"
    assert codes(evaluate_relay(obs)) == {"relay.closed"}
    trace = client.summary(with_trace=True).trace
    assert [(t["name"], t["type"]) for t in trace] == [("ns1.lab.test.", "A")]


def test_unresolvable_host_name_is_unreachable(lab_config: DnsConfig) -> None:
    client = DnsClient(lab_config)
    obs = probe_relay("nothere.lab.test", 25, TIMEOUT, dns=client)
    result = evaluate_relay(obs)
    assert obs.error["step"] == "resolve" and obs.address is None
    assert codes(result) == {"relay.unreachable"}
    assert [f.indeterminate for f in result.findings] == [True]
    asked = [(t["name"], t["type"]) for t in client.summary(with_trace=True).trace]
    assert asked == [("nothere.lab.test.", "A"), ("nothere.lab.test.", "AAAA")]


@pytest.fixture(scope="module")
def scripted() -> Iterator[SmtpLab]:
    scripts = {
        "badrcpt": Script(rcpt=always("25O 2.1.5 Ok")),
        "badgreeting": Script(greeting="hello, this is not SMTP"),
    }
    with SmtpLab(scripts, closed=("closed",)) as lab:
        yield lab


def test_closed_port_is_unreachable(scripted: SmtpLab) -> None:
    host, port = scripted.address("closed")
    result = evaluate_relay(probe_relay(host, port, TIMEOUT))
    assert codes(result) == {"relay.unreachable"}
    assert result.findings[0].indeterminate


@pytest.mark.parametrize(("name", "step"), [("badrcpt", "rcpt"), ("badgreeting", "greeting")])
def test_malformed_reply(scripted: SmtpLab, name: str, step: str) -> None:
    host, port = scripted.address(name)
    obs = probe_relay(host, port, TIMEOUT)
    assert obs.error["step"] == step and obs.error["kind"] == "malformed", obs
    assert codes(evaluate_relay(obs)) == {"relay.malformed-reply"}
    received = [line for server, line in scripted.transcript if server == name]
    assert not any(line.upper().startswith(("DATA", "BDAT")) for line in received)
    if name == "badrcpt":
        assert received[:3] == [
            "EHLO mailcheck.invalid",
            "MAIL FROM:<probe@outside.invalid>",
            f"RCPT TO:<{PROBE_RECIPIENT}>",
        ]
