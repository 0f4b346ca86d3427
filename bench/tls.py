"""Benchmark the tls check on the TLS lab: wall time per domain, probe time per MX address,
the critical-path bound, posttls-finger on the same addresses, and concurrent probes.

Run from the repository root as root (the lab's Postfix master needs it), with Debian's
postfix and unbound installed: `.venv/bin/python -m bench.tls` (or `bench/tls.py`). The lab
(tests/lab/tls_world.py) starts once; every run is cold on mailcheck's side (a new DnsClient),
while unbound keeps its cache after the first run of a domain, shown apart as `1st ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.lab, which is not an installed package

from bench import offline  # noqa: E402
from mailcheck import smtp  # noqa: E402
from mailcheck.checks import CheckName  # noqa: E402
from mailcheck.checks.tls_probe import ProbeTimeouts, probe_smtp  # noqa: E402
from mailcheck.checks.tls_settings import TlsSettings, default_ehlo_name  # noqa: E402
from mailcheck.engine import RunOptions, Target, run_target  # noqa: E402
from mailcheck.model import Report  # noqa: E402
from tests.lab.tls_world import (  # noqa: E402
    PORT,
    SCENARIOS,
    TlsWorld,
    busy_addresses,
    tls_world,
)

DEFAULT_DOMAINS = tuple("good mixed notls rollover legacy reject closed partial bogustlsa".split())
ZONE = "tls.test"
STEP_TIMEOUT = 3.0
POSTTLS_FINGER = "/usr/sbin/posttls-finger"
UNBOUND = "/usr/sbin/unbound"
# mixed's two MX hosts, on their own listeners: probed one after the other, then together.
MIXED = (
    ("mx-good.tls.test", SCENARIOS["good"].address),
    ("mx-rollover.tls.test", SCENARIOS["rollover"].address),
)
# The same two behind delay_proxy, on addresses of their own (127.0.0.70 -> 127.0.1.70).
PROXIED = tuple((host, ip.replace("127.0.0.", "127.0.1.", 1)) for host, ip in MIXED)


@dataclass(frozen=True)
class Address:
    """One MX address as one run of the check saw it."""

    elapsed_ms: float
    """SmtpProbe.elapsed_ms: connect to close."""
    greeting_ms: float | None
    """Connect to the complete 220 (or other) greeting."""
    handshake_ms: float | None
    """The TLS handshake, when there was one."""
    outcome: str
    """What the session ended with, in a word or two."""


@dataclass(frozen=True)
class Run:
    """One cold run of the tls check on one domain."""

    wall_ms: float
    """run_target, start to report."""
    cpu_ms: float
    """This process's CPU time meanwhile (the lab DNS thread is idle once unbound caches)."""
    queries: int
    """Wire queries mailcheck sent (to unbound)."""
    bound_ms: float
    """The longest dependent chain, from this run's own step times."""
    path: str
    """That chain, in words."""
    addresses: Mapping[tuple[str, str], Address]
    """(MX host, address) -> what its probe took."""


@dataclass
class DomainStats:
    """Every run of one domain."""

    first: Run | None = None
    """The warm-up run: unbound cold for this domain (and the process cold, for the first)."""
    runs: list[Run] = field(default_factory=list)
    """The measured runs."""

    def median(self, attr: str) -> float:
        """Median of a numeric field of the measured runs."""
        return statistics.median(float(getattr(r, attr)) for r in self.runs)


def _owner(name: str) -> str:
    return name.lower().rstrip(".") + "."


def critical_path(report: Report, domain: str, port: int) -> tuple[float, str]:
    """The longest chain of dependent steps of one run, each costed at what it took there.

    Chains: MX -> A/AAAA of a host -> the probes of one address (in turn when several MX
    names share it: the check opens one connection per address at a time); MX -> TLSA of a
    host (-> TLSA again with CD=1 after a SERVFAIL), which runs beside the probe;
    _mta-sts and _smtp._tls TXT, which need nothing (no lab domain here announces a policy,
    so there is no policy fetch to add).
    """
    ms = {(t["name"], t["type"], t["cd"]): float(t["ms"]) for t in report.dns.trace}

    def q(name: str, rdtype: str, cd: bool = False) -> float:
        return ms.get((_owner(name), rdtype, cd), 0.0)

    mx = q(domain, "MX")
    chains = [(max(q(f"_mta-sts.{domain}", "TXT"), q(f"_smtp._tls.{domain}", "TXT")), "TXT")]
    hosts = report.checks[0].data.get("hosts", [])
    for host in {h["host"] for h in hosts}:
        owner = f"_{port}._tcp.{host}"
        cd = q(owner, "TLSA", cd=True)
        chains.append((mx + q(owner, "TLSA") + cd, f"MX > TLSA{' > TLSA+CD' if cd else ''}"))
    by_ip: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in hosts:
        by_ip[h["ip"]].append(h)
    for ip, sharing in by_ip.items():
        address = max(max(q(h["host"], "A"), q(h["host"], "AAAA")) for h in sharing)
        probes = sum(float(h.get("elapsed_ms") or 0) for h in sharing)
        turns = f"{len(sharing)} probes in turn" if len(sharing) > 1 else "probe"
        chains.append((mx + address + probes, f"MX > A/AAAA > {turns} {ip}"))
    return max(chains)


def _outcome(h: Mapping[str, Any]) -> str:
    if h.get("connected") is None:
        return "not probed"
    if not h["connected"]:
        error = h.get("connect_error") or {}
        return str(error.get("kind", "no connect"))
    if h.get("tls_version"):
        return str(h["tls_version"])
    banner = str(h.get("banner") or "")
    if not banner.startswith("2"):
        return f"greeting {banner[:3] or '-'}"
    if h.get("handshake_error"):
        return "handshake failed"
    return "no STARTTLS" if not h.get("starttls_offered") else "no TLS"


def _address(h: Mapping[str, Any]) -> Address:
    def num(key: str) -> float | None:
        value = h.get(key)
        return float(value) if value is not None else None

    return Address(num("elapsed_ms") or 0.0, num("greeting_ms"), num("handshake_ms"), _outcome(h))


async def _timed_run(
    domain: str, world: TlsWorld, options: RunOptions
) -> tuple[float, float, Report]:
    cpu, started = time.process_time(), time.perf_counter()
    report = await run_target(Target(domain, domain=domain), world.config, options)
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000, report


def run_check(domain: str, world: TlsWorld) -> Run:
    """One cold run (its own event loop, its own DnsClient), with its figures."""
    settings = TlsSettings(port=PORT, ca_file=world.pki.ca_file, step_timeout=STEP_TIMEOUT)
    options = RunOptions(checks=(CheckName.TLS,), trace=True, tls=settings)
    wall, cpu, report = asyncio.run(_timed_run(domain, world, options))
    bound, path = critical_path(report, domain, PORT)
    hosts = report.checks[0].data.get("hosts", [])
    addresses = {(h["host"], h["ip"]): _address(h) for h in hosts}
    return Run(wall, cpu, report.dns.queries, bound, path, addresses)


@dataclass(frozen=True)
class Finger:
    """posttls-finger's runs against one address."""

    ms: list[float]
    """Wall time of each measured run (a whole process: start, session, exit)."""
    says: str
    """Its verdict, in a few words."""
    first_ms: float
    """The unmeasured first run."""


def _finger_says(out: str) -> str:
    for line in reversed(out.splitlines()):
        if "TLS connection established" in line:
            trust = line.split(": ", 1)[1].split(" TLS", 1)[0]
            return f"{trust} {line.rsplit(': ', 1)[1].split(' ', 1)[0]}"
        if "SMTP service not available" in line:
            return f"greeting {line.split(': ', 2)[2][:3]}"
        if "Connection refused" in line:
            return "refused"
    return "no TLS" if not out.strip() else out.strip().splitlines()[-1][:30]


def posttls_finger(ip: str, world: TlsWorld, config_dir: Path, rounds: int) -> Finger:
    """Run `posttls-finger -c -l may -F <lab CA> [ip]:port`; an IP literal, so no DNS at all."""
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"not a loopback address: {ip}")
    argv = [POSTTLS_FINGER, "-c", "-l", "may", "-F", str(world.pki.ca_file), f"[{ip}]:{PORT}"]
    env = {**os.environ, "MAIL_CONFIG": str(config_dir)}
    times, says = [], ""
    for _ in range(rounds + 1):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        says = _finger_says(done.stdout + done.stderr)
    return Finger(times[1:], says, times[0])


def write_finger_config(directory: Path) -> Path:
    """A main.cf of its own for posttls-finger (it reads $MAIL_CONFIG/main.cf, nothing more)."""
    directory.mkdir()
    main_cf = directory / "main.cf"
    main_cf.write_text(
        f"compatibility_level = 3.6\ninet_protocols = ipv4\nmyhostname = {default_ehlo_name()}\n"
    )
    # Postfix re-reads a main.cf changed in the last second or so, dozing 300 ms each time
    # (dict_load_file_xt): 1.5 s on the first run. Back-date it.
    old = time.time() - 3600
    os.utime(main_cf, (old, old))
    return directory


def _ack_now(sock: socket.socket | None) -> None:
    """Set TCP_QUICKACK on the proxy's socket to Postfix when mailcheck's own sockets do."""
    if sock is not None and smtp.QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, smtp.QUICKACK, 1)


async def _hold(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    upstream: socket.socket | None,
) -> None:
    """Copy reader to writer, each chunk `delay` seconds after it arrived, in order.

    Postfix's TCP peer is the proxy, not mailcheck: whether Postfix's Nagle waits for a
    delayed ACK depends on the proxy's `upstream` socket, which therefore acknowledges the
    way mailcheck's sockets do (mailcheck.smtp.QUICKACK)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while (item := await queue.get())[1]:
            await asyncio.sleep(item[0] - loop.time())
            writer.write(item[1])
            _ack_now(upstream)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            _ack_now(upstream)
            queue.put_nowait((loop.time() + delay, data))
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(OSError):
        await sender
    writer.close()


async def _relay(
    upstream: str, delay: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(upstream, PORT)
    except OSError:
        writer.close()
        return
    up = up_writer.get_extra_info("socket")
    await asyncio.gather(_hold(reader, up_writer, delay, up), _hold(up_reader, writer, delay, up))


@contextlib.contextmanager
def delay_proxy(routes: Mapping[str, str], delay_ms: float) -> Iterator[None]:
    """Forward each `listen` address (port PORT) to its upstream, holding every chunk
    `delay_ms` each way: a network with a round trip of twice that. Its own thread and loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="delay-proxy", daemon=True)
    thread.start()

    async def listen() -> list[asyncio.Server]:
        return [
            await asyncio.start_server(functools.partial(_relay, up, delay_ms / 1000), at, PORT)
            for at, up in routes.items()
        ]

    async def close(servers: list[asyncio.Server]) -> None:
        for server in servers:
            server.close()
        # The last chunks may still be on hold: let the relays finish rather than cancel them.
        relays = asyncio.all_tasks() - {asyncio.current_task()}
        if relays:
            _, stuck = await asyncio.wait(relays, timeout=2 * delay_ms / 1000 + 1)
            for task in stuck:
                task.cancel()

    servers = asyncio.run_coroutine_threadsafe(listen(), loop).result(timeout=5)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(close(servers), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


async def _probe(targets: Sequence[tuple[str, str]]) -> tuple[float, float]:
    """Wall and CPU time (ms) of probing targets concurrently, as the check does."""
    step = STEP_TIMEOUT
    timeouts = ProbeTimeouts(connect=step, greeting=step, command=step, handshake=step, quit=step)
    helo = default_ehlo_name()
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(
        *(probe_smtp(h, ip, PORT, helo=helo, timeouts=timeouts) for h, ip in targets)
    )
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000


def concurrency(label: str, targets: Sequence[tuple[str, str]], rounds: int) -> list[str]:
    """Two probes alone (their sum) and together (asyncio.gather): medians, then the fastest
    of `rounds` (which leave out any delayed-ACK stall, see the note printed below)."""
    alone: list[list[float]] = [[], []]
    both: list[float] = []
    cpu: list[float] = []
    asyncio.run(_probe(targets))  # warm-up: each listener's smtpd has done TLS once
    for _ in range(rounds):
        for i in (0, 1):
            alone[i].append(asyncio.run(_probe(targets[i : i + 1]))[0])
        wall, used = asyncio.run(_probe(targets))
        both.append(wall)
        cpu.append(used)
    lines = [f"{label} (mailcheck's CPU while together: {statistics.median(cpu):.1f} ms)"]
    for name, pick in (("median", statistics.median), ("fastest", min)):
        a, b, ab = pick(alone[0]), pick(alone[1]), pick(both)
        lines.append(
            f"  {name:<7} {a:6.1f} + {b:6.1f} = {a + b:6.1f} ms one after the other; "
            f"together {ab:6.1f} ms = {ab / (a + b):.2f} of the sum"
        )
    return lines


D_HEAD = "domain|wall ms|cpu ms|1st ms|dns q|bound ms|wall/bound|critical path".split("|")
D_LINE = "{:<19} {:>7} {:>6} {:>6} {:>5} {:>8} {:>10}  {}"
A_HEAD = (
    "domain|MX host [address]|probe ms|min|max|greet|tls hs|mailcheck saw|ptf ms|ptf/probe|ptf saw"
)
A_LINE = "{:<19} {:<34} {:>8} {:>4} {:>4} {:>5} {:>6}  {:<13} {:>6} {:>9}  {}"


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def print_tables(
    stats: Mapping[str, DomainStats], fingers: Mapping[str, Finger], rounds: int
) -> None:
    """The per-domain table, then the per-address one."""
    print(D_LINE.format(*D_HEAD))
    for domain, s in stats.items():
        wall, bound = s.median("wall_ms"), s.median("bound_ms")
        path = Counter(r.path for r in s.runs).most_common(1)[0][0]  # the most frequent
        first = s.first.wall_ms if s.first else None
        ratio = f"{wall / bound:.2f}" if bound else "-"
        queries = str(max(r.queries for r in s.runs))
        cpu = _f(s.median("cpu_ms"))
        print(D_LINE.format(domain, _f(wall), cpu, _f(first), queries, _f(bound), ratio, path))
    print()
    print(A_LINE.format(*A_HEAD.split("|")))
    for domain, s in stats.items():
        for host, ip in dict.fromkeys(k for r in s.runs for k in r.addresses):
            seen = [r.addresses[(host, ip)] for r in s.runs if (host, ip) in r.addresses]
            probe = statistics.median(a.elapsed_ms for a in seen)
            greet = _f(_median([a.greeting_ms for a in seen]), 0)
            handshake = _f(_median([a.handshake_ms for a in seen]), 0)
            finger = fingers.get(ip)
            ptf = statistics.median(finger.ms) if finger else None
            ratio = f"{ptf / probe:.1f}" if ptf and probe else "-"
            says = finger.says if finger else "-"
            fastest = _f(min(a.elapsed_ms for a in seen), 0)
            slowest = _f(max(a.elapsed_ms for a in seen), 0)
            mc = (_f(probe, 0), fastest, slowest, greet, handshake, seen[-1].outcome)
            print(A_LINE.format(domain, f"{host} [{ip}]", *mc, _f(ptf), ratio, says))
    print(
        f"(medians of {rounds} runs, min/max the fastest/slowest; probe, greet, tls hs: "
        "SmtpProbe's whole ms)"
    )


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (the lab's Postfix master starts as root)"
    for binary in ("/usr/sbin/postfix", UNBOUND):
        if not os.access(binary, os.X_OK):
            return f"needs {binary} (apt-get install postfix unbound)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Start the lab, measure, print; 0, also when the lab cannot run here (no root, no
    Postfix); 3 when another TLS lab holds its addresses."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--domains", default=",".join(DEFAULT_DOMAINS), help=f"comma-separated labels under {ZONE}"
    )
    parser.add_argument("--rounds", type=int, default=5, help="runs per domain; medians shown")
    parser.add_argument(
        "--delay-ms", type=float, default=10.0, help="one-way delay for the proxied probes"
    )
    args = parser.parse_args(argv)
    labels = dict.fromkeys(d.strip() for d in args.domains.split(",") if d.strip())
    domains = [f"{d}.{ZONE}" for d in labels]
    rounds = max(1, args.rounds)
    missing = _missing()
    if missing:
        print(f"bench/tls.py: skipped, {missing}")
        return 0
    taken = busy_addresses()
    if taken:
        print(f"bench/tls.py: not run, another TLS lab is listening on {', '.join(taken)}")
        return 3
    offline.install()
    started = time.perf_counter()
    stats = {d: DomainStats() for d in domains}
    fingers: dict[str, Finger] = {}
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp, tls_world(Path(tmp)) as world:
        lab_up = time.perf_counter() - started
        for d in domains:
            stats[d].first = run_check(d, world)
        for _ in range(rounds):
            for d in domains:
                stats[d].runs.append(run_check(d, world))
        together = concurrency("mixed's two probes (probe_smtp), loopback", MIXED, rounds)
        routes = {at: ip for (_, at), (_, ip) in zip(PROXIED, MIXED, strict=True)}
        with delay_proxy(routes, args.delay_ms):
            label = f"the same, {2 * args.delay_ms:g} ms round trip (a delaying proxy)"
            together += concurrency(label, PROXIED, rounds)
        finger_ok = os.access(POSTTLS_FINGER, os.X_OK)
        if finger_ok:
            config = write_finger_config(Path(tmp) / "posttls-finger")
            ips = dict.fromkeys(ip for s in stats.values() for r in s.runs for _, ip in r.addresses)
            for ip in ips:
                fingers[ip] = posttls_finger(ip, world, config, rounds)
    print(
        f"tls check on the TLS lab (Postfix on 127.0.0.70-78:{PORT}, a validating unbound in "
        f"front of the lab DNS); lab up in {lab_up:.1f} s"
    )
    print(
        "every run cold on mailcheck's side (new DnsClient, own event loop); 1st = the unmeasured"
        " first run (unbound not caching that domain yet, Postfix's smtpd not warm yet)"
    )
    print()
    print_tables(stats, fingers, rounds)
    print()
    print("\n".join(together))
    if finger_ok:
        first = ", ".join(f"{ip} {f.first_ms:.0f}" for ip, f in fingers.items())
        print(
            f"ptf: `{POSTTLS_FINGER} -c -l may -F <lab CA> [ip]:{PORT}`, a whole process per "
            f"run (the refused address shows that floor); unmeasured first runs (ms): {first}"
        )
    else:
        print(f"{POSTTLS_FINGER} is not installed (Debian postfix): its columns are -")
    print("note: bound = the longest dependent chain (MX > A/AAAA > probe; TLSA beside the probe;")
    print("  MTA-STS TXT beside everything), each step costed at this run's own DNS trace and")
    print("  probe times; wall - bound is scheduling, judging (certificates, DANE) and reporting.")
    print("note: Postfix holds its reply to the EHLO after a TLS 1.3 handshake (Nagle) until the")
    print("  session tickets are ACKed; mailcheck sets TCP_QUICKACK so that this takes no 40 ms")
    print(f"  delayed ACK (here: {'on' if smtp.QUICKACK is not None else 'not available'}).")
    escapes = offline.summary()
    print(f"attempts to leave the machine (refused by an audit hook): {escapes}")
    print(f"whole bench: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
