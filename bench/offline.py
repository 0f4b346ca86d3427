"""The benches' guard: an audit hook that refuses (and records) anything leaving the machine."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from typing import Any

escapes: list[str] = []
"""Off-machine lookups/packets the guard refused, for the bench's last line."""


def is_local(host: object) -> bool:
    """A loopback address (or no host at all); a name would ask the OS resolver."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None or host == "localhost" or not isinstance(host, str):
        return True  # None: a bind; non-str: an AF_UNIX path or the like
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo" and not is_local(args[0]):
        escapes.append(f"getaddrinfo({args[0]!r})")
        raise socket.gaierror(socket.EAI_NONAME, f"bench: refusing to resolve {args[0]!r}")
    if event in ("socket.connect", "socket.sendto"):
        address = args[1]
        if not is_local(address[0] if isinstance(address, tuple) else None):
            escapes.append(f"{event.removeprefix('socket.')}({address!r})")
            raise OSError(errno.ENETUNREACH, f"bench: refusing to reach {address!r}")


def install() -> None:
    """Refuse every lookup and packet that would leave the machine, from now on."""
    sys.addaudithook(_guard)


def summary() -> str:
    """What was refused, for the bench's last line."""
    return ", ".join(sorted(set(escapes))) or "none"
