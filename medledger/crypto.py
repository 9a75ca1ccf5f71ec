"""Key material helpers shared by node, indexer and clients.

Encryption keys of members and patients are X25519 (32-byte public keys on chain): wrapping a record key to
X25519 runs ~10x faster here than ECIES on secp256k1 and keeps ledger (signing) and encryption keys apart.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def x25519_public_key(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_from_seed(seed: bytes, *, label: bytes = b"medledger/x25519/v1") -> X25519PrivateKey:
    """Derive an X25519 key deterministically from secret ``seed`` (dev fixtures and key recovery)."""
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(label + seed).digest())
