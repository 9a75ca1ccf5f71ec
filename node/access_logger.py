"""The access logger: moves journaled accesses onto the chain's AccessLog in batched ``logAccesses``
transactions, exactly once, across crashes and chain outages.

Same write-ahead protocol as the anchorer (node.anchorer): sign, persist the signed bytes with the batch's
entries marked ``submitted`` in one database transaction, then broadcast; every step first reconciles
submitted batches with the chain. An access batch has no per-entry chain state to look up, so a batch that
can never be mined as signed (reverted, or its nonce went to another transaction) simply puts its entries
back in the queue; one that was mined is confirmed from its receipt. Re-broadcasting the same signed bytes
is idempotent, so an entry reaches the chain once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.contracts import AccessLogClient
from medledger.chain.rpc import RpcUnavailable
from medledger.chain.sender import SignedTx, TransactionFailed, TransactionSender
from medledger.chain.types import Access
from medledger.errors import ConfigError
from medledger.vocabulary import AuthKind, Purpose
from node.db.models import AccessBatch, AccessEntry, AccessState, BatchState, utcnow
from node.doorbell import Doorbell, run_steps

log = logging.getLogger(__name__)


#: Blocks kept in hand below AccessLog.MAX_DECISION_AGE for those mined before a batch is.
DECISION_AGE_MARGIN = 32


def citable_decision(decided_block: int, head: int, max_age: int) -> int:
    """The decision block to log with an access: its own, unless the contract (which accepts blocks up to
    ``max_age`` before the logging block) might no longer take it by the time the batch is mined — a journal
    that waited long, e.g. on a node that was down while the chain went on; then 0, and the access is judged
    at its log position."""
    fresh = 0 < decided_block <= head and head - decided_block <= max_age - DECISION_AGE_MARGIN
    return decided_block if fresh else 0


@dataclass
class LogStep:
    """What one :meth:`AccessLogger.run_once` did."""

    batches: int = 0
    submitted: int = 0
    confirmed: int = 0
    requeued: int = 0
    rebroadcast: int = 0
    chain_down: bool = False
    in_flight: int = 0  # batches submitted and not yet confirmed after this step
    due_in: float | None = None  # seconds until a partial batch of queued entries is due

    @property
    def idle(self) -> bool:
        return not (self.batches or self.confirmed or self.requeued or self.rebroadcast)


class AccessLogger:
    """Submits the access journal of the node database behind ``sessions`` through ``client``.

    Args:
        sessions: Node database sessions.
        client: The AccessLog contract with this institution's sender.
        max_batch: Accesses per transaction at most.
        max_wait_ms: A partial batch is sent once its oldest entry waited this long.
        max_in_flight: Submitted, unconfirmed batches at most.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: AccessLogClient,
        *,
        max_batch: int = 500,
        max_wait_ms: int = 200,
        max_in_flight: int = 4,
    ) -> None:
        if client.sender is None:
            raise ConfigError("the access logger needs a contract client with a sender")
        self._sessions = sessions
        self.client = client
        self.sender: TransactionSender = client.sender
        self.max_batch = max_batch
        self.max_wait = timedelta(milliseconds=max_wait_ms)
        self.max_in_flight = max_in_flight
        self._max_decision_age: int | None = None  # AccessLog.MAX_DECISION_AGE, read when first needed

    def run_once(self) -> LogStep:
        step = LogStep()
        try:
            self._track(step)
            self._submit(step)
        except RpcUnavailable as exc:
            log.warning("access logger: chain unavailable (%s); entries stay journaled", exc.message)
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
        """Log until ``stop`` is set; back off exponentially while the chain is down. With nothing queued or
        in flight it sleeps until ``wake`` rings (the journal committed entries; see node.doorbell)."""
        run_steps(
            self.run_once,
            stop,
            wake=wake,
            poll_interval=poll_interval,
            idle_interval=idle_interval,
            max_backoff=max_backoff,
        )

    def drain(self, *, timeout: float = 60.0, poll_interval: float = 0.02) -> LogStep:
        """Run until nothing is queued or submitted (tests, shutdown, CLI); stops early if the chain is down."""
        total = LogStep()
        deadline = time.monotonic() + timeout
        self.max_wait, saved = timedelta(0), self.max_wait
        try:
            while time.monotonic() < deadline:
                step = self.run_once()
                for f in ("batches", "submitted", "confirmed", "requeued", "rebroadcast"):
                    setattr(total, f, getattr(total, f) + getattr(step, f))
                if step.chain_down:
                    total.chain_down = True
                    return total
                if self.pending() == 0:
                    return total
                time.sleep(poll_interval)
        finally:
            self.max_wait = saved
        return total

    def pending(self) -> int:
        """Entries not yet confirmed on chain."""
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(AccessEntry.status != AccessState.CONFIRMED)) or 0)

    # ------------------------------------------------------------------ tracking

    def _track(self, step: LogStep) -> None:
        with self._sessions() as s:
            batches = s.execute(
                select(AccessBatch.id, AccessBatch.tx_hash, AccessBatch.nonce, AccessBatch.raw_tx)
                .where(AccessBatch.status == BatchState.SUBMITTED)
                .order_by(AccessBatch.nonce, AccessBatch.id)
            ).all()
        if not batches:
            return
        receipts = self.client.rpc.batch([("eth_getTransactionReceipt", [b.tx_hash]) for b in batches])
        missing = []
        for b, r in zip(batches, receipts, strict=True):
            if r is None:
                missing.append(b)
            elif int(r["status"], 16) == 1:
                step.confirmed += self._confirm(b.id, b.tx_hash, int(r["blockNumber"], 16))
            else:
                step.requeued += self._requeue(b.id, f"transaction {b.tx_hash} reverted")
        if not missing:
            return
        known = self.client.rpc.batch([("eth_getTransactionByHash", [b.tx_hash]) for b in missing])
        for b, tx in zip(missing, known, strict=True):
            if tx is not None:
                continue
            try:
                self.sender.broadcast(SignedTx(b.tx_hash, bytes(b.raw_tx), b.nonce, self.client.address, 0))
                step.rebroadcast += 1
            except TransactionFailed as exc:
                # Refused: the nonce went to another transaction, or it was mined since the receipt poll.
                receipt = self.client.rpc.call("eth_getTransactionReceipt", [b.tx_hash])
                if receipt is not None and int(receipt["status"], 16) == 1:
                    step.confirmed += self._confirm(b.id, b.tx_hash, int(receipt["blockNumber"], 16))
                else:
                    step.requeued += self._requeue(b.id, exc.message)

    def _confirm(self, batch_id: int, tx_hash: str, block: int) -> int:
        with self._sessions.begin() as s:
            n = s.execute(
                update(AccessEntry)
                .where(AccessEntry.batch_id == batch_id, AccessEntry.status == AccessState.SUBMITTED)
                .values(status=AccessState.CONFIRMED, tx_hash=tx_hash, block_number=block)
            ).rowcount
            s.execute(
                update(AccessBatch)
                .where(AccessBatch.id == batch_id)
                .values(status=BatchState.CONFIRMED, block_number=block, updated_at=utcnow())
            )
        return int(n)

    def _requeue(self, batch_id: int, reason: str) -> int:
        with self._sessions.begin() as s:
            n = s.execute(
                update(AccessEntry)
                .where(AccessEntry.batch_id == batch_id, AccessEntry.status == AccessState.SUBMITTED)
                .values(status=AccessState.QUEUED, batch_id=None, tx_hash=None)
            ).rowcount
            s.execute(
                update(AccessBatch)
                .where(AccessBatch.id == batch_id)
                .values(status=BatchState.FAILED, error=reason[:256], updated_at=utcnow())
            )
        self.sender.resync_nonce()
        log.warning("access batch %s failed (%s): %d entries re-queued", batch_id, reason, n)
        return int(n)

    # ------------------------------------------------------------------ submitting

    def _submit(self, step: LogStep) -> None:
        with self._sessions() as s:
            in_flight = int(s.scalar(select(func.count()).where(AccessBatch.status == BatchState.SUBMITTED)) or 0)
        step.in_flight = in_flight
        head = max_age = 0
        while in_flight < self.max_in_flight:
            rows = self._next_batch(step)
            if not rows:
                return
            if not head:  # where the chain is now, for the decision blocks the batches may cite
                head = self.client.rpc.block_number()
                if self._max_decision_age is None:
                    self._max_decision_age = self.client.max_decision_age()
                max_age = self._max_decision_age
            accesses = [
                Access(
                    r.patient,
                    r.accessor,
                    bytes(r.record_id),
                    Purpose(r.purpose),
                    AuthKind(r.auth_kind),
                    int(r.auth_id),
                    bytes(r.staff_ref),
                    citable_decision(int(r.decided_block), head, max_age),
                )
                for r in rows
            ]
            ids = [r.id for r in rows]
            self.sender.send_write_ahead(
                self.client.address,
                self.client.encode_log_accesses(accesses),
                gas=AccessLogClient.log_gas(len(accesses)),
                persist=lambda signed, ids=ids: self._persist(signed, ids),
            )
            step.batches += 1
            step.submitted += len(ids)
            in_flight = step.in_flight = in_flight + 1

    def _next_batch(self, step: LogStep) -> list[Any]:
        with self._sessions() as s:
            rows = s.execute(
                select(AccessEntry)
                .with_only_columns(
                    AccessEntry.id,
                    AccessEntry.patient,
                    AccessEntry.accessor,
                    AccessEntry.record_id,
                    AccessEntry.purpose,
                    AccessEntry.auth_kind,
                    AccessEntry.auth_id,
                    AccessEntry.staff_ref,
                    AccessEntry.decided_block,
                    AccessEntry.requested_at,
                )
                .where(AccessEntry.status == AccessState.QUEUED)
                .order_by(AccessEntry.id)
                .limit(self.max_batch)
            ).all()
        if not rows:
            return []
        oldest = rows[0].requested_at
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        waited = datetime.now(UTC) - oldest
        if len(rows) < self.max_batch and waited < self.max_wait:
            step.due_in = (self.max_wait - waited).total_seconds()
            return []
        return list(rows)

    def _persist(self, signed: SignedTx, ids: list[int]) -> None:
        now = utcnow()
        with self._sessions.begin() as s:
            batch = AccessBatch(
                tx_hash=signed.tx_hash,
                nonce=signed.nonce,
                sender=self.sender.address,
                raw_tx=signed.raw,
                entry_count=len(ids),
                status=BatchState.SUBMITTED,
                created_at=now,
                updated_at=now,
            )
            s.add(batch)
            s.flush()
            for i in range(0, len(ids), 500):
                s.execute(
                    update(AccessEntry)
                    .where(AccessEntry.id.in_(ids[i : i + 500]), AccessEntry.status == AccessState.QUEUED)
                    .values(status=AccessState.SUBMITTED, batch_id=batch.id, tx_hash=signed.tx_hash)
                )


__all__ = ["AccessLogger", "LogStep"]
