"""The tls check's verdict: one pure function from everything gathered to a CheckResult.

Per MX address it combines the SMTP session (tls_session), the certificate (tls_cert), the
TLSA records (tls_dns, dane) and the MTA-STS policy into findings, and predicts what a
Postfix sender at each smtp_tls_security_level does (tls_sender).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, assert_never

from cryptography import x509

from mailcheck.checks.base import lookup_failed
from mailcheck.checks.dane import DaneVerdict, TlsaRecord, dane_findings, match_tlsa
from mailcheck.checks.mta_sts import evaluate_mta_sts
from mailcheck.checks.mta_sts_observation import MtaStsObservation
from mailcheck.checks.mta_sts_record import StsMode
from mailcheck.checks.tls_cert import (
    ChainVerdict,
    cert_findings,
    judge_chain,
    parse_chain,
    purpose_error,
)
from mailcheck.checks.tls_dns import TlsaLookup, TlsaState, coverage_findings, tlsa_dns_findings
from mailcheck.checks.tls_inside import lost_inside_tls, refused_inside_tls
from mailcheck.checks.tls_missing import refused_before_tls
from mailcheck.checks.tls_probe import SmtpProbe
from mailcheck.checks.tls_report_view import address_json, table_row
from mailcheck.checks.tls_sender import (
    Dane,
    Level,
    Prediction,
    SenderFacts,
    Session,
    postfix_reply,
    predict,
    reply_dsn,
)
from mailcheck.checks.tls_session import (
    SLOW_GREETING_S,
    cause_of,
    session_findings,
)
from mailcheck.checks.tls_settings import TlsSettings
from mailcheck.dns import DnsAnswer, Outcome
from mailcheck.model import CheckResult, FactTable, FactTree, Finding, Severity
from mailcheck.smtp import Reply

CHECK = "tls"
LEGACY_VERSIONS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})
_SESSION_OF_CAUSE = {
    "tls.greeting-rejected": Session.REJECTED,
    "tls.greeting-tempfail": Session.REJECTED,
    "tls.helo-rejected": Session.REJECTED,
    "tls.rejected-after-tls": Session.TLS_REJECTED,  # or lost, or unknown: see _session
    "tls.ehlo-rejected": Session.NO_STARTTLS,
    "tls.no-esmtp": Session.NO_STARTTLS,
    "tls.starttls-hidden-block": Session.NO_STARTTLS,
    "tls.starttls-masked": Session.NO_STARTTLS,
    "tls.starttls-unadvertised": Session.NO_STARTTLS,
    "tls.starttls-missing": Session.NO_STARTTLS,
    "tls.starttls-refused": Session.REFUSED,
    "tls.handshake-failed": Session.HANDSHAKE_FAILED,
    "tls.probe-deadline": Session.UNKNOWN,  # cut short: what a sender sees is not known
}


@dataclass(frozen=True)
class HostAddress:
    """One MX host and one of its addresses, with the probe (None when not probed)."""

    host: str
    """The MX host name (or an address literal)."""
    ip: str
    """The address."""
    probe: SmtpProbe | None
    """The SMTP probe; None with --no-smtp."""


@dataclass(frozen=True)
class TlsObservation:
    """Everything the tls check gathered."""

    domain: str | None
    """The mail domain, or None when hosts were named directly."""
    settings: TlsSettings
    """How it probed."""
    mx: DnsAnswer | None
    """The MX lookup (domain mode)."""
    hosts: tuple[str, ...]
    """The MX hosts (or named hosts), in preference order."""
    host_lookups: Mapping[str, tuple[DnsAnswer, ...]]
    """The A/AAAA lookups of each host."""
    tlsa: Mapping[str, TlsaLookup]
    """The TLSA lookup of each host (not for address literals)."""
    addresses: tuple[HostAddress, ...]
    """Every (host, address) pair, probed or not."""
    mta_sts: MtaStsObservation | None
    """MTA-STS and TLS-RPT (domain mode)."""
    root_keys: DnsAnswer | None = None
    """The root's DNSKEY lookup, asked only to learn whether the resolver validates."""
    roots: tuple[x509.Certificate, ...] = field(repr=False, default=())
    """The roots PKIX judgement trusts."""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When certificates are judged."""

    @property
    def resolver_validates(self) -> bool:
        """The resolver set the AD bit on some answer of this run."""
        answers = [self.mx] if self.mx is not None else []
        answers += [a for lookups in self.host_lookups.values() for a in lookups]
        answers += [lu.answer for lu in self.tlsa.values()]
        answers += [self.root_keys] if self.root_keys is not None else []
        return any(a.authenticated for a in answers)


def evaluate_tls(obs: TlsObservation) -> CheckResult:
    """Judge the observation (pure)."""
    findings: list[Finding] = []
    policy = obs.mta_sts.applied_policy if obs.mta_sts is not None else None
    enforce = policy is not None and policy.mode is StsMode.ENFORCE
    findings += _dns_findings(obs)
    hosts_json: list[dict[str, Any]] = []
    rows: list[tuple[str, ...]] = []
    transcripts: list[FactTree] = []
    for item in obs.addresses:
        lookup = obs.tlsa.get(item.host)
        covered = enforce and policy is not None and policy.covers(item.host)
        result = _judge_address(obs, item, lookup, pkix_required=covered)
        findings += result.findings
        hosts_json.append(result.json)
        rows.append(result.row)
        if obs.settings.transcript and item.probe is not None:
            lines = tuple(
                FactTree(f"{t.ms:>6} ms {t.direction} {t.text}") for t in item.probe.transcript
            )
            transcripts.append(FactTree(f"{item.host} [{item.ip}]:{obs.settings.port}", lines))
    findings += coverage_findings(list(obs.tlsa.values()))
    if obs.mta_sts is not None:
        dane_published = any(lu.state is TlsaState.SECURE for lu in obs.tlsa.values())
        findings += evaluate_mta_sts(obs.mta_sts, obs.hosts, dane_published=dane_published)
    data: dict[str, Any] = {
        "port": obs.settings.port,
        "smtp_probed": obs.settings.smtp,
        "resolver_validates": obs.resolver_validates,
        "mx_secure": obs.mx.authenticated if obs.mx is not None else None,
        "hosts": hosts_json,
    }
    if obs.mta_sts is not None:
        data.update(obs.mta_sts.to_json(obs.hosts))
    if obs.settings.smtp:
        # Host and address share a cell, so the table fits 80 columns.
        columns: tuple[str, ...] = ("MX host", "STARTTLS", "TLS", "cert", "DANE", "defers")
        rows = [(r[0] if r[0] == r[1] else f"{r[0]}\n{r[1]}", *r[2:]) for r in rows]
    else:  # --no-smtp: only the DNS side is known
        columns, rows = ("MX host", "address", "TLSA"), [(r[0], r[1], r[5]) for r in rows]
    facts = FactTable(columns, tuple(rows)) if rows else None
    tree = FactTree("SMTP transcripts", tuple(transcripts)) if transcripts else None
    return CheckResult.from_findings(CHECK, _unique(findings), data, facts, tree)


def _dns_findings(obs: TlsObservation) -> list[Finding]:
    findings: list[Finding] = []
    if obs.mx is not None and obs.mx.outcome.is_failure:
        findings.append(lookup_failed(CHECK, obs.mx, "the MX hosts to probe"))
    for host, lookups in obs.host_lookups.items():
        if lookups and all(a.outcome.is_failure for a in lookups):
            findings.append(lookup_failed(CHECK, lookups[0], f"the addresses of {host}", host=host))
    validates = obs.resolver_validates
    for lookup in obs.tlsa.values():
        findings += tlsa_dns_findings(lookup, resolver_validates=validates)
    secure_tlsa = [lu.host for lu in obs.tlsa.values() if lu.state is TlsaState.SECURE]
    if (
        obs.mx is not None
        and obs.mx.outcome is Outcome.ANSWER
        and not obs.mx.authenticated
        and secure_tlsa
    ):
        findings.append(
            Finding(
                CHECK,
                "dane.mx-insecure",
                Severity.WARNING,
                f"The MX records of {obs.domain} are not DNSSEC-signed, although "
                f"{', '.join(secure_tlsa)} has signed TLSA records: senders that follow RFC 7672 "
                "do not use DANE for this domain (an attacker could forge the MX answer). "
                "Postfix 3.7 and later still use the TLSA records by default "
                "(smtp_tls_dane_insecure_mx_policy = dane).",
                {"domain": obs.domain, "hosts": secure_tlsa},
                remedy="Sign the mail domain's zone too, and publish its DS in the parent.",
                rfc="RFC 7672 §2.2.1",
            )
        )
    return findings


@dataclass(frozen=True)
class _Judged:
    findings: tuple[Finding, ...]
    json: dict[str, Any]
    row: tuple[str, ...]


def _judge_address(
    obs: TlsObservation, item: HostAddress, lookup: TlsaLookup | None, *, pkix_required: bool
) -> _Judged:
    port = obs.settings.port
    probe = item.probe
    findings: list[Finding] = []
    records = _records(lookup)
    chain: tuple[bytes, ...] = ()
    judged: tuple[Finding, ...] = ()
    if probe is not None:
        # "Slow" must stay below the greeting timeout, or it could never be seen.
        slow = min(SLOW_GREETING_S, obs.settings.step_timeout / 2)
        judged = session_findings(probe, slow_greeting_s=slow)
        findings += judged
        if probe.tls is not None and probe.tls.ok:
            chain = probe.tls.chain_der
    cause = cause_of(judged) if probe is not None else None
    session = _session(probe, cause)
    parsed = parse_chain(chain) if chain else None  # parsed once, judged twice (PKIX, DANE)
    # The TLSA base domain (the expanded name of an aliased MX host, RFC 7672 §2.2.2) and the
    # MX host are both names a DANE-TA leaf may carry (§3.2.3).
    base = lookup.host if lookup is not None else item.host
    names = list(dict.fromkeys([base, item.host]))
    dane = match_tlsa(records, parsed, names, now=obs.now) if records and parsed else None
    secure = lookup is not None and lookup.state is TlsaState.SECURE
    # An unknown session (unreachable, cut short) still has the record-only findings.
    if records and lookup is not None:
        findings += dane_findings(
            base,
            port,
            dane,
            records,
            tlsa_secure=secure,
            starttls_ok=session not in (Session.NO_STARTTLS, Session.REFUSED),
        )
    verdict = judge_chain(parsed, item.host, now=obs.now, roots=obs.roots) if parsed else None
    if verdict is not None:
        findings += cert_findings(
            item.host,
            item.ip,
            verdict,
            pkix_required=pkix_required,
            dane_ee_ok=secure and dane is not None and dane.dane_ee_ok,
            dane_ta_ok=secure and dane is not None and dane.dane_ta_ok,
        )
    legacy = probe is not None and probe.tls is not None and probe.tls.version in LEGACY_VERSIONS
    if (
        pkix_required
        and session in (Session.TLS, Session.TLS_REJECTED, Session.TLS_LOST)
        and verdict is not None
        and (not verdict.pkix_valid or legacy)
    ):
        findings.append(_sts_cert_invalid(item, verdict, legacy))
    refusal = _refusal(probe, session)
    facts = SenderFacts(
        item.host,
        item.ip,
        port,
        session,
        reply=postfix_reply(refusal) if refusal is not None else "",
        dsn=reply_dsn(refusal, greeting=probe is not None and refusal is probe.greeting)
        if refusal is not None
        else "",
        lost_at=(lost_inside_tls(probe) if probe is not None else None) or "EHLO",
        legacy_tls=legacy,
        pkix_trusted=verdict is not None
        and verdict.chain_trusted
        and not verdict.expired
        and not verdict.not_yet_valid
        # OpenSSL's sslserver purpose: a leaf for clientAuth only fails verify and secure.
        and not (verdict.leaf is not None and purpose_error(verdict.leaf.cert)),
        mx_name_matches=verdict is not None and verdict.name_matches,
        # Postfix's next hop: the domain, or the host itself for `[host]:port` targets.
        nexthop_name_matches=verdict is not None
        and _names_domain(verdict, obs.domain or item.host),
        dane=_dane_state(lookup, dane, records),
    )
    predictions = {level: predict(facts, level) for level in Level}
    for level in obs.settings.sender_levels:
        said = predictions[level]
        if said.outcome.value in ("defer", "bounce"):
            findings.append(_sender_defers(item, level, said))
    host_json = address_json(
        obs.settings.port, item.host, item.ip, probe, verdict, lookup, records, dane, cause
    )
    host_json["senders"] = {level.value: p.to_json() for level, p in predictions.items()}
    row = table_row(item.host, item.ip, probe, session, verdict, lookup, dane, predictions)
    return _Judged(tuple(findings), host_json, row)


def _records(lookup: TlsaLookup | None) -> tuple[TlsaRecord, ...]:
    if lookup is None or lookup.state not in (TlsaState.SECURE, TlsaState.UNSIGNED):
        return ()
    # Sorted: resolvers rotate RRset order, reports should not change with it.
    return tuple(sorted((TlsaRecord.from_rdata(r) for r in lookup.records), key=lambda r: r.text))


def _session(probe: SmtpProbe | None, cause: str | None) -> Session:
    if probe is None:
        return Session.UNKNOWN
    if cause is None:
        return Session.TLS if probe.tls is not None and probe.tls.ok else Session.UNKNOWN
    if cause == "tls.rejected-after-tls":
        # Refused inside TLS (421, or HELO refused too), the connection lost there, or
        # something a sender may see otherwise (a timeout, no reply to HELO): unknown.
        if refused_inside_tls(probe) is not None:
            return Session.TLS_REJECTED
        return Session.TLS_LOST if lost_inside_tls(probe) is not None else Session.UNKNOWN
    return _SESSION_OF_CAUSE.get(cause, Session.UNKNOWN)


def _refusal(probe: SmtpProbe | None, session: Session) -> Reply | None:
    """The reply a sender quotes where the session stopped (refused, or STARTTLS refused)."""
    if probe is None:
        return None
    match session:
        case Session.REJECTED:
            return refused_before_tls(probe)
        case Session.TLS_REJECTED:
            return refused_inside_tls(probe)
        case Session.REFUSED:
            return probe.starttls
        case _:
            return None


def _dane_state(
    lookup: TlsaLookup | None, dane: DaneVerdict | None, records: tuple[TlsaRecord, ...]
) -> Dane:
    if lookup is None:
        return Dane.NONE
    match lookup.state:
        case TlsaState.NONE | TlsaState.NONE_INSECURE:
            return Dane.NONE
        case TlsaState.UNSIGNED:
            return Dane.INSECURE
        case TlsaState.BOGUS | TlsaState.FAILED:
            return Dane.LOOKUP_ERROR
        case TlsaState.MALFORMED:
            return Dane.UNUSABLE
        case TlsaState.SECURE:
            if not any(r.usable for r in records):
                return Dane.UNUSABLE
            return Dane.MATCH if dane is not None and dane.matched is not None else Dane.MISMATCH
        case _:
            assert_never(lookup.state)


def _names_domain(verdict: ChainVerdict, domain: str) -> bool:
    """Postfix `secure` (smtp_tls_secure_cert_match = nexthop, dot-nexthop)."""
    leaf = verdict.leaf
    if leaf is None:
        return False
    names = [n.lower().rstrip(".") for n in (leaf.sans or leaf.common_names)]
    return any(n == domain or n.endswith("." + domain) for n in names)


def _sts_cert_invalid(item: HostAddress, verdict: ChainVerdict, legacy: bool) -> Finding:
    why = (
        "it only speaks TLS older than 1.2"
        if legacy
        else (verdict.trust_error or "its certificate does not validate for its name")
    )
    return Finding(
        CHECK,
        "mta-sts.mx-cert-invalid",
        Severity.ERROR,
        f"The domain's MTA-STS policy is in enforce mode, but {item.host} [{item.ip}] fails "
        f"the policy's TLS requirement ({why}): MTA-STS senders (Gmail, Microsoft) defer mail "
        "to it.",
        {"host": item.host, "ip": item.ip, "certificate": verdict.to_json(), "legacy": legacy},
        remedy="Serve a certificate from a public CA that names the MX host, with its full "
        "chain, over TLS 1.2 or later; or switch the policy to mode: testing until then.",
        rfc="RFC 8461 §4.2",
    )


def _sender_defers(item: HostAddress, level: Level, said: Prediction) -> Finding:
    does = "returns (bounces)" if said.outcome.value == "bounce" else "defers"
    says, dsn = said.says, said.dsn
    return Finding(
        CHECK,
        "tls.sender-defers",
        Severity.ERROR,
        f"A Postfix sender with smtp_tls_security_level = {level.value} {does} mail to "
        f"{item.host} [{item.ip}]: '{says}'" + (f" (dsn={dsn})" if dsn else "") + ".",
        {
            "host": item.host,
            "ip": item.ip,
            "level": level.value,
            "outcome": said.outcome.value,
            "postfix_says": says,
            "dsn": dsn,
        },
        remedy="See the findings above for this host: they name the cause. A sender that "
        "cannot wait may add a per-destination exception in smtp_tls_policy_maps.",
    )


def _unique(findings: list[Finding]) -> list[Finding]:
    """Drop repeats (one host's TLSA findings come once per address)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
