"""DNSSEC-sign lab zones at test time with dnspython (ECDSAP256SHA256, NSEC chain).

Keys are made fresh for every run and never written anywhere: the zone file gets the public
DNSKEY and the signatures, the caller gets a trust anchor to hand to a validating resolver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.dnssec
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec
from dns.dnssectypes import Algorithm
from dns.rdtypes.ANY.DNSKEY import DNSKEY

from tests.lab.dnsserver import zone_origin

ALGORITHM = Algorithm.ECDSAP256SHA256
CSK_FLAGS = 257  # ZONE | SEP: one combined signing key that is also the trust anchor
EXPIRED = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 31, tzinfo=UTC))
"""A signature validity period long past: validators must call such data bogus."""


@dataclass(frozen=True)
class SignedZone:
    """A zone file written signed, and what a resolver needs to trust it."""

    origin: str
    """The zone apex, absolute and lower case (``secure.test.``)."""
    path: Path
    """The signed zone file."""
    dnskey: DNSKEY
    """The public key that signed every rrset."""

    @property
    def trust_anchor(self) -> str:
        """The key as unbound's ``trust-anchor:`` wants it: ``<zone> DNSKEY 257 3 13 <b64>``."""
        # One unbroken base64 word: the anchor stays one token in a quoted config string.
        return f"{self.origin} DNSKEY {self.dnskey.to_text(chunksize=0)}"


def sign_zone_file(
    source: Path,
    dest_dir: Path,
    validity: tuple[datetime, datetime] | None = None,
) -> SignedZone:
    """Sign the unsigned zone file ``source`` into ``dest_dir``, under the same file name.

    By default signatures run from an hour ago to a day ahead, so clock skew between signer
    and validator never matters; pass a past ``validity`` (e.g. ``EXPIRED``) for a bogus zone.
    """
    now = datetime.now(UTC)
    inception, expiration = validity or (now - timedelta(hours=1), now + timedelta(days=1))
    origin = zone_origin(source)  # the lab server's own rule, so both agree on the apex
    zone = dns.zone.from_file(str(source), origin=origin, relativize=False)
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), ALGORITHM, flags=CSK_FLAGS)
    # sign_zone adds the DNSKEY, signs every rrset and builds the NSEC chain with its RRSIGs
    # (dnspython has no NSEC3 signer), so negative answers can be validated as well.
    dns.dnssec.sign_zone(zone, keys=[(key, dnskey)], inception=inception, expiration=expiration)
    dest = dest_dir / source.name
    zone.to_file(str(dest), relativize=False, want_origin=True)
    return SignedZone(origin.to_text().lower(), dest, dnskey)
