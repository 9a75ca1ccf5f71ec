"""Ledger address conversions used on hot paths."""

from __future__ import annotations

from functools import lru_cache

from eth_utils import is_address, to_canonical_address

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
