"""Following a real Anvil chain: every event lands in its table, re-delivery and restarts change nothing,
the confirmation depth holds, and a database from another deployment is refused."""

from __future__ import annotations

import dataclasses

import pytest

from indexer.errors import ChainMismatch
from indexer.follower import Indexer, IndexerConfig
from indexer.queries import IndexQueries
from medledger.chain.types import RecordAnchor
from medledger.db import make_engine
from medledger.vocabulary import RecordClass, RecordStatus

from .conftest import dump, make_indexer, rid, run_scenario


def test_indexes_every_event_as_written(chain, engine):
    s = run_scenario(chain)
    ix = make_indexer(engine, chain)
    result = ix.sync()
    head = chain.rpc.block_number()
    assert result.position is not None and result.position.block_number == head

    q = IndexQueries(engine)
    counts = q.status().counts
    assert counts["records"] == len(s.records)
    assert counts["accesses"] == 5
    assert counts["consent_grants"] == 4 and counts["consent_revocations"] == 2
    assert counts["member_events"] == 4 and counts["digests"] == 1
    assert "events" not in counts  # the raw table is gone (migration 0002): every log is in its typed table

    by_id = {e.record_id: e for e in q.timeline(s.patient.address, limit=100).items}
    for r in s.records:
        if r.patient != s.patient.address:
            continue
        e = by_id["0x" + r.record_id.hex()]
        assert e.commitment == "0x" + r.commitment.hex()
        assert e.record_class == int(r.record_class)
        assert e.clinical_time == r.clinical_time
    assert by_id["0x" + s.amended[0].hex()].status is RecordStatus.SUPERSEDED
    assert by_id["0x" + s.amended[0].hex()].superseded_by == "0x" + s.amended[1].hex()
    assert by_id["0x" + s.erased.hex()].status is RecordStatus.ERASED
    assert [e.patient for e in q.timeline(s.other_patient.address).items] == [s.other_patient.address]

    assert q.patient_key(s.patient.address) == "0x" + s.patient_key.hex()
    assert {m.name for m in q.members()} == {"Hospital A", "Hospital B", "Regional CDC", "Regional Audit Office"}
    hospital_a = next(m for m in q.members() if m.name == "Hospital A")
    assert set(hospital_a.role_names) == {"hospital", "relayer", "emergency"}

    replaced = q.grant(s.grant_ids["replaced"])
    assert replaced is not None and replaced.replaced is True
    revoked = q.grant(s.grant_ids["revoked"])
    assert revoked is not None and revoked.replaced is False and revoked.revoked_block is not None
    replacement = q.grant(s.grant_ids["replacement"])
    assert replacement is not None and replacement.replaces_grant_id == s.grant_ids["replaced"]
    [window] = q.break_glass_windows(patient=s.patient.address)
    assert window.break_glass_id == s.break_glass_id and window.closed_at is not None


def test_duplicate_delivery_changes_nothing(chain, engine):
    run_scenario(chain)
    ix = make_indexer(engine, chain)
    ix.sync()
    before = dump(engine)
    head = ix.position().block_number
    start = chain.manifest.start_block
    whole = ix.fetch_range(start, head)
    ix.apply(whole)
    ix.apply(whole)
    ix.apply(ix.fetch_range(start + 3, head - 2))  # an overlapping slice, too
    assert dump(engine) == before


def test_restart_in_the_middle_equals_one_run(chain, engine, tmp_path):
    run_scenario(chain)
    small = {"initial_range": 2, "target_logs": 1, "max_range": 4}
    first = make_indexer(engine, chain, **small)
    partial = first.sync(max_ranges=3)
    assert partial.ranges == 3
    assert partial.position is not None and partial.position.block_number < chain.rpc.block_number()
    # A new process (new Indexer) continues from the stored cursor.
    make_indexer(engine, chain, **small).sync()

    ref = make_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    make_indexer(ref, chain).sync()
    assert dump(engine) == dump(ref)


def test_fetch_worker_equals_in_process_fetching(chain, engine, tmp_path):
    """The child-process fetcher (fast decoders in another interpreter, Consortium events decoded by the
    writer) builds the same index as in-process fetching, also with many small ranges."""
    run_scenario(chain)
    small = {"initial_range": 1, "target_logs": 3, "max_range": 4}
    ix = make_indexer(engine, chain, fetch_process=True, catch_up_blocks=1, **small)
    assert ix._use_worker(1, 1)
    assert not make_indexer(engine, chain, fetch_process=True, **small)._use_worker(1, 10)
    assert ix.sync().logs > 0
    ref = make_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    make_indexer(ref, chain, fetch_process=False).sync()
    assert dump(engine) == dump(ref)


def test_failed_fetch_worker_falls_back_to_in_process(chain, engine, tmp_path, monkeypatch):
    """A worker that dies (here: exits before reading its job) costs nothing but the ranges in flight."""
    import subprocess
    import sys

    run_scenario(chain)
    started = []

    def dead_worker(self, start, goal):
        started.append(start)
        return subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    monkeypatch.setattr(Indexer, "_start_worker", dead_worker)
    ix = make_indexer(engine, chain, catch_up_blocks=1)
    result = ix.sync()
    assert started and result.position is not None and result.position.block_number == chain.rpc.block_number()
    ref = make_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    make_indexer(ref, chain, fetch_process=False).sync()
    assert dump(engine) == dump(ref)


def test_confirmation_depth_is_respected(chain, engine):
    run_scenario(chain)
    ix = make_indexer(engine, chain, confirmations=3)
    ix.sync()
    head = chain.rpc.block_number()
    assert ix.position().block_number == head - 3
    late = RecordAnchor(rid(), chain.new_patient().address, rid(), RecordClass.LAB, 1)
    chain.as_(chain.hospital_a).records.anchor_records([late])
    ix.sync()
    q = IndexQueries(engine)
    assert q.record("0x" + late.record_id.hex()) is None  # one block deep: not yet
    for _ in range(3):
        chain.rpc.call("evm_mine", [])
    ix.sync()
    assert q.record("0x" + late.record_id.hex()) is not None


def test_refuses_a_database_of_another_deployment(chain, engine):
    make_indexer(engine, chain).sync()
    other = dataclasses.replace(chain.manifest)
    other.contracts = {k: dataclasses.replace(v, block=v.block + 1) for k, v in chain.manifest.contracts.items()}
    with pytest.raises(ChainMismatch, match="starting at block"):
        Indexer(engine, chain.rpc, other, IndexerConfig()).sync()


def test_bad_config_is_a_precise_error():
    with pytest.raises(Exception, match="confirmations must be") as info:
        IndexerConfig(confirmations=-1)
    assert getattr(info.value, "code", None) == "invalid_input"
