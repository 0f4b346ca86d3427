"""Benchmark `mailcheck domain` against checkdmarc on the fixture lab, every answer delayed.

Run from the repository root: `make bench`, or `.venv/bin/python bench/domain.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import math
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import takewhile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
LAB_LISTS = ROOT / "fixtures" / "dnsbl" / "lab-lists.toml"  # the lab does not serve real DNSBLs
sys.path.insert(0, str(ROOT))  # for tests.lab, which is not an installed package

import dns.nameserver  # noqa: E402

from bench import offline  # noqa: E402
from mailcheck.checks.tls_settings import TlsSettings  # noqa: E402
from mailcheck.dns import DnsConfig, Nameserver  # noqa: E402
from mailcheck.engine import RunOptions, Target, run_target  # noqa: E402
from mailcheck.model import Report  # noqa: E402
from mailcheck.targets import is_ip  # noqa: E402
from tests.lab.dnsserver import LabHandle, run_in_thread  # noqa: E402

DNS_ONLY = TlsSettings(smtp=False)
"""The lab zones' MX hosts are documentation addresses: the tls check runs DNS-only
(bench/tls.py times the SMTP probes against the TLS lab)."""

DEFAULT_DOMAINS = ("good.test", "broken.test", "nomx.test", "nullmx.test")
DNS_TIMEOUT = 2.0


@dataclass
class Stats:
    """One tool's figures for one domain over every round."""

    ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    dups: dict[str, int] = field(default_factory=dict)  # "name/TYPE" -> most extra UDP sends

    @property
    def median_ms(self) -> float:
        """Median wall time over the rounds."""
        return statistics.median(self.ms)

    def measure(self, lab: LabHandle, run: Callable[[], object]) -> object:
        """Run once, recording wall time, the queries the lab saw, and repeated UDP queries."""
        lab.reset_log()
        started = time.perf_counter()
        result = run()
        self.ms.append((time.perf_counter() - started) * 1000)
        log = list(lab.query_log)  # every query was logged before its answer was sent
        self.queries.append(len(log))
        sent = Counter(f"{q.qname}/{q.qtype}" for q in log if q.proto == "udp")
        for key, n in sent.items():
            if n > 1:
                self.dups[key] = max(self.dups.get(key, 0), n - 1)
        return result


def _mailcheck(domain: str, config: DnsConfig) -> Report:
    target = Target(label=domain, domain=domain)
    return asyncio.run(
        run_target(target, config, RunOptions(trace=True, dnsbl_config=LAB_LISTS, tls=DNS_ONLY))
    )


async def _batch(domains: Sequence[str], config: DnsConfig) -> list[Report]:
    return list(
        await asyncio.gather(
            *(
                run_target(Target(d, d), config, RunOptions(dnsbl_config=LAB_LISTS, tls=DNS_ONLY))
                for d in domains
            )
        )
    )


def _load_checkdmarc() -> ModuleType | None:
    try:
        module = importlib.import_module("checkdmarc")
    except ImportError:
        return None
    logging.getLogger("checkdmarc").setLevel(logging.CRITICAL + 1)  # its children inherit it
    return module


def _checkdmarc_cold(checkdmarc: ModuleType) -> None:
    """Empty checkdmarc's module-level caches, so each run starts cold as mailcheck's does."""
    for name, module in list(sys.modules.items()):
        if name == "checkdmarc" or name.startswith("checkdmarc."):
            for value in vars(module).values():
                if type(value).__name__ == "ExpiringDict":
                    value.clear()


def _run_checkdmarc(checkdmarc: ModuleType, domain: str, port: int) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return checkdmarc.check_domains(
            [domain],
            nameservers=[dns.nameserver.Do53Nameserver("127.0.0.1", port)],
            timeout=DNS_TIMEOUT,
            retries=0,
            check_mx_tls=False,  # no SMTP to 192.0.2.x (unroutable: it would hang to timeout)
        )


def depth(report: Report) -> int:
    """The longest chain of dependent wire lookups mailcheck's checks need for this domain.

    Derived from the data the run found, not from its timing (which would hide needless
    waits). mx/fcrdns: MX (1) -> A/AAAA of the MX hosts, or of the domain itself for an
    implicit MX (2) -> PTR of every address (3) -> A/AAAA of every PTR name (4), where level 4
    counts only when some PTR name is not an MX host already looked up at level 2 (those come
    from the run's cache). dkim: every selector at once (1; the resolver follows CNAMEs).
    dmarc: every tree-walk level at once (1) -> the authorization records of external report
    addresses (2). A null MX stops at 1; IP-literal MX hosts are not looked up.
    """
    data = {c.check: c.data for c in report.checks}
    hosts = data.get("mx", {}).get("hosts", [])
    looked_up = {h["host"] for h in hosts if h["host"] not in ("", ".") and not is_ip(h["host"])}
    forward = {n for ip in data.get("fcrdns", {}).get("hosts", []) for n in ip["forward"]}
    levels = ("mx" in data, looked_up, any(h["addresses"] for h in hosts), forward - looked_up)
    mx_chain = len(list(takewhile(bool, levels)))
    # The authorization lookups of external report addresses wait for the DMARC record.
    external = any("._report._dmarc." in str(t["name"]) for t in report.dns.trace)
    dmarc_chain = (2 if external else 1) if "dmarc" in data else 0
    return max(mx_chain, dmarc_chain, 1 if "dkim" in data else 0)


def bound_ms(report: Report, delay: float, concurrency: int) -> float:
    """A lower bound on the run's time: its dependency depth, or its queries through the
    concurrency limit (whichever is longer), each round costing one delay."""
    rounds = max(depth(report), math.ceil(report.dns.queries / concurrency))
    return rounds * delay


HEADER = ("domain", "mc ms", "mc q", "dup", "cd ms", "cd q", "dup", "cd/mc", "bound ms", "mc/bound")
LINE = "  ".join(
    f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate((14, 7, 5, 4, 7, 5, 4, 6, 9, 9))
)


def _yes(s: Stats) -> str:
    return ("yes" if s.dups else "no") if s.ms else "-"


def _row(label: str, m: Stats, c: Stats, bound: float) -> str:
    ratio = f"{c.median_ms / m.median_ms:.1f}" if c.ms else "-"
    cd = (f"{c.median_ms:.0f}", str(max(c.queries))) if c.ms else ("-", "-")
    vs_bound = f"{m.median_ms / bound:.2f}" if bound else "-"
    mc = (f"{m.median_ms:.0f}", str(max(m.queries)))
    return LINE.format(label, *mc, _yes(m), *cd, _yes(c), ratio, f"{bound:.0f}", vs_bound)


def _totals(mc: dict[str, Stats], cd: dict[str, Stats]) -> str:
    def total(stats: dict[str, Stats]) -> str:
        ms = sum(s.median_ms for s in stats.values())
        return f"{ms:.0f} ms / {sum(max(s.queries) for s in stats.values())} queries"

    ratios = [cd[d].median_ms / mc[d].median_ms for d in mc if cd[d].ms]
    if not ratios:
        return f"total: mc {total(mc)}; cd -"
    geo = math.exp(statistics.fmean(map(math.log, ratios)))
    return f"total: mc {total(mc)}; cd {total(cd)}; geometric-mean cd/mc {geo:.1f}x"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; always exits 0."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", default=",".join(DEFAULT_DOMAINS), help="comma-separated")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="delay of every answer")
    parser.add_argument("--rounds", type=int, default=3, help="runs per domain; medians shown")
    args = parser.parse_args(argv)
    domains = list(dict.fromkeys(d.strip() for d in args.domains.split(",") if d.strip()))
    rounds, delay = max(1, args.rounds), args.delay_ms
    offline.install()
    checkdmarc = _load_checkdmarc()
    mc = {d: Stats() for d in domains}
    cd = {d: Stats() for d in domains}
    bounds: dict[str, float] = {}
    batch = Stats()
    with run_in_thread(ROOT / "fixtures" / "zones", delay_ms=delay) as lab:
        config = DnsConfig((Nameserver("127.0.0.1", lab.port),), timeout=DNS_TIMEOUT, retries=0)
        for _ in range(rounds):
            for d in domains:
                report = mc[d].measure(lab, partial(_mailcheck, d, config))
                assert isinstance(report, Report)
                bounds[d] = bound_ms(report, delay, config.concurrency)
                if checkdmarc is not None:
                    _checkdmarc_cold(checkdmarc)
                    cd[d].measure(lab, partial(_run_checkdmarc, checkdmarc, d, lab.port))
            batch.measure(lab, lambda: asyncio.run(_batch(domains, config)))

    print(f"mailcheck (mc) vs checkdmarc (cd) on the fixture lab, answers delayed {delay:g} ms;")
    print(
        f"medians of {rounds} round(s); every run cold (new DnsClient, checkdmarc caches emptied)"
    )
    if checkdmarc is None:
        print("checkdmarc is not importable (pip install 'checkdmarc>=6,<7'): its columns are -")
    print(LINE.format(*HEADER))
    for d in domains:
        print(_row(d, mc[d], cd[d], bounds[d]))
    print(_row("batch (mc)", batch, Stats(), max(bounds.values(), default=0)))
    print(_totals(mc, cd))
    print(f"batch: mc on all {len(domains)} domains at once (asyncio.gather); each target has")
    print("  its own DnsClient, so a name two targets share is asked once per target.")
    print("note: cd also does NS/SOA, DNSSEC, BIMI, but no DKIM; mc does mx, fcrdns, dnsbl, spf,")
    print("  dkim (~44 selectors probed), dmarc, and tls DNS-only (TLSA, MTA-STS, TLS-RPT; SMTP")
    print("  probes: bench/tls.py) — close to, not exactly, like-for-like.")
    print("note: bound = max(longest chain of dependent lookups, queries / --concurrency) x delay;")
    print("  dup = a name/type sent again over UDP in one run (TCP after TC not counted).")
    for tool, table in (("mc", mc), ("cd", cd), ("mc", {"batch": batch})):
        for d, s in table.items():
            if s.dups:
                extra = ", ".join(f"{k} +{n}" for k, n in sorted(s.dups.items()))
                print(f"sent again over UDP in one {tool} run of {d}: {extra}")
    escapes = offline.summary()
    print(f"attempts to leave the machine (refused by an audit hook): {escapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
