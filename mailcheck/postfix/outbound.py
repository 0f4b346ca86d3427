"""Audit rules about outbound mail: TLS, smart host, identity, transports, monitoring."""

from __future__ import annotations

from mailcheck.model import Finding, Severity
from mailcheck.postfix.config import PostfixConfig
from mailcheck.postfix.rules import finding, words, yes

# postconf(5) smtp_tls_security_level, and what each level means for delivery.
TLS_LEVELS = {
    "none": "TLS is never used: all mail leaves in plain text.",
    "may": "opportunistic TLS: encrypted when offered, else plain text; never bounces for TLS.",
    "encrypt": "TLS mandatory, certificates unchecked: mail to servers without STARTTLS defers.",
    "dane": "DANE when the destination publishes DNSSEC-signed TLSA records, else `may`.",
    "dane-only": "DANE is mandatory: destinations without TLSA records defer.",
    "fingerprint": "TLS with certificate fingerprints pinned per destination.",
    "verify": "TLS with a verified certificate name (MX name unauthenticated without DNSSEC).",
    "secure": "TLS with a verified certificate name from a secure channel.",
}
MANDATORY = ("encrypt", "dane-only", "fingerprint", "verify", "secure")


def tls_findings(cfg: PostfixConfig) -> list[Finding]:
    """smtp_tls_security_level explained; mandatory TLS and DANE pitfalls."""
    found: list[Finding] = []
    level = cfg.get("smtp_tls_security_level").lower() or "none"
    if level not in TLS_LEVELS:
        return [
            finding(
                "postfix.smtp-tls-level-unknown",
                Severity.ERROR,
                f"smtp_tls_security_level = {level!r} is not a Postfix TLS level.",
                {"smtp_tls_security_level": level},
                "Use one of: " + ", ".join(TLS_LEVELS),
            )
        ]
    found.append(
        finding(
            "postfix.smtp-tls-level",
            Severity.WARNING if level == "none" else Severity.INFO,
            f"smtp_tls_security_level = {level}: {TLS_LEVELS[level]}",
            {"smtp_tls_security_level": level},
            "Set smtp_tls_security_level = may (or dane with a validating resolver)."
            if level == "none"
            else "",
            "RFC 3207, RFC 7672",
        )
    )
    if level in MANDATORY and not cfg.get("smtp_tls_policy_maps"):
        found.append(
            finding(
                "postfix.smtp-tls-mandatory",
                Severity.WARNING,
                f"smtp_tls_security_level = {level} for every destination and no "
                "smtp_tls_policy_maps: mail to any server without STARTTLS defers, then bounces "
                "with 'TLS is required, but was not offered'.",
                {"smtp_tls_security_level": level},
                "Use may (or dane) globally; require TLS per destination in smtp_tls_policy_maps.",
            )
        )
    if level in ("dane", "dane-only") and cfg.get("smtp_dns_support_level").lower() != "dnssec":
        found.append(
            finding(
                "postfix.dane-without-dnssec",
                Severity.WARNING,
                f"smtp_tls_security_level = {level} without smtp_dns_support_level = dnssec: "
                "Postfix ignores TLSA records and silently falls back to `may`.",
                {"smtp_dns_support_level": cfg.get("smtp_dns_support_level")},
                "Set smtp_dns_support_level = dnssec and point resolv.conf at a validating "
                "resolver on localhost.",
                "RFC 7672 §2.2",
            )
        )
    return found


def relayhost_findings(cfg: PostfixConfig) -> list[Finding]:
    """relayhost (postconf(5)): brackets bypass MX lookups; credentials need TLS."""
    relayhost = cfg.get("relayhost")
    if not relayhost:
        return []
    bracketed = relayhost.startswith("[")
    found = [
        finding(
            "postfix.relayhost",
            Severity.INFO,
            f"All mail goes through the smart host {relayhost}: "
            + (
                "brackets, so its address records are used directly (no MX lookup)."
                if bracketed
                else "no brackets, so Postfix looks up its MX records first."
            ),
            {"relayhost": relayhost, "mx_lookup": not bracketed},
            "" if bracketed else "Write relayhost = [host]:port unless the MX lookup is wanted.",
        )
    ]
    if yes(cfg.get("smtp_sasl_auth_enable", "no")) and cfg.get("smtp_sasl_password_maps"):
        level = cfg.get("smtp_tls_security_level").lower() or "none"
        if level in ("none", "may"):
            found.append(
                finding(
                    "postfix.relayhost-credentials-without-tls",
                    Severity.ERROR if level == "none" else Severity.WARNING,
                    f"Credentials for {relayhost} (smtp_sasl_password_maps) with "
                    f"smtp_tls_security_level = {level}: the password can cross the network in "
                    "plain text" + (" when STARTTLS is stripped." if level == "may" else "."),
                    {"relayhost": relayhost, "smtp_tls_security_level": level},
                    f"Require TLS to the smart host: smtp_tls_policy_maps entry "
                    f"`{relayhost} encrypt` (or secure), or smtp_tls_security_level = encrypt.",
                    "RFC 4954 §4",
                )
            )
    return found


def identity_findings(cfg: PostfixConfig) -> list[Finding]:
    """myhostname, banner, VRFY and HELO settings (postconf(5))."""
    found: list[Finding] = []
    myhostname = cfg.get("myhostname")
    if not myhostname:
        found.append(
            finding(
                "postfix.myhostname-unset",
                Severity.INFO,
                "myhostname is not set: Postfix uses the system host name in HELO, which must "
                "be a fully qualified name with matching forward and reverse DNS.",
                {},
                "Set myhostname to the name the outbound address's PTR record points to.",
                "RFC 5321 §4.1.1.1",
            )
        )
    banner = cfg.params.get("smtpd_banner")
    if banner is not None and "$myhostname" not in banner and "${myhostname}" not in banner:
        found.append(
            finding(
                "postfix.banner-without-hostname",
                Severity.WARNING,
                "smtpd_banner does not start with $myhostname: RFC 5321 requires the server's "
                "name first in the 220 greeting, and some clients check it.",
                {"smtpd_banner": banner},
                "smtpd_banner = $myhostname ESMTP",
                "RFC 5321 §4.3.1",
            )
        )
    if not yes(cfg.get("disable_vrfy_command", "no")):
        found.append(
            finding(
                "postfix.vrfy-enabled",
                Severity.WARNING,
                "VRFY is enabled: anyone can test which addresses exist (harvesting).",
                {},
                "disable_vrfy_command = yes",
                "RFC 5321 §7.3",
            )
        )
    if not yes(cfg.get("smtpd_helo_required", "no")):
        found.append(
            finding(
                "postfix.helo-not-required",
                Severity.INFO,
                "smtpd_helo_required = no: clients may skip HELO/EHLO, and HELO restrictions "
                "cannot apply to them.",
                {},
                "smtpd_helo_required = yes",
                "RFC 5321 §4.1.1.1",
            )
        )
    return found


def transport_findings(cfg: PostfixConfig) -> list[Finding]:
    """Routing tables, and concurrency settings that hide deferrals."""
    found: list[Finding] = []
    tables = {
        name: cfg.get(name)
        for name in (
            "transport_maps",
            "sender_dependent_default_transport_maps",
            "sender_dependent_relayhost_maps",
            "default_transport",
        )
        if cfg.get(name)
    }
    if tables:
        found.append(
            finding(
                "postfix.transports",
                Severity.INFO,
                "Routing is customised: "
                + "; ".join(f"{k} = {v}" for k, v in tables.items())
                + ". Deferrals for a domain may come from its transport, not from the recipient.",
                tables,
            )
        )
    for name, value in cfg.params.items():
        # postconf(5) transport_destination_concurrency_limit: 1 serialises every delivery.
        if name.endswith("_destination_concurrency_limit") and value.strip() == "1":
            found.append(
                finding(
                    "postfix.transport-concurrency-one",
                    Severity.WARNING,
                    f"{name} = 1: one delivery at a time per destination; a slow or deferring "
                    "server then holds up everything queued behind it.",
                    {"parameter": name},
                    "Keep 1 only for destinations that demand it, in a dedicated transport.",
                )
            )
        if name.endswith("_destination_recipient_limit") and value.strip() == "1":
            found.append(
                finding(
                    "postfix.transport-one-shot",
                    Severity.INFO,
                    f"{name} = 1: one recipient per delivery; the concurrency limit then applies "
                    "per recipient and per-recipient deferrals multiply connections.",
                    {"parameter": name},
                )
            )
    for s in cfg.services:
        if s.type == "unix" and s.command in ("smtp", "lmtp") and s.maxproc == "1":
            found.append(
                finding(
                    "postfix.transport-concurrency-one",
                    Severity.WARNING,
                    f"master.cf transport {s.name} has maxproc 1: one delivery at a time.",
                    {"service": s.name},
                    "Raise maxproc unless the next hop demands a single connection.",
                )
            )
    return found


def notify_findings(cfg: PostfixConfig) -> list[Finding]:
    """notify_classes (postconf(5)): are bounces copied to a person?"""
    classes = words(cfg.get("notify_classes", "resource, software").lower())
    if "bounce" in classes:
        return []
    return [
        finding(
            "postfix.bounces-unmonitored",
            Severity.INFO,
            "notify_classes does not include bounce: nobody is told when mail bounces.",
            {"notify_classes": classes},
            "notify_classes = bounce, delay, resource, software and set bounce_notice_recipient.",
        )
    ]
