"""The tls check end to end: a real Postfix per certificate scenario, signed zones with TLSA
records validated by a real unbound, and the scripted misbehaving servers.

The TLS lab (tests/lab/tls_world.py) starts once per module: needs root and Debian's postfix
and unbound (fails under CI=true without them, skips otherwise).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from mailcheck.batch.inputs import BatchEntry
from mailcheck.batch.run import run_batch
from mailcheck.checks import CheckName
from mailcheck.checks.tls_probes import ProbeCache
from mailcheck.checks.tls_sender import Level
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.engine import RunOptions, Target, run_target
from mailcheck.model import CheckResult, Report, Status
from tests.conftest import ROOT, require_binary
from tests.lab.https_policy import PolicyHost, Reply, policy_text
from tests.lab.pki import LabPki
from tests.lab.tls_smtpd import SCENARIOS, TlsSmtpLab
from tests.lab.tls_world import PORT, TlsWorld, tls_world

SCHEMA = json.loads((ROOT / "docs" / "schema" / "report-v1.json").read_text())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsWorld]:
    if os.geteuid() != 0:
        require_binary("a root shell")  # Postfix's master must start as root
    require_binary("postfix")
    unbound = require_binary("unbound")
    with tls_world(tmp_path_factory.mktemp("tls"), unbound_binary=unbound) as running:
        yield running


def check(world: TlsWorld, target: str, **settings: object) -> CheckResult:
    """Run the tls check in-process, as `mailcheck tls` would."""
    tls = TlsSettings(port=PORT, ca_file=world.pki.ca_file, step_timeout=3.0, **settings)  # type: ignore[arg-type]
    on = Target(target, domain=target)
    options = RunOptions(checks=(CheckName.TLS,), tls=tls)
    report = asyncio.run(run_target(on, world.config, options))
    return report.checks[0]


def codes(result: CheckResult) -> set[str]:
    return {f.code for f in result.findings}


def host(result: CheckResult, name: str) -> dict[str, object]:
    hosts = [h for h in result.data["hosts"] if h["host"] == name]
    assert hosts, result.data
    found: dict[str, object] = hosts[0]
    return found


def test_the_good_mx_passes_with_dane_and_a_trusted_chain(world: TlsWorld) -> None:
    result = check(world, "good.tls.test")
    assert {"tls.ok", "dane.match"} <= codes(result)
    assert result.status is not Status.FAIL
    good = host(result, "mx-good.tls.test")
    assert good["starttls_offered"] is True and good["tls_version"] == "TLSv1.3"
    cert = good["cert"]
    assert isinstance(cert, dict) and cert["chain_trusted"] and cert["name_matches"]
    dane = good["dane"]
    assert isinstance(dane, dict) and dane["secure"] is True and dane["matched"]
    senders = good["senders"]
    assert isinstance(senders, dict)
    assert senders["dane-only"]["outcome"] == "deliver"
    # `secure` wants the domain's name (nexthop, dot-nexthop): mx-good is not under good.
    assert senders["secure"]["postfix_says"] == "Server certificate not verified"
    assert result.data["mx_secure"] is True and result.data["resolver_validates"] is True


@pytest.mark.parametrize(
    ("domain", "expected", "absent"),
    [
        ("ta.tls.test", {"dane.match"}, {"dane.mismatch"}),
        ("selfsigned.tls.test", {"tls.cert-self-signed", "dane.match"}, set()),
        ("expired.tls.test", {"tls.cert-expired", "dane.match"}, {"dane.mismatch"}),
        ("wrongname.tls.test", {"tls.cert-name-mismatch", "dane.ta-name-mismatch"}, set()),
        ("notls.tls.test", {"tls.starttls-missing", "dane.no-starttls"}, {"tls.ok"}),
        ("rollover.tls.test", {"dane.mismatch"}, {"dane.match"}),
        ("leafonly.tls.test", {"tls.cert-missing-intermediate", "dane.ta-not-in-chain"}, set()),
        ("legacy.tls.test", {"tls.legacy-version"}, set()),
        ("reject.tls.test", {"tls.greeting-rejected"}, {"tls.ok"}),
        ("closed.tls.test", {"tls.unreachable"}, set()),
        ("pkix.tls.test", {"dane.usage-unusable"}, {"dane.match"}),
        ("single.tls.test", {"dane.no-rollover"}, set()),
        ("fullcert.tls.test", {"dane.full-cert-selector"}, set()),
        ("notlsa.tls.test", {"dane.not-deployed"}, set()),
        ("bogustlsa.tls.test", {"dane.tlsa-bogus"}, {"dane.tlsa-lookup-failed"}),
        ("unsignedmx.tls.test", {"dane.tlsa-unsigned"}, {"dane.resolver-not-validating"}),
        # Nothing in this run is signed and the lab resolver refuses the root: unknown.
        ("plain.tlsplain.test", {"dane.resolver-not-validating"}, {"dane.tlsa-unsigned"}),
        ("insecure.tlsplain.test", {"dane.mx-insecure", "dane.match"}, set()),
        ("malformed.tlsplain.test", {"dane.tlsa-malformed"}, {"dns.error", "dns.timeout"}),
        ("partial.tls.test", {"dane.partial-mx"}, set()),
    ],
)
def test_each_scenario_is_named(
    world: TlsWorld, domain: str, expected: set[str], absent: set[str]
) -> None:
    found = codes(check(world, domain))
    assert expected <= found, found
    assert not absent & found, found


def test_every_address_is_probed_ipv6_too(world: TlsWorld) -> None:
    result = check(world, "dual.tls.test")
    probed = {h["ip"]: h for h in result.data["hosts"]}
    assert set(probed) == {"127.0.0.70", "::1"}
    assert all(h["tls_version"] == "TLSv1.3" and h["dane"]["matched"] for h in probed.values())
    assert result.status is not Status.FAIL, codes(result)


def test_tlsa_of_an_aliased_mx_host_is_found_at_the_expanded_name(world: TlsWorld) -> None:
    # RFC 7672 §2.2.2: mx-alias is a CNAME for mx-good (secure), whose TLSA records apply.
    result = check(world, "alias.tls.test")
    assert "dane.match" in codes(result), codes(result)
    alias = host(result, "mx-alias.tls.test")
    dane = alias["dane"]
    assert isinstance(dane, dict) and dane["owner"] == "_2525._tcp.mx-good.tls.test."
    # RFC 7672 §8.1: SNI is the TLSA base domain, the expanded name, as DANE senders send it.
    assert alias["sni"] == "mx-good.tls.test"
    assert any(t["text"] == "TLS handshake, SNI mx-good.tls.test" for t in alias["transcript"])  # type: ignore[attr-defined]


def test_sni_of_a_plain_mx_host_is_its_name(world: TlsWorld) -> None:
    result = check(world, "good.tls.test")
    assert host(result, "mx-good.tls.test")["sni"] == "mx-good.tls.test"


def test_a_mixed_domain_judges_every_mx_not_only_the_first(world: TlsWorld) -> None:
    result = check(world, "mixed.tls.test")
    mismatch = [f for f in result.findings if f.code == "dane.mismatch"]
    assert [f.evidence["host"] for f in mismatch] == ["mx-rollover.tls.test"]
    assert host(result, "mx-good.tls.test")["senders"]["dane-only"]["outcome"] == "deliver"  # type: ignore[index]
    assert host(result, "mx-rollover.tls.test")["senders"]["dane-only"]["outcome"] == "defer"  # type: ignore[index]


def test_the_postfix_words_for_a_missing_starttls(world: TlsWorld) -> None:
    result = check(world, "notls.tls.test", sender_levels=(Level.ENCRYPT,))
    said = host(result, "mx-notls.tls.test")["senders"]["encrypt"]  # type: ignore[index]
    assert said == {
        "outcome": "defer",
        "postfix_says": "TLS is required, but was not offered by host "
        "mx-notls.tls.test[127.0.0.74]",
        "dsn": "4.7.4",
    }
    defers = [f for f in result.findings if f.code == "tls.sender-defers"]
    assert len(defers) == 1 and defers[0].evidence["level"] == "encrypt"


def test_without_smtp_only_dns_is_asked(world: TlsWorld) -> None:
    result = check(world, "rollover.tls.test", smtp=False)
    assert result.data["smtp_probed"] is False
    assert not any(c.startswith("tls.") for c in codes(result))
    rollover = host(result, "mx-rollover.tls.test")
    assert rollover["connected"] is None and rollover["cert"] is None


def mailcheck(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    env.pop("MAILCHECK_NO_SMTP", None)
    return subprocess.run(
        [sys.executable, "-m", "mailcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_cli_reports_json_that_follows_the_schema(world: TlsWorld) -> None:
    done = mailcheck(
        "tls",
        "mixed.tls.test",
        "-n",
        world.nameserver,
        "--smtp-port",
        str(PORT),
        "--ca-file",
        str(world.pki.ca_file),
        "--json",
    )
    assert done.returncode == 1, done.stderr  # the rolled-over key is an error
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    (tls,) = report["checks"]
    assert [h["host"] for h in tls["data"]["hosts"]] == ["mx-good.tls.test", "mx-rollover.tls.test"]
    assert all(h["transcript"] for h in tls["data"]["hosts"])


def test_the_cli_shows_the_transcript_and_the_table(world: TlsWorld) -> None:
    done = mailcheck(
        "tls",
        f"[mx-good.tls.test]:{PORT}",
        "-n",
        world.nameserver,
        "--ca-file",
        str(world.pki.ca_file),
        "--transcript",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "STARTTLS" in done.stdout and "220 2.0.0 Ready to start TLS" in done.stdout
    assert "mx-good.tls.test" in done.stdout and "match 2 1 1" in done.stdout


def test_a_bad_ca_file_is_one_line_and_exit_2(world: TlsWorld, tmp_path: Path) -> None:
    bad = tmp_path / "roots.pem"
    bad.write_text("not a certificate\n")
    done = mailcheck("tls", "good.tls.test", "-n", world.nameserver, "--ca-file", str(bad))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "roots.pem" in done.stderr


@pytest.fixture(scope="module")
def policies(world: TlsWorld) -> Iterator[PolicyHost]:
    replies = {
        f"{label}.mtasts": Reply(
            body=policy_text("version: STSv1", "mode: enforce", f"mx: {mx}", "max_age: 604800")
        )
        for label, mx in (("good", "mx-good.tls.test"), ("selfsigned", "mx-self.tls.test"))
    }
    with PolicyHost(world.pki, replies) as host:
        yield host


def test_mta_sts_enforce_needs_a_valid_certificate_on_each_mx(
    world: TlsWorld, policies: PolicyHost
) -> None:
    good = check(world, "good.mtasts.sts.test", mta_sts_port=policies.port)
    assert "mta-sts.ok" in codes(good) and good.status is not Status.FAIL, codes(good)
    assert good.data["mta_sts"]["policy"]["mode"] == "enforce"
    bad = check(world, "selfsigned.mtasts.sts.test", mta_sts_port=policies.port)
    invalid = [f for f in bad.findings if f.code == "mta-sts.mx-cert-invalid"]
    assert len(invalid) == 1 and invalid[0].evidence["host"] == "mx-self.tls.test"
    # Under an enforce policy a self-signed certificate is an error, not a warning.
    self_signed = next(f for f in bad.findings if f.code == "tls.cert-self-signed")
    assert self_signed.severity.value == "error"


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSmtpLab]:
    pki = LabPki(tmp_path_factory.mktemp("scripted-pki"))
    cert = pki.issue("scripted", ["mx.scripted.test"])
    with TlsSmtpLab({"att-hidden": SCENARIOS["att-hidden"]}, cert) as lab:
        yield lab


def test_the_cli_names_the_dnsbl_block_behind_a_missing_starttls(
    scripted: TlsSmtpLab, tmp_path: Path
) -> None:
    address, port = scripted.address("att-hidden")
    done = mailcheck("tls", f"{address}:{port}", "-n", "127.0.0.1:9", "--json")
    assert done.returncode == 1, done.stderr
    (tls,) = json.loads(done.stdout)["checks"]
    (probed,) = tls["data"]["hosts"]
    assert probed["cause"] == "tls.starttls-hidden-block"
    block = next(f for f in tls["findings"] if f["code"] == "tls.starttls-hidden-block")
    assert "DNSBL" in block["message"] and "553 5.3.0" in json.dumps(block["evidence"])
    assert probed["senders"]["encrypt"]["postfix_says"].startswith(
        "TLS is required, but was not offered by host"
    )


def test_a_batch_probes_a_shared_mx_host_once(world: TlsWorld) -> None:
    domains = ["good.tls.test", "insecure.tlsplain.test", "good.mtasts.sts.test"]

    async def batch() -> tuple[list[Report], ProbeCache]:
        cache = ProbeCache()
        tls = TlsSettings(port=PORT, ca_file=world.pki.ca_file, step_timeout=3.0)
        options = RunOptions(checks=(CheckName.TLS,), tls=tls, probes=cache)
        entries = [BatchEntry(d, None, n) for n, d in enumerate(domains, start=1)]
        reports, _ = await run_batch(entries, world.config, options)
        return reports, cache

    reports, cache = asyncio.run(batch())
    assert cache.sent == 1  # all three domains use mx-good.tls.test
    for report in reports:
        (mx_good,) = [h for h in report.checks[0].data["hosts"] if h["host"] == "mx-good.tls.test"]
        assert mx_good["tls_version"] == "TLSv1.3"
