"""Audit rules about inbound mail: relay control, authentication, submission (postconf(5))."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from mailcheck.model import Finding, Severity
from mailcheck.postfix.config import PostfixConfig, Service, expand

CHECK = "postfix"
WIDEST_PREFIX = {4: 24, 6: 64}
"""mynetworks entries wider than these (non-loopback) are shared networks, not the host's own."""
UNAUTH_DEST = ("reject_unauth_destination", "defer_unauth_destination")
LOGIN_MISMATCH = (
    "reject_sender_login_mismatch",
    "reject_authenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
)
# postconf(5) smtpd_relay_restrictions default for compatibility_level >= 1.
DEFAULT_RELAY = "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
SUBMISSION_PORTS = ("submission", "587")
SUBMISSIONS_PORTS = ("submissions", "smtps", "465")


def finding(
    code: str,
    severity: Severity,
    message: str,
    evidence: Mapping[str, Any] | None = None,
    remedy: str = "",
    rfc: str = "",
    indeterminate: bool = False,
) -> Finding:
    """A `postfix` finding."""
    return Finding(CHECK, code, severity, message, dict(evidence or {}), remedy, rfc, indeterminate)


def words(value: str) -> list[str]:
    """A restriction list or table list split on commas and white space (postconf(5))."""
    return [w for w in re.split(r"[\s,]+", value) if w]


def yes(value: str) -> bool:
    """postconf(5) booleans."""
    return value.strip().lower() in ("yes", "true", "1")


def effective(cfg: PostfixConfig, service: Service | None, name: str, default: str = "") -> str:
    """A parameter as a service sees it: its `-o` override, else main.cf, expanded."""
    if service is not None and name in service.options:
        return expand(service.options[name], cfg.params)
    return cfg.get(name, default)


def smtpd_services(cfg: PostfixConfig) -> list[Service]:
    """inet services running smtpd(8)."""
    return [s for s in cfg.services if s.type == "inet" and s.command == "smtpd"]


def mynetworks_findings(cfg: PostfixConfig) -> list[Finding]:
    """postconf(5) mynetworks / mynetworks_style: who may relay without authentication."""
    found: list[Finding] = []
    if "mynetworks" in cfg.params:
        wide = []
        for entry in words(cfg.get("mynetworks")):
            text = entry.strip("[]").replace("]/", "/")
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue  # a table (hash:...) or a host name: not judged here
            if not net.is_loopback and net.prefixlen < WIDEST_PREFIX[net.version]:
                wide.append(str(net))
        if wide:
            found.append(
                finding(
                    "postfix.mynetworks-wide",
                    Severity.ERROR,
                    f"mynetworks trusts {', '.join(wide)} to relay without authentication: every "
                    "host there (a shared LAN, a compromised device) can send mail through you.",
                    {"mynetworks": cfg.get("mynetworks"), "wide": wide},
                    "List only this host and the machines that really submit mail "
                    "(mynetworks = 127.0.0.0/8 [::1]/128 and single /32s); use SASL for the rest.",
                )
            )
        return found
    style = cfg.get("mynetworks_style", "host").lower()
    if style in ("subnet", "class"):
        found.append(
            finding(
                "postfix.mynetworks-style",
                Severity.WARNING if style == "subnet" else Severity.ERROR,
                f"mynetworks_style = {style}: every host in the same "
                f"{'IP subnet' if style == 'subnet' else 'whole class A/B/C network'} may relay. "
                "On a shared network (a hosting provider's LAN) that is an open relay to them.",
                {"mynetworks_style": style},
                "Set mynetworks_style = host, or an explicit mynetworks.",
            )
        )
    return found


def _relay_lists(cfg: PostfixConfig, service: Service | None) -> dict[str, list[str]]:
    relay = effective(cfg, service, "smtpd_relay_restrictions", DEFAULT_RELAY)
    recipient = effective(cfg, service, "smtpd_recipient_restrictions")
    return {
        "smtpd_relay_restrictions": words(relay),
        "smtpd_recipient_restrictions": words(recipient),
    }


def relay_restriction_findings(cfg: PostfixConfig) -> list[Finding]:
    """postconf(5) SMTPD_ACCESS_README: relay control needs reject/defer_unauth_destination."""
    found: list[Finding] = []
    scopes: list[tuple[str, Service | None]] = [("main.cf", None)]
    scopes += [
        (s.name, s) for s in smtpd_services(cfg) if any("restrictions" in k for k in s.options)
    ]
    for where, service in scopes:
        lists = _relay_lists(cfg, service)
        if not any(w in UNAUTH_DEST for ws in lists.values() for w in ws):
            found.append(
                finding(
                    "postfix.relay-unrestricted",
                    Severity.ERROR,
                    f"{where}: neither smtpd_relay_restrictions nor smtpd_recipient_restrictions "
                    "has reject_unauth_destination or defer_unauth_destination: mail to any "
                    "domain may be accepted (open relay).",
                    {"service": where, **{k: " ".join(v) for k, v in lists.items()}},
                    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
                    "reject_unauth_destination",
                )
            )
        for name, ws in lists.items():
            # The first `permit` decides: restrictions after it are never evaluated.
            if "permit" in ws and not any(w in UNAUTH_DEST for w in ws[: ws.index("permit")]):
                found.append(
                    finding(
                        "postfix.relay-permit-early",
                        Severity.ERROR,
                        f"{where}: {name} has a bare `permit` before any "
                        "reject_unauth_destination: every client passes relay control.",
                        {"service": where, "parameter": name, "value": " ".join(ws)},
                        f"Remove `permit` from {name} or put reject_unauth_destination before it.",
                    )
                )
    return found


def auth_findings(cfg: PostfixConfig) -> list[Finding]:
    """SASL on smtpd: credentials only over TLS (postconf(5) smtpd_tls_auth_only)."""
    found: list[Finding] = []
    scopes: list[tuple[str, Service | None]] = [("main.cf", None)]
    scopes += [(s.name, s) for s in smtpd_services(cfg)]
    seen = set()
    for where, service in scopes:
        if not yes(effective(cfg, service, "smtpd_sasl_auth_enable", "no")):
            continue
        if service is not None and service.port in SUBMISSIONS_PORTS:
            continue  # implicit TLS (RFC 8314 §3.3): AUTH is never in plain text there
        if yes(effective(cfg, service, "smtpd_tls_wrappermode", "no")):
            continue
        level = effective(cfg, service, "smtpd_tls_security_level").lower()
        if yes(effective(cfg, service, "smtpd_tls_auth_only", "no")) or level == "encrypt":
            continue
        key = where if service is None or service.options else "main.cf"
        if key in seen:
            continue
        seen.add(key)
        found.append(
            finding(
                "postfix.auth-without-tls",
                Severity.ERROR,
                f"{where}: SMTP AUTH is enabled without smtpd_tls_auth_only = yes: clients may "
                "send passwords before STARTTLS, readable on the wire.",
                {"service": where},
                "Set smtpd_tls_auth_only = yes (or smtpd_tls_security_level = encrypt there).",
                "RFC 4954 §4, RFC 8314 §3",
            )
        )
    return found


def submission_findings(cfg: PostfixConfig) -> list[Finding]:
    """master.cf submission (587, RFC 6409) and submissions (465, RFC 8314) services."""
    found: list[Finding] = []
    services = smtpd_services(cfg)
    subs = [s for s in services if s.port in SUBMISSION_PORTS]
    implicit = [s for s in services if s.port in SUBMISSIONS_PORTS]
    for s in subs:
        level = effective(cfg, s, "smtpd_tls_security_level").lower()
        if level != "encrypt":
            found.append(
                finding(
                    "postfix.submission-not-encrypt",
                    Severity.ERROR,
                    f"{s.name}: smtpd_tls_security_level is {level or 'none'!r}, not encrypt: "
                    "mail clients may submit (and log in) without TLS.",
                    {"service": s.name, "smtpd_tls_security_level": level},
                    f"In master.cf under {s.name}: -o smtpd_tls_security_level=encrypt",
                    "RFC 8314 §3.3",
                )
            )
    for s in subs + implicit:
        if not yes(effective(cfg, s, "smtpd_sasl_auth_enable", "no")):
            found.append(
                finding(
                    "postfix.submission-no-auth",
                    Severity.WARNING,
                    f"{s.name}: smtpd_sasl_auth_enable is not yes: users cannot authenticate, "
                    "so the port relays for nobody, or for everybody its restrictions let in.",
                    {"service": s.name},
                    f"In master.cf under {s.name}: -o smtpd_sasl_auth_enable=yes and "
                    "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
                    "RFC 6409 §4",
                )
            )
        if effective(cfg, s, "smtpd_sender_login_maps"):
            lists = " ".join(
                effective(cfg, s, p)
                for p in (
                    "smtpd_sender_restrictions",
                    "smtpd_relay_restrictions",
                    "smtpd_recipient_restrictions",
                    "smtpd_client_restrictions",
                )
            )
            if not any(w in LOGIN_MISMATCH for w in words(lists)):
                found.append(
                    finding(
                        "postfix.sender-login-unenforced",
                        Severity.WARNING,
                        f"{s.name}: smtpd_sender_login_maps is set but no restriction uses "
                        "reject_sender_login_mismatch: an authenticated user can send as anyone.",
                        {"service": s.name},
                        f"In master.cf under {s.name}: -o smtpd_sender_restrictions="
                        "reject_sender_login_mismatch,permit_sasl_authenticated,reject",
                        "RFC 6409 §6.1",
                    )
                )
    if not subs and not implicit:
        found.append(
            finding(
                "postfix.no-submission",
                Severity.INFO,
                "No submission (587) or submissions (465) service in master.cf: mail clients "
                "must use port 25, which many networks block.",
                {},
                "Enable submissions (465, implicit TLS) and/or submission (587) in master.cf.",
                "RFC 8314 §3.3, RFC 6409",
            )
        )
    for s in implicit:
        if not yes(effective(cfg, s, "smtpd_tls_wrappermode", "no")):
            found.append(
                finding(
                    "postfix.submissions-no-wrappermode",
                    Severity.ERROR,
                    f"{s.name}: port 465 without smtpd_tls_wrappermode = yes: clients expect "
                    "implicit TLS there and will fail to connect.",
                    {"service": s.name},
                    f"In master.cf under {s.name}: -o smtpd_tls_wrappermode=yes",
                    "RFC 8314 §3.3",
                )
            )
    if subs and not implicit:
        found.append(
            finding(
                "postfix.no-submissions",
                Severity.INFO,
                "Port 465 (submissions, implicit TLS) is not offered; RFC 8314 prefers it to "
                "STARTTLS on 587.",
                {},
                "Uncomment the submissions service in master.cf with smtpd_tls_wrappermode=yes.",
                "RFC 8314 §3.3",
            )
        )
    return found
