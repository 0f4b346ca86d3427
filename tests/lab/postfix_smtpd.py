"""A private Postfix with smtpd listeners on loopback, for probing relay and submission.

Builds on tests/lab/postfix.py (same private instance, spool and lifecycle) and adds inet
services, each bound to its own loopback address and a free high port, each with its own
`-o` overrides (mynetworks, relay restrictions, TLS, SASL). A self-signed certificate is made
with openssl for the TLS listeners; Cyrus SASL (sasldb, PLAIN/LOGIN) backs AUTH. Nothing is
ever delivered: the probes never send DATA.

    listeners = {"open": Listener("127.0.0.40", ("mynetworks=127.0.0.0/8",))}
    with PostfixSmtpdLab(listeners) as pf:
        host, port = pf.address("open")
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tests.lab.postfix import COMMAND_TIMEOUT, START_TIMEOUT, PostfixError, PostfixLab

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: {base}/etc/sasldb2
"""


@dataclass(frozen=True)
class Listener:
    """One smtpd inet service."""

    host: str
    """The loopback address it binds."""
    overrides: tuple[str, ...] = ()
    """`name=value` parameters given with `-o` (no spaces in a value)."""
    tls: bool = False
    """Give it the lab certificate (smtpd_tls_cert_file / smtpd_tls_key_file)."""
    sasl: bool = False
    """Enable Cyrus SASL (AUTH PLAIN LOGIN over an empty sasldb)."""
    port: int | None = None
    """A fixed port (e.g. 465, which implies implicit TLS to mailcheck); default a free one."""


def port_free(host: str, port: int) -> bool:
    """True when nothing is bound to host:port right now (465 needs root to test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port nobody listens on at host right now (bound then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class PostfixSmtpdLab(PostfixLab):
    """A PostfixLab with smtpd listeners; `address(name)` says where each one is."""

    def __init__(self, listeners: Mapping[str, Listener]) -> None:
        super().__init__({}, relay="")
        self.listeners = dict(listeners)
        self.ports = {name: lst.port or free_port(lst.host) for name, lst in self.listeners.items()}

    def address(self, name: str) -> tuple[str, int]:
        """(host, port) of a listener."""
        return self.listeners[name].host, self.ports[name]

    def _configure(self) -> None:
        super()._configure()
        etc = self.config_dir
        if any(":" in lst.host for lst in self.listeners.values()):  # an IPv6 listener (::1)
            main = etc / "main.cf"
            text = main.read_text().replace("inet_protocols = ipv4", "inet_protocols = all")
            main.write_text(text)
        if any(lst.tls for lst in self.listeners.values()):
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=relaylab.mailcheck.test",
                    "-keyout",
                    str(etc / "key.pem"),
                    "-out",
                    str(etc / "cert.pem"),
                ],
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=True,
            )
            (etc / "key.pem").chmod(0o644)  # test-only key; smtpd may read it unprivileged
        (etc / "smtpd.conf").write_text(SASL_CONF.format(base=self.base))
        lines = []
        for name, lst in self.listeners.items():
            options = [f"syslog_name=postfix-relaylab/{name}", *lst.overrides]
            if lst.tls:
                options += [
                    f"smtpd_tls_cert_file={etc}/cert.pem",
                    f"smtpd_tls_key_file={etc}/key.pem",
                ]
            if lst.sasl:
                options += [
                    "smtpd_sasl_auth_enable=yes",
                    "smtpd_sasl_type=cyrus",
                    "smtpd_sasl_path=smtpd",
                    f"cyrus_sasl_config_path={etc}",
                ]
            args = " ".join(f"-o {o}" for o in options)
            where = f"[{lst.host}]" if ":" in lst.host else lst.host
            lines.append(f"{where}:{self.ports[name]} inet n - n - - smtpd {args}\n")
        with (etc / "master.cf").open("a") as f:
            f.writelines(lines)

    def start(self) -> PostfixSmtpdLab:
        """Start Postfix, then wait until every listener accepts connections (bounded)."""
        super().start()
        try:
            for name in self.listeners:
                self._wait_listening(*self.address(name))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, host: str, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.05)
        raise PostfixError(f"nothing listens on {host}:{port}\n{self.log_text()}")

    def __enter__(self) -> PostfixSmtpdLab:
        return self.start()
