"""The generic chain-write queue: single contract calls of the node's workflows (a referral event, a kit
code's use, a market escrow call) go on chain through the write-ahead protocol, on chain or queued, never
lost and never twice.

A workflow calls :meth:`ChainWriter.enqueue` INSIDE its own database transaction, so its state change and its
chain write commit together; ``(kind, key)`` makes enqueuing idempotent. The worker (:meth:`ChainWriter.run`)
signs, persists and broadcasts queued writes in enqueue order and follows them to the chain; each outcome
calls the handler its owner registered for the write's ``kind``, in the same database transaction that
records the outcome, so a handler runs once per outcome:

* mined with status 1 (and enough confirmations) → ``confirmed``, ``on_confirmed(session, write)``;
* reverted → ``failed`` with the decoded revert in ``error`` (``DuplicateDigest(root=0x…)``), ``on_failed``;
  a write enqueued without ``gas`` is estimated first, and one whose estimate reverts fails the same way
  without spending a nonce — unless this node still has transactions waiting to be mined, which the write
  may depend on: then it waits for them;
* lost (crash before broadcast, a node that dropped its pool) → the same signed bytes are sent again;
* refused and never mined (its nonce went to another transaction) → queued again and signed anew, up to
  ``MAX_REFUSALS`` times (a node that keeps refusing it objects to the write itself: it fails).

Only writes of registered kinds move: a kind's writes wait (queued or submitted) until a writer with its
handlers runs, so no outcome goes unhandled. A handler that raises is logged and called again on a later step
(the outcome is rolled back with it). Handlers do database work in the session they are given; anything
outside the database belongs in an outbox of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from eth_utils import is_address, to_checksum_address
from sqlalchemy import event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.abi import ContractAbi, ContractRevert, load_artifact
from medledger.chain.rpc import RpcError, RpcUnavailable
from medledger.chain.sender import TransactionSender
from medledger.errors import ConfigError, InputError, MedLedgerError
from node.chain_outbox.protocol import (
    Failure,
    OutboxStep,
    PendingWrite,
    Settled,
    SettleLater,
    WriteAheadOutbox,
    drain_steps,
)
from node.db.models import ChainWrite, WriteState, utcnow
from node.doorbell import Doorbell, run_steps

log = logging.getLogger(__name__)

#: A write the node refused this many times fails: a refusal after re-signing is not about its nonce.
MAX_REFUSALS = 5
#: Multiplier on an estimated gas limit (state can change between the estimate and inclusion), as the sender's.
GAS_HEADROOM = 1.25
_MIN_GAS = 21_000
_KNOWN_CONTRACTS = ("Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog")

#: ``handler(session, write)``: the write row with its outcome, in the transaction that records it.
Handler = Callable[[Session, ChainWrite], None]


class ChainWriteInvalid(InputError):
    """An enqueued write is malformed (kind, key, address, call data or gas)."""

    code = "chain_write_invalid"


class ChainWriteConflict(MedLedgerError):
    """A write was enqueued under the ``(kind, key)`` of an earlier, different write."""

    code = "chain_write_conflict"


@dataclass(frozen=True)
class WriteKind:
    """What the owner of a kind registered."""

    on_confirmed: Handler | None = None
    on_failed: Handler | None = None
    #: Decodes the kind's reverts (default: the errors of the MedLedger contracts).
    abi: ContractAbi | None = None


@dataclass
class WriteStep(OutboxStep):
    """What one :meth:`ChainWriter.run_once` did; ``batches`` and ``submitted`` both count writes sent."""

    COUNTS: ClassVar[tuple[str, ...]] = (*OutboxStep.COUNTS, "failed")

    failed: int = 0  # writes given up (reverted, or refused MAX_REFUSALS times)

    def settle(self, settled: Settled) -> None:
        super().settle(settled)
        self.failed += settled.failed


def _known_errors() -> ContractAbi:
    merged = ContractAbi([])
    for name in _KNOWN_CONTRACTS:
        merged.errors_by_selector.update(load_artifact(name).abi.errors_by_selector)
    return merged


def _revert_text(revert: ContractRevert) -> str:
    return revert.message.removeprefix("contract reverted: ")


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ChainWriteInvalid(f"chain write {what} must be a non-empty string of at most {limit} characters")
    return value


class ChainWriter:
    """The queue of the node's single contract writes, and its worker.

    Args:
        sessions: The node database.
        sender: The node's account, or a function returning it: enqueuing needs no chain, so the sender (whose
            construction asks the chain for its id) is resolved when the worker first runs.
        confirmations: Blocks (including the including one) before a write counts as confirmed.
        max_in_flight: Writes submitted and not yet confirmed at most.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: TransactionSender | Callable[[], TransactionSender],
        *,
        confirmations: int = 1,
        max_in_flight: int = 16,
    ) -> None:
        if confirmations < 1 or max_in_flight < 1:
            raise ConfigError("confirmations and max_in_flight must be at least 1")
        self._sessions = sessions
        self._sender_source = sender
        self.confirmations = confirmations
        self.max_in_flight = max_in_flight
        #: Rung when a transaction that enqueued a write commits (wakes the worker).
        self.bell = Doorbell()
        self._kinds: dict[str, WriteKind] = {}
        self._outbox: WriteAheadOutbox | None = None
        self._candidates: list[Any] | None = None  # queued writes this step may send (loaded once per step)
        self._fallback_abi: ContractAbi | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ owners

    def register(
        self,
        kind: str,
        *,
        on_confirmed: Handler | None = None,
        on_failed: Handler | None = None,
        abi: ContractAbi | None = None,
    ) -> None:
        """Take charge of the writes of ``kind``: ``on_confirmed`` / ``on_failed`` are called with the session and
        the write row in the transaction that records the outcome."""
        _text(kind, "kind", 64)
        with self._lock:
            if kind in self._kinds:
                raise ConfigError(f"chain write kind {kind!r} is registered twice", code="chain_write_kind_taken")
            self._kinds = {**self._kinds, kind: WriteKind(on_confirmed, on_failed, abi)}

    def enqueue(self, session: Session, *, kind: str, key: str, to: str, data: bytes, gas: int | None = None) -> int:
        """Queue the call ``data`` to contract ``to`` in the caller's transaction ``session``; returns the write's id.

        Enqueuing the same ``(kind, key)`` again is a no-op (the first write's id is returned); under the same
        key a different call raises :class:`ChainWriteConflict`. ``gas`` None: estimated when the write is sent.
        The worker is woken when ``session`` commits."""
        _text(kind, "kind", 64)
        _text(key, "key", 128)
        if not isinstance(to, str) or not is_address(to):
            raise ChainWriteInvalid(f"chain write {kind}/{key}: {to!r} is not an address")
        if not isinstance(data, bytes | bytearray) or len(data) < 4:
            raise ChainWriteInvalid(f"chain write {kind}/{key}: call data must be bytes starting with a selector")
        if gas is not None and (isinstance(gas, bool) or not isinstance(gas, int) or gas < _MIN_GAS):
            raise ChainWriteInvalid(f"chain write {kind}/{key}: gas must be an integer of at least {_MIN_GAS}")
        now = utcnow()
        values = {
            "kind": kind,
            "key": key,
            "to": to_checksum_address(to),
            "data": bytes(data),
            "gas": gas,
            "status": WriteState.QUEUED.value,
            "attempts": 0,
            "broadcasts": 0,
            "created_at": now,
            "updated_at": now,
        }
        dialect = session.get_bind().dialect.name
        stmt: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            stmt = postgresql.insert(ChainWrite).values(**values).on_conflict_do_nothing(index_elements=["kind", "key"])
        elif dialect == "sqlite":
            stmt = sqlite.insert(ChainWrite).values(**values).on_conflict_do_nothing(index_elements=["kind", "key"])
        else:
            raise ConfigError(f"the chain-write queue needs SQLite or PostgreSQL, not {dialect}")
        new_id = session.execute(stmt.returning(ChainWrite.id)).scalar()
        if new_id is None:
            earlier = session.execute(
                select(ChainWrite.id, ChainWrite.to, ChainWrite.data, ChainWrite.gas).where(
                    ChainWrite.kind == kind, ChainWrite.key == key
                )
            ).one()
            if (earlier.to, bytes(earlier.data), earlier.gas) != (values["to"], values["data"], gas):
                raise ChainWriteConflict(f"chain write {kind}/{key} was enqueued before with a different call")
            return int(earlier.id)
        event.listen(session, "after_commit", lambda _session: self.bell.ring(), once=True)
        return int(new_id)

    def get(self, kind: str, key: str) -> ChainWrite | None:
        """The write ``(kind, key)`` as it stands now."""
        with self._sessions() as s:
            return s.scalar(select(ChainWrite).where(ChainWrite.kind == kind, ChainWrite.key == key))

    def pending(self) -> int:
        """Writes of registered kinds not yet confirmed or failed."""
        kinds = list(self._kinds)
        if not kinds:
            return 0
        with self._sessions() as s:
            return int(
                s.scalar(
                    select(func.count()).where(
                        ChainWrite.status.in_([WriteState.QUEUED, WriteState.SUBMITTED]), ChainWrite.kind.in_(kinds)
                    )
                )
                or 0
            )

    # ------------------------------------------------------------------ loop

    def run_once(self) -> WriteStep:
        """Follow submitted writes to the chain, then send queued ones."""
        step = WriteStep()
        if not self._kinds:
            return step
        try:
            outbox = self.outbox
        except (RpcUnavailable, RpcError) as exc:
            log.warning("chain unavailable, chain writes wait: %s", exc.message)
            step.chain_down = True
            return step
        self._candidates = None
        try:
            return outbox.run_once(step)
        finally:
            self._candidates = None

    def run(
        self,
        stop: threading.Event,
        *,
        poll_interval: float = 0.05,
        max_backoff: float = 5.0,
        wake: Doorbell | None = None,
        idle_interval: float = 1.0,
    ) -> None:
        """Write until ``stop`` is set; back off exponentially while the chain is down. With nothing queued or in
        flight it sleeps until ``wake`` (default: :attr:`bell`) rings."""
        run_steps(
            self.run_once,
            stop,
            wake=wake or self.bell,
            poll_interval=poll_interval,
            idle_interval=idle_interval,
            max_backoff=max_backoff,
        )

    def drain(self, *, timeout: float = 60.0, poll_interval: float = 0.02) -> WriteStep:
        """Run until no write of a registered kind is queued or submitted (tests, the CLI); stops early if the
        chain is down."""
        return drain_steps(
            self.run_once, lambda: self.pending() > 0, WriteStep(), timeout=timeout, poll_interval=poll_interval
        )

    @property
    def outbox(self) -> WriteAheadOutbox:
        if self._outbox is None:
            source = self._sender_source
            sender = source if isinstance(source, TransactionSender) else source()
            self._outbox = WriteAheadOutbox(
                self._sessions,
                sender,
                ChainWrite,
                next_write=self._next_write,
                mark_submitted=lambda _s, _id, _items: None,  # the write row is its own item
                on_confirmed=self._confirmed,
                on_failed=self._failed,
                confirmations=self.confirmations,
                max_in_flight=self.max_in_flight,
                scope=lambda: (ChainWrite.kind.in_(list(self._kinds)),),
            )
        return self._outbox

    # ------------------------------------------------------------------ submit

    def _next_write(self, step: OutboxStep) -> PendingWrite | None:
        if self._candidates is None:
            with self._sessions() as s:
                self._candidates = list(
                    s.execute(
                        select(ChainWrite.id, ChainWrite.kind, ChainWrite.to, ChainWrite.data, ChainWrite.gas)
                        .where(ChainWrite.status == WriteState.QUEUED, ChainWrite.kind.in_(list(self._kinds)))
                        .order_by(ChainWrite.id)
                        .limit(self.max_in_flight)
                    )
                )
        while self._candidates:
            row = self._candidates.pop(0)
            data = bytes(row.data)
            gas = row.gas
            if gas is None:
                try:
                    gas = int(self.outbox.sender.estimate_gas(row.to, data, abi=self._abi(row.kind)) * GAS_HEADROOM)
                except ContractRevert as revert:
                    if not self._ours_pending():
                        self._give_up(row.id, _revert_text(revert), step)
                    continue  # else it may revert only until our earlier transactions are mined: next step
            return PendingWrite(row.to, data, gas, [row.id], row_id=row.id)
        return None

    def _ours_pending(self) -> bool:
        address = self.outbox.sender.address
        pending, latest = self.outbox.rpc.batch(
            [("eth_getTransactionCount", [address, "pending"]), ("eth_getTransactionCount", [address, "latest"])]
        )
        return int(pending, 16) > int(latest, 16)

    def _give_up(self, write_id: int, error: str, step: OutboxStep) -> None:
        """Fail a queued write whose estimate reverted (no transaction was signed)."""
        try:
            with self._sessions.begin() as s:
                write = s.get(ChainWrite, write_id)
                if write is None or write.status != WriteState.QUEUED:
                    return
                self._fail(s, write, error)
        except SettleLater:
            return
        step.settle(Settled(failed=1))
        log.warning("chain write %s/%s failed before sending: %s", write.kind, write.key, error)

    # ------------------------------------------------------------------ outcomes

    def _confirmed(self, s: Session, write_id: int, tx_hash: str, block: int) -> int:
        write = s.get_one(ChainWrite, write_id)
        write.status = WriteState.CONFIRMED
        write.block_number = block
        write.error = None
        self._handle(self._kinds[write.kind].on_confirmed, s, write)
        return 1

    def _failed(self, write_id: int, failure: Failure) -> Settled:
        if failure.reverted_in is not None:
            error = self._explain(write_id, failure.reverted_in) or failure.message
            with self._sessions.begin() as s:
                write = s.get_one(ChainWrite, write_id)
                if write.status != WriteState.SUBMITTED:
                    return Settled()
                write.block_number = failure.reverted_in
                self._fail(s, write, error)
            return Settled(failed=1)
        with self._sessions.begin() as s:
            write = s.get_one(ChainWrite, write_id)
            if write.status != WriteState.SUBMITTED:
                return Settled()
            if write.attempts + 1 >= MAX_REFUSALS:
                self._fail(s, write, f"refused {MAX_REFUSALS} times: {failure.message}")
                return Settled(failed=1)
            # Never mined (no receipt, and its nonce is spent or refused): safe to sign anew.
            write.status = WriteState.QUEUED
            write.attempts += 1
            write.error = failure.message[:512]
            write.tx_hash = write.nonce = write.raw_tx = write.sender = None
            write.updated_at = utcnow()
        return Settled(requeued=1)

    def _fail(self, s: Session, write: ChainWrite, error: str) -> None:
        write.status = WriteState.FAILED
        write.error = error[:512]
        write.updated_at = utcnow()
        self._handle(self._kinds[write.kind].on_failed, s, write)

    def _handle(self, handler: Handler | None, s: Session, write: ChainWrite) -> None:
        if handler is None:
            return
        try:
            handler(s, write)
            s.flush()
        except Exception:
            log.exception("chain write %s/%s: %s handler failed; retried later", write.kind, write.key, write.status)
            raise SettleLater from None

    def _explain(self, write_id: int, block: int) -> str | None:
        """The decoded revert of a write mined with status 0, replayed at its parent block (or, on a node that
        no longer holds that state, at the latest)."""
        with self._sessions() as s:
            write = s.get_one(ChainWrite, write_id)
            to, data, kind = write.to, bytes(write.data), write.kind
        abi = self._abi(kind)
        for at in (block - 1, "latest"):
            try:
                self.outbox.sender.call(to, data, abi=abi, block=at)
            except ContractRevert as revert:
                return _revert_text(revert)
            except RpcError:
                continue
            break
        return None

    def _abi(self, kind: str) -> ContractAbi:
        own = self._kinds[kind].abi
        if own is not None:
            return own
        if self._fallback_abi is None:
            self._fallback_abi = _known_errors()
        return self._fallback_abi


__all__ = [
    "MAX_REFUSALS",
    "ChainWriteConflict",
    "ChainWriteInvalid",
    "ChainWriter",
    "Handler",
    "WriteKind",
    "WriteStep",
]
