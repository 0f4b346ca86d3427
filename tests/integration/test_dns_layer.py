"""The DNS layer against the lab server: outcomes, CNAMEs, TCP fallback, cache, single flight."""

from __future__ import annotations

import asyncio
import time

from mailcheck.dns import DnsAnswer, DnsClient, DnsConfig, Nameserver, Outcome
from tests.conftest import ZONES
from tests.lab.dnsserver import LabHandle, run_in_thread


def _ask(config: DnsConfig, name: str, rdtype: str) -> tuple[Outcome, DnsClient, DnsAnswer]:
    async def go() -> tuple[Outcome, DnsClient, DnsAnswer]:
        client = DnsClient(config)
        answer = await client.query(name, rdtype)
        return answer.outcome, client, answer

    return asyncio.run(go())


def _wire_count(lab: LabHandle, name: str, rdtype: str) -> int:
    return sum(1 for q in lab.query_log if q.qname == name and q.qtype == rdtype)


def test_answer_records_and_metadata(lab_config: DnsConfig) -> None:
    async def go() -> None:
        client = DnsClient(lab_config)
        answer = await client.query("good.test", "MX")
        assert answer.outcome is Outcome.ANSWER
        assert answer.mx() == ((10, "mx1.good.test."), (20, "mx2.good.test.")) or sorted(
            answer.mx()
        ) == [(10, "mx1.good.test."), (20, "mx2.good.test.")]
        assert answer.ttl == 300
        assert answer.server == str(lab_config.nameservers[0])
        assert answer.authenticated is False  # the lab does not validate
        aaaa = await client.query("mx1.good.test.", "aaaa")
        assert aaaa.addresses() == ("2001:db8::10",)

    asyncio.run(go())


def test_negative_outcomes_are_distinct(lab_config: DnsConfig) -> None:
    assert _ask(lab_config, "nope.good.test", "A")[0] is Outcome.NXDOMAIN
    assert _ask(lab_config, "good.test", "AAAA")[0] is Outcome.NODATA
    assert _ask(lab_config, "x.servfail.test", "A")[0] is Outcome.SERVFAIL
    assert _ask(lab_config, "x.refused.test", "A")[0] is Outcome.REFUSED
    assert _ask(lab_config, "not-in-the-lab.example", "A")[0] is Outcome.REFUSED


def test_timeout_is_its_own_outcome_and_bounded(lab: LabHandle) -> None:
    config = DnsConfig((Nameserver(lab.host, lab.port),), timeout=0.2, retries=1)
    started = time.monotonic()
    outcome, client, answer = _ask(config, "mx.timeout.test", "A")
    elapsed = time.monotonic() - started
    assert outcome is Outcome.TIMEOUT
    assert outcome.is_failure and not outcome.is_negative
    assert elapsed < config.lifetime + 0.5
    trace = client.summary(with_trace=True).trace
    assert trace[0]["attempts"] == 2  # the retry went out


def test_cname_chain_is_followed_and_reported(lab_config: DnsConfig) -> None:
    outcome, _, answer = _ask(lab_config, "mxalias.broken.test", "A")
    assert outcome is Outcome.ANSWER
    assert answer.cname_chain == ("mx4.broken.test.",)
    assert answer.addresses() == ("192.0.2.33",)


def test_truncated_answer_is_retried_over_tcp(lab_config: DnsConfig, lab: LabHandle) -> None:
    outcome, client, answer = _ask(lab_config, "big.test", "TXT")
    assert outcome is Outcome.ANSWER
    assert len(answer.txt_strings()) == 6
    trace = client.summary(with_trace=True).trace
    assert trace[0]["tcp"] is True
    protos = {q.proto for q in lab.query_log if q.qname == "big.test." and q.qtype == "TXT"}
    assert protos == {"udp", "tcp"}


def test_queries_carry_edns_do_bit(lab_config: DnsConfig, lab: LabHandle) -> None:
    _ask(lab_config, "mx2.good.test", "A")
    records = [q for q in lab.query_log if q.qname == "mx2.good.test." and q.qtype == "A"]
    assert records and all(q.do_bit for q in records)


def test_cache_and_single_flight_send_each_query_once() -> None:
    with run_in_thread(ZONES, delay_ms=50) as lab:
        config = DnsConfig((Nameserver(lab.host, lab.port),), timeout=1.0, retries=0)

        async def go() -> DnsClient:
            client = DnsClient(config)
            # Five concurrent askers of the same name, then two late ones (one negative).
            await asyncio.gather(*(client.query("mx1.good.test", "A") for _ in range(5)))
            await client.query("MX1.good.test.", "a")
            await client.query("nope.good.test", "A")
            await client.query("nope.good.test", "A")
            return client

        client = asyncio.run(go())
        assert _wire_count(lab, "mx1.good.test.", "A") == 1
        assert _wire_count(lab, "nope.good.test.", "A") == 1
        summary = client.summary()
        assert (summary.queries, summary.cache_hits) == (2, 6)


def test_concurrency_bound_limits_queries_in_flight() -> None:
    with run_in_thread(ZONES, delay_ms=60) as lab:
        names = [f"n{i}.good.test" for i in range(6)]

        def run(concurrency: int) -> float:
            config = DnsConfig(
                (Nameserver(lab.host, lab.port),), timeout=2.0, retries=0, concurrency=concurrency
            )

            async def go() -> None:
                client = DnsClient(config)
                await asyncio.gather(*(client.query(n, "A") for n in names))

            started = time.monotonic()
            asyncio.run(go())
            return time.monotonic() - started

        # Six answers of 60 ms, two at a time, cannot take less than three rounds.
        assert run(2) >= 0.18
        # All at once take about one round (generous bound for a loaded machine).
        assert run(6) < 0.18 * 3


def test_failover_to_the_next_resolver(lab: LabHandle) -> None:
    dead = Nameserver("127.0.0.1", 9)  # discard port: nothing answers
    config = DnsConfig((dead, Nameserver(lab.host, lab.port)), timeout=0.3, retries=0)
    outcome, client, answer = _ask(config, "mx2.good.test", "A")
    assert outcome is Outcome.ANSWER
    assert answer.server == f"127.0.0.1:{lab.port}"
    assert client.summary(with_trace=True).trace[0]["attempts"] == 2


def test_no_resolver_answering_is_detected() -> None:
    config = DnsConfig((Nameserver("127.0.0.1", 9),), timeout=0.2, retries=0)
    outcome, client, _ = _ask(config, "good.test", "MX")
    assert outcome in (Outcome.TIMEOUT, Outcome.ERROR)
    assert client.summary().unanswered


def test_invalid_names_are_errors_not_exceptions(lab_config: DnsConfig) -> None:
    outcome, client, answer = _ask(lab_config, "a" * 70 + ".test", "A")
    assert outcome is Outcome.ERROR
    assert "not a DNS name" in answer.detail
    assert client.summary().queries == 0


def test_a_cancelled_asker_does_not_cancel_the_shared_query() -> None:
    with run_in_thread(ZONES, delay_ms=100) as lab:
        config = DnsConfig((Nameserver(lab.host, lab.port),), timeout=1.0, retries=0)

        async def go() -> DnsAnswer:
            client = DnsClient(config)
            impatient = asyncio.ensure_future(client.query("mx2.good.test", "A"))
            patient = asyncio.ensure_future(client.query("mx2.good.test", "A"))
            await asyncio.sleep(0.02)
            impatient.cancel()
            return await patient

        assert asyncio.run(go()).addresses() == ("192.0.2.11",)
        assert _wire_count(lab, "mx2.good.test.", "A") == 1


def test_unknown_record_type_is_an_error_outcome(lab_config: DnsConfig) -> None:
    outcome, _, answer = _ask(lab_config, "good.test", "NOSUCHTYPE")
    assert outcome is Outcome.ERROR
    assert "NOSUCHTYPE" in answer.detail or "Unknown" in answer.detail
