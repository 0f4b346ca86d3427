"""How the tls check shows one MX address: its JSON object and its row in the people's table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailcheck.checks.dane import DaneVerdict, TlsaRecord
from mailcheck.checks.tls_cert import ChainVerdict
from mailcheck.checks.tls_dns import TlsaLookup, TlsaState
from mailcheck.checks.tls_probe import SmtpProbe
from mailcheck.checks.tls_sender import Level, Prediction, Session

TLSA_LABEL = {
    TlsaState.SECURE: "signed",
    TlsaState.UNSIGNED: "unsigned",
    TlsaState.NONE: "none",
    TlsaState.NONE_INSECURE: "none",
    TlsaState.BOGUS: "BOGUS",
    TlsaState.MALFORMED: "malformed",
    TlsaState.FAILED: "lookup failed",
}
"""The TLSA column's words for each lookup state."""


def address_json(
    port: int,
    host: str,
    ip: str,
    probe: SmtpProbe | None,
    verdict: ChainVerdict | None,
    lookup: TlsaLookup | None,
    records: tuple[TlsaRecord, ...],
    dane: DaneVerdict | None,
    cause: str | None,
) -> dict[str, Any]:
    """One address as `data.hosts[]` shows it (docs/json.md)."""
    out: dict[str, Any] = {"host": host, "ip": ip, "port": port}
    if probe is not None:
        out.update(probe.to_json(cause=cause))
        out["host"], out["ip"] = host, ip
    else:
        out.update({"connected": None, "cause": cause, "transcript": []})
    out["cert"] = verdict.to_json() if verdict is not None else None
    dane_json: dict[str, Any] = lookup.to_json() if lookup is not None else {"state": "none"}
    dane_json["tlsa"] = [r.to_json() for r in records]
    dane_json["matched"] = None
    if dane is not None:
        verdict_json = dane.to_json()
        dane_json["matched"] = verdict_json.get("matched")
        dane_json["results"] = verdict_json.get("tlsa", [])
    out["dane"] = dane_json
    return out


def table_row(
    host: str,
    ip: str,
    probe: SmtpProbe | None,
    session: Session,
    verdict: ChainVerdict | None,
    lookup: TlsaLookup | None,
    dane: DaneVerdict | None,
    predictions: Mapping[Level, Prediction],
) -> tuple[str, ...]:
    """One address as the people's table shows it."""
    starttls = {
        Session.TLS: "yes",
        Session.NO_STARTTLS: "not offered",
        Session.REFUSED: "refused",
        Session.HANDSHAKE_FAILED: "handshake failed",
        Session.REJECTED: "rejected",
        Session.TLS_REJECTED: "rejected in TLS",
        Session.TLS_LOST: "dropped in TLS",
        Session.UNKNOWN: "not probed" if probe is None else "unknown",
    }[session]
    tls = ""
    if probe is not None and probe.tls is not None and probe.tls.ok:
        tls = probe.tls.version or ""  # the cipher is in tls.ok and the JSON
    cert = ""
    if verdict is not None:
        parts = ["trusted" if verdict.chain_trusted else "untrusted"]
        parts.append("name ok" if verdict.name_matches else "wrong name")
        if verdict.days_left is not None:
            parts.append(f"{verdict.days_left} d" if verdict.days_left >= 0 else "expired")
        cert = ", ".join(parts)
    dane_cell = TLSA_LABEL[lookup.state] if lookup is not None else ""
    if dane is not None and dane.matched is not None and lookup is not None:
        matched = " ".join(dane.matched.record.text.split()[:3])
        signed = lookup.state is TlsaState.SECURE
        dane_cell = f"match {matched}" if signed else f"match {matched} (unsigned)"
    elif dane is not None:
        dane_cell = "no match"
    defers = [lvl.value for lvl, p in predictions.items() if p.outcome.value in ("defer", "bounce")]
    unknown = all(p.outcome.value == "unknown" for p in predictions.values())
    senders = "unknown" if unknown else (", ".join(defers) if defers else "none")
    return (host, ip, starttls, tls, cert, dane_cell, senders)
