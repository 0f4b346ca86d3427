"""How the tls check probes: port, names, trust, timeouts, and which sender levels to judge."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from mailcheck.checks.tls_sender import Level

DEFAULT_STEP_TIMEOUT = 10.0
"""Seconds for each SMTP step (connect, greeting, each reply, the handshake)."""


def default_ehlo_name() -> str:
    """This machine's name as it calls itself (no DNS lookup), for EHLO."""
    name = socket.gethostname().strip().rstrip(".")
    return name if name and "." in name else f"{name or 'mailcheck'}.invalid"


@dataclass(frozen=True)
class TlsSettings:
    """The tls check's options (CLI: --no-smtp, --smtp-port, --ehlo, --ca-file, ...)."""

    smtp: bool = True
    """Probe the MX hosts over SMTP; False (--no-smtp) keeps only the DNS and HTTPS parts."""
    port: int = 25
    """The SMTP port probed, and named in TLSA owners (_25._tcp)."""
    ehlo_name: str = ""
    """The name sent with EHLO; empty means default_ehlo_name()."""
    ca_file: Path | None = None
    """Trusted roots for PKIX judgement (MX certificates, the MTA-STS policy host)."""
    step_timeout: float = DEFAULT_STEP_TIMEOUT
    """Seconds for each SMTP step."""
    sender_levels: tuple[Level, ...] = ()
    """Levels whose deferrals become findings (--sender-level); all are predicted anyway."""
    transcript: bool = False
    """Show the SMTP transcripts to people (--transcript); JSON always has them."""
    mta_sts_port: int = 443
    """The HTTPS port of the MTA-STS policy host (other than 443 only in labs)."""

    @property
    def ehlo(self) -> str:
        """The EHLO name to send."""
        return self.ehlo_name or default_ehlo_name()
