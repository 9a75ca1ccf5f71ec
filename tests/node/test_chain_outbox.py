"""The generic chain-write queue (node.chain_outbox.ChainWriter) on a real Anvil and both databases: a write
enqueued in a workflow's transaction reaches the chain once and its handler runs once, in the transaction
that records the outcome; enqueuing is idempotent; a reverting write fails with the decoded revert; a crash
between persisting and broadcasting, a lost pool and a chain that is down all end with exactly one
transaction on chain. Also migration 0005 up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys

import pytest
from alembic import command
from alembic.config import Config
from eth_utils import to_checksum_address
from sqlalchemy import inspect, select

from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from medledger.db import current_revision, make_engine, upgrade
from node.chain_outbox import MAX_REFUSALS, ChainWriteConflict, ChainWriteInvalid, ChainWriter
from node.db import MIGRATIONS
from node.db.models import ChainWrite, Notification, WriteState
from tests.conftest import ROOT
from tests.sharing.conftest import wait_until

KIND = "test.digest"
DIGEST_KIND = b"\x11" * 32


def _digest_call(client: RecordRegistryClient, root: bytes, count: int = 3) -> bytes:
    return client.abi.encode_call("anchorDigest", root, count, DIGEST_KIND)


class Handlers:
    """Handlers that record their calls and write a Notification in the outcome's transaction."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self._fail_left = fail_first

    def register(self, writer: ChainWriter, kind: str = KIND) -> None:
        writer.register(kind, on_confirmed=self.confirmed, on_failed=self.failed)

    def _note(self, session, write: ChainWrite, outcome: str) -> None:
        if self._fail_left:
            self._fail_left -= 1
            raise RuntimeError("handler bug")
        self.calls.append((outcome, write.key, write.status))
        session.add(Notification(recipient="0x" + "00" * 20, kind=f"write.{outcome}", payload={"key": write.key}))

    def confirmed(self, session, write: ChainWrite) -> None:
        self._note(session, write, "confirmed")

    def failed(self, session, write: ChainWrite) -> None:
        self._note(session, write, "failed")


def _enqueue(writer: ChainWriter, sessions, key: str, to: str, data: bytes, gas: int | None = None) -> int:
    with sessions.begin() as s:
        return writer.enqueue(s, kind=KIND, key=key, to=to, data=data, gas=gas)


def _write(sessions, key: str) -> ChainWrite:
    with sessions() as s:
        return s.scalars(select(ChainWrite).where(ChainWrite.kind == KIND, ChainWrite.key == key)).one()


def _notes(sessions) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(Notification.kind).order_by(Notification.id)))


def _digest_events(rpc: JsonRpcClient, registry: str, root: bytes) -> int:
    client = RecordRegistryClient(rpc, registry)
    topic = next(t for t, e in client.abi.events_by_topic.items() if e.name == "DigestAnchored")
    logs = rpc.call(
        "eth_getLogs",
        [{"address": registry, "fromBlock": "0x0", "toBlock": "latest", "topics": ["0x" + topic.hex()]}],
    )
    return sum(1 for entry in logs if root.hex() in entry["data"] + "".join(entry["topics"]))


def _nonce(rpc: JsonRpcClient, address: str) -> int:
    return int(rpc.call("eth_getTransactionCount", [address, "latest"]), 16)


# ---------------------------------------------------------------------------------------------- the queue


def test_enqueue_is_idempotent_commits_with_the_workflow_and_rings(node_db):
    writer = ChainWriter(node_db.sessions, lambda: pytest.fail("enqueuing must not need the chain"))
    to, data = "0x" + "ab" * 20, b"\x01\x02\x03\x04payload"
    with node_db.sessions.begin() as s:
        first = writer.enqueue(s, kind=KIND, key="k1", to=to, data=data)
        again = writer.enqueue(s, kind=KIND, key="k1", to=to.upper().replace("0X", "0x"), data=data)
        assert writer.bell.wait(0) is False  # not committed yet: nothing to wake the worker for
    assert again == first and writer.bell.wait(0) is True
    assert _enqueue(writer, node_db.sessions, "k1", to, data) == first  # a later transaction: still a no-op
    with pytest.raises(ChainWriteConflict) as conflict, node_db.sessions.begin() as s:
        writer.enqueue(s, kind=KIND, key="k1", to=to, data=data + b"x")
    assert conflict.value.code == "chain_write_conflict"

    # The workflow's transaction rolls back: its write goes with it.
    with pytest.raises(RuntimeError), node_db.sessions.begin() as s:
        writer.enqueue(s, kind=KIND, key="k2", to=to, data=data)
        raise RuntimeError("workflow failed")
    with node_db.sessions() as s:
        rows = s.scalars(select(ChainWrite)).all()
    assert [(r.key, r.status, r.gas, r.to) for r in rows] == [("k1", "queued", None, to_checksum_address(to))]

    for bad in (
        {"kind": "", "key": "k", "to": to, "data": data},
        {"kind": KIND, "key": "k" * 129, "to": to, "data": data},
        {"kind": KIND, "key": "k", "to": "0x1234", "data": data},
        {"kind": KIND, "key": "k", "to": to, "data": b"\x01"},
        {"kind": KIND, "key": "k", "to": to, "data": data, "gas": 100},
    ):
        with pytest.raises(ChainWriteInvalid) as invalid, node_db.sessions.begin() as s:
            writer.enqueue(s, **bad)
        assert invalid.value.code == "chain_write_invalid"


def test_write_reaches_the_chain_once_and_its_handler_runs_in_the_same_transaction(chain, node_db):
    hospital = chain.hospital_a
    records = chain.as_(hospital).records
    writer = ChainWriter(node_db.sessions, records.sender)
    handlers = Handlers()
    handlers.register(writer)
    root = secrets.token_bytes(32)
    _enqueue(writer, node_db.sessions, "one", records.address, _digest_call(records, root))
    _enqueue(writer, node_db.sessions, "one", records.address, _digest_call(records, root))

    total = writer.drain()
    assert (total.batches, total.confirmed, total.failed) == (1, 1, 0)
    write = _write(node_db.sessions, "one")
    assert write.status == WriteState.CONFIRMED and write.broadcasts == 1 and write.error is None
    receipt = chain.rpc.call("eth_getTransactionReceipt", [write.tx_hash])
    assert receipt["status"] == "0x1" and int(receipt["blockNumber"], 16) == write.block_number
    assert records.get_digest(root).custodian == hospital.address
    assert handlers.calls == [("confirmed", "one", "confirmed")]
    assert _notes(node_db.sessions) == ["write.confirmed"]

    assert writer.run_once().idle and writer.pending() == 0
    assert handlers.calls == [("confirmed", "one", "confirmed")]  # once, not per step
    assert _digest_events(chain.rpc, records.address, root) == 1


def test_only_registered_kinds_move(chain, node_db):
    records = chain.as_(chain.hospital_a).records
    writer = ChainWriter(node_db.sessions, records.sender)
    with node_db.sessions.begin() as s:
        writer.enqueue(s, kind="other.kind", key="x", to=records.address, data=_digest_call(records, b"\x01" * 32))
    assert writer.run_once().idle and writer.pending() == 0
    Handlers().register(writer, "other.kind")
    assert writer.drain().confirmed == 1


@pytest.mark.parametrize("gas", [None, 200_000])
def test_reverting_write_fails_with_the_decoded_revert(chain, node_db, gas):
    hospital = chain.hospital_a
    records = chain.as_(hospital).records
    root = secrets.token_bytes(32)
    records.anchor_digest(root, 1, DIGEST_KIND)  # so the queued write reverts with DuplicateDigest(root)
    writer = ChainWriter(node_db.sessions, records.sender)
    handlers = Handlers()
    handlers.register(writer)
    nonce = _nonce(chain.rpc, hospital.address)
    _enqueue(writer, node_db.sessions, "dup", records.address, _digest_call(records, root), gas=gas)

    total = writer.drain()
    assert (total.failed, total.confirmed, total.requeued) == (1, 0, 0)
    write = _write(node_db.sessions, "dup")
    assert write.status == WriteState.FAILED
    assert write.error.startswith(f"DuplicateDigest(root=0x{root.hex()}")
    if gas is None:
        # Estimated first: the revert showed before anything was signed, and no nonce was spent.
        assert write.tx_hash is None and _nonce(chain.rpc, hospital.address) == nonce
    else:
        receipt = chain.rpc.call("eth_getTransactionReceipt", [write.tx_hash])
        assert receipt["status"] == "0x0" and int(receipt["blockNumber"], 16) == write.block_number
    assert handlers.calls == [("failed", "dup", "failed")]
    assert writer.run_once().idle and handlers.calls == [("failed", "dup", "failed")]  # not retried


def test_write_whose_estimate_reverts_waits_for_our_pending_transactions(chain, node_db):
    """An estimate runs against the latest block: while this node's earlier transactions wait to be mined the
    write may only revert because they are not mined yet, so it waits for them instead of failing."""
    records = chain.as_(chain.hospital_a).records
    writer = ChainWriter(node_db.sessions, records.sender)
    handlers = Handlers()
    handlers.register(writer)
    root = secrets.token_bytes(32)
    _enqueue(writer, node_db.sessions, "first", records.address, _digest_call(records, root), gas=200_000)
    _enqueue(writer, node_db.sessions, "zero-root", records.address, _digest_call(records, b"\x00" * 32))
    chain.rpc.call("evm_setAutomine", [False])
    try:
        step = writer.run_once()
        assert (step.batches, step.failed) == (1, 0)
        assert _write(node_db.sessions, "zero-root").status == WriteState.QUEUED
    finally:
        chain.rpc.call("evm_setAutomine", [True])
    chain.rpc.call("evm_mine")
    writer.drain()
    assert _write(node_db.sessions, "first").status == WriteState.CONFIRMED
    zero = _write(node_db.sessions, "zero-root")
    assert zero.status == WriteState.FAILED and zero.error.startswith("InvalidDigest(")
    assert sorted(handlers.calls) == [("confirmed", "first", "confirmed"), ("failed", "zero-root", "failed")]


def test_failing_handler_rolls_its_outcome_back_and_is_called_again(chain, node_db):
    records = chain.as_(chain.hospital_a).records
    writer = ChainWriter(node_db.sessions, records.sender)
    handlers = Handlers(fail_first=1)
    handlers.register(writer)
    _enqueue(writer, node_db.sessions, "h", records.address, _digest_call(records, secrets.token_bytes(32)))
    writer.run_once()
    writer.run_once()  # the first confirmation attempt raised: the write is still submitted
    writer.drain()
    assert _write(node_db.sessions, "h").status == WriteState.CONFIRMED
    assert handlers.calls == [("confirmed", "h", "confirmed")] and _notes(node_db.sessions) == ["write.confirmed"]


# ---------------------------------------------------------------------------------------------- crashes

CHILD = r"""
import os, signal, sys, time
from eth_account import Account
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from node.chain_outbox import ChainWriter
from node.db import open_node_db

db_url, rpc_url, key, kind = sys.argv[1:5]
sender = TransactionSender(JsonRpcClient(rpc_url, retries=0), Account.from_key(key))
# The crash under test: the write is persisted, the signed transaction never leaves the process.
sender.broadcast = lambda signed: os.kill(os.getpid(), signal.SIGKILL)
_, sessions = open_node_db(db_url)
writer = ChainWriter(sessions, sender)
writer.register(kind)
writer.run_once()
time.sleep(600)
"""


@pytest.mark.parametrize("nonce_taken", [False, True])
def test_crash_after_persist_before_broadcast_sends_one_transaction(own_chain, node_db, nonce_taken):
    hospital = own_chain.hospital
    records = own_chain.records_client()
    root = secrets.token_bytes(32)
    writer = ChainWriter(node_db.sessions, records.sender)
    _enqueue(writer, node_db.sessions, "crash", records.address, _digest_call(records, root), gas=200_000)
    nonce = _nonce(own_chain.rpc, hospital.address)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, node_db.url, own_chain.anvil.url, hospital.key.hex(), KIND],
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    persisted = _write(node_db.sessions, "crash")
    assert persisted.status == WriteState.SUBMITTED and persisted.raw_tx
    assert own_chain.rpc.call("eth_getTransactionByHash", [persisted.tx_hash]) is None
    if nonce_taken:
        # The node's key sent something else meanwhile, with the nonce the persisted transaction carries.
        other = TransactionSender(own_chain.rpc, hospital)
        other.wait([other.send(hospital.address, b"")])

    # A new process over the same database: its writer finds the persisted write and finishes it.
    restarted = ChainWriter(node_db.sessions, own_chain.records_client().sender)
    handlers = Handlers()
    handlers.register(restarted)
    total = restarted.drain()
    write = _write(node_db.sessions, "crash")
    assert write.status == WriteState.CONFIRMED and handlers.calls == [("confirmed", "crash", "confirmed")]
    assert _digest_events(own_chain.rpc, records.address, root) == 1
    if nonce_taken:
        assert (total.requeued, write.attempts, write.tx_hash != persisted.tx_hash) == (1, 1, True)
        assert _nonce(own_chain.rpc, hospital.address) == nonce + 2
    else:
        # The same signed bytes, sent once more: one transaction, one nonce.
        assert (total.rebroadcast, write.tx_hash, write.broadcasts) == (1, persisted.tx_hash, 2)
        assert _nonce(own_chain.rpc, hospital.address) == nonce + 1


def test_chain_down_keeps_writes_queued_and_sends_them_when_back(own_chain, node_db):
    hospital = own_chain.hospital
    registry = own_chain.registry
    rpc = JsonRpcClient(own_chain.anvil.url, retries=0, timeout=5.0)
    records = RecordRegistryClient(rpc, registry)
    roots = [secrets.token_bytes(32) for _ in range(2)]
    own_chain.anvil.stop()
    # The node starts while the chain is down: the writer is built and writes are enqueued without it.
    writer = ChainWriter(node_db.sessions, lambda: TransactionSender(rpc, hospital))
    handlers = Handlers()
    handlers.register(writer)
    for i, root in enumerate(roots):
        _enqueue(writer, node_db.sessions, f"down-{i}", registry, _digest_call(records, root))
    step = writer.run_once()
    assert step.chain_down and writer.pending() == 2
    assert {_write(node_db.sessions, f"down-{i}").status for i in range(2)} == {WriteState.QUEUED}

    own_chain.anvil.start()
    total = writer.drain()
    assert (total.batches, total.confirmed) == (2, 2)
    for root in roots:
        assert _digest_events(own_chain.rpc, registry, root) == 1
    assert sorted(handlers.calls) == [("confirmed", "down-0", "confirmed"), ("confirmed", "down-1", "confirmed")]


def test_transaction_lost_with_the_pool_is_sent_again(own_chain, node_db):
    records = own_chain.records_client()
    root = secrets.token_bytes(32)
    writer = ChainWriter(node_db.sessions, records.sender)
    Handlers().register(writer)
    _enqueue(writer, node_db.sessions, "lost", records.address, _digest_call(records, root), gas=200_000)
    own_chain.rpc.call("evm_setAutomine", [False])
    assert writer.run_once().batches == 1
    own_chain.anvil.stop()  # graceful: dumps the state; the pool with our transaction is gone
    assert writer.run_once().chain_down
    own_chain.anvil.start()
    total = writer.drain()
    write = _write(node_db.sessions, "lost")
    assert (total.rebroadcast, write.status, write.broadcasts) == (1, WriteState.CONFIRMED, 2)
    assert _digest_events(own_chain.rpc, records.address, root) == 1


def test_refused_writes_fail_after_max_refusals(chain, node_db):
    """A node that keeps refusing a write's transaction objects to the write itself (here: a gas limit above
    the block's), not to its nonce: after MAX_REFUSALS signatures it fails instead of looping."""
    records = chain.as_(chain.hospital_a).records
    writer = ChainWriter(node_db.sessions, records.sender)
    handlers = Handlers()
    handlers.register(writer)
    block_gas = int(chain.rpc.call("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)
    _enqueue(writer, node_db.sessions, "huge", records.address, _digest_call(records, b"\x05" * 32), gas=block_gas + 1)
    writer.drain()
    write = _write(node_db.sessions, "huge")
    assert write.status == WriteState.FAILED and write.attempts == MAX_REFUSALS - 1
    assert write.error.startswith(f"refused {MAX_REFUSALS} times")
    assert handlers.calls == [("failed", "huge", "failed")]


# ---------------------------------------------------------------------------------------------- migration


def test_migration_0005_creates_and_drops_chain_writes(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine, MIGRATIONS, "0004")
        assert "chain_writes" not in inspect(engine).get_table_names()
        upgrade(engine, MIGRATIONS, "0005")
        assert current_revision(engine) == "0005"
        columns = {c["name"] for c in inspect(engine).get_columns("chain_writes")}
        assert {"kind", "key", "to", "data", "gas", "status", "tx_hash", "nonce", "raw_tx", "broadcasts"} <= columns
        assert {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("chain_writes")} >= {
            ("kind", "key")
        }
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        assert "chain_writes" not in inspect(engine).get_table_names()
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()


def test_the_node_runtime_sends_a_modules_queued_write(chain, tmp_path):
    """The seam a workflow uses: register a kind on ``services.chain_writer``, enqueue in its own transaction,
    and the node's runtime (its ``chain-writer`` worker) puts the call on chain with the node's account."""
    from node.runtime import NodeRuntime
    from node.service import NodeServices
    from tests.node.test_cli import PASSWORD, node_on_chain

    services = NodeServices.open(node_on_chain(chain, tmp_path), password=PASSWORD)
    try:
        handlers = Handlers()
        handlers.register(services.chain_writer, "toy.digest")
        records = services.contracts.records
        root = secrets.token_bytes(32)
        with NodeRuntime(services) as runtime:
            assert "chain-writer" in [w.name for w in runtime.workers()]
            with services.sessions.begin() as s:
                services.chain_writer.enqueue(
                    s, kind="toy.digest", key="note-1", to=records.address, data=_digest_call(records, root)
                )
            wait_until(lambda: services.chain_writer.pending() == 0, what="the module's write confirmed")
        assert handlers.calls == [("confirmed", "note-1", "confirmed")]
        assert records.get_digest(root).custodian == chain.hospital_a.address
    finally:
        services.close()
