"""Postfix configuration as data: main.cf parameters and master.cf services.

One parser for both sources: the text `postconf -n` / `postconf -M` print and the saved
main.cf / master.cf files (postconf(5) "main.cf" syntax: `name = value`, a line starting with
white space continues the previous one, `#` starts a comment line; master(5) the same for
master.cf, with eight fields per service and `-o name=value` overrides).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

POSTCONF = "/usr/sbin/postconf"
POSTCONF_TIMEOUT = 20.0
EFFECTIVE_PARAMS = ("myhostname", "smtp_helo_name", "smtp_bind_address", "smtp_bind_address6")
"""The identity parameters read with their defaults from a live instance (postconf -x)."""
_PARAM = re.compile(r"^([A-Za-z0-9_.-]+)\s*=\s*(.*)$", re.S)
_VAR = re.compile(r"\$\{?([A-Za-z0-9_]+)\}?")


class ConfigUnavailable(Exception):
    """The configuration could not be read (postconf failed, a file is missing); one line."""


@dataclass(frozen=True)
class Service:
    """One master.cf entry (master(5))."""

    name: str
    """Service name, e.g. `submission`, `smtp`, `127.0.0.1:2525`."""
    type: str
    """inet, unix, unix-dgram, fifo, pass."""
    maxproc: str
    """Process limit field (`-` for default_process_limit)."""
    command: str
    """The daemon, e.g. `smtpd`."""
    options: Mapping[str, str]
    """The `-o name=value` overrides, in order."""

    @property
    def port(self) -> str:
        """The port part of an inet service name (`submission`, `2525`, `smtp`)."""
        return self.name.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class PostfixConfig:
    """What the audit reads: non-default main.cf parameters and master.cf services."""

    params: Mapping[str, str]
    """main.cf parameters as set (postconf -n), values unexpanded."""
    services: tuple[Service, ...]
    """master.cf services in file order."""
    malformed: tuple[str, ...] = field(default=())
    """Lines that were neither a parameter, a service, a comment nor a continuation."""
    source: str = ""
    """Where it came from: `postconf -c DIR`, or the file names."""
    live: bool = False
    """True when read from the running instance (postconf), False for saved files."""
    effective: Mapping[str, str] = field(default_factory=dict)
    """Effective values of EFFECTIVE_PARAMS, defaults filled in and `$name` expanded
    (`postconf -x`); empty for saved files."""

    def get(self, name: str, default: str = "") -> str:
        """A parameter's value with `$name` references expanded (one level per name, no loops)."""
        return expand(self.params.get(name, default), self.params)


def expand(value: str, params: Mapping[str, str], depth: int = 0) -> str:
    """Expand `$name` and `${name}` from params; unknown names stay as written."""
    if depth > 8:
        return value

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            return match.group(0)
        return expand(params[name], params, depth + 1)

    return _VAR.sub(sub, value)


def _logical_lines(text: str) -> list[str]:
    """Join continuation lines and drop comments and blank lines (postconf(5) syntax)."""
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0] in " \t" and lines:
            lines[-1] += " " + raw.strip()
        else:
            lines.append(raw.strip())
    return lines


def parse_main(text: str) -> tuple[dict[str, str], list[str]]:
    """main.cf or `postconf -n` text → (parameters, malformed lines)."""
    params: dict[str, str] = {}
    bad: list[str] = []
    for line in _logical_lines(text):
        match = _PARAM.match(line)
        if match:
            params[match.group(1)] = match.group(2).strip()
        else:
            bad.append(line)
    return params, bad


def parse_master(text: str) -> tuple[list[Service], list[str]]:
    """master.cf or `postconf -M` text → (services, malformed lines); master(5) fields."""
    services: list[Service] = []
    bad: list[str] = []
    for line in _logical_lines(text):
        fields = line.split()
        if len(fields) < 8:
            bad.append(line)
            continue
        name, kind, _private, _unpriv, _chroot, _wakeup, maxproc = fields[:7]
        argv = fields[7:]
        options: dict[str, str] = {}
        i = 1
        while i < len(argv):
            # master(5): "-o name=value" or "-o name = value" would be two words; "-oname=v" too.
            word = argv[i]
            if word == "-o" and i + 1 < len(argv):
                key, _, val = argv[i + 1].partition("=")
                options[key.strip()] = val.strip()
                i += 2
                continue
            if word.startswith("-o") and "=" in word:
                key, _, val = word[2:].partition("=")
                options[key.strip()] = val.strip()
            i += 1
        services.append(Service(name, kind, maxproc, argv[0], options))
    return services, bad


def parse_config(main_text: str, master_text: str, source: str = "") -> PostfixConfig:
    """Both texts → one PostfixConfig (malformed lines kept for a finding)."""
    params, bad_main = parse_main(main_text)
    services, bad_master = parse_master(master_text)
    return PostfixConfig(params, tuple(services), tuple(bad_main + bad_master), source)


def read_files(main_cf: str, master_cf: str) -> PostfixConfig:
    """Saved copies of main.cf and master.cf; ConfigUnavailable with one line if unreadable."""
    texts = []
    for path in (main_cf, master_cf):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                texts.append(handle.read())
        except OSError as exc:
            raise ConfigUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_config(texts[0], texts[1], f"{main_cf}, {master_cf}")


def _postconf(args: list[str], config_dir: str | None, postconf: str) -> str:
    argv = [postconf] + (["-c", config_dir] if config_dir else []) + args
    shown = " ".join(argv[1:])
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=POSTCONF_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise ConfigUnavailable(f"{postconf} not found: is Postfix installed?") from None
    except subprocess.TimeoutExpired:
        raise ConfigUnavailable(
            f"postconf {shown} timed out after {POSTCONF_TIMEOUT:g} s"
        ) from None
    except OSError as exc:
        raise ConfigUnavailable(f"cannot run {postconf}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ConfigUnavailable(f"postconf {shown} failed: {why}")
    return done.stdout


def read_live(config_dir: str | None = None, postconf: str = POSTCONF) -> PostfixConfig:
    """`postconf [-c DIR] -n`, `-M`, and `-x` of the identity parameters, of a live instance."""
    main = _postconf(["-n"], config_dir, postconf)
    master = _postconf(["-M"], config_dir, postconf)
    effective, _ = parse_main(_postconf(["-x", *EFFECTIVE_PARAMS], config_dir, postconf))
    where = f"postconf -c {config_dir}" if config_dir else "postconf"
    cfg = parse_config(main, master, where)
    return replace(cfg, live=True, effective=effective)
