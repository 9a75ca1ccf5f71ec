"""IPFS content identifiers: CIDv1, raw codec, sha2-256, base32 lower multibase.

``cid_for(data)`` equals what ``ipfs add --cid-version=1 --raw-leaves`` prints for a file that fits in one chunk
(Kubo's default chunker is 256 KiB): the file is then a single raw block, and its CID is
``"b" + base32(varint(1) ‖ varint(0x55 raw) ‖ varint(0x12 sha2-256) ‖ varint(32) ‖ sha256(data))``.
A bigger file becomes a UnixFS DAG whose root is a dag-pb (0x70) CID over the chunk links, which cannot be
computed from ``sha256(data)``. The node's local store therefore addresses every blob, whatever its size, by
this raw CID, while its Kubo backend records whatever CID Kubo returns; both verify content on read. This module
is in the common package because node stores and the auditor (:mod:`medledger.blobs`) name blobs the same way.

Parsing is strict on purpose (CIDs are database keys and file names): lower-case base32 multibase only,
minimal varints, sha2-256 multihashes of 32 bytes, and the raw and dag-pb codecs. CIDv0 (``Qm...``) is refused:
every MedLedger store writes CIDv1.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from medledger.errors import InputError

CID_VERSION = 1
RAW_CODEC = 0x55
DAG_PB_CODEC = 0x70
SHA2_256 = 0x12
SHA2_256_BYTES = 32
MULTIBASE_BASE32 = "b"
_SUPPORTED_CODECS = frozenset({RAW_CODEC, DAG_PB_CODEC})
#: Longest CID string accepted; far above any sha2-256 CIDv1 (59 chars), short enough to bound parsing work.
MAX_CID_CHARS = 128

_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_B32_INDEX = {c: i for i, c in enumerate(_B32_ALPHABET)}
_RAW_SHA256_PREFIX = bytes((CID_VERSION, RAW_CODEC, SHA2_256, SHA2_256_BYTES))


def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lower-case alphabet, no padding (the multibase ``b`` encoding)."""
    # The C codec: the pure-Python bit loop cost ~15 µs per CID, 8% of ingest at 5,000 records/s.
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    """Inverse of :func:`b32encode`; ``InputError`` on characters outside the alphabet or non-canonical input."""
    if not text:
        return b""
    value = 0
    for ch in text:
        idx = _B32_INDEX.get(ch)
        if idx is None:
            raise InputError("invalid character in base32 text", details={"char": ch})
        value = (value << 5) | idx
    total_bits = len(text) * 5
    nbytes, pad = divmod(total_bits, 8)
    # A canonical encoding never needs 5 or more padding bits, and they are zero; anything else would give two
    # strings for the same bytes, i.e. two names for one blob.
    if pad >= 5 or value & ((1 << pad) - 1):
        raise InputError("base32 text is not canonical")
    return (value >> pad).to_bytes(nbytes, "big")


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    start = pos
    while True:
        if pos >= len(buf) or pos - start >= 9:
            raise InputError("CID has a truncated or oversized varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            if byte == 0 and pos - start > 1:
                raise InputError("CID has a non-minimal varint")
            return value, pos
        shift += 7


@dataclass(frozen=True, slots=True)
class Cid:
    """A parsed CIDv1 with a sha2-256 multihash."""

    codec: int
    digest: bytes

    @property
    def is_raw(self) -> bool:
        """True when the CID names the bytes themselves (so ``sha256(data) == digest`` verifies them)."""
        return self.codec == RAW_CODEC

    def encode(self) -> str:
        body = (
            _encode_varint(CID_VERSION)
            + _encode_varint(self.codec)
            + _encode_varint(SHA2_256)
            + _encode_varint(SHA2_256_BYTES)
            + self.digest
        )
        return MULTIBASE_BASE32 + b32encode(body)

    def __str__(self) -> str:
        return self.encode()


def cid_from_digest(digest: bytes) -> str:
    """Raw CIDv1 for a sha2-256 ``digest`` already computed by the caller."""
    if len(digest) != SHA2_256_BYTES:
        raise InputError("a sha2-256 digest is 32 bytes")
    return MULTIBASE_BASE32 + b32encode(_RAW_SHA256_PREFIX + digest)


def cid_for(data: bytes) -> str:
    """Raw CIDv1 (sha2-256, base32) of ``data``."""
    return cid_from_digest(hashlib.sha256(data).digest())


def parse_cid(text: str) -> Cid:
    """Parse and validate a CID string; ``InputError`` for anything this system does not write."""
    if not isinstance(text, str) or not text:
        raise InputError("CID must be a non-empty string")
    if len(text) > MAX_CID_CHARS:
        raise InputError("CID is too long")
    if text.startswith("Qm"):
        raise InputError("CIDv0 is not supported; expected a base32 CIDv1 ('b...')", details={"cid": text})
    if text[0] != MULTIBASE_BASE32:
        raise InputError("CID must use the base32 lower-case multibase ('b' prefix)", details={"cid": text})
    raw = b32decode(text[1:])
    version, pos = _decode_varint(raw, 0)
    if version != CID_VERSION:
        raise InputError("unsupported CID version", details={"cid": text, "version": version})
    codec, pos = _decode_varint(raw, pos)
    if codec not in _SUPPORTED_CODECS:
        raise InputError("unsupported CID codec", details={"cid": text, "codec": codec})
    hash_code, pos = _decode_varint(raw, pos)
    length, pos = _decode_varint(raw, pos)
    if hash_code != SHA2_256 or length != SHA2_256_BYTES:
        raise InputError("CID multihash must be sha2-256 of 32 bytes", details={"cid": text})
    digest = raw[pos:]
    if len(digest) != SHA2_256_BYTES:
        raise InputError("CID digest length does not match its multihash", details={"cid": text})
    return Cid(codec=codec, digest=bytes(digest))


def validate_cid(text: str) -> str:
    """Return ``text`` if it is a valid CID (strict parsing guarantees one spelling per CID)."""
    parse_cid(text)
    return text
