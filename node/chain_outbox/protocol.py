"""The write-ahead protocol every chain write of the node goes through: sign → persist → broadcast →
reconcile (also after a restart) → exactly once.

An *owner* (the anchorer, the access logger, the generic :class:`~node.chain_outbox.writer.ChainWriter`) keeps
its transactions in a table with the write-ahead columns (``id``, ``tx_hash``, ``nonce``, ``sender``,
``raw_tx``, ``status``, ``block_number``, ``error``, ``created_at``, ``updated_at``, optionally
``broadcasts``; see node.db.models.WriteAheadBatch) and tells :class:`WriteAheadOutbox` what to send next and
what a transaction's outcome means for its own rows:

* submit: the owner's ``next_write`` names a call; it is signed (fixing nonce and hash), then in ONE database
  transaction its row is written (a new batch row, or an existing queued row moved to ``submitted``) and the
  owner's ``mark_submitted(session, row_id, items)`` moves its items; only then is it broadcast;
* track, every step and so after a crash as well: receipts of all submitted rows in one JSON-RPC batch; a
  receipt with status 1 and enough confirmations → ``on_confirmed(session, row_id, tx_hash, block)`` in the
  transaction that marks the row confirmed; status 0 → ``on_failed(row_id, failure)``; no receipt and the node
  does not know the transaction (crash before broadcast, node restarted without its pool) → the SAME signed
  bytes are broadcast again (same nonce, same hash: idempotent); a refused re-broadcast (the nonce went to
  another transaction, or it was mined since the receipt poll) → the receipt is asked once more, else
  ``on_failed``. After a failure the sender's nonce is read anew.

A chain that cannot be reached leaves every row as it is; the step reports ``chain_down`` and the loop
(:func:`node.doorbell.run_steps`) backs off. One owner per table and database: two would sign different
transactions for the same items.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, NamedTuple, TypeVar, cast

from sqlalchemy import ColumnElement, CursorResult, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.rpc import RpcError, RpcUnavailable
from medledger.chain.sender import SignedTx, TransactionFailed, TransactionSender
from medledger.errors import MedLedgerError
from node.db.models import BatchState, utcnow

log = logging.getLogger(__name__)

SUBMITTED = BatchState.SUBMITTED.value
#: The state of a row that is submitted in place (``PendingWrite.row_id``) before it is.
QUEUED = "queued"


class OutboxConflict(MedLedgerError):
    """A row the outbox was about to submit changed state meanwhile: a second worker runs on this database."""

    code = "outbox_conflict"


class SettleLater(Exception):
    """Raised by an owner's callback: leave this row as it is (its settlement is rolled back) and try again on a
    later step, without stopping the others."""


@dataclass
class OutboxStep:
    """What one step of an outbox owner did."""

    COUNTS: ClassVar[tuple[str, ...]] = ("batches", "submitted", "confirmed", "requeued", "rebroadcast")

    batches: int = 0  # new transactions signed, persisted and broadcast
    submitted: int = 0  # items in those transactions
    confirmed: int = 0  # items confirmed
    requeued: int = 0  # items put back in the queue (their transaction can never be mined)
    rebroadcast: int = 0  # persisted transactions sent again
    chain_down: bool = False
    in_flight: int = 0  # transactions submitted and not yet confirmed after this step
    due_in: float | None = None  # seconds until a partial batch of queued items is due

    @property
    def idle(self) -> bool:
        return not any(getattr(self, name) for name in self.COUNTS)

    def add(self, other: OutboxStep) -> None:
        """Add ``other``'s counts to these (a drain's total)."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def settle(self, settled: Settled) -> None:
        self.confirmed += settled.confirmed
        self.requeued += settled.requeued


class Settled(NamedTuple):
    """What an owner's ``on_failed`` did with the items of a transaction that will never be mined as signed."""

    confirmed: int = 0  # found on chain after all (e.g. anchored by an earlier attempt)
    requeued: int = 0
    failed: int = 0  # given up (a generic write that reverted)


@dataclass(frozen=True)
class Failure:
    """Why a persisted transaction will never be mined as signed."""

    tx_hash: str
    message: str
    #: The block of its status-0 receipt; None if the node refused it and it was never mined.
    reverted_in: int | None = None


@dataclass(frozen=True)
class PendingWrite:
    """A call an owner wants on chain, and what its persist step writes."""

    to: str
    data: bytes
    gas: int
    #: Handed to the owner's ``mark_submitted`` (record ids, journal entry ids); their number is counted.
    items: Sequence[Any]
    #: Owner columns of the new batch row (``record_count=...``).
    columns: Mapping[str, Any] = field(default_factory=dict)
    #: An existing queued row to submit instead of inserting a batch row (node.db.models.ChainWrite).
    row_id: int | None = None


Step = TypeVar("Step", bound=OutboxStep)


class WriteAheadOutbox:
    """The protocol over one owner's table ``model`` (see the module docstring).

    Args:
        sessions: The node database.
        sender: The node's account (shared by every owner, so nonces are allocated in one place).
        model: The owner's mapped table with the write-ahead columns.
        next_write: The next call to send, or None (it may set ``step.due_in``).
        mark_submitted: Moves the owner's items to ``submitted`` inside the persist transaction.
        on_confirmed: Confirms the owner's items inside the transaction that confirms the row; returns how many.
        on_failed: Settles the items of a transaction that will never be mined as signed, and marks the row (it
            calls :meth:`record_failure` in the transaction that settles them, so both commit together).
        confirmations: Blocks (including the including one) before a row counts as confirmed.
        max_in_flight: Rows submitted and not yet confirmed at most.
        scope: Extra conditions on the rows this outbox handles (the generic writer's registered kinds).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: TransactionSender,
        model: type[Any],
        *,
        next_write: Callable[[OutboxStep], PendingWrite | None],
        mark_submitted: Callable[[Session, int, Sequence[Any]], None],
        on_confirmed: Callable[[Session, int, str, int], int],
        on_failed: Callable[[int, Failure], Settled],
        confirmations: int = 1,
        max_in_flight: int = 16,
        scope: Callable[[], Sequence[ColumnElement[bool]]] = tuple,
    ) -> None:
        self._sessions = sessions
        self.sender = sender
        self.rpc = sender.rpc
        self.model = model
        self._next_write = next_write
        self._mark_submitted = mark_submitted
        self._on_confirmed = on_confirmed
        self._on_failed = on_failed
        self.confirmations = confirmations
        self.max_in_flight = max_in_flight
        self._scope = scope
        columns = model.__table__.c
        self._counts_broadcasts = "broadcasts" in columns
        self._error_length: int = columns.error.type.length

    # ------------------------------------------------------------------ loop

    def run_once(self, step: Step) -> Step:
        """Reconcile submitted rows with the chain, then submit what the owner has queued."""
        try:
            self.track(step)
            self.submit(step)
        except (RpcUnavailable, RpcError) as exc:
            # RpcError: a node that answers but fails internally (e.g. still starting) is as good as down.
            log.warning("chain unavailable, %s paused: %s", self.model.__tablename__, exc.message)
            step.chain_down = True
        return step

    def in_flight(self) -> int:
        m = self.model
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(m.status == SUBMITTED, *self._scope())) or 0)

    # ------------------------------------------------------------------ track

    def track(self, step: OutboxStep) -> None:
        m = self.model
        with self._sessions() as s:
            rows = s.execute(
                select(m.id, m.tx_hash, m.nonce, m.raw_tx)
                .where(m.status == SUBMITTED, *self._scope())
                .order_by(m.nonce, m.id)
            ).all()
        if not rows:
            return
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [r.tx_hash]) for r in rows])
        head: list[int] = []  # read once per step, only if confirmations are needed
        missing = []
        for row, receipt in zip(rows, receipts, strict=True):
            if receipt is None:
                missing.append(row)
            else:
                self._settle(row, receipt, step, head)
        if not missing:
            return
        known = self.rpc.batch([("eth_getTransactionByHash", [r.tx_hash]) for r in missing])
        for row, tx in zip(missing, known, strict=True):
            if tx is not None:
                continue  # in the node's pool: wait for it to be mined
            try:
                self.sender.broadcast(SignedTx(row.tx_hash, bytes(row.raw_tx), row.nonce, "", 0))
            except TransactionFailed as exc:
                receipt = self.rpc.call("eth_getTransactionReceipt", [row.tx_hash])
                if receipt is not None:
                    self._settle(row, receipt, step, head)
                else:
                    self._fail(row.id, Failure(row.tx_hash, exc.message), step)
                continue
            step.rebroadcast += 1
            if self._counts_broadcasts:
                with self._sessions.begin() as s:
                    s.execute(update(m).where(m.id == row.id).values(broadcasts=m.broadcasts + 1, updated_at=utcnow()))

    def _settle(self, row: Any, receipt: dict[str, Any], step: OutboxStep, head: list[int]) -> None:
        block = int(receipt["blockNumber"], 16)
        if int(receipt["status"], 16) != 1:
            reason = f"transaction {row.tx_hash} reverted in block {block}"
            self._fail(row.id, Failure(row.tx_hash, reason, block), step)
            return
        if self.confirmations > 1:
            if not head:
                head.append(self.rpc.block_number())
            if head[0] - block + 1 < self.confirmations:
                return
        m = self.model
        try:
            with self._sessions.begin() as s:
                n = self._on_confirmed(s, row.id, row.tx_hash, block)
                s.execute(
                    update(m)
                    .where(m.id == row.id)
                    .values(status=BatchState.CONFIRMED, block_number=block, updated_at=utcnow())
                )
        except SettleLater:
            return
        step.confirmed += n

    def _fail(self, row_id: int, failure: Failure, step: OutboxStep) -> None:
        try:
            settled = self._on_failed(row_id, failure)
        except SettleLater:
            return
        finally:
            # The failed transaction's nonce may be free again (or taken): read it anew before the next signature.
            self.sender.resync_nonce()
        step.settle(settled)
        log.warning("%s %s failed (%s): %s", self.model.__tablename__, row_id, failure.message, settled)

    def record_failure(self, session: Session, row_id: int, failure: Failure | str) -> None:
        """Mark row ``row_id`` failed, in the owner's transaction that settles its items."""
        m = self.model
        message = failure.message if isinstance(failure, Failure) else failure
        session.execute(
            update(m)
            .where(m.id == row_id)
            .values(status=BatchState.FAILED, error=message[: self._error_length], updated_at=utcnow())
        )

    # ------------------------------------------------------------------ submit

    def submit(self, step: OutboxStep) -> None:
        """Send the owner's next writes while fewer than ``max_in_flight`` rows are submitted."""
        in_flight = step.in_flight = self.in_flight()
        while in_flight < self.max_in_flight:
            write = self._next_write(step)
            if write is None:
                return
            self.sender.send_write_ahead(
                write.to, write.data, gas=write.gas, persist=partial(self._persist, write=write)
            )
            step.batches += 1
            step.submitted += len(write.items)
            in_flight = step.in_flight = in_flight + 1

    def _persist(self, signed: SignedTx, write: PendingWrite) -> None:
        m = self.model
        now = utcnow()
        values: dict[str, Any] = {
            "tx_hash": signed.tx_hash,
            "nonce": signed.nonce,
            "sender": self.sender.address,
            "raw_tx": signed.raw,
            "status": SUBMITTED,
            "updated_at": now,
        }
        if self._counts_broadcasts:
            values["broadcasts"] = 1
        with self._sessions.begin() as s:
            if write.row_id is None:
                row = m(**values, **write.columns, created_at=now)
                s.add(row)
                s.flush()
                row_id = int(row.id)
            else:
                row_id = write.row_id
                result = s.execute(update(m).where(m.id == row_id, m.status == QUEUED).values(**values))
                moved = cast(CursorResult[Any], result).rowcount
                if moved != 1:
                    raise OutboxConflict(f"{m.__tablename__} {row_id} changed state: is a second worker running?")
            self._mark_submitted(s, row_id, write.items)


def drain_steps(
    run_once: Callable[[], Step],
    busy: Callable[[], bool],
    total: Step,
    *,
    max_steps: int | None = None,
    timeout: float | None = None,
    poll_interval: float = 0.02,
) -> Step:
    """Run steps while ``busy()`` (or until ``max_steps`` / ``timeout``); returns ``total`` with the summed counts.

    Draining is a one-shot catch-up (tests, shutdown, the CLI): with the chain unreachable it stops, the items
    stay queued or submitted for the next run (``run`` is the loop that waits for the chain to come back)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    steps = 0
    while busy():
        if (max_steps is not None and steps >= max_steps) or (deadline is not None and time.monotonic() > deadline):
            break
        step = run_once()
        steps += 1
        total.add(step)
        total.chain_down = step.chain_down
        total.in_flight = step.in_flight
        if step.chain_down:
            break
        if step.idle:
            threading.Event().wait(poll_interval)
    return total


__all__ = [
    "Failure",
    "OutboxConflict",
    "OutboxStep",
    "PendingWrite",
    "SettleLater",
    "Settled",
    "WriteAheadOutbox",
    "drain_steps",
]
