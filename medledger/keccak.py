"""Keccak-256, the one hash function of Ethereum: addresses, signatures, ABI selectors, Merkle trees.

The C implementation from safe-pysha3 (hashlib-style; ~1.6 µs for a short input here) rather than
pycryptodome's (~8 µs through ctypes, and each of its three foreign calls per hash hands the GIL over: under
load that made Keccak the largest single cost of verifying a signed request). eth-hash, which eth-account and
eth-utils hash through, supports the same module as its ``pysha3`` backend; ``medledger`` selects it at
import (``ETH_HASH_BACKEND``, unless set otherwise) so that every Keccak in the process takes this path.
"""

from __future__ import annotations

from sha3 import keccak_256 as _keccak_256


def keccak256(data: bytes) -> bytes:
    """Keccak-256 of ``data`` (Ethereum's, not NIST SHA3-256: the padding differs)."""
    return _keccak_256(data).digest()


__all__ = ["keccak256"]
