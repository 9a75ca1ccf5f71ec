"""The anchorer: moves queued records onto the chain in batched ``anchorRecords`` transactions, without loss
and without anchoring anything twice, across crashes of the node and outages of the chain.

Write-ahead protocol, per batch:

1. take the oldest queued records (up to ``max_batch``, or fewer once the oldest waited ``max_wait_ms``);
2. sign the transaction (which fixes its nonce and hash);
3. in ONE database transaction store the signed bytes, hash and nonce in ``anchor_batches`` and mark the
   records ``submitted``;
4. only then broadcast.

Every step first reconciles each ``submitted`` batch with the chain, so a restart after a crash is no special
case:

* receipt with status 1 (and enough confirmations) → the records are ``confirmed`` with tx hash and block;
* receipt with status 0 → each record is looked up on chain (the contract rejects duplicates, so a record
  anchored by an earlier attempt shows us as its custodian): anchored ones are confirmed, the rest re-queued;
* no receipt and the node does not know the transaction (crash before broadcast, node restarted without its
  pool) → the SAME signed bytes are re-broadcast (same nonce, same hash: idempotent); if the node refuses them
  (the nonce went to another transaction) the records are reconciled one by one as above.

A chain that cannot be reached (:class:`RpcUnavailable`) leaves everything as it is: records stay queued or
submitted, :meth:`Anchorer.run` backs off and carries on when the chain is back.

One anchorer per node database: two would sign different batches for the same queued records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.rpc import RpcError, RpcUnavailable
from medledger.chain.sender import SignedTx, TransactionFailed, TransactionSender
from medledger.chain.types import RecordAnchor
from medledger.errors import ConfigError, MedLedgerError
from medledger.vocabulary import RecordClass
from node.db import records_by_status
from node.db.models import AnchorBatch, AnchorOutbox, BatchState, Patient, Record, RecordState, utcnow
from node.doorbell import Doorbell, run_steps

log = logging.getLogger(__name__)

#: A record re-queued this many times is anchored alone, so one record the contract rejects cannot keep
#: failing the batches of everyone else.
ISOLATE_AFTER_ATTEMPTS = 2
_CHAIN_CALL_CHUNK = 500


class AnchorerConflict(MedLedgerError):
    """Queued records changed state while a batch was being written: a second anchorer runs on this database."""

    code = "anchorer_conflict"


@dataclass
class AnchorStep:
    """What one :meth:`Anchorer.run_once` did."""

    batches: int = 0  # new batches signed, persisted and broadcast
    submitted: int = 0  # records in those batches
    confirmed: int = 0  # records confirmed
    requeued: int = 0  # records put back in the queue (their batch failed)
    rebroadcast: int = 0  # persisted transactions sent again
    chain_down: bool = False
    in_flight: int = 0  # batches submitted and not yet confirmed after this step
    due_in: float | None = None  # seconds until a partial batch of queued records is due

    @property
    def idle(self) -> bool:
        return not (self.batches or self.confirmed or self.requeued or self.rebroadcast)


def _aware(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the node writes is UTC.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _unix(dt: datetime | None) -> int:
    if dt is None:
        return 0
    return max(0, int(_aware(dt).timestamp()))


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

    # ------------------------------------------------------------------ loop

    def run_once(self) -> AnchorStep:
        """Reconcile submitted batches with the chain, then submit new batches of queued records."""
        step = AnchorStep()
        try:
            self._track(step)
            self._submit(step)
        except (RpcUnavailable, RpcError) as exc:
            # RpcError: a node that answers but fails internally (e.g. still starting) is as good as down.
            log.warning("chain unavailable, anchoring paused: %s", exc)
            step.chain_down = True
        return step

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
        """Run steps until nothing is queued or submitted (or ``max_steps``); returns the summed counts."""
        total = AnchorStep()
        for _ in range(max_steps):
            counts = self.status_counts()
            if counts[RecordState.QUEUED] == 0 and counts[RecordState.SUBMITTED] == 0:
                break
            step = self.run_once()
            for name in ("batches", "submitted", "confirmed", "requeued", "rebroadcast"):
                setattr(total, name, getattr(total, name) + getattr(step, name))
            total.chain_down = step.chain_down
            if step.chain_down:
                # Draining is a one-shot catch-up; with the chain unreachable the records stay queued or
                # submitted for the next run (run() is the loop that waits for the chain to come back).
                break
            if step.idle:
                threading.Event().wait(poll_interval)
        return total

    def status_counts(self) -> dict[str, int]:
        return records_by_status(self._sessions)

    # ------------------------------------------------------------------ reconcile

    def _track(self, step: AnchorStep) -> None:
        with self._sessions() as s:
            batches = s.execute(
                select(AnchorBatch.id, AnchorBatch.tx_hash, AnchorBatch.nonce, AnchorBatch.raw_tx)
                .where(AnchorBatch.status == BatchState.SUBMITTED)
                .order_by(AnchorBatch.nonce, AnchorBatch.id)
            ).all()
        if not batches:
            return
        receipts = self.client.rpc.batch([("eth_getTransactionReceipt", [b.tx_hash]) for b in batches])
        head: int | None = None
        missing = []
        for b, r in zip(batches, receipts, strict=True):
            if r is None:
                missing.append(b)
                continue
            block = int(r["blockNumber"], 16)
            if int(r["status"], 16) != 1:
                self._reconcile(b.id, f"transaction {b.tx_hash} reverted in block {block}", step)
                continue
            if self.confirmations > 1:
                head = head if head is not None else self.client.rpc.block_number()
                if head - block + 1 < self.confirmations:
                    continue
            step.confirmed += self._confirm(b.id, b.tx_hash, block)
        if not missing:
            return
        known = self.client.rpc.batch([("eth_getTransactionByHash", [b.tx_hash]) for b in missing])
        for b, tx in zip(missing, known, strict=True):
            if tx is not None:
                continue  # in the node's pool: wait for it to be mined
            signed = SignedTx(b.tx_hash, bytes(b.raw_tx), b.nonce, self.client.address, 0)
            try:
                self.sender.broadcast(signed)
            except TransactionFailed as exc:
                # Refused: its nonce went to another transaction, or it raced into a block since the receipt
                # poll. The chain knows which records are anchored; ask it.
                self._reconcile(b.id, exc.message[:256], step)
                continue
            step.rebroadcast += 1
            with self._sessions.begin() as s:
                s.execute(
                    update(AnchorBatch)
                    .where(AnchorBatch.id == b.id)
                    .values(broadcasts=AnchorBatch.broadcasts + 1, updated_at=utcnow())
                )

    def _confirm(self, batch_id: int, tx_hash: str, block: int) -> int:
        now = utcnow()
        with self._sessions.begin() as s:
            n = s.execute(
                update(Record)
                .where(Record.batch_id == batch_id, Record.status == RecordState.SUBMITTED)
                .values(status=RecordState.CONFIRMED, tx_hash=tx_hash, block_number=block, updated_at=now)
            ).rowcount
            s.execute(
                delete(AnchorOutbox).where(
                    AnchorOutbox.record_id.in_(select(Record.record_id).where(Record.batch_id == batch_id))
                )
            )
            s.execute(
                update(AnchorBatch)
                .where(AnchorBatch.id == batch_id)
                .values(status=BatchState.CONFIRMED, block_number=block, updated_at=now)
            )
        return int(n)

    def _reconcile(self, batch_id: int, reason: str, step: AnchorStep) -> None:
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
            s.execute(
                update(AnchorBatch)
                .where(AnchorBatch.id == batch_id)
                .values(status=BatchState.FAILED, error=reason[:256], updated_at=now)
            )
        # The failed transaction's nonce may be free again (or taken): read it anew before the next signature.
        self.sender.resync_nonce()
        step.confirmed += len(anchored)
        step.requeued += len(requeue)
        log.warning(
            "anchor batch %s failed (%s): %d anchored, %d re-queued", batch_id, reason, len(anchored), len(requeue)
        )

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

    def _in_flight(self) -> int:
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(AnchorBatch.status == BatchState.SUBMITTED)) or 0)

    def _next_batch(self, step: AnchorStep) -> list[Any]:
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
        if rows and rows[0].attempts >= ISOLATE_AFTER_ATTEMPTS:
            return rows[:1]
        if len(rows) < self.max_batch and rows:
            waited = self._clock() - _aware(rows[0].enqueued_at)
            if waited < self.max_wait:
                step.due_in = (self.max_wait - waited).total_seconds()
                return []  # not full and nobody has waited long enough: let the batch fill
        return list(rows)

    def _submit(self, step: AnchorStep) -> None:
        in_flight = step.in_flight = self._in_flight()
        while in_flight < self.max_in_flight:
            rows = self._next_batch(step)
            if not rows:
                return
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
            ids = [a.record_id for a in anchors]
            self.sender.send_write_ahead(
                self.client.address,
                self.client.encode_anchor_records(anchors),
                gas=RecordRegistryClient.anchor_gas(len(anchors)),
                persist=lambda signed, ids=ids: self._persist(signed, ids),
            )
            step.batches += 1
            step.submitted += len(ids)
            in_flight = step.in_flight = in_flight + 1

    def _persist(self, signed: SignedTx, ids: list[bytes]) -> None:
        now = utcnow()
        with self._sessions.begin() as s:
            batch = AnchorBatch(
                tx_hash=signed.tx_hash,
                nonce=signed.nonce,
                sender=self.address,
                raw_tx=signed.raw,
                record_count=len(ids),
                status=BatchState.SUBMITTED,
                broadcasts=1,
                created_at=now,
                updated_at=now,
            )
            s.add(batch)
            s.flush()
            moved = 0
            for i in range(0, len(ids), _CHAIN_CALL_CHUNK):
                chunk = ids[i : i + _CHAIN_CALL_CHUNK]
                moved += s.execute(
                    update(Record)
                    .where(Record.record_id.in_(chunk), Record.status == RecordState.QUEUED)
                    .values(status=RecordState.SUBMITTED, batch_id=batch.id, tx_hash=signed.tx_hash, updated_at=now)
                ).rowcount
                s.execute(
                    update(AnchorOutbox)
                    .where(AnchorOutbox.record_id.in_(chunk))
                    .values(attempts=AnchorOutbox.attempts + 1)
                )
            if moved != len(ids):
                raise AnchorerConflict("queued records changed under the anchorer: is a second anchorer running?")


__all__ = ["ISOLATE_AFTER_ATTEMPTS", "AnchorStep", "Anchorer", "AnchorerConflict"]
