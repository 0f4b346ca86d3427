"""One DKIM key record (RFC 6376 §3.6.1, RFC 8301, RFC 8463): parsed, then judged. No DNS.

`parse_key_record` turns the text of one TXT record at `<selector>._domainkey.<domain>` into a
`KeyRecord`: the tags, the key it holds (type, size, encoding) and the faults that make
receivers discard it. `judge_key` says what that means for delivery, as findings; judging the
selectors together (which exist, revoked beside usable) is the dkim check's part.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailcheck.model import Finding, Severity

CHECK = "dkim"
RFC_KEY = "RFC 6376 §3.6.1"
MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers must not accept signatures with smaller keys
GOOD_RSA_BITS = 2048  # RFC 8301 §3.2: signers SHOULD use at least this
MAX_RSA_BITS = 4096  # RFC 8301 §3.2: verifiers only have to handle keys up to this

ED25519_KEY_BYTES = 32  # RFC 8463 §4.2: the raw public key, not an ASN.1 structure
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): a common publishing mistake.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")  # RFC 6376 §3.2: ALPHA *ALNUMPUNC
_LEADING_VERSION = re.compile(r"\s*v\s*=\s*([^;]*)")
_WHITESPACE = re.compile(r"\s+")
TXT_STRING_MAX = 255  # octets in one DNS character-string (RFC 1035 §3.3)


class KeyKind(enum.StrEnum):
    """What a TXT record at a selector is."""

    KEY = "key"
    """A DKIM key record (it may still have faults)."""
    NOT_DKIM = "not-dkim"
    """A record that starts with `v=` and another value (e.g. `v=spf1`): receivers discard it."""


class KeyFault(enum.StrEnum):
    """Something that makes receivers discard the record or its key; the value is the code."""

    SYNTAX = "dkim.syntax"
    """Not a valid tag list: a spec without `=`, a bad tag name, a tag given twice."""
    BAD_VERSION = "dkim.bad-version"
    """`v=` is not the first tag, or its value is not exactly `DKIM1`."""
    NO_P_TAG = "dkim.no-p-tag"
    """The required `p=` tag is missing."""
    UNKNOWN_KEY_TYPE = "dkim.unknown-key-type"
    """`k=` names a key type other than `rsa` and `ed25519`."""
    KEY_INVALID = "dkim.key-invalid"
    """`p=` is not base64, or does not decode to a key of the declared type."""
    SHA1_ONLY = "dkim.sha1-only"
    """`h=` does not allow sha256, the only hash left (RFC 8301 §3.1)."""
    SERVICE_NOT_EMAIL = "dkim.service-not-email"
    """`s=` lists neither `email` nor `*`."""


class KeyFormat(enum.StrEnum):
    """How the key in `p=` is encoded."""

    SPKI = "spki"
    """DER SubjectPublicKeyInfo: what nearly every signer publishes and verifier expects."""
    PKCS1 = "pkcs1"
    """A bare DER RSAPublicKey (PKCS#1), as RFC 6376 §3.6.1's text literally says."""
    RAW = "raw"
    """The raw 32-byte Ed25519 key of RFC 8463."""


@dataclass(frozen=True)
class Fault:
    """One fault and what exactly is wrong, in words."""

    code: KeyFault
    """Which fault."""
    detail: str
    """What is wrong, for a person, e.g. "`h=sha1` allows only SHA-1"."""


@dataclass(frozen=True)
class KeyRecord:
    """One parsed TXT record from a selector."""

    text: str
    """The record: its strings joined with no separator (RFC 6376 §3.6.2.2)."""
    kind: KeyKind
    """A DKIM key record, or something else published at the selector."""
    tags: tuple[tuple[str, str], ...] = ()
    """The tags in record order, values with surrounding whitespace removed."""
    faults: tuple[Fault, ...] = ()
    """Why receivers would discard the record or its key; empty when it is usable."""
    key_type: str = "rsa"
    """The `k=` value, lower case (RFC 6376's default is `rsa`)."""
    key_format: KeyFormat | None = None
    """How `p=` encodes the key; None when there is no key that decodes."""
    key_bits: int | None = None
    """The RSA modulus size in bits; None for Ed25519 and undecodable keys."""
    revoked: bool = False
    """`p=` is empty: the key was withdrawn (RFC 6376 §3.6.1)."""
    flags: tuple[str, ...] = ()
    """`t=` flags, lower case (`y` testing, `s` strict)."""

    @property
    def testing(self) -> bool:
        """`t=y`: receivers treat the domain's mail as unsigned (RFC 6376 §3.6.1)."""
        return "y" in self.flags

    @property
    def has_key(self) -> bool:
        """A key decoded from `p=` (none when revoked, missing or broken)."""
        return self.key_format is not None

    @property
    def usable(self) -> bool:
        """A key receivers verify with: sound, not testing, not under 1024 bits."""
        bits = self.key_bits if self.key_bits is not None else MIN_RSA_BITS
        return self.has_key and not self.faults and not self.testing and bits >= MIN_RSA_BITS

    def tag(self, name: str) -> str | None:
        """The value of a tag (names are case-sensitive, RFC 6376 §3.2), or None."""
        return next((value for key, value in self.tags if key == name), None)


def join_txt_strings(strings: tuple[bytes, ...]) -> str:
    """One TXT record's character-strings as one text, joined with no separator.

    RFC 6376 §3.6.2.2. Bytes that are not UTF-8 become U+FFFD: they are invalid in every tag a
    receiver uses, so they make the record fail where they matter and cannot crash anything.
    """
    return b"".join(strings).decode("utf-8", errors="replace")


def parse_tag_list(text: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Split `tag=value; ...` (RFC 6376 §3.2) into pairs, or say why the text is not one.

    Whitespace is allowed around names, `=` and values; a trailing `;` is allowed; a tag given
    twice makes the whole list invalid.
    """
    specs = text.split(";")
    if specs and not specs[-1].strip():
        specs.pop()  # RFC 6376 §3.2: tag-list = tag-spec *( ";" tag-spec ) [ ";" ]
    pairs: list[tuple[str, str]] = []
    for spec in specs:
        name, equals, value = spec.partition("=")
        name = name.strip()
        if not equals:
            shown = _short(spec.strip())
            return (), (f"`{shown}` is not a tag=value pair" if shown else "it has an empty tag")
        if not name:
            return (), f"`={_short(value.strip())}` has no tag name"
        if not _TAG_NAME.match(name):
            return (), f"`{_short(name)}` is not a valid tag name"
        if any(name == seen for seen, _ in pairs):
            return (), f"the tag `{name}=` appears twice"
        pairs.append((name, value.strip()))
    if not pairs:
        return (), "it is empty"
    return tuple(pairs), None


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _colon_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip().lower() for item in value.split(":") if item.strip())


def parse_key_record(text: str) -> KeyRecord:
    """Parse one key record's text (strings already joined) into facts and faults."""
    leading = _LEADING_VERSION.match(text)
    if leading:
        version = leading.group(1).strip()
        # RFC 6376 §3.6.1: records beginning with a v= tag with any other value MUST be
        # discarded. A value that still says DKIM is a broken key record, not something else.
        if version != "DKIM1" and not version.upper().startswith("DKIM"):
            return KeyRecord(text, KeyKind.NOT_DKIM)
    tags, error = parse_tag_list(text)
    if error is not None:
        if '"' in text or "\\" in text:
            error += "; it contains quote or backslash characters, usually a zone-file quoting slip"
        return KeyRecord(text, KeyKind.KEY, faults=(Fault(KeyFault.SYNTAX, error),))
    record = KeyRecord(text, KeyKind.KEY, tags)
    version_fault = _version_fault(record)
    if version_fault is not None:
        return KeyRecord(text, KeyKind.KEY, tags, (version_fault,))
    flags = _colon_list(record.tag("t") or "")
    hashes = _colon_list(h) if (h := record.tag("h")) is not None else None
    services = _colon_list(s) if (s := record.tag("s")) is not None else None
    key_type = (record.tag("k") or "rsa").lower()
    faults: list[Fault] = []
    public = record.tag("p")
    key_format: KeyFormat | None = None
    bits: int | None = None
    if public is None:
        faults.append(Fault(KeyFault.NO_P_TAG, "it has no `p=` tag, which is required"))
    else:
        # RFC 6376 §3.6.1: whitespace (FWS) may appear anywhere inside the base64 of p=.
        public = _WHITESPACE.sub("", public)
        if public and key_type not in ("rsa", "ed25519"):
            faults.append(
                Fault(KeyFault.UNKNOWN_KEY_TYPE, f"`k={key_type}` is not a known key type")
            )
        elif public:
            key_format, bits, key_error = decode_public_key(key_type, public, text)
            if key_error is not None:
                faults.append(Fault(KeyFault.KEY_INVALID, key_error))
    revoked = public == ""  # then h= and s= no longer matter
    if not revoked and hashes is not None and "sha256" not in hashes:
        listed = ":".join(hashes) or "(empty)"
        faults.append(
            Fault(KeyFault.SHA1_ONLY, f"`h={listed}` does not allow sha256, the only usable hash")
        )
    if not revoked and services is not None and "email" not in services and "*" not in services:
        listed = ":".join(services) or "(empty)"
        faults.append(
            Fault(KeyFault.SERVICE_NOT_EMAIL, f"`s={listed}` does not include `email` or `*`")
        )
    return KeyRecord(
        text,
        KeyKind.KEY,
        tags,
        tuple(faults),
        key_type,
        key_format,
        bits,
        revoked,
        flags,
    )


def _version_fault(record: KeyRecord) -> Fault | None:
    """RFC 6376 §3.6.1: v= is optional, but if present it is the first tag and exactly DKIM1."""
    version = record.tag("v")
    if version is None:
        return None
    if record.tags[0][0] != "v":
        return Fault(KeyFault.BAD_VERSION, "`v=` is not the first tag")
    if version != "DKIM1":
        return Fault(KeyFault.BAD_VERSION, f"`v={version}` is not `v=DKIM1`")
    return None


def decode_public_key(
    key_type: str, public: str, record: str = ""
) -> tuple[KeyFormat | None, int | None, str | None]:
    """Decode `p=` (whitespace removed) as a key of `key_type`: (format, RSA bits, error)."""
    hint = ""
    if len(record) == TXT_STRING_MAX:
        hint = "; the record is exactly 255 characters long, so it was probably cut to one string"
    elif '"' in public or "\\" in public:
        hint = "; it contains quote or backslash characters, usually a zone-file quoting slip"
    try:
        der = base64.b64decode(public, validate=True)
    except (binascii.Error, ValueError) as exc:
        return None, None, f"`p=` is not valid base64 ({exc}){hint}"
    if key_type == "ed25519":
        return _decode_ed25519(der)
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None, None, f"`p=` decodes to {len(der)} bytes that are not an RSA public key{hint}"
    if not isinstance(key, rsa.RSAPublicKey):
        kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
        extra = ": for Ed25519 add `k=ed25519` and publish the raw key" if "Ed25519" in kind else ""
        return None, None, f"`p=` holds a key of type {kind or 'unknown'}, not RSA{extra}"
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    key_format = KeyFormat.PKCS1 if der == pkcs1 else KeyFormat.SPKI
    return key_format, key.key_size, None


def _decode_ed25519(raw: bytes) -> tuple[KeyFormat | None, int | None, str | None]:
    if len(raw) != ED25519_KEY_BYTES:
        error = f"`p=` decodes to {len(raw)} bytes; an Ed25519 key is {ED25519_KEY_BYTES}"
        if raw.startswith(_ED25519_SPKI_PREFIX):
            error = "`p=` holds an Ed25519 SubjectPublicKeyInfo; RFC 8463 wants the raw key only"
        return None, None, error
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return None, None, f"`p=` is not a usable Ed25519 key ({exc})"
    return KeyFormat.RAW, None, None


def printable(text: str, limit: int = 0) -> str:
    """Text safe to show on a terminal: control characters escaped, optionally shortened."""
    safe = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return safe if not limit or len(safe) <= limit else safe[: limit - 1] + "…"


def dkim_finding(
    code: str,
    severity: Severity,
    message: str,
    evidence: Mapping[str, Any],
    remedy: str = "",
    rfc: str = "",
) -> Finding:
    """A finding of the dkim check; DNS data in the message is escaped for the terminal."""
    return Finding(CHECK, code, severity, printable(message), evidence, printable(remedy), rfc)


_FAULT_TEXT: dict[KeyFault, tuple[str, str, str]] = {
    KeyFault.SYNTAX: (
        "receivers cannot parse the record, so signatures made with this selector fail",
        "Publish the record as `v=DKIM1; k=rsa; p=<base64 public key>`: tag=value pairs "
        "separated by semicolons, each tag once.",
        "RFC 6376 §3.2",
    ),
    KeyFault.BAD_VERSION: (
        "receivers discard the record, so signatures made with this selector fail",
        "Start the record with exactly `v=DKIM1;`, or leave v= out.",
        RFC_KEY,
    ),
    KeyFault.NO_P_TAG: (
        "there is no key to verify signatures with, so they fail",
        "Add `p=` with the base64 public key of the signing key (from your signer's key "
        "generator or your provider's DKIM page).",
        RFC_KEY,
    ),
    KeyFault.UNKNOWN_KEY_TYPE: (
        "receivers ignore keys of unknown types, so signatures made with it fail",
        "Use `k=rsa` (or leave k= out) for an RSA key, `k=ed25519` for an Ed25519 key.",
        "RFC 6376 §3.6.1, RFC 8463 §4.2",
    ),
    KeyFault.KEY_INVALID: (
        "receivers cannot use the key, so signatures made with it fail",
        "Copy the public key again, whole, from your signer or provider: base64 of the DER "
        "SubjectPublicKeyInfo for RSA, the raw 32-byte key for Ed25519.",
        "RFC 6376 §3.6.1, RFC 8463 §4.2",
    ),
    KeyFault.SHA1_ONLY: (
        "RFC 8301 made rsa-sha1 invalid, so no signature made with this key verifies",
        "Remove `h=` (or set `h=sha256`) and sign with rsa-sha256.",
        "RFC 8301 §3.1",
    ),
    KeyFault.SERVICE_NOT_EMAIL: (
        "receivers do not use a key that is not for email, so signatures made with it fail",
        "Remove `s=` or set `s=email`; a key for another service (e.g. TLS-RPT) needs its own "
        "selector.",
        RFC_KEY,
    ),
}
_ROTATE = (
    "Generate a 2048-bit RSA key, publish it under a new selector, switch signing to it, then "
    "delete this one."
)


def judge_key(key: KeyRecord, where: str, evidence: Mapping[str, Any]) -> list[Finding]:
    """Findings about one key record on its own (pure): faults, RSA size and encoding, `t=y`.

    `where` names the selector for messages; `evidence` goes into every finding. Revocation
    and Ed25519 depend on the domain's other selectors: the dkim check judges those.
    """
    findings = []
    for fault in key.faults:
        consequence, remedy, rfc = _FAULT_TEXT[fault.code]
        message = f"{where}: {fault.detail}; {consequence}."
        found = {**evidence, "detail": fault.detail}
        findings.append(dkim_finding(fault.code, Severity.ERROR, message, found, remedy, rfc))
    if key.has_key:
        findings.extend(_judge_rsa(key, where, evidence))
        if key.testing:
            findings.append(
                dkim_finding(
                    "dkim.testing",
                    Severity.WARNING,
                    f"{where} is in testing mode (`t=y`): receivers treat mail signed with it "
                    "as unsigned, whatever the signature says.",
                    {**evidence, "flags": list(key.flags)},
                    "Remove `y` from `t=` once signing works.",
                    RFC_KEY,
                )
            )
    return findings


def _judge_rsa(key: KeyRecord, where: str, evidence: Mapping[str, Any]) -> list[Finding]:
    """RSA key size and encoding (RFC 8301 §3.2, RFC 6376 erratum 3017)."""
    bits = key.key_bits
    evidence = {**evidence, "key_type": key.key_type, "key_bits": bits}
    findings = []
    if key.key_format is KeyFormat.PKCS1:
        findings.append(
            dkim_finding(
                "dkim.key-pkcs1",
                Severity.WARNING,
                f"The key of {where} is a bare PKCS#1 RSAPublicKey, not the "
                "SubjectPublicKeyInfo nearly every signer publishes; some verifiers reject it "
                "(older dkimpy and go-msgauth; Gmail has been reported to).",
                evidence,
                "Publish the same key as SubjectPublicKeyInfo (`openssl rsa -RSAPublicKey_in "
                "-in key.pub -pubout`); its base64 starts with MII… .",
                "RFC 6376 §3.6.1 (erratum 3017)",
            )
        )
    if bits is None:
        return findings
    if bits < MIN_RSA_BITS:
        code, severity = "dkim.key-too-short", Severity.ERROR
        why = (
            f"receivers must not accept signatures made with keys under {MIN_RSA_BITS} bits, so "
            "mail signed with it counts as unsigned."
        )
    elif bits < GOOD_RSA_BITS:
        code, severity = "dkim.key-under-2048", Severity.WARNING
        why = (
            f"accepted today, but below the {GOOD_RSA_BITS} bits RFC 8301 asks signers for "
            f"(Gmail and Yahoo recommend {GOOD_RSA_BITS})."
        )
    elif bits > MAX_RSA_BITS:
        code, severity = "dkim.key-over-2048", Severity.WARNING
        why = f"receivers only have to verify keys up to {MAX_RSA_BITS} bits."
    elif bits > GOOD_RSA_BITS:
        code, severity = "dkim.key-over-2048", Severity.INFO
        why = "valid, but some receiving gateways verify only up to 2048 bits."
    else:
        return findings
    remedy = _ROTATE
    if code == "dkim.key-over-2048":
        remedy = "If receivers report DKIM failures for this key, sign with a 2048-bit key too."
    message = f"The RSA key of {where} has {bits} bits: {why}"
    findings.append(dkim_finding(code, severity, message, evidence, remedy, "RFC 8301 §3.2"))
    return findings
