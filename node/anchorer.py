"""The anchorer: moves queued records onto the chain in batched ``anchorRecords`` transactions, without loss
and without anchoring anything twice, across crashes of the node and outages of the chain.

Each batch goes through the node's write-ahead protocol (node.chain_outbox: sign, persist the signed bytes
in ``anchor_batches`` with the records marked ``submitted`` in one database transaction, then broadcast; every
step first reconciles submitted batches with the chain and re-sends lost transactions' same bytes). What is
the anchorer's own:

1. the batch: the oldest queued records (up to ``max_batch``, or fewer once the oldest waited ``max_wait_ms``;
   a record re-queued ``ISOLATE_AFTER_ATTEMPTS`` times goes alone);
2. a batch that will never be mined as signed (reverted, or its nonce went to another transaction): each
   record is looked up on chain (the contract rejects duplicates, so a record anchored by an earlier attempt
   shows us as its custodian): anchored ones are confirmed, the rest re-queued.

A chain that cannot be reached leaves everything as it is: records stay queued or submitted,
:meth:`Anchorer.run` backs off and carries on when the chain is back.

One anchorer per node database: two would sign different batches for the same queued records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from eth_utils import to_checksum_address
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.sender import TransactionSender
from medledger.chain.types import RecordAnchor
from medledger.errors import ConfigError, MedLedgerError
from medledger.vocabulary import RecordClass
from node.chain_outbox import Failure, OutboxStep, PendingWrite, Settled, WriteAheadOutbox, drain_steps
from node.db import records_by_status
from node.db.models import AnchorBatch, AnchorOutbox, Patient, Record, RecordState, as_utc, utcnow
from node.doorbell import Doorbell, run_steps

log = logging.getLogger(__name__)

#: A record re-queued this many times is anchored alone, so one record the contract rejects cannot keep
#: failing the batches of everyone else.
ISOLATE_AFTER_ATTEMPTS = 2
_CHAIN_CALL_CHUNK = 500


class AnchorerConflict(MedLedgerError):
    """Queued records changed state while a batch was being written: a second anchorer runs on this database."""

    code = "anchorer_conflict"


class AnchorStep(OutboxStep):
    """What one :meth:`Anchorer.run_once` did (``batches``: new batches signed, persisted and broadcast;
    ``submitted``, ``confirmed``, ``requeued``: records; ``rebroadcast``: persisted transactions sent again)."""


def _unix(dt: datetime | None) -> int:
    if dt is None:
        return 0
    return max(0, int(as_utc(dt).timestamp()))


class Anchorer:
    """Anchors this node's queued records with ``records_client`` (which must carry the node's sender).

    Args:
        session_factory: The node database.
        records_client: ``RecordRegistry`` acting as this node's account.
        max_batch: Records per transaction at most.
        max_wait_ms: Longest a queued record waits for a batch to fill.
        confirmations: Blocks (including the including one) before a record counts as ``confirmed``.
        max_in_flight: Batches submitted but not yet confirmed at most.
        clock: The time used for ``max_wait_ms`` (tests pass their own).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        records_client: RecordRegistryClient,
        *,
        max_batch: int = 500,
        max_wait_ms: int = 200,
        confirmations: int = 1,
        max_in_flight: int = 16,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if records_client.sender is None:
            raise ConfigError("the anchorer needs a RecordRegistry client with the node's sender")
        if max_batch < 1 or confirmations < 1 or max_in_flight < 1:
            raise ConfigError("max_batch, confirmations and max_in_flight must be at least 1")
        self._sessions = session_factory
        self.client = records_client
        self.sender: TransactionSender = records_client.sender
        self.address = to_checksum_address(self.sender.address)
        self.max_batch = max_batch
        self.max_wait = timedelta(milliseconds=max_wait_ms)
        self.confirmations = confirmations
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._get_record = records_client.abi.function("getRecord")
        anchored = next(e for e in records_client.abi.events_by_topic.items() if e[1].name == "RecordAnchored")
        self._anchored_topic = "0x" + anchored[0].hex()
        self.outbox = WriteAheadOutbox(
            session_factory,
            self.sender,
            AnchorBatch,
            next_write=self._next_write,
            mark_submitted=self._mark_submitted,
            on_confirmed=self._confirm,
            on_failed=self._reconcile,
            confirmations=confirmations,
            max_in_flight=max_in_flight,
        )

    # ------------------------------------------------------------------ loop

    def run_once(self) -> AnchorStep:
        """Reconcile submitted batches with the chain, then submit new batches of queued records."""
        return self.outbox.run_once(AnchorStep())

    def run(
        self,
        stop: threading.Event,
        *,
        poll_interval: float = 0.05,
        max_backoff: float = 5.0,
        wake: Doorbell | None = None,
        idle_interval: float = 1.0,
    ) -> None:
        """Anchor until ``stop`` is set; back off exponentially while the chain is down. With nothing queued
        or in flight it sleeps until ``wake`` rings (see node.doorbell)."""
        run_steps(
            self.run_once,
            stop,
            wake=wake,
            poll_interval=poll_interval,
            idle_interval=idle_interval,
            max_backoff=max_backoff,
        )

    def drain(self, *, max_steps: int = 10_000, poll_interval: float = 0.02) -> AnchorStep:
        """Run steps until nothing is queued or submitted (or ``max_steps``); returns the summed counts. Stops
        early while the chain is unreachable (the records stay queued or submitted for :meth:`run`)."""

        def busy() -> bool:
            counts = self.status_counts()
            return bool(counts[RecordState.QUEUED] or counts[RecordState.SUBMITTED])

        return drain_steps(self.run_once, busy, AnchorStep(), max_steps=max_steps, poll_interval=poll_interval)

    def status_counts(self) -> dict[str, int]:
        return records_by_status(self._sessions)

    # ------------------------------------------------------------------ outcomes

    def _confirm(self, s: Session, batch_id: int, tx_hash: str, block: int) -> int:
        n = s.execute(
            update(Record)
            .where(Record.batch_id == batch_id, Record.status == RecordState.SUBMITTED)
            .values(status=RecordState.CONFIRMED, tx_hash=tx_hash, block_number=block, updated_at=utcnow())
        ).rowcount
        s.execute(
            delete(AnchorOutbox).where(
                AnchorOutbox.record_id.in_(select(Record.record_id).where(Record.batch_id == batch_id))
            )
        )
        return int(n)

    def _reconcile(self, batch_id: int, failure: Failure) -> Settled:
        """The batch will never be mined as is: confirm what the chain holds for us, re-queue the rest."""
        with self._sessions() as s:
            ids = [
                bytes(r)
                for r in s.scalars(
                    select(Record.record_id).where(Record.batch_id == batch_id, Record.status == RecordState.SUBMITTED)
                )
            ]
        states = self._chain_states(ids)
        anchored = {
            rid: blk for rid, (custodian, blk, status) in states.items() if custodian == self.address and status
        }
        txs = self._anchoring_txs(anchored)
        requeue = [rid for rid in ids if rid not in anchored]
        now = utcnow()
        with self._sessions.begin() as s:
            for rid, blk in anchored.items():
                s.execute(
                    update(Record)
                    .where(Record.record_id == rid)
                    .values(status=RecordState.CONFIRMED, tx_hash=txs.get(rid), block_number=blk, updated_at=now)
                )
            if anchored:
                s.execute(delete(AnchorOutbox).where(AnchorOutbox.record_id.in_(list(anchored))))
            for i in range(0, len(requeue), _CHAIN_CALL_CHUNK):
                s.execute(
                    update(Record)
                    .where(Record.record_id.in_(requeue[i : i + _CHAIN_CALL_CHUNK]))
                    .values(status=RecordState.QUEUED, batch_id=None, tx_hash=None, updated_at=now)
                )
            self.outbox.record_failure(s, batch_id, failure)
        return Settled(confirmed=len(anchored), requeued=len(requeue))

    def _chain_states(self, ids: Sequence[bytes]) -> dict[bytes, tuple[str, int, int]]:
        """(custodian, anchored block, status) of each record on chain, read in JSON-RPC batches."""
        out: dict[bytes, tuple[str, int, int]] = {}
        to = self.client.address
        for i in range(0, len(ids), _CHAIN_CALL_CHUNK):
            chunk = ids[i : i + _CHAIN_CALL_CHUNK]
            calls = [
                ("eth_call", [{"to": to, "data": "0x" + self._get_record.encode((rid,)).hex()}, "latest"])
                for rid in chunk
            ]
            for rid, raw in zip(chunk, self.client.rpc.batch(calls), strict=True):
                custodian, block, status, _ = self._get_record.decode(bytes.fromhex(raw[2:]))[0]
                out[rid] = (to_checksum_address(custodian), int(block), int(status))
        return out

    def _anchoring_txs(self, anchored: dict[bytes, int]) -> dict[bytes, str]:
        """The transaction that anchored each record (from its RecordAnchored event), for the record's status."""
        if not anchored:
            return {}
        custodian_topic = "0x" + "00" * 12 + self.address[2:].lower()
        logs = self.client.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.client.address,
                    "fromBlock": hex(min(anchored.values())),
                    "toBlock": hex(max(anchored.values())),
                    "topics": [self._anchored_topic, None, custodian_topic],
                }
            ],
        )
        out: dict[bytes, str] = {}
        for entry in logs:
            rid = bytes.fromhex(entry["topics"][3][2:])
            if rid in anchored:
                out[rid] = entry["transactionHash"]
        return out

    # ------------------------------------------------------------------ submit

    def _next_write(self, step: OutboxStep) -> PendingWrite | None:
        with self._sessions() as s:
            rows = s.execute(
                select(
                    Record.record_id,
                    Patient.address,
                    Record.commitment,
                    Record.record_class,
                    Record.clinical_time,
                    AnchorOutbox.enqueued_at,
                    AnchorOutbox.attempts,
                )
                .join(Record, Record.record_id == AnchorOutbox.record_id)
                .join(Patient, Patient.id == Record.patient_id)
                .where(Record.status == RecordState.QUEUED)
                .order_by(AnchorOutbox.enqueued_at, AnchorOutbox.record_id)
                .limit(self.max_batch)
            ).all()
        if not rows:
            return None
        if rows[0].attempts >= ISOLATE_AFTER_ATTEMPTS:
            rows = rows[:1]
        elif len(rows) < self.max_batch:
            waited = self._clock() - as_utc(rows[0].enqueued_at)
            if waited < self.max_wait:
                step.due_in = (self.max_wait - waited).total_seconds()
                return None  # not full and nobody has waited long enough: let the batch fill
        anchors = [
            RecordAnchor(
                bytes(r.record_id),
                r.address,
                bytes(r.commitment),
                RecordClass(r.record_class),
                _unix(r.clinical_time),
            )
            for r in rows
        ]
        return PendingWrite(
            self.client.address,
            self.client.encode_anchor_records(anchors),
            RecordRegistryClient.anchor_gas(len(anchors)),
            [a.record_id for a in anchors],
            columns={"record_count": len(anchors)},
        )

    def _mark_submitted(self, s: Session, batch_id: int, ids: Sequence[bytes]) -> None:
        now = utcnow()
        tx_hash = s.get_one(AnchorBatch, batch_id).tx_hash  # just inserted: from the session, no query
        moved = 0
        for i in range(0, len(ids), _CHAIN_CALL_CHUNK):
            chunk = ids[i : i + _CHAIN_CALL_CHUNK]
            moved += s.execute(
                update(Record)
                .where(Record.record_id.in_(chunk), Record.status == RecordState.QUEUED)
                .values(status=RecordState.SUBMITTED, batch_id=batch_id, tx_hash=tx_hash, updated_at=now)
            ).rowcount
            s.execute(
                update(AnchorOutbox).where(AnchorOutbox.record_id.in_(chunk)).values(attempts=AnchorOutbox.attempts + 1)
            )
        if moved != len(ids):
            raise AnchorerConflict("queued records changed under the anchorer: is a second anchorer running?")


__all__ = ["ISOLATE_AFTER_ATTEMPTS", "AnchorStep", "Anchorer", "AnchorerConflict"]
