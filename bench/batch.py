"""Benchmark `mailcheck batch` on 1,000 synthetic domains, every DNS answer delayed 50 ms.

Each domain has MX, SPF with a two-level include tree (its own include, then a shared
provider's), DMARC with an external report address, and a DKIM key. Run from the repository
root: `.venv/bin/python bench/batch.py` (`make bench` runs it after bench/domain.py).
Prints domains/second, queries, repeated queries and peak memory, then the same for a sample
through checkdmarc, projected to the whole batch.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB_LISTS = ROOT / "fixtures" / "dnsbl" / "lab-lists.toml"  # the lab does not serve real DNSBLs
sys.path.insert(0, str(ROOT))  # for tests.lab, which is not an installed package

import dns.nameserver  # noqa: E402

from mailcheck.batch.inputs import read_batch  # noqa: E402
from mailcheck.batch.run import run_batch  # noqa: E402
from mailcheck.checks.tls_settings import TlsSettings  # noqa: E402
from mailcheck.dns import DnsConfig, Nameserver  # noqa: E402
from mailcheck.engine import RunOptions  # noqa: E402
from tests.lab.wait_ready import wait_ready  # noqa: E402

DNS_ONLY = TlsSettings(smtp=False)
"""The lab zones' MX hosts are documentation addresses: the tls check runs DNS-only
(bench/tls.py times the SMTP probes against the TLS lab)."""

HEADER = (
    "$TTL 300\n@ IN SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 604800 300\n"
    "@ IN NS ns1.lab.test.\n"
)
KEY = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwq0G8ar3Jz/bgzLY1D1Q"


def write_world(directory: Path, count: int) -> list[str]:
    """One zone `bench.test` with `count` domains, a provider zone and a reverse zone."""
    lines = ["$ORIGIN bench.test.", HEADER]
    domains = []
    for i in range(count):
        d = f"d{i:05d}"
        domains.append(f"{d}.bench.test")
        octet = i % 250 + 1
        lines += [
            f"{d} IN MX 10 mx.{d}.bench.test.",
            f"{d} IN MX 20 mx1.provider.test.",
            f"mx.{d} IN A 198.51.100.{octet}",
            f'{d} IN TXT "v=spf1 mx include:_spf.{d}.bench.test -all"',
            f'_spf.{d} IN TXT "v=spf1 ip4:198.51.100.{octet} include:_spf.provider.test ~all"',
            f'_dmarc.{d} IN TXT "v=DMARC1; p=reject; rua=mailto:agg@reports.provider.test"',
            f'selector1._domainkey.{d} IN TXT "{KEY}"',
        ]
    (directory / "bench.test.zone").write_text("\n".join(lines) + "\n")
    (directory / "provider.test.zone").write_text(
        "$ORIGIN provider.test.\n" + HEADER + "mx1 IN A 198.51.100.251\n"
        '_spf IN TXT "v=spf1 include:_spf2.provider.test ~all"\n'
        '_spf2 IN TXT "v=spf1 ip4:203.0.113.0/24 -all"\n'
        '*._report._dmarc.reports IN TXT "v=DMARC1"\n'
    )
    reverse = ["$ORIGIN 100.51.198.in-addr.arpa.", HEADER]
    reverse += [f"{o} IN PTR mx1.provider.test." for o in range(1, 252)]
    (directory / "100.51.198.in-addr.arpa.zone").write_text("\n".join(reverse) + "\n")
    (directory / "test.zone").write_text("$ORIGIN test.\n" + HEADER)
    return domains


def run_mailcheck(
    port: int, log: Path, domains: list[str], concurrency: int, selectors: tuple[str, ...] = ()
) -> None:
    """One batch over every domain; print its figures (queries from the lab's log)."""
    config = DnsConfig(
        (Nameserver("127.0.0.1", port),), timeout=5.0, retries=0, concurrency=concurrency
    )
    batch = read_batch("\n".join(domains))
    seen = len(log.read_text().splitlines()) if log.exists() else 0
    cpu = time.process_time()
    started = time.perf_counter()
    reports, _ = asyncio.run(
        run_batch(
            batch.entries,
            config,
            RunOptions(dnsbl_config=LAB_LISTS, tls=DNS_ONLY),
            at_once=200,
            dkim_selectors=selectors,
        )
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    queries = [line.split() for line in log.read_text().splitlines()[seen:]]
    udp = Counter((q[1], q[2]) for q in queries if q[0] == "udp")
    repeated = sum(n - 1 for n in udp.values() if n > 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"mailcheck{' --dkim-selector ' + ','.join(selectors) if selectors else ''}: "
        f"{len(reports)} domains in {elapsed:.1f} s = {len(reports) / elapsed:.0f}"
        f" domains/s; {len(queries)} queries ({repeated} sent again); --concurrency "
        f"{concurrency}; mailcheck CPU {cpu:.1f} s; peak RSS {peak:.0f} MiB"
    )


def run_checkdmarc(port: int, domains: list[str], sample: int) -> None:
    """checkdmarc on a sample, projected to the whole list (it is sequential)."""
    try:
        import checkdmarc
    except ImportError:
        print("checkdmarc is not importable: no comparison")
        return
    logging.getLogger("checkdmarc").setLevel(logging.CRITICAL + 1)
    nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", port)]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checkdmarc.check_domains(
            domains[:sample], nameservers=nameservers, timeout=5.0, retries=0, check_mx_tls=False
        )
    elapsed = time.perf_counter() - started
    projected = elapsed / sample * len(domains)
    print(
        f"checkdmarc: {sample} domains in {elapsed:.1f} s; projected for {len(domains)}: "
        f"{projected:.0f} s"
    )


def main() -> int:
    """Build the world, serve it with the delay, run both."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--sample", type=int, default=20, help="checkdmarc sample size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zones, ready, log = Path(tmp) / "zones", Path(tmp) / "ready", Path(tmp) / "queries"
        zones.mkdir()
        domains = write_world(zones, args.domains)
        # The lab runs in its own process: in a thread it would share the GIL with mailcheck
        # and the benchmark would measure Python contention, not mailcheck.
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.lab.dnsserver",
                "--zones",
                str(zones),
                "--delay-ms",
                str(args.delay_ms),
                "--ready-file",
                str(ready),
                "--query-log",
                str(log),
            ],
            cwd=ROOT,
        )
        try:
            if not wait_ready(ready, 30.0, server.pid):
                print("the lab DNS server did not start")
                return 3
            port = int(ready.read_text())
            print(
                f"{args.domains} synthetic domains, every answer delayed {args.delay_ms:g} ms;"
                " every check (mx, fcrdns, dnsbl, spf, dkim with ~44 selector probes, dmarc,"
                " tls without SMTP: TLSA, MTA-STS, TLS-RPT)"
            )
            run_mailcheck(port, log, domains, args.concurrency)
            # A hosting panel knows its own selector: one DKIM query per domain, not ~45.
            run_mailcheck(port, log, domains, args.concurrency, ("selector1",))
            run_checkdmarc(port, domains, args.sample)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
