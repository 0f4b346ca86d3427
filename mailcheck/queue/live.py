"""The live queue: `postqueue -j` of the default instance or of `-c DIR`, streamed.

postqueue works for any user while Postfix runs (unless `authorized_mailq_users` says no);
with Postfix stopped only root can list, straight from the spool, with a warning. It exits 69
for every fatal error (msg_cleanup() overrides the status), so failures are told apart by
their text: the error matrix in docs/workflows.md. Postfix 2.x has no `-j`: then the
`postqueue -p` text is parsed instead.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Generator, Iterator
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path

from mailcheck.queue.analysis import Lifetimes
from mailcheck.queue.entries import Entry, SourceWarning
from mailcheck.queue.source import (
    QueueInputError,
    QueueUnavailable,
    SourceInfo,
    numbered_lines,
    read_listing,
)

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
"""Where postqueue lives when it is not on a (non-root) PATH."""
POSTQUEUE_ENV = "MAILCHECK_POSTQUEUE"
"""Environment variable naming the postqueue program (a non-standard install)."""
POSTCONF_TIMEOUT = 10.0
_MAIN_CF = re.compile(r"open (?:file )?(?P<path>\S*main\.cf): (?P<error>[^\n]+)")
_NO_JSON = re.compile(r"(?:invalid|illegal|unknown) option.*j|usage: postqueue", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def locate_postqueue(
    path_env: str | None = None, extra_dirs: tuple[str, ...] = SBIN_DIRS
) -> str | None:
    """The postqueue program: $MAILCHECK_POSTQUEUE, else PATH, else the sbin directories."""
    override = os.environ.get(POSTQUEUE_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which("postqueue", path=path_env)
    if found:
        return found
    for directory in extra_dirs:
        candidate = os.path.join(directory, "postqueue")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def explain_failure(status: int, stderr: str, config_dir: str | None, euid: int) -> str:
    """One line naming why postqueue failed and what to do, from its exit status and text."""
    fatal = _fatal_line(stderr)
    if (
        config_dir
        and euid != 0
        and ("alternate_config_directories" in stderr or "unauthorized" in stderr)
    ):
        return (
            f"postqueue refuses -c {config_dir} to a non-root user ({fatal}): list the "
            "directory in alternate_config_directories of the default main.cf, or run as root"
        )
    if match := _MAIN_CF.search(stderr):
        path = match["path"]
        if config_dir and euid != 0 and not path.startswith(config_dir.rstrip("/") + "/"):
            return (
                f"postqueue refuses -c {config_dir} to a non-root user ({fatal}): list the "
                "directory in alternate_config_directories of the default main.cf, or run as root"
            )
        return (
            f"Postfix is installed but not configured: {path}: {match['error']} (Debian's "
            '"No configuration"); configure it (dpkg-reconfigure postfix), or give -c DIR for '
            "another instance"
        )
    if "mail system is down" in stderr:
        return (
            "Postfix is not running, and only root can read its queue then "
            f"({fatal}): start it (postfix start), or run as root"
        )
    if "not allowed to view the mail queue" in stderr:
        return (
            f"{fatal.split(': ', 2)[-1]}: the user is not in authorized_mailq_users; run as root "
            "or add the user there"
        )
    if "showq service: Permission denied" in stderr:
        return (
            "postqueue cannot reach the showq service (Permission denied): it must be setgid "
            "postdrop on a file system without nosuid; run `postfix set-permissions`"
        )
    hint = "; a temporary failure, try again" if status == 75 else ""
    return f"postqueue exited with status {status}: {fatal or 'no message'}{hint}"


def _fatal_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if ": fatal: " in line:
            return line
    return lines[-1] if lines else ""


def parse_duration(text: str, default_unit: str = "d") -> int | None:
    """Seconds in a Postfix time value (`5d`, `3600s`, `1w`; a bare number is in days)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if match is None:
        return None
    return int(match[1]) * _UNITS[match[2] or default_unit]


class LiveSource:
    """`postqueue -j` of one Postfix instance."""

    def __init__(
        self,
        config_dir: str | None,
        timeout: float,
        now: float,
        tz: tzinfo | None = None,
    ) -> None:
        # postqueue and postconf want an absolute configuration directory.
        self.config_dir = os.path.abspath(config_dir) if config_dir else None
        self.timeout = timeout
        self.now = now
        self.tz = tz
        where = self.config_dir or "default instance"
        self._info = SourceInfo("postqueue", f"postfix queue ({where})", config_dir=self.config_dir)

    @property
    def info(self) -> SourceInfo:
        """What is being read; Postfix's details once entries() has started."""
        return self._info

    def entries(self) -> Iterator[Entry]:
        """The queue's entries; QueueUnavailable/QueueInputError with the cause and the fix."""
        postqueue = locate_postqueue()
        if postqueue is None:
            where = os.environ.get(POSTQUEUE_ENV) or "PATH, " + ", ".join(SBIN_DIRS)
            raise QueueUnavailable(
                f"Postfix is not installed (no postqueue in {where}): install it, or read a "
                "saved listing with --input FILE"
            )
        if self.config_dir is not None:
            self._check_config_dir(self.config_dir)
        self._describe(postqueue)
        no_json, stderr = yield from self._run(postqueue, "-j")
        if no_json:
            # Postfix < 3.1: the text listing is the only one there is.
            self._info = replace(self._info, listing="text")
            _, stderr = yield from self._run(postqueue, "-p")
        for line in stderr.splitlines():
            if ": warning: " in line:
                yield SourceWarning(line.strip())

    def _check_config_dir(self, directory: str) -> None:
        if not os.path.isdir(directory):
            raise QueueInputError(
                f"-c {directory}: no such directory; give the instance's configuration "
                "directory (the one with its main.cf)"
            )
        if not os.path.isfile(os.path.join(directory, "main.cf")):
            raise QueueInputError(
                f"-c {directory}: no main.cf there; give the instance's configuration "
                "directory (`postmulti -l` lists them)"
            )

    def _command(self, program: str, *args: str) -> list[str]:
        config = ["-c", self.config_dir] if self.config_dir else []
        return [program, *config, *args]

    def _describe(self, postqueue: str) -> None:
        """Postfix's version, host name and lifetimes from postconf next to postqueue."""
        postconf = Path(postqueue).with_name("postconf")
        if not os.access(postconf, os.X_OK):
            return
        names = ("mail_version", "myhostname", "queue_directory")
        lifetimes = ("maximal_queue_lifetime", "bounce_queue_lifetime")
        try:
            proc = subprocess.run(
                self._command(str(postconf), "-h", *names, *lifetimes),
                capture_output=True,
                text=True,
                timeout=POSTCONF_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return
        if proc.returncode != 0:
            if _MAIN_CF.search(proc.stderr):
                raise QueueUnavailable(
                    "cannot read the Postfix queue: "
                    + explain_failure(proc.returncode, proc.stderr, self.config_dir, os.geteuid())
                )
            return
        values = proc.stdout.splitlines()
        if len(values) != len(names) + len(lifetimes):
            return
        maximal, bounce = (parse_duration(v) for v in values[len(names) :])
        self._info = replace(
            self._info,
            postfix=dict(zip(names, values, strict=False)),
            lifetimes=Lifetimes(maximal, bounce) if maximal and bounce else None,
        )

    def _run(self, postqueue: str, flag: str) -> Generator[Entry, None, tuple[bool, str]]:
        """Stream one postqueue run; return (it has no -j, its stderr).

        Raises QueueUnavailable for any other failure (the caller discards what was read).
        """
        command = self._command(postqueue, flag)
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err)
            except OSError as exc:
                raise QueueUnavailable(
                    f"cannot run {postqueue}: {exc.strerror or exc}; check the Postfix install"
                ) from None
            killed = threading.Event()

            def overrun() -> None:
                killed.set()
                proc.kill()

            timer = threading.Timer(self.timeout, overrun)
            timer.start()
            try:
                assert proc.stdout is not None
                name = f"postqueue {flag}"
                yield from read_listing(numbered_lines(proc.stdout), name, self.now, self.tz)
                status = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stderr = err.read().decode("utf-8", errors="replace")
        if killed.is_set():
            raise QueueUnavailable(
                f"postqueue did not finish within {self.timeout:g} s; give a larger --timeout, "
                "or save a listing with `postqueue -j > FILE` and use --input FILE"
            )
        if status != 0:
            if flag == "-j" and _NO_JSON.search(stderr):
                return True, stderr
            user = _user()
            raise QueueUnavailable(
                f"cannot read the Postfix queue as {user}: "
                + explain_failure(status, stderr, self.config_dir, os.geteuid())
            )
        return False, stderr


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"
