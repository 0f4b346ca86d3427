"""The postfix audit over saved main.cf/master.cf files and inline configuration text."""

from __future__ import annotations

import re

import pytest

from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.config import ConfigUnavailable, parse_config, read_files
from mailcheck.postfix.relay import RelayObservation, evaluate_relay
from tests.conftest import ROOT

FIX = ROOT / "fixtures" / "postfix"
MASTER_SUB = "submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt\n"


def codes_of(name: str) -> set[str]:
    cfg = read_files(str(FIX / f"{name}.main.cf"), str(FIX / f"{name}.master.cf"))
    return {f.code for f in evaluate_postfix(cfg).findings}


def codes_text(main: str, master: str = "") -> set[str]:
    return {f.code for f in evaluate_postfix(parse_config(main, master)).findings}


def test_good_config_has_only_notes() -> None:
    assert codes_of("good") == {"postfix.smtp-tls-level"}


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "open-relay",
            {
                "postfix.mynetworks-wide",
                "postfix.relay-permit-early",
                "postfix.relay-unrestricted",
                "postfix.malformed-line",
                "postfix.smtp-tls-mandatory",
                "postfix.relayhost",
                "postfix.transport-concurrency-one",
                "postfix.transports",
                "postfix.vrfy-enabled",
                "postfix.helo-not-required",
                "postfix.bounces-unmonitored",
            },
        ),
        (
            "auth-without-tls",
            {
                "postfix.auth-without-tls",
                "postfix.mynetworks-style",
                "postfix.banner-without-hostname",
                "postfix.dane-without-dnssec",
                "postfix.myhostname-unset",
                "postfix.no-submission",
            },
        ),
        (
            "submission-plain",
            {
                "postfix.submission-not-encrypt",
                "postfix.submission-no-auth",
                "postfix.sender-login-unenforced",
                "postfix.submissions-no-wrappermode",
                "postfix.smtp-tls-level-unknown",
            },
        ),
    ],
)
def test_bad_configs_are_found(fixture: str, expected: set[str]) -> None:
    assert expected <= codes_of(fixture)


def test_credentials_to_smarthost_without_tls() -> None:
    main = (
        "relayhost = [smart.example.net]:587\nsmtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = hash:/x\n"
    )
    found = codes_text(main, MASTER_SUB)
    assert "postfix.relayhost-credentials-without-tls" in found
    assert {"postfix.no-submissions", "postfix.smtp-tls-level"} <= found


def test_one_shot_transport_and_continuations() -> None:
    main = "slow_destination_recipient_limit = 1\nmynetworks = 127.0.0.0/8,\n    10.0.0.0/8\n"
    found = codes_text(main)
    assert {"postfix.transport-one-shot", "postfix.mynetworks-wide"} <= found


def test_missing_file_is_one_line() -> None:
    with pytest.raises(ConfigUnavailable, match="cannot read"):
        read_files("/nonexistent/main.cf", "/nonexistent/master.cf")


def test_relay_evaluation_from_plain_data() -> None:
    base = {"host": "h", "port": 25, "mode": "relay", "greeting": "220 x", "ehlo_plain": []}
    open_ = RelayObservation(**base, mail="250 ok", rcpt="250 ok", rcpt_code=250)  # type: ignore[arg-type]
    assert {f.code for f in evaluate_relay(open_).findings} == {"relay.open"}
    deferred = RelayObservation(**base, mail="250 ok", rcpt="454 no", rcpt_code=454)  # type: ignore[arg-type]
    assert {f.code for f in evaluate_relay(deferred).findings} == {"relay.deferred"}
    refused = RelayObservation(**base, mail="553 no")  # type: ignore[arg-type]
    assert {f.code for f in evaluate_relay(refused).findings} == {"relay.mail-refused"}
    sub = RelayObservation(
        "h", 587, "submission", "220 x", ["AUTH"], auth_mechanisms_plain=["PLAIN", "LOGIN"]
    )
    assert {f.code for f in evaluate_relay(sub).findings} == {
        "relay.starttls-missing",
        "relay.auth-before-tls",
    }
    assert evaluate_relay(sub).data["auth_plain"] is True
    after = RelayObservation(
        "h", 587, "submission", "220 x", ["STARTTLS"], ehlo_tls=["AUTH"], auth_mechanisms_plain=[]
    )
    assert {f.code for f in evaluate_relay(after).findings} == {"relay.auth-after-tls"}
    assert evaluate_relay(after).data["auth_plain"] is False
    # AUTH before TLS, but only a mechanism that never sends the password itself
    cram = RelayObservation("h", 25, "relay", "220 x", ["AUTH"], auth_mechanisms_plain=["CRAM-MD5"])
    assert "relay.auth-before-tls" not in {f.code for f in evaluate_relay(cram).findings}
    tls = RelayObservation("h", 465, "implicit", "220 x", ehlo_tls=["AUTH"])
    assert "relay.implicit-tls" in {f.code for f in evaluate_relay(tls).findings}
    bad = RelayObservation(
        "h", 465, "implicit", error={"step": "connect", "kind": "tls", "message": "x"}
    )
    assert {f.code for f in evaluate_relay(bad).findings} == {"relay.implicit-tls-failed"}


def test_codes_are_documented_and_tested() -> None:
    pattern = re.compile(r'"((?:postfix|relay)\.[a-z0-9-]+)"')
    in_source = {
        c
        for p in (ROOT / "mailcheck" / "postfix").glob("*.py")
        for c in pattern.findall(p.read_text())
    }
    docs = (ROOT / "docs" / "findings.md").read_text()
    documented = set(re.findall(r"^### `((?:postfix|relay)\.[a-z0-9-]+)`", docs, re.M))
    assert in_source == documented
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_postfix*.py"))
    assert not (ROOT / "docs" / "drafts" / "postfix.md").exists()
    assert {c for c in in_source if f'"{c}"' not in tests} == set()


@pytest.mark.parametrize(
    ("obs", "code"),
    [
        (RelayObservation("h", 25, "relay", "554 go away"), "relay.greeting-refused"),
        (
            RelayObservation(
                "h", 25, "relay", error={"step": "connect", "kind": "connect", "message": "x"}
            ),
            "relay.unreachable",
        ),
        (
            RelayObservation(
                "h", 25, "relay", "220 x", error={"step": "ehlo", "kind": "timeout", "message": "x"}
            ),
            "relay.incomplete",
        ),
        (
            RelayObservation(
                "h",
                25,
                "relay",
                "220 x",
                error={"step": "ehlo", "kind": "malformed", "message": "x"},
            ),
            "relay.malformed-reply",
        ),
        (
            RelayObservation("h", 25, "relay", "220 x", [], mail="250", rcpt="554", rcpt_code=554),
            "relay.closed",
        ),
    ],
)
def test_relay_outcomes(obs: RelayObservation, code: str) -> None:
    assert code in {f.code for f in evaluate_relay(obs).findings}
