"""The Address type: checksummed once at the edge, then compared, hashed and serialised as plain text."""

from __future__ import annotations

import json
import pickle
import sqlite3

import pytest
from eth_utils import to_checksum_address

from medledger.addresses import ZERO_ADDRESS, Address, checksummed, eip55
from medledger.errors import InputError

# EIP-55's own test vector.
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_every_spelling_becomes_the_checksummed_one() -> None:
    for spelling in (CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper()):
        a = Address(spelling)
        assert type(a) is Address and a == CHECKSUMMED
    assert Address(CHECKSUMMED.lower()) == Address(CHECKSUMMED)
    assert {Address(CHECKSUMMED.lower()): 1}[Address(CHECKSUMMED)] == 1
    # Equal to the checksummed text too, with the same hash: Addresses and checksummed str keys mix.
    assert hash(Address(CHECKSUMMED.lower())) == hash(CHECKSUMMED)


def test_an_address_passes_through_unchanged() -> None:
    a = Address(CHECKSUMMED)
    assert Address(a) is a
    assert checksummed(a, "patient") is a


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x1234", "patient must be 0x followed by 40 hex digits, got '0x1234'"),
        (CHECKSUMMED[2:] + "00", "patient must be 0x followed by 40 hex digits"),
        ("0X" + CHECKSUMMED[2:], "patient must be 0x followed by 40 hex digits"),
        ("0x" + "g" * 40, "patient must be 0x followed by 40 hex digits"),
        (" " + CHECKSUMMED[1:] + " ", "patient must be 0x followed by 40 hex digits"),
        (None, "patient must be 0x followed by 40 hex digits, got None"),
        (b"\x00" * 20, "patient must be 0x followed by 40 hex digits"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "patient has a wrong EIP-55 checksum"),
    ],
)
def test_bad_input_is_an_invalid_address(value: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        Address(value, "patient")  # type: ignore[arg-type]
    assert err.value.code == "invalid_address" and err.value.exit_code == 2
    assert message in err.value.message


def test_long_garbage_is_not_echoed_whole() -> None:
    with pytest.raises(InputError) as err:
        Address("x" * 10_000)
    assert len(err.value.message) < 120


def test_eip55_is_the_cached_trusted_path() -> None:
    stored = "0x" + "ab" * 20
    a = eip55(stored)
    assert type(a) is Address and a == to_checksum_address(stored)
    assert eip55(stored) is a  # one keccak per distinct address, then a dictionary hit
    assert ZERO_ADDRESS == "0x" + "00" * 20 and type(ZERO_ADDRESS) is Address
    with pytest.raises(ValueError):
        eip55("0x" + "zz" * 20)


def test_an_address_goes_wherever_text_goes() -> None:
    a = Address(CHECKSUMMED.lower())
    assert json.loads(json.dumps({a: a})) == {CHECKSUMMED: CHECKSUMMED}
    assert f"{a}" == CHECKSUMMED and a.lower() == CHECKSUMMED.lower() and type(a.lower()) is str
    back = pickle.loads(pickle.dumps(a))
    assert type(back) is Address and back == a
    with sqlite3.connect(":memory:") as db:
        assert db.execute("SELECT ?", (a,)).fetchone() == (CHECKSUMMED,)
