"""Findings about an MX host's certificate, from a ChainVerdict (pure).

Severity is policy. Opportunistic SMTP (most mail) encrypts to any certificate, so a bad
certificate only stops senders that verify: Postfix `verify`/`secure`, MTA-STS senders,
DANE-TA. Without an MTA-STS enforce policy those are a minority, so the findings are
warnings; with one (`pkix_required`), MTA-STS senders (Gmail, Microsoft 365...) defer, so
they are errors. DANE-EE senders look at none of this (RFC 7672 §3.1.1), and a DANE-TA record
that matched pins its own CA, so a matching signed TLSA record is named in every message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailcheck.model import Finding, Severity

if TYPE_CHECKING:
    from mailcheck.checks.tls_cert import ChainVerdict

CHECK = "tls"
MakeFinding = Callable[..., Finding]
EXPIRING_DAYS = 14
"""Warn this many days before the leaf expires: enough to notice a failed auto-renewal."""


def cert_findings(
    host: str,
    ip: str,
    verdict: ChainVerdict,
    *,
    pkix_required: bool,
    dane_ee_ok: bool,
    dane_ta_ok: bool = False,
) -> tuple[Finding, ...]:
    """What is wrong with the certificate `host` [`ip`] sent, for a person to act on.

    `dane_ee_ok`/`dane_ta_ok`: a DNSSEC-signed DANE-EE/DANE-TA record matched this chain.
    """
    where = f"{host} [{ip}]" if ip else host
    severity = Severity.ERROR if pkix_required else Severity.WARNING
    impact = _impact(pkix_required, dane_ee_ok, dane_ta_ok)
    base = {"host": host, "ip": ip, **verdict.to_json()}

    def finding(code: str, message: str, remedy: str, rfc: str = "", **extra: Any) -> Finding:
        if code == "tls.cert-expiring":  # a reminder: nothing fails yet, whatever the policy
            return Finding(CHECK, code, Severity.WARNING, message, base, remedy, rfc)
        text = f"{message} {impact}"
        return Finding(CHECK, code, severity, text, {**base, **extra}, remedy, rfc)

    leaf = verdict.leaf
    if leaf is None:
        return (
            finding(
                "tls.cert-malformed",
                f"{where} sent no readable certificate ({verdict.trust_error}), so no "
                "sender can authenticate it.",
                "Check the certificate file the server is configured with "
                "(openssl x509 -in cert.pem -noout -text) and reload the server.",
            ),
        )
    found: list[Finding] = []
    if verdict.chain.problems:
        found.append(
            finding(
                "tls.cert-malformed",
                f"Part of the certificate chain {where} sent cannot be read: "
                + "; ".join(verdict.chain.problems)
                + ".",
                "Check the certificate files the server sends (openssl x509 -noout -text on "
                "each) and replace the broken one.",
            )
        )
    found.extend(_trust(where, verdict, finding))
    found.extend(_dates(where, verdict, finding))
    if not verdict.name_matches:
        names = ", ".join(leaf.sans or leaf.common_names) or "no names at all"
        found.append(
            finding(
                "tls.cert-name-mismatch",
                f"The certificate of {where} is for {names}, which does not cover the MX host "
                f"name {host}.",
                f"Get a certificate whose subjectAltName includes {host} (a wildcard such as "
                "*.example.com covers exactly one label), or point the MX record at a name "
                "the certificate has.",
                "RFC 6125 §6.4; RFC 8461 §4.2",
            )
        )
    for depth in verdict.weak_keys:
        cert = verdict.chain.certs[depth]
        key = cert.key if cert else "?"
        found.append(
            finding(
                "tls.cert-weak-key",
                f"The certificate at depth {depth} from {where} has a weak {key}-bit key "
                "(RSA below 2048 or EC below 256 bits); senders at OpenSSL's default "
                "security level refuse it.",
                "Issue a new certificate with an RSA 2048 (or larger) or ECDSA P-256 key.",
                depth=depth,
            )
        )
    if verdict.sha1:
        found.append(
            finding(
                "tls.cert-sha1",
                f"{where} sends certificates signed with SHA-1 (depths "
                f"{', '.join(map(str, verdict.sha1))}); current TLS libraries reject them.",
                "Have the certificate re-issued with a SHA-256 signature.",
                depths=list(verdict.sha1),
            )
        )
    if not found and not verdict.pkix_valid:
        # Verified in parts, yet the full check fails (e.g. a CN-only certificate, which the
        # webpki rules of MTA-STS senders reject): say what the verifier said.
        found.append(_untrusted(where, verdict, finding))
    return tuple(found)


def _trust(where: str, verdict: ChainVerdict, finding: MakeFinding) -> list[Finding]:
    leaf = verdict.leaf
    assert leaf is not None
    if verdict.chain_trusted:
        return []
    if verdict.self_signed:
        return [
            finding(
                "tls.cert-self-signed",
                f"{where} sends a self-signed certificate ({leaf.subject}): no CA vouches for "
                "it, so senders that verify certificates cannot trust it.",
                "Use a certificate from a public CA (Let's Encrypt is free) if you publish "
                "MTA-STS or want verifying senders to deliver. A self-signed certificate is "
                f"fine for DANE: publish the TLSA record '3 1 1 {leaf.spki_sha256}' in a "
                "DNSSEC-signed zone.",
                "RFC 5280 §6.1; RFC 7672 §3.1.1",
            )
        ]
    if verdict.missing_intermediate:
        return [
            finding(
                "tls.cert-missing-intermediate",
                f"{where} sends its certificate without the intermediate CA certificate that "
                f"issued it ({verdict.missing_issuer}). Senders cannot build a chain to a "
                "trusted root (unless that issuer is itself a private root CA).",
                "Configure the server to send its own certificate followed by the "
                "intermediate(s): the CA's 'fullchain.pem' (Postfix: smtpd_tls_chain_files = "
                "key.pem, fullchain.pem).",
                "RFC 8446 §4.4.2",
                missing_issuer=verdict.missing_issuer,
            )
        ]
    return [_untrusted(where, verdict, finding)]


def _untrusted(where: str, verdict: ChainVerdict, finding: MakeFinding) -> Finding:
    leaf = verdict.leaf
    issuer = leaf.issuer if leaf else "?"
    if leaf is not None and verdict.chain_trusted and not leaf.sans:
        return finding(
            "tls.cert-untrusted",
            f"The certificate of {where} has no subjectAltName: it names the host only in its "
            "Common Name, which current verifiers (browsers, Go, rustls, most MTA-STS senders) "
            f"ignore ({verdict.trust_error}).",
            f"Get a certificate whose subjectAltName lists {verdict.host}.",
            "RFC 6125 §6.4.4",
            verifier_error=verdict.trust_error,
        )
    return finding(
        "tls.cert-untrusted",
        f"The certificate of {where} (issued by {issuer}) does not verify against the trusted "
        f"root CAs: {verdict.trust_error or 'no chain to a trusted root'}.",
        "Use a certificate from a CA that mail senders trust and send the full chain (leaf "
        "then intermediates). For a private CA, only senders configured with that CA can verify.",
        "RFC 5280 §6.1",
        verifier_error=verdict.trust_error,
    )


def _dates(where: str, verdict: ChainVerdict, finding: MakeFinding) -> list[Finding]:
    leaf = verdict.leaf
    assert leaf is not None
    found = []
    for depth in verdict.expired:
        cert = verdict.chain.certs[depth]
        assert cert is not None
        what = "certificate" if depth == 0 else f"chain certificate at depth {depth}"
        ago = (verdict.checked_at - cert.not_after).days
        found.append(
            finding(
                "tls.cert-expired",
                f"The {what} of {where} ({cert.subject}) expired on {_day(cert.not_after)} "
                f"({ago} days ago).",
                "Renew the certificate, install it and reload the server; automate renewal "
                "(e.g. certbot with a deploy hook that reloads Postfix).",
                "RFC 5280 §4.1.2.5",
                depth=depth,
            )
        )
    for depth in verdict.not_yet_valid:
        cert = verdict.chain.certs[depth]
        assert cert is not None
        found.append(
            finding(
                "tls.cert-not-yet-valid",
                f"A certificate sent by {where} ({cert.subject}) is only valid from "
                f"{_day(cert.not_before)}: either it was installed too early or a clock is "
                "wrong.",
                "Check the server's and the CA's clocks, or install the previous certificate "
                "until this one becomes valid.",
                "RFC 5280 §4.1.2.5",
                depth=depth,
            )
        )
    days = verdict.days_left
    if not verdict.expired and days is not None and days < EXPIRING_DAYS:
        found.append(
            finding(
                "tls.cert-expiring",
                f"The certificate of {where} expires on {_day(leaf.not_after)}, in {days} "
                "days. After that, senders that verify certificates will refuse it.",
                "Renew it now, and check that automatic renewal works and reloads the server.",
                "RFC 5280 §4.1.2.5",
            )
        )
    return found


def _impact(pkix_required: bool, dane_ee_ok: bool, dane_ta_ok: bool) -> str:
    if pkix_required:
        text = (
            "The domain's MTA-STS policy is in enforce mode, so MTA-STS senders (Gmail, "
            "Microsoft 365 and others) will not deliver to this host."
        )
    elif dane_ee_ok or dane_ta_ok:
        text = (
            "Opportunistic senders (most mail) still deliver, but senders that verify "
            "certificates against public roots (Postfix 'verify'/'secure' levels, MTA-STS) "
            "do not."
        )
    else:
        text = (
            "Opportunistic senders (most mail) still deliver, but senders that verify "
            "certificates (Postfix 'verify'/'secure' levels, MTA-STS, DANE-TA) do not; "
            "DANE-EE senders do not look at the certificate's CA, names or dates."
        )
    if dane_ee_ok:
        # RFC 7672 §3.1.1: DANE-EE pins the leaf alone, whatever its CA, names and dates.
        text += (
            " A DNSSEC-signed DANE-EE TLSA record matches this server's own key or "
            "certificate, so DANE senders still deliver."
        )
    elif dane_ta_ok:
        # RFC 7672 §3.1.2: the pinned CA is the trust anchor, public roots do not matter.
        text += (
            " A DNSSEC-signed DANE-TA TLSA record pins a CA this chain verifies up to (with "
            "the host's name, within its dates), so DANE senders still deliver."
        )
    return text


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")
