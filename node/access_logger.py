"""The access logger: moves journaled accesses onto the chain's AccessLog in batched ``logAccesses``
transactions, exactly once, across crashes and chain outages.

Batches go through the node's write-ahead protocol (node.chain_outbox), as the anchorer's do: sign, persist
the signed bytes with the batch's entries marked ``submitted`` in one database transaction, then broadcast;
every step first reconciles submitted batches with the chain, and re-sending the same signed bytes is
idempotent, so an entry reaches the chain once. An access batch has no per-entry chain state to look up, so a
batch that can never be mined as signed (reverted, or its nonce went to another transaction) simply puts its
entries back in the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.contracts import AccessLogClient
from medledger.chain.sender import TransactionSender
from medledger.chain.types import Access
from medledger.errors import ConfigError
from medledger.vocabulary import AuthKind, Purpose
from node.chain_outbox import Failure, OutboxStep, PendingWrite, Settled, WriteAheadOutbox, drain_steps
from node.db.models import AccessBatch, AccessEntry, AccessState, as_utc
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


class LogStep(OutboxStep):
    """What one :meth:`AccessLogger.run_once` did (``batches``: new logAccesses transactions; ``submitted``,
    ``confirmed``, ``requeued``: journal entries; ``rebroadcast``: persisted transactions sent again)."""


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
        self._head = 0  # the chain's head as this step last read it (0: not yet in this step)
        self.outbox = WriteAheadOutbox(
            sessions,
            self.sender,
            AccessBatch,
            next_write=self._next_write,
            mark_submitted=self._mark_submitted,
            on_confirmed=self._confirm,
            on_failed=self._requeue,
            max_in_flight=max_in_flight,
        )

    def run_once(self) -> LogStep:
        self._head = 0
        return self.outbox.run_once(LogStep())

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
        self.max_wait, saved = timedelta(0), self.max_wait
        try:
            return drain_steps(
                self.run_once, lambda: self.pending() > 0, LogStep(), timeout=timeout, poll_interval=poll_interval
            )
        finally:
            self.max_wait = saved

    def pending(self) -> int:
        """Entries not yet confirmed on chain."""
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(AccessEntry.status != AccessState.CONFIRMED)) or 0)

    # ------------------------------------------------------------------ outcomes

    def _confirm(self, s: Session, batch_id: int, tx_hash: str, block: int) -> int:
        n = s.execute(
            update(AccessEntry)
            .where(AccessEntry.batch_id == batch_id, AccessEntry.status == AccessState.SUBMITTED)
            .values(status=AccessState.CONFIRMED, tx_hash=tx_hash, block_number=block)
        ).rowcount
        return int(n)

    def _requeue(self, batch_id: int, failure: Failure) -> Settled:
        with self._sessions.begin() as s:
            n = s.execute(
                update(AccessEntry)
                .where(AccessEntry.batch_id == batch_id, AccessEntry.status == AccessState.SUBMITTED)
                .values(status=AccessState.QUEUED, batch_id=None, tx_hash=None)
            ).rowcount
            self.outbox.record_failure(s, batch_id, failure)
        return Settled(requeued=int(n))

    # ------------------------------------------------------------------ submitting

    def _next_write(self, step: OutboxStep) -> PendingWrite | None:
        rows = self._next_batch(step)
        if not rows:
            return None
        if not self._head:  # where the chain is now, for the decision blocks the batches may cite
            self._head = self.client.rpc.block_number()
            if self._max_decision_age is None:
                self._max_decision_age = self.client.max_decision_age()
        head, max_age = self._head, self._max_decision_age
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
        return PendingWrite(
            self.client.address,
            self.client.encode_log_accesses(accesses),
            AccessLogClient.log_gas(len(accesses)),
            [r.id for r in rows],
            columns={"entry_count": len(rows)},
        )

    def _next_batch(self, step: OutboxStep) -> Sequence[Any]:
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
        waited = datetime.now(UTC) - as_utc(rows[0].requested_at)
        if len(rows) < self.max_batch and waited < self.max_wait:
            step.due_in = (self.max_wait - waited).total_seconds()
            return []
        return rows

    def _mark_submitted(self, s: Session, batch_id: int, ids: Sequence[int]) -> None:
        tx_hash = s.get_one(AccessBatch, batch_id).tx_hash  # just inserted: from the session, no query
        for i in range(0, len(ids), 500):
            s.execute(
                update(AccessEntry)
                .where(AccessEntry.id.in_(ids[i : i + 500]), AccessEntry.status == AccessState.QUEUED)
                .values(status=AccessState.SUBMITTED, batch_id=batch_id, tx_hash=tx_hash)
            )


__all__ = ["AccessLogger", "LogStep"]
