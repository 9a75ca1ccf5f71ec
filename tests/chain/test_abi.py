"""The fast calldata encoder equals eth_abi byte for byte and rejects what eth_abi rejects."""

from __future__ import annotations

import secrets

import pytest

from medledger.chain.abi import StaticTupleArrayEncoder, load_artifact
from medledger.chain.types import Access, RecordAnchor
from medledger.vocabulary import AuthKind, Purpose, RecordClass


def _records(n: int) -> list[RecordAnchor]:
    return [
        RecordAnchor(
            secrets.token_bytes(32), "0x" + secrets.token_hex(20), secrets.token_bytes(32), RecordClass(1 + i % 13), i
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [0, 1, 7, 300])
def test_anchor_records_calldata_matches_eth_abi(n):
    fn = load_artifact("RecordRegistry").abi.function("anchorRecords")
    rows = [r.as_tuple() for r in _records(n)]
    assert StaticTupleArrayEncoder(fn).encode(rows) == fn.encode((rows,))


def test_log_accesses_calldata_matches_eth_abi():
    fn = load_artifact("AccessLog").abi.function("logAccesses")
    rows = [
        Access(
            "0x" + secrets.token_hex(20),
            "0x" + secrets.token_hex(20),
            secrets.token_bytes(32),
            Purpose(1 + i % 7),
            AuthKind(1 + i % 4),
            2**256 - 1 - i,
            secrets.token_bytes(32),
        ).as_tuple()
        for i in range(50)
    ]
    assert StaticTupleArrayEncoder(fn).encode(rows) == fn.encode((rows,))


@pytest.mark.parametrize(
    "bad",
    [
        (b"\x01" * 31, "0x" + "11" * 20, b"\x02" * 32, 3, 0),  # short bytes32
        (b"\x01" * 32, "0x" + "11" * 19, b"\x02" * 32, 3, 0),  # short address
        (b"\x01" * 32, "0x" + "11" * 20, b"\x02" * 32, 256, 0),  # uint8 overflow
        (b"\x01" * 32, "0x" + "11" * 20, b"\x02" * 32, 3, -1),  # negative uint64
        (b"\x01" * 32, "0x" + "11" * 20, b"\x02" * 32, 3),  # missing field
    ],
)
def test_out_of_range_values_are_rejected(bad):
    fn = load_artifact("RecordRegistry").abi.function("anchorRecords")
    with pytest.raises(ValueError):
        StaticTupleArrayEncoder(fn).encode([bad])


def test_only_flat_static_tuple_arrays_are_accepted():
    with pytest.raises(ValueError):
        StaticTupleArrayEncoder(load_artifact("RecordRegistry").abi.function("amendRecords"))
    with pytest.raises(ValueError):
        StaticTupleArrayEncoder(load_artifact("RecordRegistry").abi.function("eraseRecords"))
