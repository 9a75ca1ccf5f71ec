"""Reorgs on a real Anvil: index a fork, revert it (evm_snapshot/evm_revert), mine different blocks, and the
database must equal a fresh index of the new chain."""

from __future__ import annotations

import pytest

from medledger.chain.types import GrantTerms, RecordAnchor
from medledger.db import make_engine
from medledger.vocabulary import Purpose, RecordClass, RecordStatus, class_mask

from .conftest import dump, make_indexer, rid


@pytest.mark.parametrize("new_fork", ["shorter", "longer"])
def test_reorg_leaves_the_same_database_as_a_fresh_index(chain, engine, tmp_path, new_fork):
    a = chain.as_(chain.hospital_a)
    patient = chain.new_patient()
    base = [RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, 100 + i) for i in range(3)]
    a.records.anchor_records(base)
    ix = make_indexer(engine, chain)
    ix.sync()
    fork_point = chain.rpc.call("evm_snapshot")

    # The fork that will vanish: changes to rows indexed before it (amend, erase, revoke) and new rows.
    now = chain.timestamp()
    grant = chain.as_(patient).consent.grant(
        GrantTerms(chain.hospital_b.address, class_mask([RecordClass.LAB]), Purpose.TREATMENT, 0, now + 9999)
    )
    a.records.amend_records([(base[0].record_id, RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, 1))])
    a.records.erase_records([base[1].record_id], rid())
    chain.as_(patient).consent.revoke(grant)
    for _ in range(4):
        chain.rpc.call("evm_mine", [])
    ix.sync()
    old_head = chain.rpc.block_number()

    chain.rpc.call("evm_revert", [fork_point])
    chain.advance(7)  # a different timestamp, so even an empty block differs
    a = chain.as_(chain.hospital_a)  # a fresh sender: the old one's nonces belong to the lost fork
    a.records.erase_records([base[0].record_id], rid())
    a.records.anchor_records([RecordAnchor(rid(), patient.address, rid(), RecordClass.IMAGING, 5)])
    if new_fork == "longer":
        for _ in range(8):
            chain.rpc.call("evm_mine", [])
    assert (chain.rpc.block_number() < old_head) == (new_fork == "shorter")

    result = ix.sync()
    assert result.reorgs >= 1 and result.rolled_back_blocks >= 1

    ref = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    make_indexer(ref, chain).sync()
    assert dump(engine) == dump(ref)
    from indexer.queries import IndexQueries

    statuses = {e.record_id: e.status for e in IndexQueries(engine).timeline(patient.address).items}
    assert statuses["0x" + base[0].record_id.hex()] is RecordStatus.ERASED
    assert statuses["0x" + base[1].record_id.hex()] is RecordStatus.ACTIVE  # its erasure was on the lost fork
    assert IndexQueries(engine).grants_held(chain.hospital_b.address, active_only=False) == []


def test_reorg_detected_inside_a_fetched_range_is_rolled_back(chain, engine, tmp_path):
    """A range fetched from the old fork but applied after the switch must be refused, not written."""
    a = chain.as_(chain.hospital_a)
    patient = chain.new_patient()
    ix = make_indexer(engine, chain)
    ix.sync()
    snap = chain.rpc.call("evm_snapshot")
    a.records.anchor_records([RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, 1)])
    pos = ix.position().block_number
    stale = ix.fetch_range(pos + 1, chain.rpc.block_number())
    chain.rpc.call("evm_revert", [snap])
    chain.advance(3)
    ix.sync()  # indexes the new fork's block at the same height
    from indexer.errors import ReorgDetected

    with pytest.raises(ReorgDetected):
        ix.apply(stale)
    ref = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    make_indexer(ref, chain).sync()
    assert dump(engine) == dump(ref)
