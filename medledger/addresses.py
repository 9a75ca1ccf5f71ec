"""Ledger address conversions used on hot paths."""

from __future__ import annotations

from functools import lru_cache

from eth_utils import is_address, to_canonical_address, to_checksum_address

from medledger.errors import InputError


@lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    """The 20 bytes of a hex address (any case), validated once per distinct address.

    eth_utils validates on every call (~25 µs); ingest converts the same custodian address twice per record,
    so the answer is cached.
    """
    if not isinstance(address, str) or not is_address(address):
        raise InputError("not a 20-byte hex address", details={"address": str(address)[:64]})
    return to_canonical_address(address)


@lru_cache(maxsize=16384)
def eip55(address: str) -> str:
    """The EIP-55 checksummed form of a well-formed hex address (as stored: lowercase ``0x`` hex).

    eth_utils computes a keccak per call (~30 µs); query results repeat the same few addresses on every row
    (one patient, a handful of custodians), so a timeline page of 50 entries spent ~3 ms here uncached."""
    return to_checksum_address(address)


def checksummed(value: str, what: str) -> str:
    """``value`` as a checksummed address (``InputError`` code ``invalid_address`` otherwise). All-lower-case
    is accepted; mixed case must be a valid EIP-55 checksum, since a wrong one usually means a typo."""
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise InputError(f"{what} must be a 0x-prefixed 20-byte address", code="invalid_address")
    try:
        out = to_checksum_address(value)
    except ValueError:
        raise InputError(f"{what} is not a valid address", code="invalid_address") from None
    if value[2:] != value[2:].lower() and value != out:
        raise InputError(f"{what} has a wrong EIP-55 checksum", code="invalid_address")
    return out
