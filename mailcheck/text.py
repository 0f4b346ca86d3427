"""Text from servers and zones made safe to show: control characters written as `\\xNN`."""

from __future__ import annotations

_CONTROLS = (*range(0x20), 0x7F, *range(0x80, 0xA0))
"""C0 controls, DEL and C1 controls (U+009B is a terminal's one-character CSI)."""
_TABLES: dict[str, dict[int, str]] = {}


def escape_controls(text: str, keep: str = "\t") -> str:
    """`text` with every control character but those in `keep` written as `\\xNN`.

    A server's greeting or a zone's TXT record may hold ESC sequences: shown escaped, they
    reach a person's terminal as text, never as commands.
    """
    table = _TABLES.get(keep)
    if table is None:
        table = {c: f"\\x{c:02x}" for c in _CONTROLS if chr(c) not in keep}
        _TABLES[keep] = table
    return text.translate(table)
