"""Test world: the lab DNS server, the network guard, and the rule for missing components.

The guard is a Python audit hook: any connection or datagram to an address outside loopback,
to a loopback port 53 (a system stub resolver such as systemd-resolved) or any name lookup
through the OS resolver fails the test that caused it. Tests reach only the lab.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailcheck.dns import DnsConfig, Nameserver
from tests.lab.dnsserver import LabHandle, run_in_thread

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "fixtures" / "zones"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The fixture zones' MX hosts are documentation addresses (192.0.2.0/24) that nobody serves:
# `mailcheck domain` and `batch` in child processes run DNS-only (--no-smtp). The TLS tests
# probe the TLS lab's own servers and take this out of their environment.
os.environ["MAILCHECK_NO_SMTP"] = "1"

_violations: list[str] = []


def _destination_allowed(address: Any) -> bool:
    if not isinstance(address, tuple) or len(address) < 2:
        return True  # AF_UNIX paths and the like
    host, port = address[0], address[1]
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback and port != 53


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1] if len(args) > 1 else None
        if not _destination_allowed(address):
            _violations.append(f"{event} to {address!r}")
            raise PermissionError(f"test network guard: {event} to {address!r} is not the lab")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        if host is None or host == "localhost":
            return
        try:
            ipaddress.ip_address(str(host).split("%")[0])
        except ValueError:
            _violations.append(f"OS resolver lookup of {host!r}")
            raise PermissionError(f"test network guard: OS resolver lookup of {host!r}") from None


sys.addaudithook(_guard)


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[None]:
    """Fail any test that tried to leave the lab, even if the code swallowed the error."""
    before = len(_violations)
    yield
    escaped = _violations[before:]
    if escaped:
        pytest.fail("test tried to reach outside the lab: " + "; ".join(escaped))


def require_binary(name: str) -> str:
    """The path of a Debian-packaged program; skip locally, fail under CI=true, if missing."""
    for directory in ("", "/usr/sbin/", "/sbin/"):
        path = shutil.which(name) if not directory else directory + name
        if path and os.access(path, os.X_OK):
            return path
    message = f"{name} is not installed (make debs installs it as root)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """The lab DNS server serving fixtures/zones on a free loopback port."""
    handle = run_in_thread(ZONES)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def lab_config(lab: LabHandle) -> DnsConfig:
    """A DNS configuration pointing at the lab only, with short timeouts."""
    return DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.5, retries=0)
