"""The hand-written decoders agree with eth_abi's generic decoding of the same logs."""

from __future__ import annotations

import random

from eth_abi import encode
from eth_utils import to_checksum_address

from indexer.decode import event_specs
from medledger.chain.abi import load_artifact


def _value(typ: str, rng: random.Random):
    if typ == "address":
        return to_checksum_address("0x" + rng.randbytes(20).hex())
    if typ == "bytes32":
        return rng.randbytes(32)
    if typ == "bool":
        return rng.random() < 0.5
    bits = int(typ[4:] or 256)
    return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits)])


def _hex(v) -> str:
    return "0x" + v.hex() if isinstance(v, bytes) else v.lower() if isinstance(v, str) else v


def test_fast_decoders_match_eth_abi():
    rng = random.Random(4)
    specs = event_specs()
    checked = 0
    for contract in ("RecordRegistry", "ConsentRegistry", "AccessLog"):
        for ev in load_artifact(contract).abi.events.values():
            spec = specs[contract]["0x" + ev.topic0.hex()]
            if spec.table == "governance_events":
                continue
            for _ in range(20):
                values = {name: _value(typ, rng) for name, typ, _ in ev.params}
                topics = ["0x" + ev.topic0.hex()] + [
                    "0x" + encode([typ], [values[name]]).hex() for name, typ, idx in ev.params if idx
                ]
                data = encode(list(ev.data_types), [values[n] for n, _, idx in ev.params if not idx])
                log = {"topics": topics, "data": "0x" + data.hex(), "transactionHash": "0x", "logIndex": "0x0"}
                row = spec.row(log, 123)
                generic = ev.decode([bytes.fromhex(t[2:]) for t in topics], data)
                decoded = {k: _hex(v) for k, v in generic.items()}
                got = set(_hex(v) if not isinstance(v, str) or not v.isdigit() else int(v) for v in row.values())
                for v in decoded.values():
                    assert v in got, (ev.name, v, row)
                checked += 1
    assert checked == 9 * 20


def test_malformed_log_is_a_precise_error():
    import pytest

    from indexer.errors import BadLog

    spec = next(s for s in event_specs()["AccessLog"].values())
    with pytest.raises(BadLog, match="expected 4 and 224"):
        spec.row({"topics": ["0x00"], "data": "0x", "transactionHash": "0xab", "logIndex": "0x1"}, 0)


def test_row_layout_matches_schema():
    """The decoders emit tuples in KEY + COLUMNS order; every table column must be covered exactly once, or
    the raw executemany would write values into the wrong columns. Status columns (set by later events) are
    left out of the inserts and must be nullable."""
    from indexer.decode import COLUMNS, KEY, STATUS_COLUMNS
    from indexer.models import EVENT_TABLES

    assert set(COLUMNS) == {t.name for t in EVENT_TABLES}
    for table in EVENT_TABLES:
        status = STATUS_COLUMNS.get(table.name, ())
        assert sorted((*KEY, *COLUMNS[table.name], *status)) == sorted(c.name for c in table.columns), table.name
        assert all(table.c[name].nullable for name in status), table.name
