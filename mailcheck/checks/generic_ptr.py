"""Does a PTR name look generic (assigned by an ISP or cloud, not chosen for a mail server)?

Receivers penalise such names even when FCrDNS passes: Yahoo asks for "non-generic" reverse
DNS, Outlook.com may refuse "dynamic IP space". The heuristic: the address itself appears in
the name, a label says dynamic/dsl/pool/..., or the name is a cloud provider's default.
"""

from __future__ import annotations

import ipaddress
import re

_DYNAMIC_WORDS = frozenset(
    {
        "dyn",
        "dynamic",
        "dhcp",
        "pool",
        "dsl",
        "adsl",
        "vdsl",
        "xdsl",
        "cable",
        "ppp",
        "pppoe",
        "dialup",
        "dial",
        "broadband",
        "residential",
        "cust",
        "customer",
        "client",
        "clients",
        "dip",
        "dynip",
    }
)

_CLOUD_DEFAULT_SUFFIXES = (
    "compute.amazonaws.com",
    "compute-1.amazonaws.com",
    "bc.googleusercontent.com",
    "your-server.de",
    "linodeusercontent.com",
    "ip.linodeusercontent.com",
    "vultrusercontent.com",
    "cloudapp.azure.com",
    "cloudapp.net",
)


def generic_reason(ip: str, name: str) -> str | None:
    """Why `name` looks generic for `ip`, or None when it looks chosen."""
    name = name.lower().rstrip(".")
    for suffix in _CLOUD_DEFAULT_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return f"it is a cloud provider's default name (*.{suffix})"
    address = ipaddress.ip_address(ip)
    if _contains_address(address, name):
        return "it contains the IP address"
    labels = name.split(".")
    # Only the host part: the registered domain (the last two labels) may say anything.
    words = {w for label in labels[:-2] for w in re.split(r"[-_]", label) if w}
    words |= {re.sub(r"\d+", "", w) for w in words}
    hits = sorted(words & _DYNAMIC_WORDS)
    if hits:
        return f"it says {hits[0]!r}, a word ISPs use for dynamic or customer addresses"
    return None


def _contains_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, name: str) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        hexdigits = address.exploded.replace(":", "")
        compact = re.sub(r"[^0-9a-f]", "", name)
        # The interface identifier (last 64 bits) spelled out is the usual generic form.
        return hexdigits[16:] in compact or address.compressed.replace(":", "-") in name
    octets = [int(o) for o in str(address).split(".")]
    numbers = [int(n) for n in re.findall(r"\d+", name)]
    for window in (octets, octets[::-1]):
        for start in range(len(numbers) - 3):
            if numbers[start : start + 4] == window:
                return True
    packed = "".join(f"{o:03d}" for o in octets)
    hexed = "".join(f"{o:02x}" for o in octets)
    return packed in name or hexed in name or str(int(address)) in name
