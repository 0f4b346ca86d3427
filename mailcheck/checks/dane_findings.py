"""Findings about an MX host's TLSA records and how they match its certificate (pure).

A DANE sender that finds usable, DNSSEC-signed TLSA records insists on TLS and on a match;
anything else and it defers the mail (RFC 7672 §2.2). So every "no match" is an error while
the records are signed. Senders ignore unsigned records (`dane.tlsa-unsigned` says so), so
the same problems are then warnings about what signing the zone would break, and every
message, `dane.match` included, says that nothing is authenticated or deferred today.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mailcheck.model import Finding, Severity

if TYPE_CHECKING:
    from mailcheck.checks.dane import DaneVerdict, RecordResult, TlsaRecord

CHECK = "tls"
MakeFinding = Callable[..., Finding]
DANE_SENDERS = "DANE senders (Postfix or Exim with DANE enabled, Microsoft 365 and others)"
DEFERRING = (
    f"{DANE_SENDERS} defer mail to this host right now, and keep retrying until the mail "
    "expires and bounces."
)
UNSIGNED = (
    "These records are not DNSSEC-signed, so senders ignore them today; once the zone is "
    f"signed, {DANE_SENDERS} would defer mail to this host."
)


def dane_findings(
    host: str,
    port: int,
    verdict: DaneVerdict | None,
    records: Sequence[TlsaRecord],
    *,
    tlsa_secure: bool,
    starttls_ok: bool,
) -> tuple[Finding, ...]:
    """Findings for the TLSA RRset of `host`:`port` and, when a chain was seen, its matching.

    `verdict` is None when there was no chain to match (no STARTTLS, handshake failure).
    """
    if not records:
        return ()
    owner = f"_{port}._tcp.{host.rstrip('.')}"
    # Severity follows the signing: unsigned records break nothing until the zone is signed.
    fail = Severity.ERROR if tlsa_secure else Severity.WARNING
    base: dict[str, Any] = {
        "host": host,
        "port": port,
        "tlsa_owner": owner,
        "tlsa_secure": tlsa_secure,
        "tlsa": [r.text for r in records],
    }
    if verdict is not None:
        base["dane"] = verdict.to_json()
    spki = verdict.leaf_spki_sha256 if verdict is not None else ""
    publish = f"'{owner}. IN TLSA 3 1 1 {spki}'" if spki else "a '3 1 1' record of the server's key"

    def finding(
        code: str, severity: Severity, message: str, remedy: str = "", rfc: str = "", **extra: Any
    ) -> Finding:
        return Finding(CHECK, code, severity, message, {**base, **extra}, remedy, rfc)

    found: list[Finding] = []
    if not starttls_ok:
        found.append(
            finding(
                "dane.no-starttls",
                fail,
                f"{host} publishes TLSA records at {owner} but did not offer STARTTLS: DANE "
                "senders require authenticated TLS there, so they defer all mail to it."
                if tlsa_secure
                else f"{host} publishes TLSA records at {owner} but did not offer STARTTLS. "
                "These records are not DNSSEC-signed, so senders ignore them today; once the "
                "zone is signed, DANE senders would require authenticated TLS there and defer "
                "all mail to it.",
                "Enable STARTTLS with the certificate the TLSA records pin (Postfix: "
                "smtpd_tls_security_level = may and smtpd_tls_chain_files), or, if the host "
                "cannot offer TLS, remove its TLSA records. See the STARTTLS findings for why "
                "it was not offered (a blocklist can hide it).",
                "RFC 7672 §2.2",
            )
        )
    elif verdict is not None:
        found.extend(_matching(host, owner, verdict, tlsa_secure, publish, finding))
    found.extend(_unusable(owner, records, tlsa_secure, publish, finding))
    selector0 = [r for r in records if r.usable and r.selector == 0]
    if selector0:
        found.append(
            finding(
                "dane.full-cert-selector",
                Severity.WARNING,
                f"TLSA records at {owner} pin a whole certificate (selector 0): "
                f"{_list(selector0)}. They stop matching whenever that certificate is "
                "re-issued, even with the same key, and DANE senders then defer mail.",
                f"Pin the public key instead (selector 1): publish {publish} before the next "
                "renewal, then remove the selector-0 records.",
                "RFC 7671 §5.1",
            )
        )
    found.extend(_rollover(owner, records, verdict, finding))
    return tuple(found)


def _matching(
    host: str,
    owner: str,
    verdict: DaneVerdict,
    tlsa_secure: bool,
    publish: str,
    finding: MakeFinding,
) -> list[Finding]:
    if verdict.matches:
        return [_match(host, owner, verdict, tlsa_secure=tlsa_secure, finding=finding)]
    if not verdict.usable:
        return []  # nothing to match: _unusable says why
    fail = Severity.ERROR if tlsa_secure else Severity.WARNING
    defers = DEFERRING if tlsa_secure else UNSIGNED
    groups: dict[str, list[RecordResult]] = {}
    for r in verdict.results:
        if r.record.usable:
            groups.setdefault(r.outcome.value, []).append(r)
    found = []
    mismatched = groups.get("mismatch", []) + groups.get("ta-no-path", [])
    if mismatched:
        found.append(
            finding(
                "dane.mismatch",
                fail,
                f"No TLSA record at {owner} matches the certificate {host} presents: "
                f"{_details(mismatched)}. {defers}",
                f"Publish {publish} (the key the server uses now) next to the existing "
                "records, or put the previous key back on the server. For future key changes, "
                "publish the new key's record at least two TTLs before switching.",
                "RFC 7672 §3.1.1, §3.1.2",
                records=[r.to_json() for r in mismatched],
            )
        )
    for code, remedy, rfc in (
        (
            "dane.ta-not-in-chain",
            "Configure the server to send its certificate followed by the intermediate CA "
            "certificate(s), so the CA the '2 x x' record pins is among them; or pin the "
            f"server's own key with {publish}.",
            "RFC 7671 §5.2.2",
        ),
        (
            "dane.ta-name-mismatch",
            f"Use a certificate that names {' or '.join(verdict.names) or host} (DANE-TA checks "
            "names: the subjectAltName, or the CN when there is none), or publish a DANE-EE "
            f"record {publish}, which does not.",
            "RFC 7672 §3.2.2",
        ),
        (
            "dane.ta-wrong-purpose",
            "Have the certificate re-issued with serverAuth in its extendedKeyUsage (or with "
            "no extendedKeyUsage at all), or publish a DANE-EE record "
            f"{publish}, which does not check the purpose.",
            "RFC 7672 §3.1.2; RFC 5280 §4.2.1.12",
        ),
        (
            "dane.ta-expired",
            "Renew the server's certificate and reload the server (DANE-TA checks dates; "
            "DANE-EE does not).",
            "RFC 7672 §3.1.2",
        ),
    ):
        failed = groups.get(code.removeprefix("dane."), [])
        if failed:
            found.append(
                finding(
                    code,
                    fail,
                    f"No TLSA record at {owner} authenticates {host}: {_details(failed)}. {defers}",
                    remedy,
                    rfc,
                    records=[r.to_json() for r in failed],
                )
            )
    return found


def _unusable(
    owner: str,
    records: Sequence[TlsaRecord],
    tlsa_secure: bool,
    publish: str,
    finding: MakeFinding,
) -> list[Finding]:
    none_usable = not any(r.usable for r in records)
    # With nothing usable, `dane` senders fall back to unauthenticated TLS and `dane-only`
    # senders defer (RFC 7672 §2.2): DANE is broken, not merely untidy. Unsigned records
    # break nothing yet (senders ignore them), like every other DANE finding.
    severity = Severity.ERROR if none_usable and tlsa_secure else Severity.WARNING
    if not none_usable:
        consequence = " Senders skip them and use the other records."
    elif tlsa_secure:
        consequence = (
            " No usable TLSA record remains: DANE does not protect this host, and senders that "
            "require DANE defer mail to it."
        )
    else:
        consequence = (
            " No usable TLSA record remains. These records are not DNSSEC-signed, so senders "
            "ignore them today; once the zone is signed, DANE would not protect this host and "
            "senders that require DANE would defer mail to it."
        )
    found = []
    pkix = [r for r in records if r.pkix_usage and not r.malformed]
    if pkix:
        found.append(
            finding(
                "dane.usage-unusable",
                severity,
                f"TLSA records at {owner} use usage 0 or 1 (PKIX-TA/PKIX-EE), which mail "
                f"senders do not use: {_list(pkix)}.{consequence}",
                f"Replace them with {publish} (DANE-EE, the server's key) or a '2 1 1' record "
                "of the issuing CA's key (DANE-TA).",
                "RFC 7672 §3.1.3",
            )
        )
    bad = [r for r in records if r.malformed]
    if bad:
        why = "; ".join(f"'{_short(r)}': {', '.join(r.problems)}" for r in bad)
        found.append(
            finding(
                "dane.malformed",
                severity,
                f"Malformed TLSA records at {owner}, which senders cannot use: {why}.{consequence}",
                f"Re-create the record from the certificate, e.g. {publish} (a SHA-256 digest "
                "is 64 hex digits, SHA-512 is 128).",
                "RFC 6698 §2.1",
            )
        )
    return found


def _match(
    host: str, owner: str, verdict: DaneVerdict, *, tlsa_secure: bool, finding: MakeFinding
) -> Finding:
    """`dane.match`, naming every matching record; "authenticated" only when they are signed."""
    matches = verdict.matches
    first = matches[0]
    if len(matches) == 1:
        what = f"TLSA record '{_short(first.record)}' at {owner} matches. {first.detail}."
    else:
        what = f"TLSA records at {owner} match: {_details(matches)}."
    message = (
        f"{host} is authenticated by DANE: {what}"
        if tlsa_secure
        else f"{what} These records are not DNSSEC-signed, so senders ignore them: DANE does "
        f"not authenticate {host} until the zone is signed."
    )
    return finding(
        "dane.match",
        Severity.INFO,
        message,
        matched=first.to_json(),
        matches=[r.to_json() for r in matches],
    )


def _rollover(
    owner: str, records: Sequence[TlsaRecord], verdict: DaneVerdict | None, finding: MakeFinding
) -> list[Finding]:
    usable = [r for r in records if r.usable]
    ee = [r for r in usable if r.usage == 3]
    if not ee or any(r.usage == 2 for r in usable):
        return []
    if verdict is not None:
        by_record = {id(res.record): res for res in verdict.results}
        outcomes = [by_record.get(id(r)) for r in ee]
        if not all(o is not None and o.outcome.value == "match" for o in outcomes):
            return []  # a record for another key exists (next key, or a mismatch reported)
    elif len(ee) > 1:
        return []
    # Without a chain, only a lone record is known to pin one key; which one is unknown.
    pinned = (
        f"All TLSA records at {owner} pin the server's current certificate ({_list(ee)}) and "
        if verdict is not None
        else f"The only usable TLSA record at {owner} pins a single server key or certificate "
        f"({_list(ee)}; no certificate was seen to compare it with) and "
    )
    return [
        finding(
            "dane.no-rollover",
            Severity.WARNING,
            f"{pinned}none pins a next key or a CA: the day the key changes, DANE senders "
            "defer mail until DNS catches up.",
            "Before changing the key, publish a '3 1 1' record of the next key next to the "
            "current one and wait two TTLs; or add a '2 1 1' record of the issuing CA.",
            "RFC 7671 §8.1",
        )
    ]


def _short(record: TlsaRecord) -> str:
    text = record.text
    return text if len(text) <= 40 else text[:37] + "..."


def _list(records: Sequence[TlsaRecord]) -> str:
    return ", ".join(f"'{_short(r)}'" for r in records)


def _details(results: Sequence[RecordResult]) -> str:
    return "; ".join(f"'{_short(r.record)}': {r.detail}" for r in results)
