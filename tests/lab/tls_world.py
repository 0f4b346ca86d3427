"""The TLS lab: a test PKI, signed zones with TLSA records, a validating unbound, and a private
Postfix with one STARTTLS listener per certificate scenario — all on loopback.

1. tests/lab/pki.py issues the certificates (good chain, self-signed, expired, wrong name,
   a rolled-over key, a leaf sent without its intermediate).
2. The zone templates in fixtures/zones-tls/ get the TLSA data of those certificates; tls.test
   is signed (valid), the zone holding mx-bogustlsa's TLSA is signed with expired signatures,
   tlsplain.test stays unsigned. The lab DNS server serves them; unbound validates in front.
3. Postfix listens on 127.0.0.70-78 and ::1, port 2525 (the TLSA owners say _2525._tcp), one address
   per scenario (see fixtures/zones-tls/tls.test.zone.in for which is which).

    with tls_world(workdir) as world:
        ...  # world.config asks unbound; world.pki.ca_file is the lab's root

Needs root and Debian's postfix and unbound; each wait is bounded (Postfix and unbound start
in about a second).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailcheck.dns import DnsConfig, Nameserver
from tests.lab.dnsserver import LabHandle, run_in_thread, zone_origin
from tests.lab.pki import LabCert, LabPki
from tests.lab.postfix_smtpd import Listener, PostfixSmtpdLab
from tests.lab.signing import EXPIRED, sign_zone_file
from tests.lab.unbound import UnboundHandle, run_unbound

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATES = ROOT / "fixtures" / "zones-tls"
PORT = 2525
SIGNED = "tls.test.zone"
BOGUS = "_2525._tcp.mx-bogustlsa.tls.test.zone"
_PLACEHOLDER = re.compile(r"\{\{(\S+) ([0-3]) ([01]) ([0-2])\}\}")


@dataclass(frozen=True)
class Scenario:
    """One Postfix listener of the TLS lab."""

    address: str
    """Its loopback address (the A record of its MX host)."""
    cert: str | None
    """The lab certificate it serves (its chain file), or None for no TLS at all."""
    overrides: tuple[str, ...] = ()
    """More `-o` parameters."""


SCENARIOS: Mapping[str, Scenario] = {
    "good": Scenario("127.0.0.70", "good"),
    # The same certificate over IPv6, for mx-dual (A 127.0.0.70, AAAA ::1).
    "good6": Scenario("::1", "good"),
    "self": Scenario("127.0.0.71", "selfsigned"),
    "expired": Scenario("127.0.0.72", "expired"),
    "wrongname": Scenario("127.0.0.73", "wrongname"),
    "notls": Scenario("127.0.0.74", None),
    "rollover": Scenario("127.0.0.75", "rollover"),
    "leafonly": Scenario("127.0.0.76", "leafonly"),
    # OpenSSL 3 refuses TLS < 1.2 below security level 0 (SHA-1 signatures in the handshake).
    "legacy": Scenario(
        "127.0.0.77",
        "good",
        ("smtpd_tls_protocols=<=TLSv1.1", "tls_medium_cipherlist=DEFAULT:@SECLEVEL=0"),
    ),
    # The client restriction rejects at connect: 554 in place of the greeting.
    "reject": Scenario(
        "127.0.0.78", "good", ("smtpd_delay_reject=no", "smtpd_client_restrictions=reject")
    ),
}


def issue_certificates(pki: LabPki) -> dict[str, LabCert]:
    """Every certificate the zones and listeners name, by the name templates use."""
    names = ["mx-good.tls.test", "*.tls.test"]
    return {
        "root": pki.root,
        "intermediate": pki.intermediate,
        "good": pki.issue("good", names),
        # Same names, a new key: the TLSA records still pin the old one.
        "rollover": pki.issue("rollover", names),
        "leafonly": pki.issue("leafonly", names, key_of="good", with_chain=False),
        "selfsigned": pki.issue("selfsigned", ["mx-self.tls.test"], issuer="self"),
        "expired": pki.issue(
            "expired", ["mx-expired.tls.test"], not_before=EXPIRED[0], not_after=EXPIRED[1]
        ),
        "wrongname": pki.issue("wrongname", ["wrong.example.net"]),
    }


def render_zone(template: Path, certs: Mapping[str, LabCert], dest_dir: Path) -> Path:
    """Write `template` (a `.zone.in`) into dest_dir with its TLSA placeholders filled."""

    def tlsa(match: re.Match[str]) -> str:
        name, usage, selector, mtype = match.groups()
        return certs[name].tlsa(int(usage), int(selector), int(mtype))

    dest = dest_dir / template.name.removesuffix(".in")
    dest.write_text(_PLACEHOLDER.sub(tlsa, template.read_text(encoding="utf-8")))
    return dest


@dataclass(frozen=True)
class TlsWorld:
    """The running TLS lab."""

    pki: LabPki
    """The authority; `pki.ca_file` is the trust anchor for `--ca-file`."""
    certs: Mapping[str, LabCert]
    """The certificates by scenario name (see issue_certificates)."""
    dns: LabHandle
    """The lab DNS server (no validation, no AD bit)."""
    unbound: UnboundHandle
    """The validating resolver in front of it."""
    postfix: PostfixSmtpdLab
    """The Postfix listeners."""

    @property
    def config(self) -> DnsConfig:
        """mailcheck asking unbound only, with room for unbound's recursion."""
        return DnsConfig((Nameserver(self.unbound.host, self.unbound.port),), 2.0, retries=0)

    @property
    def nameserver(self) -> str:
        """unbound as `--nameserver` takes it."""
        return self.unbound.address


def _listeners(certs: Mapping[str, LabCert], files: Path) -> dict[str, Listener]:
    out = {}
    for name, scenario in SCENARIOS.items():
        options = ["smtpd_tls_security_level=none"]
        if scenario.cert is not None:
            cert = certs[scenario.cert]
            options = [
                "smtpd_tls_security_level=may",
                f"smtpd_tls_cert_file={files / cert.chain_path.name}",
                f"smtpd_tls_key_file={files / cert.key_path.name}",
            ]
        out[name] = Listener(scenario.address, (*options, *scenario.overrides))
    return out


def busy_addresses() -> list[str]:
    """The lab's `address:port`s that something already listens on: another TLS lab, most
    likely. Postfix listens with SO_REUSEPORT, so a second lab would start anyway and the
    kernel would spread connections over both (two PKIs: verdicts flip from run to run)."""
    return [f"{s.address}:{PORT}" for s in SCENARIOS.values() if _listened(s.address)]


def _listened(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as sock:
        # SO_REUSEADDR: connections of an earlier run in TIME_WAIT do not count, listeners do.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, PORT))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def tls_world(workdir: Path, *, unbound_binary: str = "/usr/sbin/unbound") -> Iterator[TlsWorld]:
    """Start the whole TLS lab under workdir; stop everything on exit."""
    busy = busy_addresses()
    if busy:  # refuse to start beside another TLS lab: its Postfix would answer for ours
        raise RuntimeError(f"something already listens on {', '.join(busy)}")
    pki = LabPki(workdir / "pki")
    certs = issue_certificates(pki)
    zones = workdir / "zones"
    zones.mkdir()
    rendered = [render_zone(t, certs, zones) for t in sorted(TEMPLATES.glob("*.zone.in"))]
    shutil.copy2(TEMPLATES / "BEHAVIOURS", zones / "BEHAVIOURS")
    signed = sign_zone_file(zones / SIGNED, zones)
    bogus = sign_zone_file(zones / BOGUS, zones, validity=EXPIRED)
    stubs = sorted(zone_origin(path).to_text() for path in rendered)
    postfix = PostfixSmtpdLab({})  # its base directory is needed before the listeners
    # Postfix's daemons run unprivileged: give them a copy of the keys in its 0755 tree.
    files = postfix.base / "pki"
    shutil.copytree(workdir / "pki", files)
    files.chmod(0o755)
    postfix.listeners = _listeners(certs, files)
    # A fixed port, not a free one: the TLSA owners name it (_2525._tcp).
    postfix.ports = dict.fromkeys(postfix.listeners, PORT)
    with (
        run_in_thread(zones) as lab,
        run_unbound(
            lab.port,
            [signed.trust_anchor, bogus.trust_anchor],
            stubs,
            binary=unbound_binary,
            workdir=workdir / "unbound",
        ) as ub,
        postfix,
    ):
        yield TlsWorld(pki, certs, lab, ub, postfix)
