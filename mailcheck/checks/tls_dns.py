"""The DNS half of DANE (RFC 7672 §2.2): TLSA lookups, their DNSSEC state, and what it means.

lookup_tlsa asks the DNS layer (and asks again with CD=1 after a SERVFAIL, to tell a DNSSEC
failure from a broken zone); tlsa_dns_findings judges the state. Matching records against
the served certificates is mailcheck.checks.dane's job.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mailcheck.dns import MALFORMED_REPLY, DnsAnswer, DnsClient, Outcome
from mailcheck.model import Finding, Severity

CHECK = "tls"


class TlsaState(enum.StrEnum):
    """What DNS says about one TLSA owner, as a DANE sender sees it."""

    SECURE = "secure"
    """Records, validated (AD): DANE applies."""
    UNSIGNED = "unsigned"
    """Records without AD: every sender ignores them."""
    NONE = "none"
    """No records, proven by DNSSEC: DANE does not apply (senders fall back to `may`)."""
    NONE_INSECURE = "none-insecure"
    """No records, no DNSSEC proof (the zone is unsigned)."""
    BOGUS = "bogus"
    """SERVFAIL, and with CD=1 the data comes back: validation fails, DANE senders defer."""
    MALFORMED = "malformed"
    """A reply no parser accepts (e.g. a digest of the wrong length): unusable."""
    FAILED = "failed"
    """SERVFAIL without data, a timeout or another failure: unknown; DANE senders defer."""


@dataclass(frozen=True)
class TlsaLookup:
    """The TLSA lookup of one MX host and port."""

    host: str
    """The MX host, without the trailing dot."""
    owner: str
    """`_PORT._tcp.HOST.`, the name asked."""
    state: TlsaState
    """What the lookup established."""
    answer: DnsAnswer
    """The validated lookup."""
    unchecked: DnsAnswer | None = None
    """The CD=1 lookup after a SERVFAIL."""

    @property
    def records(self) -> tuple[object, ...]:
        """The TLSA rdata (empty unless records were found)."""
        if self.state is TlsaState.BOGUS and self.unchecked is not None:
            return self.unchecked.records
        return self.answer.records

    @property
    def published(self) -> bool:
        """TLSA records exist, whatever their DNSSEC state."""
        return self.state in (
            TlsaState.SECURE,
            TlsaState.UNSIGNED,
            TlsaState.BOGUS,
            TlsaState.MALFORMED,
        )

    def to_json(self) -> dict[str, object]:
        """The lookup as `dane` in the JSON report (records added by the matcher)."""
        return {
            "owner": self.owner,
            "state": self.state.value,
            "secure": self.state is TlsaState.SECURE,
            "outcome": self.answer.outcome.value,
            "detail": self.answer.detail,
        }


def tlsa_owner(host: str, port: int) -> str:
    """RFC 7672 §2.2.1 / RFC 6698 §3: the TLSA owner name of a host and port."""
    return f"_{port}._tcp.{host.rstrip('.')}."


async def lookup_tlsa(dns: DnsClient, host: str, port: int) -> TlsaLookup:
    """Look up a host's TLSA records and classify the outcome."""
    owner = tlsa_owner(host, port)
    answer = await dns.query(owner, "TLSA")
    unchecked = None
    match answer.outcome:
        case Outcome.ANSWER:
            state = TlsaState.SECURE if answer.authenticated else TlsaState.UNSIGNED
        case Outcome.NXDOMAIN | Outcome.NODATA:
            state = TlsaState.NONE if answer.authenticated else TlsaState.NONE_INSECURE
        case Outcome.SERVFAIL:
            unchecked = await dns.query(owner, "TLSA", cd=True)
            bogus = unchecked.outcome in (Outcome.ANSWER, Outcome.NXDOMAIN, Outcome.NODATA)
            state = TlsaState.BOGUS if bogus else TlsaState.FAILED
        case _:
            malformed = answer.detail.startswith(MALFORMED_REPLY)
            state = TlsaState.MALFORMED if malformed else TlsaState.FAILED
    return TlsaLookup(host.rstrip("."), owner, state, answer, unchecked)


def tlsa_dns_findings(lookup: TlsaLookup, *, resolver_validates: bool) -> tuple[Finding, ...]:
    """Findings about the DNS side of one host's TLSA records (not about matching them)."""
    evidence = {"host": lookup.host, "owner": lookup.owner, **_answer(lookup.answer)}
    match lookup.state:
        case TlsaState.UNSIGNED if not resolver_validates:
            return (
                Finding(
                    CHECK,
                    "dane.resolver-not-validating",
                    Severity.WARNING,
                    f"{lookup.host} publishes TLSA records, but the resolver mailcheck asked did "
                    "not validate any answer of this run (no AD bit): mailcheck cannot tell "
                    "whether the records are DNSSEC-signed, which DANE senders require.",
                    evidence,
                    remedy="Run again against a validating resolver, e.g. a local unbound: "
                    "--nameserver 127.0.0.1.",
                    rfc="RFC 7672 §2.1",
                    indeterminate=True,
                ),
            )
        case TlsaState.UNSIGNED:
            return (
                Finding(
                    CHECK,
                    "dane.tlsa-unsigned",
                    Severity.WARNING,
                    f"The TLSA records at {lookup.owner} are not DNSSEC-signed (no AD bit from a "
                    "validating resolver): every sender ignores them, so DANE does not protect "
                    f"mail to {lookup.host}.",
                    evidence,
                    remedy="Sign the zone holding the TLSA records (and publish its DS in the "
                    "parent), or remove the records.",
                    rfc="RFC 7672 §2.2",
                ),
            )
        case TlsaState.BOGUS:
            return (
                Finding(
                    CHECK,
                    "dane.tlsa-bogus",
                    Severity.ERROR,
                    f"DNSSEC validation fails for {lookup.owner} (the resolver answers SERVFAIL; "
                    "with checking disabled the data is there): every DANE sender defers mail "
                    f"to {lookup.host} ('TLSA lookup error').",
                    evidence,
                    remedy="Re-sign the zone (expired signatures are the usual cause) and check "
                    "that its DS records in the parent match its keys (dig +cd, dig +dnssec).",
                    rfc="RFC 7672 §2.2",
                ),
            )
        case TlsaState.FAILED:
            return (
                Finding(
                    CHECK,
                    "dane.tlsa-lookup-failed",
                    Severity.ERROR,
                    f"The TLSA lookup of {lookup.owner} failed ({lookup.answer.outcome.value}"
                    f"{': ' + lookup.answer.detail if lookup.answer.detail else ''}); whether "
                    "DANE applies is unknown. If senders see the same, DANE senders defer.",
                    evidence,
                    remedy="Run again; if it persists, check the zone's name servers answer "
                    "TLSA queries (some old servers fail on unknown types).",
                    rfc="RFC 7672 §2.2",
                    indeterminate=True,
                ),
            )
        case TlsaState.MALFORMED:
            return (
                Finding(
                    CHECK,
                    "dane.tlsa-malformed",
                    Severity.ERROR,
                    f"The TLSA reply for {lookup.owner} holds a record no parser accepts "
                    f"({lookup.answer.detail}). Postfix calls such records unusable: DANE "
                    "senders fall back to unauthenticated TLS, dane-only senders defer.",
                    evidence,
                    remedy="Republish the record with a digest of the right length: 32 octets "
                    "(64 hex digits) for matching type 1 (SHA-256), 64 for type 2 (SHA-512).",
                    rfc="RFC 6698 §2.1, RFC 7672 §3.1",
                ),
            )
        case _:
            return ()


def coverage_findings(lookups: Sequence[TlsaLookup]) -> tuple[Finding, ...]:
    """Domain-level DANE findings: deployed nowhere, or only on some MX hosts."""
    if not lookups:
        return ()
    secure = [lu.host for lu in lookups if lu.state is TlsaState.SECURE]
    hosts = [lu.host for lu in lookups]
    if not secure:
        if any(lu.published for lu in lookups):
            return ()  # the per-host findings say why the records do not count
        return (
            Finding(
                CHECK,
                "dane.not-deployed",
                Severity.INFO,
                "No MX host publishes validated TLSA records: DANE senders use opportunistic "
                "TLS, which an active attacker can strip.",
                {"hosts": hosts},
                remedy="Optional: sign the zone and publish '3 1 1' TLSA records for each MX "
                "host (and a second record before each key change).",
                rfc="RFC 7672",
            ),
        )
    missing = [h for h in hosts if h not in secure]
    if not missing:
        return ()
    return (
        Finding(
            CHECK,
            "dane.partial-mx",
            Severity.WARNING,
            f"Only {len(secure)} of {len(hosts)} MX hosts have validated TLSA records "
            f"(without: {', '.join(missing)}): an attacker can steer DANE senders to those, "
            "where DANE does not apply.",
            {"with_tlsa": secure, "without_tlsa": missing},
            remedy="Publish TLSA records for every MX host, or remove the hosts without them.",
            rfc="RFC 7672 §2.2",
        ),
    )


def _answer(answer: DnsAnswer) -> dict[str, object]:
    out: dict[str, object] = {"outcome": answer.outcome.value, "ad": answer.authenticated}
    if answer.detail:
        out["detail"] = answer.detail
    return out
