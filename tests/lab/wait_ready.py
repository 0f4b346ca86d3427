"""Wait, with a bound, for a lab server's ready file: `python -m tests.lab.wait_ready FILE`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def wait_ready(path: Path, timeout: float, pid: int | None = None) -> bool:
    """True once `path` exists; False after `timeout` seconds or when `pid` has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if pid is not None and not alive(pid):
            return False
        time.sleep(0.02)
    return False


def alive(pid: int) -> bool:
    """True while the process exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    """Command line: exit 0 when ready, 3 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ready_file", type=Path)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--pid", type=int)
    args = parser.parse_args()
    if wait_ready(args.ready_file, args.timeout, args.pid):
        return 0
    print(f"lab: {args.ready_file} did not appear within {args.timeout:g} s", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
