"""The registry of checks. Adding a check touches two places: CheckName and CHECKS."""

from __future__ import annotations

import enum

from mailcheck.checks.base import Check, CheckContext
from mailcheck.checks.dkim import DkimCheck
from mailcheck.checks.dmarc import DmarcCheck
from mailcheck.checks.dnsbl import DnsblCheck
from mailcheck.checks.fcrdns import FcrdnsCheck
from mailcheck.checks.mx import MxCheck
from mailcheck.checks.spf import SpfCheck
from mailcheck.checks.tls import TlsCheck


class CheckName(enum.StrEnum):
    """Every check, in the fixed order reports list them."""

    MX = "mx"
    FCRDNS = "fcrdns"
    DNSBL = "dnsbl"
    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    TLS = "tls"


CHECKS: dict[CheckName, Check] = {
    CheckName.MX: MxCheck(),
    CheckName.FCRDNS: FcrdnsCheck(),
    CheckName.DNSBL: DnsblCheck(),
    CheckName.SPF: SpfCheck(),
    CheckName.DKIM: DkimCheck(),
    CheckName.DMARC: DmarcCheck(),
    CheckName.TLS: TlsCheck(),
}

CHECK_ORDER: tuple[CheckName, ...] = tuple(CheckName)

__all__ = ["CHECKS", "CHECK_ORDER", "Check", "CheckContext", "CheckName"]
