"""Key material and envelope encryption shared by node, indexer and clients.

Encryption keys of members and patients are X25519 (32-byte public keys on chain): wrapping a record key to
X25519 runs ~10x faster here than ECIES on secp256k1 and keeps ledger (signing) and encryption keys apart.

Key hierarchy (one record = one random 256-bit *record key*):

* payload: AES-256-GCM under the record key, 96-bit random nonce, associated data binding the record id and the
  custodian, so a ciphertext cannot be replayed under another record's id or institution;
* custodian copy: record key wrapped with AES key wrap (RFC 3394) under the institution's 256-bit KEK;
* patient copy: record key wrapped (AES-KW) under a per-(patient, custodian) *patient KEK* (PKEK), and the PKEK
  wrapped once to the patient's X25519 public key with ECIES (:func:`wrap_to_x25519`).

Why two levels for the patient: an X25519 operation costs ~100 us here (~10k/s), which alone would eat the
node's whole 5,000 records/s ingest budget twice over; AES-KW costs a few microseconds. With the PKEK the
per-record cost is one AES-KW per copy, and one X25519 operation per patient (not per record). The same ECIES
re-wraps a record key to an authorised requester at release time.

Payload size: ``AESGCM`` in ``cryptography`` is one-shot and limits a call to ``2**31 - 1`` bytes (2 GiB), below
GCM's own limit of ``2**39 - 256`` bits (~64 GiB) per (key, nonce). Payloads are in memory once anyway, and the
node caps payload size well below :data:`MAX_RECORD_PLAINTEXT_BYTES`; anything larger would need the streaming
``Cipher(AES, GCM)`` interface and a chunked format (a new version byte).
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from medledger.addresses import address_bytes
from medledger.errors import InputError, MedLedgerError

__all__ = [
    "ECIES_INFO",
    "MAX_RECORD_PLAINTEXT_BYTES",
    "NONCE_BYTES",
    "RECORD_AAD_PREFIX",
    "RECORD_CIPHERTEXT_VERSION",
    "RECORD_ID_BYTES",
    "RECORD_KEY_BYTES",
    "WRAPPED_KEY_BYTES",
    "X25519_WRAP_VERSION",
    "DecryptionError",
    "commitment",
    "decrypt_record",
    "encrypt_record",
    "new_key",
    "record_aad",
    "unwrap_key",
    "unwrap_with_x25519",
    "wrap_key",
    "wrap_to_x25519",
    "x25519_from_seed",
    "x25519_private_from_bytes",
    "x25519_public_key",
]

RECORD_KEY_BYTES = 32
RECORD_ID_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
X25519_KEY_BYTES = 32
#: AES-KW output for a 32-byte key: the key plus the 8-byte integrity block.
WRAPPED_KEY_BYTES = RECORD_KEY_BYTES + 8
RECORD_CIPHERTEXT_VERSION = 0x01
X25519_WRAP_VERSION = 0x01
RECORD_AAD_PREFIX = b"medledger/record/v1"
ECIES_INFO = b"medledger/ecies/v1"
#: Largest payload one ``AESGCM.encrypt`` call accepts (``cryptography``'s limit, not GCM's 64 GiB).
MAX_RECORD_PLAINTEXT_BYTES = 2**31 - 1 - TAG_BYTES

_RECORD_HEADER_BYTES = 1 + NONCE_BYTES
_X25519_WRAP_HEADER_BYTES = 1 + X25519_KEY_BYTES + NONCE_BYTES


class DecryptionError(MedLedgerError):
    """Ciphertext or wrapped key does not authenticate under the given key and context.

    Deliberately one error for wrong key, tampering, wrong context and unknown version: telling them apart
    would hand an attacker an oracle, and the message never contains key material.
    """

    code = "decryption_failed"


# ---------------------------------------------------------------------------------------------- keys


def new_key() -> bytes:
    """A fresh random 256-bit key (record key, PKEK or KEK)."""
    return os.urandom(RECORD_KEY_BYTES)


def x25519_public_key(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_from_seed(seed: bytes, *, label: bytes = b"medledger/x25519/v1") -> X25519PrivateKey:
    """Derive an X25519 key deterministically from secret ``seed`` (dev fixtures and key recovery)."""
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(label + seed).digest())


def x25519_private_from_bytes(raw: bytes) -> X25519PrivateKey:
    """Load a raw 32-byte X25519 private key; ``InputError`` (without the bytes) on a wrong length."""
    if not isinstance(raw, bytes | bytearray) or len(raw) != X25519_KEY_BYTES:
        raise InputError(f"an X25519 private key is {X25519_KEY_BYTES} bytes")
    return X25519PrivateKey.from_private_bytes(bytes(raw))


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != RECORD_KEY_BYTES:
        raise InputError(f"{what} must be {RECORD_KEY_BYTES} bytes")


# ---------------------------------------------------------------------------------------------- records


def record_aad(record_id: bytes, custodian: str) -> bytes:
    """Associated data of a record ciphertext: prefix ‖ record id (32 bytes) ‖ custodian address (20 bytes)."""
    if not isinstance(record_id, bytes | bytearray) or len(record_id) != RECORD_ID_BYTES:
        raise InputError(f"record_id must be {RECORD_ID_BYTES} bytes")
    try:
        custodian_bytes = address_bytes(custodian)
    except InputError:
        raise InputError(
            "custodian must be a 20-byte hex address", details={"custodian": str(custodian)[:64]}
        ) from None
    return RECORD_AAD_PREFIX + bytes(record_id) + custodian_bytes


def encrypt_record(
    plaintext: bytes, *, record_id: bytes, custodian: str, key: bytes | None = None
) -> tuple[bytes, bytearray]:
    """Encrypt a record payload; returns ``(key, ciphertext)`` (the ciphertext as a bytearray, written in place).

    ``ciphertext = 0x01 ‖ nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)``. A fresh key is drawn unless ``key`` is
    given (re-encrypting the same record); the nonce is random either way, so reusing a key for a few
    encryptions stays far inside GCM's random-nonce bound.
    """
    if key is None:
        key = new_key()
    else:
        _check_key(key, "record key")
    if len(plaintext) > MAX_RECORD_PLAINTEXT_BYTES:
        raise InputError("payload too large to encrypt in one piece", details={"max_bytes": MAX_RECORD_PLAINTEXT_BYTES})
    aad = record_aad(record_id, custodian)
    nonce = os.urandom(NONCE_BYTES)
    # Header and ciphertext go into one buffer: prepending the header to encrypt()'s result would copy the
    # whole ciphertext again (~15 ms per 32 MiB DICOM file).
    out = bytearray(_RECORD_HEADER_BYTES + len(plaintext) + TAG_BYTES)
    out[0] = RECORD_CIPHERTEXT_VERSION
    out[1:_RECORD_HEADER_BYTES] = nonce
    AESGCM(key).encrypt_into(nonce, plaintext, aad, memoryview(out)[_RECORD_HEADER_BYTES:])
    return bytes(key), out


def decrypt_record(ciphertext: bytes, *, key: bytes, record_id: bytes, custodian: str) -> bytes:
    """Decrypt what :func:`encrypt_record` produced; ``DecryptionError`` unless it authenticates in this context."""
    _check_key(key, "record key")
    aad = record_aad(record_id, custodian)
    if len(ciphertext) < _RECORD_HEADER_BYTES + TAG_BYTES or ciphertext[0] != RECORD_CIPHERTEXT_VERSION:
        raise DecryptionError("record ciphertext is malformed or of an unknown version")
    view = memoryview(ciphertext)
    try:
        return AESGCM(key).decrypt(bytes(view[1:_RECORD_HEADER_BYTES]), view[_RECORD_HEADER_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("record ciphertext does not authenticate (wrong key, record or custodian)") from None


def commitment(ciphertext: bytes) -> bytes:
    """On-chain commitment: SHA-256 over the *ciphertext* (a hash of low-entropy plaintext could be guessed).

    SHA-256 rather than keccak256: nothing on chain recomputes it, it runs ~5x faster here (large DICOM
    payloads), and it is the digest inside the blob's raw CIDv1, so one hash names the ciphertext both on
    chain and in the content-addressed store.
    """
    return hashlib.sha256(ciphertext).digest()


# ---------------------------------------------------------------------------------------------- AES key wrap


def wrap_key(key: bytes, kek: bytes) -> bytes:
    """RFC 3394 AES key wrap of ``key`` under the 256-bit ``kek`` (40 bytes out for a 32-byte key)."""
    _check_key(kek, "key-encryption key")
    if len(key) < 16 or len(key) % 8:
        raise InputError("a wrapped key must be at least 16 bytes and a multiple of 8")
    return aes_key_wrap(bytes(kek), bytes(key))


def unwrap_key(wrapped: bytes, kek: bytes) -> bytes:
    """Inverse of :func:`wrap_key`; ``DecryptionError`` if the integrity check fails (wrong KEK or tampering)."""
    _check_key(kek, "key-encryption key")
    if len(wrapped) < 24 or len(wrapped) % 8:
        raise DecryptionError("wrapped key is malformed")
    try:
        return aes_key_unwrap(bytes(kek), bytes(wrapped))
    except InvalidUnwrap:
        raise DecryptionError("wrapped key does not unwrap under this key-encryption key") from None


# ---------------------------------------------------------------------------------------------- ECIES (X25519)


def _ecies_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    # Binding both public keys into the KDF makes the wrapping key specific to this recipient and ephemeral,
    # so a wrapped key cannot be re-targeted to another recipient sharing a (low-order) secret.
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=ECIES_INFO + ephemeral_public + recipient_public,
    ).derive(shared)


def wrap_to_x25519(key: bytes, recipient_public: bytes) -> bytes:
    """ECIES-wrap ``key`` to an X25519 public key.

    Format: ``0x01 ‖ ephemeral_pub(32) ‖ nonce(12) ‖ AES-256-GCM(key) ‖ tag(16)``; the header is also the GCM
    associated data, so a swapped ephemeral key or version fails authentication.
    """
    if not isinstance(recipient_public, bytes | bytearray) or len(recipient_public) != X25519_KEY_BYTES:
        raise InputError(f"an X25519 public key is {X25519_KEY_BYTES} bytes")
    recipient_public = bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = x25519_public_key(ephemeral)
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    except ValueError:
        # Low-order points give an all-zero secret, which cryptography refuses.
        raise InputError("recipient X25519 public key is invalid") from None
    header = bytes((X25519_WRAP_VERSION,)) + ephemeral_public
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_ecies_key(shared, ephemeral_public, recipient_public)).encrypt(nonce, bytes(key), header)
    return header + nonce + sealed


def unwrap_with_x25519(wrapped: bytes, recipient_private: X25519PrivateKey) -> bytes:
    """Inverse of :func:`wrap_to_x25519`; ``DecryptionError`` for another recipient, tampering or bad format."""
    if len(wrapped) < _X25519_WRAP_HEADER_BYTES + TAG_BYTES or wrapped[0] != X25519_WRAP_VERSION:
        raise DecryptionError("X25519-wrapped key is malformed or of an unknown version")
    ephemeral_public = bytes(wrapped[1 : 1 + X25519_KEY_BYTES])
    nonce = bytes(wrapped[1 + X25519_KEY_BYTES : _X25519_WRAP_HEADER_BYTES])
    try:
        shared = recipient_private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError:
        raise DecryptionError("X25519-wrapped key carries an invalid ephemeral key") from None
    wrapping_key = _ecies_key(shared, ephemeral_public, x25519_public_key(recipient_private))
    try:
        return AESGCM(wrapping_key).decrypt(
            nonce, bytes(wrapped[_X25519_WRAP_HEADER_BYTES:]), bytes(wrapped[: 1 + X25519_KEY_BYTES])
        )
    except InvalidTag:
        raise DecryptionError("X25519-wrapped key does not authenticate for this recipient") from None
