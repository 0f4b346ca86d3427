"""`make demo`'s TLS part: start the TLS lab, run `mailcheck tls` against it, stop the lab.

Shows the troubleshooting story offline: a domain whose second MX broke DANE with a key
rollover, an MX without STARTTLS judged for a sender at `encrypt`, and the AT&T-style MX that
hides STARTTLS from a blocklisted client. Needs root, postfix and unbound (`make debs`);
without them it says so and exits 0, as the rest of the demo still ran.

    python -m tests.lab.tls_demo
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.lab.pki import LabPki
from tests.lab.tls_smtpd import SCENARIOS, TlsSmtpLab
from tests.lab.tls_world import PORT, TlsWorld, tls_world

COMMAND_TIMEOUT = 60.0


def _mailcheck(*args: str) -> None:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"\n$ mailcheck {shown}\n", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "MAILCHECK_NO_SMTP"}
    subprocess.run(
        [sys.executable, "-m", "mailcheck", *args], env=env, timeout=COMMAND_TIMEOUT, check=False
    )


def _run(world: TlsWorld, workdir: Path) -> None:
    lab = ["-n", world.nameserver, "--smtp-port", str(PORT), "--ca-file", str(world.pki.ca_file)]
    print("== TLS: two MX hosts; the second changed its key but not its TLSA records ==")
    _mailcheck("tls", "mixed.tls.test", *lab)
    print("\n== TLS: why a sender at smtp_tls_security_level=encrypt defers ==")
    _mailcheck("tls", "notls.tls.test", "--sender-level", "encrypt", *lab)
    cert = LabPki(workdir / "scripted-pki").issue("scripted", ["mx.scripted.test"])
    with TlsSmtpLab({"att-hidden": SCENARIOS["att-hidden"]}, cert) as scripted:
        address, port = scripted.address("att-hidden")
        print("\n== TLS: 'TLS is required, but was not offered' — the real cause ==")
        _mailcheck("tls", f"{address}:{port}", "-n", world.nameserver, "--sender-level", "encrypt")


def main() -> int:
    """Run the demo; exit 0 when it cannot run here (it says why)."""
    missing = [p for p in ("postfix", "unbound") if not os.access(f"/usr/sbin/{p}", os.X_OK)]
    if os.geteuid() != 0 or missing:
        why = "it needs root" if os.geteuid() != 0 else f"{', '.join(missing)} missing"
        print(f"\n(The TLS part of the demo is skipped: {why}; `sudo make demo` runs it.)")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="mailcheck-tls-demo-"))
    try:
        with tls_world(workdir) as world:
            _run(world, workdir)
    except RuntimeError as exc:  # the lab could not start (a busy port, a Postfix error)
        print(f"tls demo: the TLS lab did not start: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
