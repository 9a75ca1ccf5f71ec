"""The access logger on a real Anvil: journal entries go on chain with the block their consent decision read
(``decidedAt``), an entry whose decision the contract would no longer accept (the journal waited too long)
goes on chain without one instead of failing its batch, and the fixed gas bound covers full batches."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from medledger.chain.contracts import AccessLogClient
from medledger.chain.sender import Receipt
from medledger.chain.types import Access
from medledger.vocabulary import AuthKind, Purpose
from node.access_journal import AccessJournal, JournalEntry
from node.access_logger import DECISION_AGE_MARGIN, AccessLogger, citable_decision
from node.db.models import AccessEntry, AccessState
from tests.sharing.conftest import wait_until


def test_citable_decision_keeps_recent_blocks_only():
    assert citable_decision(100, 120, 256) == 100
    assert citable_decision(120, 120, 256) == 120  # decided on the head: logged in a later block
    assert citable_decision(0, 120, 256) == 0
    assert citable_decision(121, 120, 256) == 0  # not mined yet as far as this node knows: never cite it
    edge = 1000 - (256 - DECISION_AGE_MARGIN)
    assert citable_decision(edge, 1000, 256) == edge
    assert citable_decision(edge - 1, 1000, 256) == 0


def test_entries_are_logged_with_their_decision_block(chain, node_db):
    client = chain.as_(chain.hospital_a).access_log
    patient = chain.new_patient().address
    old = chain.rpc.block_number()
    chain.rpc.call("anvil_mine", [hex(300)])  # the first entry's decision is now older than the contract takes
    recent = chain.rpc.block_number()
    journal = AccessJournal(node_db.engine)
    try:
        for i, decided in enumerate((old, recent)):
            journal.append(
                JournalEntry(patient, chain.hospital_b.address, bytes([i + 1]) * 32, Purpose.TREATMENT,
                             AuthKind.GRANT, 1, decided_block=decided)
            )  # fmt: skip
    finally:
        journal.close()
    logger = AccessLogger(node_db.sessions, client, max_wait_ms=0)

    def logged() -> bool:
        logger.run_once()
        with node_db.sessions() as s:
            states = s.scalars(select(AccessEntry.status)).all()
        return states == [AccessState.CONFIRMED] * 2

    wait_until(logged, timeout=20, what="both entries confirmed")
    with node_db.sessions() as s:
        tx = s.scalars(select(AccessEntry.tx_hash)).first()
    receipt = Receipt.from_rpc(chain.rpc.call("eth_getTransactionReceipt", [tx]))
    assert [e.args["decidedAt"] for e in client.events(receipt)] == [0, recent]


def test_gas_bound_covers_full_batches(chain):
    """The logger sends batches with AccessLogClient.log_gas(n) instead of estimating each: it must cover
    the worst case, nonzero staff references and decision blocks (more calldata), up to max_batch (500)."""
    client = chain.as_(chain.hospital_a).access_log
    patient = chain.new_patient().address
    head = chain.rpc.block_number()
    for n in (1, 500):
        batch = [
            Access(patient, chain.hospital_b.address, secrets.token_bytes(32), Purpose.TREATMENT, AuthKind.GRANT,
                   2**64 + i, secrets.token_bytes(32), head)
            for i in range(n)
        ]  # fmt: skip
        receipt = client.log_accesses(batch, gas=AccessLogClient.log_gas(n))
        assert receipt.status == 1 and receipt.gas_used <= AccessLogClient.log_gas(n)
