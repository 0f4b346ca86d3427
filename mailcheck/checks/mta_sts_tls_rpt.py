"""TLS-RPT (RFC 8460) verdicts for the `tls` check: the `_smtp._tls` TXT record, with no I/O."""

from __future__ import annotations

from mailcheck.checks.base import lookup_failed
from mailcheck.checks.mta_sts_observation import MtaStsObservation
from mailcheck.checks.mta_sts_record import problem_list
from mailcheck.model import Finding, Severity

CHECK = "tls"


def judge_tls_rpt(obs: MtaStsObservation, wanted: bool) -> list[Finding]:
    """Findings for the TLS-RPT record; `wanted` (MTA-STS or DANE is published) makes a
    missing record a warning rather than a note."""
    answer = obs.tlsrpt_txt
    name = f"_smtp._tls.{obs.domain}"
    if answer.outcome.is_failure:
        return [lookup_failed(CHECK, answer, f"whether {obs.domain} asks for TLS reports")]
    texts = obs.tlsrpt_texts
    if not texts:
        why = (
            "you publish MTA-STS or DANE but will not hear when senders fail to verify TLS"
            if wanted
            else "senders cannot tell you when TLS to your MX hosts fails"
        )
        return [
            Finding(
                CHECK,
                "tls-rpt.missing",
                Severity.WARNING if wanted else Severity.INFO,
                f"{obs.domain} publishes no TLS-RPT record at {name}: {why}.",
                {"name": name, "outcome": answer.outcome.value},
                remedy=(
                    f'Publish `{name} TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{obs.domain}"` and '
                    "read the daily reports."
                ),
                rfc="RFC 8460 §3",
            )
        ]
    if len(texts) > 1:
        return [
            Finding(
                CHECK,
                "tls-rpt.multiple",
                Severity.WARNING,
                f"{name} has {len(texts)} TLS-RPT records: senders then send no reports.",
                {"name": name, "records": list(texts)},
                remedy="Merge them into one record: `v=TLSRPTv1; rua=uri1,uri2`.",
                rfc="RFC 8460 §3",
            )
        ]
    record = obs.tlsrpt
    assert record is not None  # exactly one record, parsed with the observation
    if record.problems:
        consequence = "senders send no reports" if not record.valid else "senders tolerate this"
        return [
            Finding(
                CHECK,
                "tls-rpt.syntax",
                Severity.WARNING,
                f"The TLS-RPT record at {name} is {'invalid' if not record.valid else 'untidy'} "
                f"({problem_list(record.problems)}): {consequence}.",
                {
                    "name": name,
                    "record": record.text,
                    "problems": [p.to_json() for p in record.problems],
                },
                remedy=(
                    "Write `v=TLSRPTv1; rua=` followed by comma-separated `mailto:` or "
                    f"`https://` URIs, e.g. `v=TLSRPTv1; rua=mailto:tlsrpt@{obs.domain}`."
                ),
                rfc="RFC 8460 §3",
            )
        ]
    return [
        Finding(
            CHECK,
            "tls-rpt.ok",
            Severity.INFO,
            f"{obs.domain} asks for TLS reports at {', '.join(record.rua)}.",
            {"name": name, "rua": list(record.rua)},
            rfc="RFC 8460 §3",
        )
    ]
