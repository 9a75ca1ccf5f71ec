"""Ledger addresses: the :class:`Address` type, and conversions used on hot paths.

An :class:`Address` is always the EIP-55 checksummed spelling, so two Addresses are equal exactly when they
name the same account, and plain ``==``, ``hash`` and dictionary keys work without lowercasing either side.
It is made once, where a value enters: ``Address(text, what)`` for input (a wrong checksum is refused as a typo),
:func:`eip55` for values from a trusted source already known to be 20-byte hex (the index's lowercase columns,
decoded chain data). Both are cached, so the keccak the checksum needs is paid once per distinct address.

Being a ``str``, an Address goes wherever text goes (JSON, SQL parameters, URLs, f-strings); ``.lower()``
gives the lowercase hex the index stores. (msgspec's encoders refuse ``str`` subclasses: pass ``str(a)``.)
"""

from __future__ import annotations

from functools import lru_cache

from eth_utils import is_address, to_canonical_address, to_checksum_address

from medledger.errors import InputError

__all__ = ["ZERO_ADDRESS", "Address", "address_bytes", "checksummed", "eip55"]


class Address(str):
    """A 20-byte ledger address in its EIP-55 checksummed form.

    ``Address(value, what)`` accepts a ``0x``-prefixed 40-digit hex string in one case (lower or upper: EIP-55
    reads those as unchecksummed) or correctly checksummed (mixed case with a wrong checksum usually means a
    typo), and raises ``InputError`` with code ``invalid_address`` otherwise, naming ``what`` in the message.
    An Address passed in is returned as is.
    """

    __slots__ = ()

    def __new__(cls, value: str, what: str = "address") -> Address:
        if type(value) is Address:
            return value
        try:
            if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
                raise ValueError
            out = eip55(value)  # ValueError for non-hex digits
        except ValueError:
            shown = repr(value) if len(repr(value)) <= 50 else repr(value)[:49] + "…"
            raise InputError(
                f"{what} must be 0x followed by 40 hex digits, got {shown}", code="invalid_address"
            ) from None
        if out != value and value[2:] != value[2:].lower() and value[2:] != value[2:].upper():
            raise InputError(f"{what} has a wrong EIP-55 checksum: {value}", code="invalid_address")
        return out


@lru_cache(maxsize=16384)
def eip55(address: str) -> Address:
    """The :class:`Address` of a well-formed hex address from a trusted source (any case; a mixed-case input's
    checksum is not checked, it is recomputed). ``ValueError`` if it is not 20-byte hex.

    eth_utils computes a keccak per call (~30 µs); query results repeat the same few addresses on every row
    (one patient, a handful of custodians), so a timeline page of 50 entries spent ~3 ms here uncached."""
    return str.__new__(Address, to_checksum_address(address))


#: The zero address, which the contracts use for "none" (no relayer, no custodian).
ZERO_ADDRESS = eip55("0x" + "00" * 20)


def checksummed(value: str, what: str) -> Address:
    """``Address(value, what)``: the edge check for input (``InputError`` code ``invalid_address``)."""
    return Address(value, what)


@lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    """The 20 bytes of a hex address (any case), validated once per distinct address.

    eth_utils validates on every call (~25 µs); ingest converts the same custodian address twice per record,
    so the answer is cached.
    """
    if not isinstance(address, str) or not is_address(address):
        raise InputError("not a 20-byte hex address", details={"address": str(address)[:64]})
    return to_canonical_address(address)
