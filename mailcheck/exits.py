"""Exit codes and the one line every non-zero exit prints, shared by all commands.

0 nothing at or above --fail-on; 1 something is; 2 bad usage or input; 3 the run could not
complete (no resolver answered, the queue or configuration could not be read).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


def say(line: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    print(f"mailcheck: {line}", file=sys.stderr)


def fail(code: int, line: str) -> NoReturn:
    """Say why and exit with `code` (usage errors read `mailcheck: error: ...`)."""
    say(f"error: {line}" if code == EXIT_USAGE else line)
    raise typer.Exit(code)
