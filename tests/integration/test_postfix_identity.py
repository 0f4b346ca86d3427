"""The identity audit of a live configuration (`postconf -c DIR`) against the lab DNS server.

The lab's reverse zone 2.0.192.in-addr.arpa: 192.0.2.10 ↔ mx1.good.test (confirmed),
192.0.2.30 → mail.isp.test (whose A is 192.0.2.99: not confirmed), 192.0.2.31 (no PTR).
Outbound addresses come from smtp_bind_address or --ip: postconf prints what the file says,
so any documentation address will do; nothing is sent from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from mailcheck.dns import DnsClient, DnsConfig
from mailcheck.postfix.audit import evaluate_postfix
from mailcheck.postfix.config import PostfixConfig, read_live
from mailcheck.postfix.host import gather_host
from mailcheck.postfix.identity import outbound_addresses, route_source
from tests.conftest import ROOT, require_binary
from tests.lab.dnsserver import LabHandle

SCHEMA = json.loads((ROOT / "docs" / "schema" / "report-v1.json").read_text())


def write_config(directory: Path, main: str) -> None:
    """main.cf and master.cf, dated a minute back: postconf waits about 1.5 s before reading a
    main.cf modified within the last seconds."""
    (directory / "main.cf").write_text(main)
    (directory / "master.cf").write_text("smtp inet n - y - - smtpd\n")
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(directory / name, (past, past))


def live(tmp_path: Path, main: str) -> PostfixConfig:
    write_config(tmp_path, main)
    return read_live(str(tmp_path), require_binary("postconf"))


def audit(
    cfg: PostfixConfig, config: DnsConfig, given: tuple[str, ...] = ()
) -> dict[str, dict[str, object]]:
    """Finding code → evidence of the audit with host facts from the lab."""
    host = gather_host(cfg, DnsClient(config), given, resolv_conf="/nonexistent")
    return {f.code: dict(f.evidence) for f in evaluate_postfix(cfg, host).findings}


def test_confirmed_identity(tmp_path: Path, lab_config: DnsConfig) -> None:
    cfg = live(tmp_path, "myhostname = mx1.good.test\nsmtp_bind_address = 192.0.2.10\n")
    assert cfg.effective["smtp_helo_name"] == "mx1.good.test"  # postconf -x: $myhostname
    found = audit(cfg, lab_config)
    assert "postfix.identity-confirmed" in found
    assert found["postfix.identity-confirmed"]["source"] == "smtp_bind_address"
    assert not {"postfix.myhostname-not-ptr", "postfix.helo-not-ptr"} & set(found)
    assert not any(code.startswith("fcrdns.") for code in found)


def test_myhostname_differs_from_ptr(tmp_path: Path, lab_config: DnsConfig) -> None:
    cfg = live(tmp_path, "myhostname = mx2.good.test\nsmtp_bind_address = 192.0.2.10\n")
    found = audit(cfg, lab_config)
    assert found["postfix.myhostname-not-ptr"]["ptr"] == ["mx1.good.test"]
    assert "postfix.identity-confirmed" not in found


def test_helo_name_differs_from_ptr(tmp_path: Path, lab_config: DnsConfig) -> None:
    cfg = live(
        tmp_path,
        "myhostname = mx1.good.test\nsmtp_helo_name = mail.good.test\n"
        "smtp_bind_address = 192.0.2.10\n",
    )
    found = audit(cfg, lab_config)
    assert found["postfix.helo-not-ptr"]["helo_name"] == "mail.good.test"
    assert "postfix.myhostname-not-ptr" not in found


@pytest.mark.parametrize(
    ("address", "code"),
    [("192.0.2.31", "fcrdns.no-ptr"), ("192.0.2.30", "fcrdns.not-confirmed")],
)
def test_fcrdns_verdicts_of_the_outbound_address(
    tmp_path: Path, lab_config: DnsConfig, address: str, code: str
) -> None:
    cfg = live(tmp_path, f"myhostname = mail.isp.test\nsmtp_bind_address = {address}\n")
    found = audit(cfg, lab_config)
    assert found[code]["ip"] == address and found[code]["sources"] == ["smtp_bind_address"]
    assert "postfix.identity-confirmed" not in found


def test_ip_option_wins_and_a_private_address_is_not_looked_up(
    tmp_path: Path, lab_config: DnsConfig
) -> None:
    cfg = live(tmp_path, "myhostname = mx1.good.test\nsmtp_bind_address = 192.0.2.31\n")
    client = DnsClient(lab_config)
    host = gather_host(cfg, client, ("10.1.2.3",), resolv_conf="/nonexistent")
    codes = {f.code for f in evaluate_postfix(cfg, host).findings}
    assert "fcrdns.non-public-address" in codes and "fcrdns.no-ptr" not in codes
    assert client.summary().queries == 0


def test_default_route_source_address() -> None:
    # The route lookup itself, toward loopback: a UDP connect sends nothing.
    assert route_source(4, "127.0.0.1") == "127.0.0.1"
    cfg = PostfixConfig({"inet_protocols": "ipv4"}, (), live=True)
    [found] = outbound_addresses(cfg, route_probe={4: "127.0.0.1"})
    assert (found.address, found.source) == ("127.0.0.1", "default route")


def test_identity_lookups_bounded_by_the_check_timeout(
    tmp_path: Path, lab_config: DnsConfig
) -> None:
    cfg = live(tmp_path, "myhostname = mx1.good.test\nsmtp_bind_address = 192.0.2.10\n")
    host = gather_host(cfg, DnsClient(lab_config), timeout=0.0, resolv_conf="/nonexistent")
    [found] = [f for f in evaluate_postfix(cfg, host).findings if f.indeterminate]
    assert found.code == "postfix.identity-unchecked"


def test_cli_audit_of_a_live_instance(tmp_path: Path, lab: LabHandle) -> None:
    write_config(
        tmp_path,
        "myhostname = mx1.good.test\nsmtp_bind_address = 192.0.2.10\n"
        "smtp_tls_security_level = dane\nsmtp_dns_support_level = dnssec\n"
        "disable_vrfy_command = yes\n",
    )
    env = {k: v for k, v in os.environ.items() if k != "MAILCHECK_NAMESERVER"}
    env.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    proc = subprocess.run(
        [sys.executable, "-m", "mailcheck", "postfix", "-c", str(tmp_path), "-n", lab.address]
        + ["--timeout", "0.5", "--json", "--fail-on", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SCHEMA)
    [check] = doc["checks"]
    codes = {f["code"] for f in check["findings"]}
    assert "postfix.identity-confirmed" in codes
    assert codes & {"postfix.dane-resolver-local", "postfix.dane-resolver-remote"}
    assert check["data"]["live"] is True
    assert check["data"]["identity"]["addresses"] == [
        {
            "address": "192.0.2.10",
            "source": "smtp_bind_address",
            "ptr": ["mx1.good.test"],
            "confirmed": True,
        }
    ]
    assert doc["dns"]["nameservers"] == [lab.address] and doc["dns"]["queries"] == 2
    # a warning (postfix.helo-not-required at least) with --fail-on warning: exit 1, one line
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
