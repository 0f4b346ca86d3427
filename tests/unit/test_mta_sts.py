"""MTA-STS and TLS-RPT on plain data: the TXT and policy parsers, the MX matcher, the verdicts."""

from __future__ import annotations

import gzip
import json
import time
import zlib

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from mailcheck.checks.mta_sts import (
    FetchAttempt,
    FetchStep,
    MtaStsObservation,
    PolicyFetch,
    PolicyResponse,
    StsMode,
    evaluate_mta_sts,
)
from mailcheck.checks.mta_sts_fetch import decode_content
from mailcheck.checks.mta_sts_observation import MAX_POLICY_BYTES, content_codings
from mailcheck.checks.mta_sts_record import (
    covering_patterns,
    is_sts_candidate,
    is_tlsrpt_candidate,
    mx_pattern_matches,
    parse_sts_policy,
    parse_sts_record,
    parse_tlsrpt_record,
    pattern_defect,
    rua_defect,
)
from mailcheck.dns import DnsAnswer, Outcome
from mailcheck.model import Finding, Severity, Status, status_of

GOOD_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.mx.example.com\r\n"
GOOD_POLICY += "max_age: 604800\r\n"


# ------------------------------------------------------------------ the _mta-sts TXT record


@pytest.mark.parametrize(
    ("text", "candidate"),
    [
        ("v=STSv1; id=1", True),
        ("v=STSv1 id=1", True),  # counts, then fails to parse: the operator meant MTA-STS
        ("v=STSv1", True),
        ("v=STSv10; id=1", False),  # another version
        ("v=stsv1; id=1", False),  # %s"v=STSv1": case-sensitive
        (" v=STSv1; id=1", False),
        ("google-site-verification=abc", False),
    ],
)
def test_sts_candidates(text: str, candidate: bool) -> None:
    assert is_sts_candidate(text) is candidate


@pytest.mark.parametrize(
    "text",
    [
        "v=STSv1; id=20250101T000000",
        "v=STSv1; id=20250101T000000;",
        "v=STSv1;id=1",
        "v=STSv1 ;\tid=abc ; ",
        "v=STSv1; id=" + "a" * 32,
        "v=STSv1; id=1; ext_x.y-z=some:value",
    ],
)
def test_valid_sts_records(text: str) -> None:
    record = parse_sts_record(text)
    assert record.valid, record.problems
    assert record.problems == ()
    assert record.id


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("v=STSv1", "id"),  # id is required
        ("v=STSv1; id=", "id"),
        ("v=STSv1; id=2025-01-01", "id"),
        ("v=STSv1; id=" + "a" * 33, "id"),  # 1*32
        ("v=STSv1 id=1", "v"),  # no delimiter after the version
        ("v=STSv1; id=1;; x=y", "record"),
        ("v=STSv1; id=1; novalue", "record"),
        ("v=STSv1; id=1; x=a b", "x"),
    ],
)
def test_invalid_sts_records(text: str, where: str) -> None:
    record = parse_sts_record(text)
    assert not record.valid
    assert where in [p.where for p in record.problems if p.fatal]


def test_duplicate_id_uses_the_first_and_is_not_fatal() -> None:
    record = parse_sts_record("v=STSv1; id=first; id=second")
    assert record.valid
    assert record.id == "first"
    assert [p.where for p in record.problems] == ["id"]


# ------------------------------------------------------------------ the policy file


def test_good_policy() -> None:
    policy = parse_sts_policy(GOOD_POLICY)
    assert policy.valid
    assert policy.problems == ()
    assert (policy.version, policy.mode, policy.max_age) == ("STSv1", StsMode.ENFORCE, 604800)
    assert policy.mx == ("mx1.example.com", "*.mx.example.com")
    assert policy.line_ending == "CRLF"


def test_lf_line_ends_and_no_final_newline_are_accepted() -> None:
    # RFC 8461 §3.2's grammar allows LF (erratum 6253), and the last terminator is optional.
    text = GOOD_POLICY.replace("\r\n", "\n").rstrip("\n")
    policy = parse_sts_policy(text)
    assert policy.valid and policy.problems == ()
    assert policy.line_ending == "LF"
    assert parse_sts_policy(GOOD_POLICY + "x: y\n").line_ending == "mixed"


def test_unknown_keys_are_ignored_but_kept() -> None:
    policy = parse_sts_policy(GOOD_POLICY + "comment: hello world\r\n")
    assert policy.valid and policy.problems == ()
    assert policy.extensions == (("comment", "hello world"),)
    assert policy.to_json()["extensions"] == {"comment": "hello world"}


def test_mode_none_needs_no_mx() -> None:
    policy = parse_sts_policy("version: STSv1\nmode: none\nmax_age: 86400\n")
    assert policy.valid
    assert policy.mode is StsMode.NONE


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1w\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 86400\n", "mx"),
        ("version: STSv1\nmode: testing\nmax_age: 86400\n", "mx"),
        ("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 86400\n", "mx"),
    ],
)
def test_invalid_policies(text: str, where: str) -> None:
    policy = parse_sts_policy(text)
    assert not policy.valid
    assert where in [p.where for p in policy.problems if p.fatal]


def test_max_age_limits() -> None:
    base = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: {}\n"
    assert parse_sts_policy(base.format(0)).max_age == 0
    assert parse_sts_policy(base.format(31557600)).max_age == 31557600


def test_tolerated_defects_are_named_by_line() -> None:
    text = (
        "version: STSv1\r\n"
        "mode: enforce\r\n"
        "mode: testing\r\n"  # duplicate: the first counts (RFC 8461 §3.2)
        "mx mail.example.com\r\n"  # no colon
        " mx: indented.example.com\r\n"  # leading space: not a field
        "Max_Age: 5\r\n"  # field names are case-sensitive
        "mx: mail.example.com.\r\n"  # trailing dot: not a Domain
        "mx: mail.example.com\r\n"
        "max_age: 86400\r\n"
    )
    policy = parse_sts_policy(text)
    assert policy.valid
    assert policy.mode is StsMode.ENFORCE
    assert policy.max_age == 86400
    assert policy.mx == ("mail.example.com",)
    assert [p.where for p in policy.problems] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert not any(p.fatal for p in policy.problems)
    assert "case-sensitive" in policy.problems[3].reason


def test_version_not_first_is_tolerated_but_reported() -> None:
    policy = parse_sts_policy("mode: enforce\nversion: STSv1\nmx: a.example\nmax_age: 86400\n")
    assert policy.valid
    assert [(p.where, p.fatal) for p in policy.problems] == [("version", False)]


def test_parser_never_raises_on_garbage() -> None:
    for text in ("", "\r\n\r\n", "\x00\xff", ":::", "version:\n" * 3, "é: ü\n", "\r"):
        policy = parse_sts_policy(text)
        assert not policy.valid


def test_values_lose_only_surrounding_blanks() -> None:
    policy = parse_sts_policy(GOOD_POLICY + "note:\t a  b \t\r\nempty:\r\nurl: https://x:1\r\n")
    assert policy.extensions == (("note", "a  b"), ("empty", ""), ("url", "https://x:1"))
    bad = parse_sts_policy(GOOD_POLICY + " mx: a.example\r\nmx : b.example\r\n")
    assert [p.where for p in bad.problems] == ["line 6", "line 7"]  # no blanks in the name


@pytest.mark.parametrize(
    "line",
    [
        "mx:x" + " " * 65_000 + "y",  # blanks, then not the end: the old regex was quadratic
        "mx:" + " \t" * 32_000 + "x",
        "x" * 65_000 + ":" + " " * 100,
        ":" * 65_000,
        "mx: " + "a." * 32_000 + "b",
    ],
)
def test_a_64_kib_pathological_policy_parses_in_linear_time(line: str) -> None:
    text = f"version: STSv1\nmode: enforce\nmax_age: 86400\n{line}\n"
    started = time.perf_counter()
    policy = parse_sts_policy(text)
    assert time.perf_counter() - started < 0.1
    assert policy.mode is StsMode.ENFORCE and policy.max_age == 86400


def test_many_mx_lines_are_deduplicated_in_linear_time() -> None:
    lines = [f"mx: m{i % 6000}.example.com" for i in range(12_000)]
    text = "version: STSv1\nmode: enforce\nmax_age: 86400\n" + "\n".join(lines)
    started = time.perf_counter()
    policy = parse_sts_policy(text)
    assert time.perf_counter() - started < 0.2
    assert len(policy.mx) == 6000 and policy.mx[0] == "m0.example.com"


# ------------------------------------------------------------------ MX patterns (RFC 8461 §4.1)


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mx1.example.com", "mx1.example.com", True),
        ("mx1.example.com", "MX1.Example.COM", True),
        ("MX1.example.com", "mx1.example.com.", True),  # DNS presentation form of the host
        ("*.example.com", "mail.example.com", True),
        ("*.example.com", "MAIL.example.com.", True),
        ("*.example.com", "example.com", False),  # the wildcard needs a label
        # checkdmarc's leniencies (research finding 6), all must NOT match:
        ("*.mailcheck.test", "a.b.mailcheck.test", False),  # one label only
        ("mx-good.mailcheck.test", "mx-good.mailcheck.test.evil.example", False),  # anchored
        ("x1.example.com", "mx1.example.com", False),  # anchored at the start too
        ("mx1.example.com", "mx1.example.com.evil", False),
        ("mx1.example.com", "mx1example.com", False),  # dots are not regex wildcards
        ("*.example.com", "mail.example.com.evil", False),
        ("*.example.com", "mail.xexample.com", False),
        # malformed patterns match nothing
        ("mail.example.com.", "mail.example.com", False),
        ("*.*.example.com", "a.b.example.com", False),
        ("mx*.example.com", "mx1.example.com", False),
        ("*example.com", "mail.example.com", False),
        ("", "", False),
        ("*.example.com", ".example.com", False),
        ("mx1.example.com", "", False),
    ],
)
def test_mx_pattern_matching(pattern: str, host: str, matches: bool) -> None:
    assert mx_pattern_matches(pattern, host) is matches


def test_policy_coverage_helpers() -> None:
    policy = parse_sts_policy(GOOD_POLICY)
    assert policy.covers("a.mx.example.com")
    assert not policy.covers("a.b.mx.example.com")
    assert policy.patterns_for("mx1.example.com.") == ("mx1.example.com",)
    assert covering_patterns(policy.mx, "z.mx.example.com") == ("*.mx.example.com",)


@pytest.mark.parametrize(
    "pattern", ["-bad.example", "a..b", "a_b.example", "x" * 64 + ".example", "*.", "*"]
)
def test_malformed_patterns(pattern: str) -> None:
    assert pattern_defect(pattern) is not None


# ------------------------------------------------------------------ TLS-RPT (RFC 8460 §3)


def test_tlsrpt_candidates() -> None:
    assert is_tlsrpt_candidate("v=TLSRPTv1; rua=mailto:a@b.example")
    assert not is_tlsrpt_candidate("v=TLSRPTv10; rua=mailto:a@b.example")
    assert not is_tlsrpt_candidate("v=spf1 -all")


@pytest.mark.parametrize(
    ("text", "rua"),
    [
        ("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", ("mailto:tlsrpt@example.com",)),
        (
            "v=TLSRPTv1;rua=mailto:a@example.com , https://r.example.com/v1;",
            ("mailto:a@example.com", "https://r.example.com/v1"),
        ),
        ("v=TLSRPTv1; rua=MAILTO:a@example.com; ext=1", ("MAILTO:a@example.com",)),
    ],
)
def test_valid_tlsrpt(text: str, rua: tuple[str, ...]) -> None:
    record = parse_tlsrpt_record(text)
    assert record.valid and record.problems == ()
    assert record.rua == rua


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("v=TLSRPTv1; rua=tlsrpt@example.com", "mailto:tlsrpt@example.com"),  # bare address
        ("v=TLSRPTv1; rua=http://r.example.com/", "only mailto: and https:"),
        ("v=TLSRPTv1; rua=mailto:nobody", "not a mailto: URI"),
        ("v=TLSRPTv1; rua=https:r.example.com", "https:// URL"),
        ("v=TLSRPTv1; rua=mailto:a@example.com,", "empty reporting URI"),
        ("v=TLSRPTv1", "rua field is missing"),
        ("v=TLSRPTv1 rua=mailto:a@example.com", "v=TLSRPTv1;"),
    ],
)
def test_invalid_tlsrpt(text: str, hint: str) -> None:
    record = parse_tlsrpt_record(text)
    assert not record.valid
    assert any(hint in p.reason for p in record.problems), record.problems


def test_rua_defect_accepts_good_uris() -> None:
    assert rua_defect("mailto:tls-reports@example.com?subject=x") is None
    assert rua_defect("https://reports.example.com/tlsrpt") is None


# ------------------------------------------------------------------ verdicts on observations

DOMAIN = "example.com"
URL = f"https://mta-sts.{DOMAIN}/.well-known/mta-sts.txt"
MX = ["mx1.example.com.", "a.mx.example.com."]


def txt(name: str, *records: str | tuple[str, ...]) -> DnsAnswer:
    if not records:
        return DnsAnswer(name, "TXT", Outcome.NXDOMAIN)
    rdatas = []
    for record in records:
        strings = (record,) if isinstance(record, str) else record
        text = " ".join(json.dumps(s) for s in strings)
        rdatas.append(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text))
    return DnsAnswer(name, "TXT", Outcome.ANSWER, tuple(rdatas))


def address(name: str, rdtype: str, *ips: str) -> DnsAnswer:
    if not ips:
        return DnsAnswer(name, rdtype, Outcome.NODATA)
    kind = dns.rdatatype.from_text(rdtype)
    return DnsAnswer(
        name,
        rdtype,
        Outcome.ANSWER,
        tuple(dns.rdata.from_text(dns.rdataclass.IN, kind, ip) for ip in ips),
    )


def response(
    body: str = GOOD_POLICY, status: int = 200, content_type: str | None = "text/plain"
) -> PolicyResponse:
    data = body.encode()
    return PolicyResponse(
        "192.0.2.1", status, "OK", content_type, None, body if status == 200 else None,
        len(data), False,
    )  # fmt: skip


def fetched(
    reply: PolicyResponse | None = None,
    attempts: tuple[FetchAttempt, ...] = (),
    a: DnsAnswer | None = None,
) -> PolicyFetch:
    host = f"mta-sts.{DOMAIN}"
    return PolicyFetch(
        host,
        URL,
        a or address(host, "A", "192.0.2.1"),
        address(host, "AAAA"),
        attempts,
        reply,
    )


def observe(
    sts: tuple[str | tuple[str, ...], ...] = ("v=STSv1; id=1",),
    fetch: PolicyFetch | None = None,
    tlsrpt: tuple[str, ...] = ("v=TLSRPTv1; rua=mailto:tlsrpt@example.com",),
    sts_answer: DnsAnswer | None = None,
    tlsrpt_answer: DnsAnswer | None = None,
) -> MtaStsObservation:
    if fetch is None and sts:
        fetch = fetched(response())
    return MtaStsObservation(
        DOMAIN,
        sts_answer or txt(f"_mta-sts.{DOMAIN}.", *sts),
        tlsrpt_answer or txt(f"_smtp._tls.{DOMAIN}.", *tlsrpt),
        fetch,
    )


def judge(obs: MtaStsObservation, mx: list[str] = MX, **kw: bool) -> dict[str, Finding]:
    findings = evaluate_mta_sts(obs, mx, **kw)
    for finding in findings:
        assert finding.check == "tls"
        json.dumps(finding.to_json())  # evidence is JSON-ready
        assert finding.message
        if finding.severity is not Severity.INFO:
            assert finding.remedy
    json.dumps(obs.to_json(mx))
    return {f.code: f for f in findings}


def test_everything_good() -> None:
    found = judge(observe(sts=(("v=STSv1; ", "id=20250101T000000"),)))
    assert set(found) == {"mta-sts.ok", "tls-rpt.ok"}
    assert found["mta-sts.ok"].evidence["id"] == "20250101T000000"
    assert status_of(tuple(found.values())) is Status.PASS


def test_no_record_is_a_note_and_nothing_is_fetched() -> None:
    obs = observe(sts=(), tlsrpt=(), sts_answer=txt("_mta-sts.example.com.", "other=thing"))
    found = judge(obs)
    assert set(found) == {"mta-sts.none", "tls-rpt.missing"}
    assert found["mta-sts.none"].evidence["other_txt"] == ["other=thing"]
    assert found["tls-rpt.missing"].severity is Severity.INFO
    assert obs.applied_policy is None


def test_tlsrpt_missing_is_a_warning_with_mta_sts_or_dane() -> None:
    assert judge(observe(tlsrpt=()))["tls-rpt.missing"].severity is Severity.WARNING
    bare = observe(sts=(), tlsrpt=())
    assert judge(bare, dane_published=True)["tls-rpt.missing"].severity is Severity.WARNING


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL])
def test_txt_lookup_failures_are_indeterminate(outcome: Outcome) -> None:
    failed = DnsAnswer("_mta-sts.example.com.", "TXT", outcome)
    failed_rpt = DnsAnswer("_smtp._tls.example.com.", "TXT", outcome)
    findings = evaluate_mta_sts(observe(sts=(), sts_answer=failed, tlsrpt_answer=failed_rpt), MX)
    assert [f.code for f in findings] == [f"dns.{outcome.value}"] * 2
    assert all(f.indeterminate for f in findings)
    assert status_of(findings) is Status.ERROR


def test_two_records_mean_no_policy() -> None:
    obs = observe(sts=("v=STSv1; id=1", "v=STSv1; id=2"))
    found = judge(obs)
    assert found["mta-sts.txt-multiple"].severity is Severity.ERROR
    assert found["mta-sts.txt-multiple"].rfc == "RFC 8461 §3.1"
    assert "mta-sts.ok" not in found
    assert obs.applied_policy is None
    assert obs.policy is not None  # fetched anyway, to report on it


def test_txt_syntax_error_and_warning() -> None:
    bad = judge(observe(sts=("v=STSv1; id=not-ok",)))
    assert bad["mta-sts.txt-syntax"].severity is Severity.ERROR
    assert "mta-sts.ok" not in bad
    untidy = judge(observe(sts=("v=STSv1; id=a; id=b",)))
    assert untidy["mta-sts.txt-syntax"].severity is Severity.WARNING


def test_uncovered_mx_when_the_txt_is_broken_is_only_a_warning() -> None:
    obs = observe(sts=("v=STSv1; id=x!",))
    found = judge(obs, mx=["other.example.net"])
    assert found["mta-sts.mx-not-covered"].severity is Severity.WARNING
    assert "once the TXT record is fixed" in found["mta-sts.mx-not-covered"].message


def test_policy_host_dns_failure_is_indeterminate_and_absence_is_not() -> None:
    host = f"mta-sts.{DOMAIN}"
    timeout = DnsAnswer(host, "A", Outcome.TIMEOUT)
    found = judge(observe(fetch=fetched(a=timeout)))
    failed = found["mta-sts.fetch-failed"]
    assert failed.indeterminate and failed.evidence["step"] == "dns"
    gone = DnsAnswer(host, "A", Outcome.NXDOMAIN)
    missing = judge(observe(fetch=fetched(a=gone)))["mta-sts.fetch-failed"]
    assert not missing.indeterminate and missing.severity is Severity.ERROR
    assert "has no address" in missing.message


def test_connect_tls_and_http_failures_say_which_step() -> None:
    for step, timed_out, words in [
        (FetchStep.CONNECT, False, "connecting to 192.0.2.1 failed (Connection refused)"),
        (FetchStep.TLS, False, "the TLS handshake with 192.0.2.1 failed"),
        (FetchStep.HTTP, True, "the HTTP exchange with 192.0.2.1 timed out"),
    ]:
        attempt = FetchAttempt("192.0.2.1", step, "Connection refused", timed_out, False)
        found = judge(observe(fetch=fetched(attempts=(attempt,))))
        failed = found["mta-sts.fetch-failed"]
        assert words in failed.message
        assert failed.evidence["step"] == step.value
        assert not failed.indeterminate


def test_certificate_failure_has_its_own_code() -> None:
    attempt = FetchAttempt("192.0.2.1", FetchStep.TLS, "certificate has expired", False, True)
    found = judge(observe(fetch=fetched(attempts=(attempt,))))
    assert "certificate has expired" in found["mta-sts.policy-cert-invalid"].message
    assert "mta-sts.fetch-failed" not in found


def test_redirect_and_status() -> None:
    moved = PolicyResponse(
        "192.0.2.1", 301, "Moved", "text/html", "https://www.example.com/", None, 0, False
    )
    found = judge(observe(fetch=fetched(moved)))
    assert found["mta-sts.redirect"].evidence["location"] == "https://www.example.com/"
    assert found["mta-sts.redirect"].rfc == "RFC 8461 §3.3"
    found = judge(observe(fetch=fetched(response(status=500))))
    assert found["mta-sts.http-status"].evidence["status"] == 500


def test_oversized_policy() -> None:
    big = PolicyResponse("192.0.2.1", 200, "OK", "text/plain", None, None, 65537, True)
    found = judge(observe(fetch=fetched(big)))
    assert "64 KiB" in found["mta-sts.fetch-failed"].message


# ------------------------------------------------------------------ content codings


@pytest.mark.parametrize(
    ("header", "codings"),
    [
        (None, ()),
        ("", ()),
        ("identity", ()),
        ("gzip", ("gzip",)),
        (" GZIP ,identity,\tdeflate", ("gzip", "deflate")),
        ("gzip, gzip", ("gzip", "gzip")),
    ],
)
def test_content_codings(header: str | None, codings: tuple[str, ...]) -> None:
    assert content_codings(header) == codings


def test_decode_content_undoes_gzip_and_deflate() -> None:
    text = GOOD_POLICY.encode()
    assert decode_content(text, ()) == text
    assert decode_content(gzip.compress(text), ("gzip",)) == text
    assert decode_content(gzip.compress(text), ("x-gzip",)) == text
    assert decode_content(zlib.compress(text), ("deflate",)) == text  # RFC 9110: zlib format
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_content(raw_deflate.compress(text) + raw_deflate.flush(), ("deflate",)) == text
    # Listed in the order applied: deflate first, then gzip, so gzip is undone first.
    assert decode_content(gzip.compress(zlib.compress(text)), ("deflate", "gzip")) == text
    halves = gzip.compress(text[:40]) + gzip.compress(text[40:])  # two gzip members
    assert decode_content(halves, ("gzip",)) == text


@pytest.mark.parametrize(
    ("raw", "codings", "reason"),
    [
        (b"plain text", ("gzip",), "gzip: corrupt data"),
        (gzip.compress(b"policy")[:-4], ("gzip",), "gzip: truncated data"),
        (b"", ("gzip",), "gzip: truncated data"),
        (gzip.compress(b"policy") + b"junk", ("gzip",), "gzip: corrupt data"),
        (zlib.compress(b"policy") + b"junk", ("deflate",), "after the end"),
        (b"\x1b\x00", ("br",), "content coding br is not supported"),
        (gzip.compress(b"x"), ("gzip", "zstd"), "content coding zstd"),
        (b"x", ("gzip",) * 4, "4 content codings stacked"),
    ],
)
def test_decode_content_says_why_it_cannot(
    raw: bytes, codings: tuple[str, ...], reason: str
) -> None:
    decoded = decode_content(raw, codings)
    assert isinstance(decoded, str) and reason in decoded


def test_decode_content_is_bounded_whatever_the_ratio() -> None:
    # 64 MiB of zeros, gzip twice: 269 bytes. No step may yield more than the cap + 1.
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    layer = b"".join(inner.compress(bytes(1 << 20)) for _ in range(64)) + inner.flush()
    bomb = gzip.compress(layer, 9)
    started = time.perf_counter()
    decoded = decode_content(bomb, ("gzip", "gzip"))
    assert time.perf_counter() - started < 0.1
    assert isinstance(decoded, bytes) and len(decoded) == MAX_POLICY_BYTES + 1
    small = decode_content(gzip.compress(bytes(1000)), ("gzip",), limit=100)
    assert isinstance(small, bytes) and len(small) == 101


def compressed(
    body: str = GOOD_POLICY,
    encoding: str = "gzip",
    *,
    decode_error: str | None = None,
    oversize: bool = False,
) -> PolicyResponse:
    sent = gzip.compress(body.encode())
    plain = None if decode_error or oversize else body
    return PolicyResponse(
        "192.0.2.1", 200, "OK", "text/plain", None, plain, len(sent), oversize, encoding,
        decode_error,
    )  # fmt: skip


def test_a_compressed_policy_is_judged_with_a_warning() -> None:
    obs = observe(fetch=fetched(compressed()))
    found = judge(obs)
    assert set(found) == {"mta-sts.content-encoding", "tls-rpt.ok"}
    warning = found["mta-sts.content-encoding"]
    assert warning.severity is Severity.WARNING
    assert warning.evidence["content_encoding"] == "gzip"
    assert obs.applied_policy is not None  # senders that decompress apply it
    assert obs.to_json()["mta_sts"]["fetch"]["content_encoding"] == "gzip"
    # Content-Encoding: identity is no coding at all.
    assert set(judge(observe(fetch=fetched(compressed(encoding="identity"))))) == {
        "mta-sts.ok",
        "tls-rpt.ok",
    }


def test_an_undecodable_policy_is_a_failed_fetch() -> None:
    reply = compressed(encoding="br", decode_error="content coding br is not supported")
    obs = observe(fetch=fetched(reply))
    found = judge(obs)
    failed = found["mta-sts.fetch-failed"]
    assert failed.severity is Severity.ERROR
    assert failed.evidence["step"] == "http" and failed.evidence["content_encoding"] == "br"
    assert "br is not supported" in failed.evidence["detail"]
    assert "mta-sts.content-encoding" not in found and obs.policy is None


def test_a_compressed_policy_too_large_once_decompressed() -> None:
    found = judge(observe(fetch=fetched(compressed(encoding="gzip, gzip", oversize=True))))
    failed = found["mta-sts.fetch-failed"]
    assert "decompressed" in failed.message and "64 KiB" in failed.message
    assert failed.evidence["content_encoding"] == "gzip, gzip"


def test_the_policy_is_parsed_once() -> None:
    obs = observe()
    assert obs.policy is obs.policy and obs.record is obs.record and obs.tlsrpt is obs.tlsrpt
    assert obs.policy is not None and obs.policy.valid


@pytest.mark.parametrize(
    ("content_type", "flagged"),
    [
        ("text/plain", False),
        ("Text/Plain; charset=utf-8", False),
        ("text/html", True),
        (None, True),
    ],
)
def test_content_type(content_type: str | None, flagged: bool) -> None:
    obs = observe(fetch=fetched(response(content_type=content_type)))
    found = judge(obs)
    assert ("mta-sts.content-type" in found) is flagged
    if flagged:
        assert found["mta-sts.content-type"].severity is Severity.WARNING
        assert obs.applied_policy is not None  # lenient senders still apply it


def test_policy_syntax_error_and_warning() -> None:
    found = judge(observe(fetch=fetched(response("mode: enforcing\nmax_age: 1\n"))))
    bad = found["mta-sts.policy-syntax"]
    assert bad.severity is Severity.ERROR
    assert "version" in bad.message and "enforcing" in bad.message
    assert "mta-sts.ok" not in found
    found = judge(observe(fetch=fetched(response(GOOD_POLICY + "max_age: 1\r\n"))))
    assert found["mta-sts.policy-syntax"].severity is Severity.WARNING
    assert "line 6" in found["mta-sts.policy-syntax"].message


def test_mode_none_testing_and_short_max_age() -> None:
    none = judge(observe(fetch=fetched(response("version: STSv1\nmode: none\nmax_age: 60\n"))))
    assert set(none) == {"mta-sts.mode-none", "tls-rpt.ok"}
    testing = GOOD_POLICY.replace("enforce", "testing").replace("604800", "3600")
    found = judge(observe(fetch=fetched(response(testing))))
    assert found["mta-sts.testing"].severity is Severity.INFO
    assert found["mta-sts.short-max-age"].evidence["max_age"] == 3600
    assert "mta-sts.ok" not in found


def test_uncovered_mx_by_mode() -> None:
    mx = [*MX, "a.b.mx.example.com", "mx1.example.com.evil.example"]
    found = evaluate_mta_sts(observe(), mx)
    uncovered = [f for f in found if f.code == "mta-sts.mx-not-covered"]
    assert [f.evidence["host"] for f in uncovered] == [
        "a.b.mx.example.com",
        "mx1.example.com.evil.example",
    ]
    assert all(f.severity is Severity.ERROR for f in uncovered)
    assert "will NOT deliver" in uncovered[0].message
    assert status_of(found) is Status.FAIL
    testing = GOOD_POLICY.replace("enforce", "testing")
    found = evaluate_mta_sts(observe(fetch=fetched(response(testing))), mx)
    assert {f.severity for f in found if f.code == "mta-sts.mx-not-covered"} == {Severity.WARNING}


def test_unused_pattern_is_a_note() -> None:
    found = judge(observe(), mx=["mx1.example.com"])
    assert found["mta-sts.pattern-unused"].evidence["unused"] == ["*.mx.example.com"]
    assert found["mta-sts.pattern-unused"].severity is Severity.INFO
    assert "mta-sts.ok" in found


def test_no_mx_hosts_skips_coverage() -> None:
    found = judge(observe(), mx=[])
    assert "mta-sts.mx-not-covered" not in found and "mta-sts.pattern-unused" not in found


def test_applied_policy_for_the_lead() -> None:
    obs = observe()
    policy = obs.applied_policy
    assert policy is not None and policy.mode is StsMode.ENFORCE
    assert policy.covers("mx1.example.com.")
    data = obs.to_json(MX)
    assert data["mta_sts"]["applied"] is True
    assert data["mta_sts"]["mode"] == "enforce"
    assert data["mta_sts"]["coverage"] == [
        {"host": "mx1.example.com.", "patterns": ["mx1.example.com"]},
        {"host": "a.mx.example.com.", "patterns": ["*.mx.example.com"]},
    ]
    assert data["tls_rpt"]["rua"] == ["mailto:tlsrpt@example.com"]


def test_tlsrpt_verdicts() -> None:
    two = judge(observe(tlsrpt=("v=TLSRPTv1; rua=mailto:a@x.example", "v=TLSRPTv1; rua=x")))
    assert two["tls-rpt.multiple"].severity is Severity.WARNING
    bare = judge(observe(tlsrpt=("v=TLSRPTv1; rua=tlsrpt@example.com",)))
    assert "mailto:tlsrpt@example.com" in bare["tls-rpt.syntax"].message
    assert bare["tls-rpt.syntax"].rfc == "RFC 8460 §3"
