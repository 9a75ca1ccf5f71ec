"""The anchorer on a real Anvil: batching by size and by time, statuses with tx and block, reverted batches, and
crashes of the node (kill -9 between persisting and broadcasting, and between broadcasting and the receipt) and
of the chain (Anvil stopped mid-batch and restarted): every record is anchored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.sender import TransactionSender
from medledger.chain.types import RecordAnchor
from medledger.vocabulary import RecordStatus
from node.anchorer import Anchorer
from node.db.models import AnchorBatch, AnchorOutbox, BatchState, Record, RecordState, utcnow
from node.directory import PatientDirectory
from node.pipeline import IngestPipeline
from tests.conftest import ROOT
from tests.node.conftest import assert_outbox_invariant, fhir_record, patient_keys
from tests.sharing.conftest import wait_until


def _ingest(node_db, store, kek, custodian: str, n: int, *, link: bool = True, mrn: str = "MRN-1") -> list[bytes]:
    if link:
        address, public, _ = patient_keys()
        PatientDirectory(node_db.sessions, kek).link(mrn, "HOSP-A", address, public)
    results = IngestPipeline(node_db.sessions, store, kek, custodian).ingest(
        [fhir_record(i, mrn=mrn) for i in range(n)]
    )
    return [bytes.fromhex(r.record_id[2:]) for r in results]


def _assert_anchored_once(events: dict[bytes, int], client: RecordRegistryClient, ids: list[bytes]) -> None:
    assert {rid: events.get(rid, 0) for rid in ids} == dict.fromkeys(ids, 1)
    for rid in ids:
        state = client.get_record(rid)
        assert state.custodian == client.sender.address and state.status == RecordStatus.ACTIVE


def _assert_all_confirmed(node_db, ids: list[bytes]) -> None:
    with node_db.sessions() as s:
        rows = s.scalars(select(Record).where(Record.record_id.in_(ids))).all()
        assert len(rows) == len(ids)
        assert {r.status for r in rows} == {RecordState.CONFIRMED}
        assert all(r.tx_hash and r.block_number for r in rows)
        assert s.scalar(select(AnchorOutbox).limit(1)) is None
        assert not s.scalars(select(AnchorBatch).where(AnchorBatch.status == BatchState.SUBMITTED)).all()
    assert_outbox_invariant(node_db.sessions)


# ---------------------------------------------------------------------------------------------- shared chain


def test_batches_by_size_and_reports_tx_and_block(chain, node_db, kek, store):
    hospital = chain.hospital_a
    ids = _ingest(node_db, store, kek, hospital.address, 7)
    anchorer = Anchorer(node_db.sessions, chain.as_(hospital).records, max_batch=3, max_wait_ms=60_000)
    step = anchorer.run_once()
    # Two full batches go at once; the last record waits for its batch to fill (or for max_wait).
    assert (step.batches, step.submitted) == (2, 6)
    assert anchorer.status_counts()["queued"] == 1
    # Anvil mines each transaction as it arrives, but its receipt can lag the broadcast by a moment: step until
    # both batches are settled (the partial one keeps waiting).
    wait_until(lambda: anchorer.run_once() and anchorer.status_counts()["confirmed"] == 6, what="both batches mined")
    assert anchorer.status_counts()["queued"] == 1

    pipeline = IngestPipeline(node_db.sessions, store, kek, hospital.address)
    confirmed = [pipeline.record_status(rid) for rid in ids]
    done = [c for c in confirmed if c and c["status"] == "confirmed"]
    assert len(done) == 6 and len({c["tx_hash"] for c in done}) == 2
    for c in done:
        receipt = chain.rpc.call("eth_getTransactionReceipt", [c["tx_hash"]])
        assert int(receipt["blockNumber"], 16) == c["block_number"] and receipt["status"] == "0x1"
    with node_db.sessions() as s:
        assert sorted(b.record_count for b in s.scalars(select(AnchorBatch))) == [3, 3]


def test_partial_batch_waits_for_max_wait(chain, node_db, kek, store):
    hospital = chain.hospital_a
    ids = _ingest(node_db, store, kek, hospital.address, 4)
    now = utcnow()
    early = Anchorer(node_db.sessions, chain.as_(hospital).records, max_batch=500, max_wait_ms=200, clock=lambda: now)
    assert early.run_once().batches == 0
    assert early.status_counts()["queued"] == 4
    late = Anchorer(
        node_db.sessions,
        chain.as_(hospital).records,
        max_batch=500,
        max_wait_ms=200,
        clock=lambda: now + timedelta(milliseconds=201),
    )
    step = late.run_once()
    assert (step.batches, step.submitted) == (1, 4)
    late.drain()
    _assert_all_confirmed(node_db, ids)


def test_pending_link_records_are_anchored_after_link(chain, node_db, kek, store):
    hospital = chain.hospital_a
    ids = _ingest(node_db, store, kek, hospital.address, 3, link=False, mrn="LATE")
    anchorer = Anchorer(node_db.sessions, chain.as_(hospital).records, max_wait_ms=0)
    assert anchorer.run_once().idle and anchorer.status_counts()["pending_link"] == 3
    address, public, _ = patient_keys()
    PatientDirectory(node_db.sessions, kek).link("LATE", "HOSP-A", address, public)
    anchorer.drain()
    _assert_all_confirmed(node_db, ids)
    patients = {
        e.args["patient"].lower()
        for e in chain.read.records.events(
            chain.sender(hospital).wait(
                [IngestPipeline(node_db.sessions, store, kek, hospital.address).record_status(ids[0])["tx_hash"]]
            )[0]
        )
    }
    assert patients == {address.lower()}


def test_reverted_batch_confirms_what_was_anchored_and_requeues_the_rest(chain, node_db, kek, store):
    hospital = chain.hospital_a
    ids = _ingest(node_db, store, kek, hospital.address, 5)
    client = chain.as_(hospital).records
    # One record gets anchored behind the anchorer's back: the batch containing it reverts (DuplicateRecord).
    with node_db.sessions() as s:
        r = s.get(Record, ids[2])
        client.anchor_records([RecordAnchor(ids[2], patient_keys()[0], bytes(r.commitment), r.record_class, 0)])
    anchorer = Anchorer(node_db.sessions, chain.as_(hospital).records, max_wait_ms=0)
    # Which step sees the failed receipt depends on timing, so the totals are what is asserted: the first
    # batch fails, its already-anchored record is confirmed, the other four are re-queued and re-batched.
    total = anchorer.drain()
    assert total.batches == 2
    assert total.requeued == 4
    assert total.confirmed == 5
    _assert_all_confirmed(node_db, ids)
    with node_db.sessions() as s:
        assert [b.status for b in s.scalars(select(AnchorBatch).order_by(AnchorBatch.id))] == ["failed", "confirmed"]
        assert s.get(Record, ids[2]).tx_hash is not None  # found from the RecordAnchored event


# ---------------------------------------------------------------------------------------------- crashes

CHILD = r"""
import os, signal, sys, time
from eth_account import Account
from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from node.anchorer import Anchorer
from node.db import open_node_db

db_url, rpc_url, registry, key, mode, max_batch = sys.argv[1:7]
rpc = JsonRpcClient(rpc_url, retries=0)
sender = TransactionSender(rpc, Account.from_key(key))
if mode == "before-broadcast":
    # The crash under test: the batch is persisted, the signed transaction never leaves the process.
    sender.broadcast = lambda signed: os.kill(os.getpid(), signal.SIGKILL)
_, sessions = open_node_db(db_url)
client = RecordRegistryClient(rpc, registry, sender)
step = Anchorer(sessions, client, max_batch=int(max_batch), max_wait_ms=0).run_once()
print(f"submitted {step.submitted}", flush=True)
time.sleep(600)
"""


def _run_child_until_killed(node_db, own_chain, mode: str, max_batch: int) -> str:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            node_db.url,
            own_chain.anvil.url,
            own_chain.registry,
            own_chain.hospital.key.hex(),
            mode,
            str(max_batch),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if mode == "after-broadcast" else ""
        if mode == "after-broadcast":
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return line


@pytest.mark.parametrize("resume_before_mining", [False, True])
def test_crash_between_broadcast_and_receipt(own_chain, node_db, kek, store, resume_before_mining):
    ids = _ingest(node_db, store, kek, own_chain.hospital.address, 10)
    own_chain.rpc.call("evm_setAutomine", [False])
    assert _run_child_until_killed(node_db, own_chain, "after-broadcast", 4).strip() == "submitted 10"
    assert own_chain.anchored_events() == {}
    anchorer = Anchorer(node_db.sessions, own_chain.records_client(), max_batch=4, max_wait_ms=0)
    if resume_before_mining:
        # The transactions wait in the pool: the new anchorer must neither re-sign nor re-send them.
        step = anchorer.run_once()
        assert step.idle and anchorer.status_counts()["submitted"] == 10
    own_chain.mine_all()
    own_chain.rpc.call("evm_setAutomine", [True])
    step = anchorer.drain()
    assert step.batches == 0 and step.confirmed == 10
    _assert_anchored_once(own_chain.anchored_events(), own_chain.records_client(), ids)
    _assert_all_confirmed(node_db, ids)


@pytest.mark.parametrize("nonce_taken", [False, True])
def test_crash_after_persist_before_broadcast(own_chain, node_db, kek, store, nonce_taken):
    ids = _ingest(node_db, store, kek, own_chain.hospital.address, 6)
    _run_child_until_killed(node_db, own_chain, "before-broadcast", 500)
    with node_db.sessions() as s:
        batch = s.scalars(select(AnchorBatch)).one()
        assert batch.status == "submitted" and batch.record_count == 6
    assert own_chain.rpc.call("eth_getTransactionByHash", [batch.tx_hash]) is None
    if nonce_taken:
        # The node's key sent something else meanwhile, with the nonce the persisted transaction carries.
        other = TransactionSender(own_chain.rpc, own_chain.hospital)
        other.wait([other.send(own_chain.hospital.address, b"")])
    anchorer = Anchorer(node_db.sessions, own_chain.records_client(), max_wait_ms=0)
    step = anchorer.drain()
    _assert_anchored_once(own_chain.anchored_events(), own_chain.records_client(), ids)
    _assert_all_confirmed(node_db, ids)
    with node_db.sessions() as s:
        statuses = [b.status for b in s.scalars(select(AnchorBatch).order_by(AnchorBatch.id))]
    if nonce_taken:
        assert statuses == ["failed", "confirmed"] and step.requeued == 6
    else:
        assert statuses == ["confirmed"] and step.rebroadcast == 1  # the same signed bytes, sent once more


def test_chain_stopped_mid_batch_backs_off_then_completes(own_chain, node_db, kek, store):
    ids = _ingest(node_db, store, kek, own_chain.hospital.address, 9)
    own_chain.rpc.call("evm_setAutomine", [False])
    anchorer = Anchorer(node_db.sessions, own_chain.records_client(), max_batch=4, max_wait_ms=0)
    assert anchorer.run_once().submitted == 9
    own_chain.anvil.stop()  # graceful: dumps the state; the pool with our three transactions is gone
    down = anchorer.run_once()
    assert down.chain_down and anchorer.status_counts()["submitted"] == 9
    own_chain.anvil.start()
    own_chain.rpc.call("evm_setAutomine", [True])
    anchorer.drain()
    _assert_anchored_once(own_chain.anchored_events(), own_chain.records_client(), ids)
    _assert_all_confirmed(node_db, ids)
