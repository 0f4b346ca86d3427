"""The relay probe against a real private Postfix on loopback, and against scripted servers.

One module fixture starts a Postfix (tests/lab/postfix_smtpd.py) with five smtpd listeners:
an open relay (mynetworks holds the probe's 127.0.0.1), a safe one (mynetworks elsewhere,
reject_unauth_destination), a submission service (TLS required, AUTH only after STARTTLS,
Cyrus SASL), a bad submission (AUTH offered in plain text) and submissions (implicit TLS,
smtpd_tls_wrappermode, on the real port 465 when it is free). Postfix logs each session's
command counts at disconnect: the tests check there was never a DATA. The `mailcheck relay`
command runs in a child process against the same listeners. Needs root and the Debian package
postfix (fails under CI=true without it, skips otherwise).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from mailcheck.dns import DnsClient, DnsConfig
from mailcheck.model import CheckResult
from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.cli import parse_hostport
from mailcheck.postfix.config import read_live
from mailcheck.postfix.relay import PROBE_RECIPIENT, evaluate_relay, probe_relay
from mailcheck.smtp import Reply, SmtpConnection
from tests.conftest import ROOT, require_binary
from tests.lab.dnsserver import LabHandle
from tests.lab.postfix_smtpd import Listener, PostfixSmtpdLab, port_free
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
    "smtps": Listener(
        "127.0.0.43",
        (
            ELSEWHERE,
            "smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination",
            "smtpd_tls_wrappermode=yes",
            "smtpd_tls_security_level=encrypt",
        ),
        tls=True,
        sasl=True,
    ),
}
SMTPS = 465
SCHEMA = json.loads((ROOT / "docs" / "schema" / "report-v1.json").read_text())


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixSmtpdLab]:
    require_binary("postfix")
    require_binary("openssl")
    listeners = dict(LISTENERS)
    if port_free(listeners["smtps"].host, SMTPS):
        listeners["smtps"] = replace(listeners["smtps"], port=SMTPS)
    with PostfixSmtpdLab(listeners) as pf:
        yield pf


def mailcheck_relay(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`mailcheck relay ARGS --json` in a child process; the JSON validated by the schema."""
    env = {k: v for k, v in os.environ.items() if k != "MAILCHECK_NAMESERVER"}
    env.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    proc = subprocess.run(
        [sys.executable, "-m", "mailcheck", "relay", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    document = json.loads(proc.stdout) if proc.stdout else {}
    if document:
        jsonschema.validate(document, SCHEMA)
    return proc, document


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
    obs = asyncio.run(probe_relay(host, port, TIMEOUT))
    result = evaluate_relay(obs)
    assert obs.rcpt_code == 250, obs
    assert "relay.open" in codes(result)
    assert not obs.error
    assert_no_data(sessions(postfix, "open"))


def test_safe_server_refuses_to_relay(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("safe")
    obs = asyncio.run(probe_relay(host, port, TIMEOUT))
    result = evaluate_relay(obs)
    assert obs.rcpt_code is not None and 500 <= obs.rcpt_code < 600, obs
    assert "Relay access denied" in (obs.rcpt or "")
    assert codes(result) == {"relay.closed"}
    assert_no_data(sessions(postfix, "safe"))


def test_submission_requires_tls_and_offers_auth_only_after_it(
    postfix: PostfixSmtpdLab,
) -> None:
    host, port = postfix.address("submission")
    obs = asyncio.run(probe_relay(host, port, TIMEOUT, mode="submission"))
    result = evaluate_relay(obs)
    assert obs.ehlo_plain is not None and "STARTTLS" in obs.ehlo_plain
    assert "AUTH" not in obs.ehlo_plain
    assert obs.starttls is not None and obs.starttls.startswith("220")
    assert obs.ehlo_tls is not None and "AUTH" in obs.ehlo_tls
    assert obs.auth_plain is False and obs.auth_challenge is None  # nothing to try
    assert obs.rcpt_code is not None and 500 <= obs.rcpt_code < 600, obs
    assert codes(result) == {"relay.auth-after-tls", "relay.closed"}
    assert_no_data(sessions(postfix, "submission"))


def test_submission_refuses_mail_before_starttls(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("submission")

    async def converse() -> None:
        conn = await SmtpConnection.open(host, port, TIMEOUT)
        assert isinstance(conn, SmtpConnection), conn
        try:
            greeting = await conn.read_reply(TIMEOUT)
            assert isinstance(greeting, Reply) and greeting.code == 220, greeting
            ehlo = await conn.command("EHLO mailcheck.invalid", TIMEOUT)
            assert isinstance(ehlo, Reply) and ehlo.code == 250, ehlo
            refused = await conn.command("MAIL FROM:<probe@outside.invalid>", TIMEOUT)
            # "Must issue a STARTTLS command first"
            assert isinstance(refused, Reply) and refused.code == 530, refused
            await conn.command("QUIT", TIMEOUT)
        finally:
            conn.close()

    asyncio.run(converse())


def test_auth_offered_in_plain_text_is_found_and_never_given_credentials(
    postfix: PostfixSmtpdLab,
) -> None:
    host, port = postfix.address("authplain")
    obs = asyncio.run(probe_relay(host, port, TIMEOUT, mode="submission"))
    result = evaluate_relay(obs)
    assert obs.ehlo_plain is not None and "AUTH" in obs.ehlo_plain
    assert obs.auth_mechanisms_plain is not None
    assert {"PLAIN", "LOGIN"} <= set(obs.auth_mechanisms_plain) and obs.auth_plain is True
    # Postfix answers AUTH LOGIN with a challenge (334): it would take a password in plain
    # text. The probe cancels with `*` and sends no credentials (auth=0/1 in the log).
    assert obs.auth_challenge is not None and obs.auth_challenge.startswith("334"), obs
    assert {"relay.starttls-missing", "relay.auth-before-tls", "relay.closed"} <= codes(result)
    finding = next(f for f in result.findings if f.code == "relay.auth-before-tls")
    assert "challenge" in finding.message and finding.evidence["auth_plain"] is True
    assert result.data["auth_plain"] is True and result.data["address"] == host
    [line] = sessions(postfix, "authplain")
    assert "auth=0/1" in line, line
    assert_no_data([line])


def test_plain_text_auth_is_found_on_a_relay_port_too(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("authplain")
    obs = asyncio.run(probe_relay(host, port, TIMEOUT))  # mode relay: no STARTTLS expected there
    result = evaluate_relay(obs)
    assert obs.mode == "relay" and obs.auth_plain is True
    assert codes(result) == {"relay.auth-before-tls", "relay.closed"}
    assert_no_data(sessions(postfix, "authplain", expected=2))


def test_implicit_tls_listener(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("smtps")
    obs = asyncio.run(probe_relay(host, port, TIMEOUT, mode="implicit"))
    result = evaluate_relay(obs)
    assert obs.greeting is not None and obs.greeting.startswith("220"), obs
    assert obs.ehlo_plain is None and obs.auth_plain is None
    assert obs.ehlo_tls is not None and "AUTH" in obs.ehlo_tls and "STARTTLS" not in obs.ehlo_tls
    assert codes(result) == {"relay.implicit-tls", "relay.closed"}
    assert_no_data(sessions(postfix, "smtps"))


def test_plain_text_client_on_the_implicit_tls_port_gets_no_greeting(
    postfix: PostfixSmtpdLab,
) -> None:
    host, port = postfix.address("smtps")
    obs = asyncio.run(probe_relay(host, port, 1.0, mode="relay"))  # speaks plain SMTP to a TLS port
    result = evaluate_relay(obs)
    assert obs.greeting is None and obs.error["step"] == "greeting", obs
    assert codes(result) <= {"relay.unreachable", "relay.malformed-reply", "relay.incomplete"}
    assert all(f.indeterminate for f in result.findings)


def test_cli_port_465_means_implicit_tls(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("smtps")
    if port != SMTPS:
        pytest.skip(f"{host}:{SMTPS} is taken; the listener runs on {port}")
    proc, doc = mailcheck_relay(f"{host}:{SMTPS}")
    assert proc.returncode == 0, proc.stderr
    [check] = doc["checks"]
    assert check["check"] == "relay" and doc["target"] == f"{host}:{SMTPS}"
    data = check["data"]
    assert data["mode"] == "implicit" and data["address"] == host
    assert data["ehlo_plain"] is None and data["auth_plain"] is None
    assert "AUTH" in data["ehlo_tls"] and data["greeting"].startswith("220")
    assert {f["code"] for f in check["findings"]} == {"relay.implicit-tls", "relay.closed"}


def test_cli_open_relay_exits_1_with_one_line(postfix: PostfixSmtpdLab) -> None:
    host, port = postfix.address("open")
    proc, doc = mailcheck_relay(f"{host}:{port}", "--fail-on", "warning")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "at or above warning" in proc.stderr
    [check] = doc["checks"]
    assert "relay.open" in {f["code"] for f in check["findings"]}
    assert check["data"]["auth_plain"] is False and check["data"]["mode"] == "relay"
    assert doc["dns"]["queries"] == 0  # an address: no DNS at all


def test_cli_resolves_a_name_with_the_run_s_nameserver(
    postfix: PostfixSmtpdLab, lab: LabHandle
) -> None:
    _, port = postfix.address("safe")
    proc, doc = mailcheck_relay(
        f"ns1.lab.test:{port}", "-n", lab.address, "--timeout", "0.5", "--trace"
    )
    assert proc.returncode == 0, proc.stderr
    assert doc["dns"]["nameservers"] == [lab.address]
    assert [(t["name"], t["type"]) for t in doc["dns"]["trace"]] == [("ns1.lab.test.", "A")]
    assert doc["checks"][0]["data"]["address"] == "127.0.0.1"


def test_cli_unanswered_dns_exits_3(postfix: PostfixSmtpdLab) -> None:
    _, port = postfix.address("safe")
    # Nothing listens on this loopback port: no resolver answers, the run is incomplete.
    proc, doc = mailcheck_relay(
        f"ns1.lab.test:{port}", "-n", "127.0.0.1:9", "--timeout", "0.2", "--retries", "0"
    )
    assert proc.returncode == 3, proc.stderr
    assert "no DNS resolver answered" in proc.stderr
    assert {f["code"] for f in doc["checks"][0]["findings"]} == {"relay.unreachable"}


def test_audit_of_the_running_lab_finds_plain_text_auth(postfix: PostfixSmtpdLab) -> None:
    cfg = read_live(str(postfix.config_dir), require_binary("postconf"))
    result = evaluate_postfix(cfg)
    found = {(f.code, f.evidence.get("service")) for f in result.findings}
    host, port = postfix.address("authplain")
    assert ("postfix.auth-without-tls", f"{host}:{port}") in found
    # the submission and smtps listeners require TLS before AUTH: not flagged
    for name in ("submission", "smtps"):
        where = "{}:{}".format(*postfix.address(name))
        assert ("postfix.auth-without-tls", where) not in found
    assert cfg.live and cfg.effective["myhostname"] == "queuelab.mailcheck.test"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail.example.org", ("mail.example.org", 25)),
        ("mail.example.org:587", ("mail.example.org", 587)),
        ("192.0.2.1:465", ("192.0.2.1", 465)),
        ("[2001:db8::1]:465", ("2001:db8::1", 465)),
        ("2001:db8::1", ("2001:db8::1", 25)),
        ("[::1]", ("::1", 25)),
        ("Mail.Example.ORG.", ("mail.example.org", 25)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize(
    "text", ["", "a.test:0", "a.test:99999", "a.test:x", "bad_host!.test:25", "nodot", "[::1]:"]
)
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text)


def test_host_name_is_resolved_through_the_lab(
    postfix: PostfixSmtpdLab, lab_config: DnsConfig
) -> None:
    _, port = postfix.address("safe")
    client = DnsClient(lab_config)
    obs = asyncio.run(probe_relay("ns1.lab.test", port, TIMEOUT, dns=client))
    assert obs.address == "127.0.0.1"
    assert obs.host == "ns1.lab.test"
    assert codes(evaluate_relay(obs)) == {"relay.closed"}
    trace = client.summary(with_trace=True).trace
    assert [(t["name"], t["type"]) for t in trace] == [("ns1.lab.test.", "A")]


def test_unresolvable_host_name_is_unreachable(lab_config: DnsConfig) -> None:
    client = DnsClient(lab_config)
    obs = asyncio.run(probe_relay("nothere.lab.test", 25, TIMEOUT, dns=client))
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
    result = evaluate_relay(asyncio.run(probe_relay(host, port, TIMEOUT)))
    assert codes(result) == {"relay.unreachable"}
    assert result.findings[0].indeterminate


@pytest.mark.parametrize(("name", "step"), [("badrcpt", "rcpt"), ("badgreeting", "greeting")])
def test_malformed_reply(scripted: SmtpLab, name: str, step: str) -> None:
    host, port = scripted.address(name)
    obs = asyncio.run(probe_relay(host, port, TIMEOUT))
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
