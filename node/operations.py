"""What a node's operator watches: the chain as this node sees it (head, index, membership), the node's work
queues (anchoring, the access log, the modules' contract writes, outbound notifications), the consortium's
members and this node's staff accounts, and a verdict on the node's health built from them.

Read-only and cheap (a handful of grouped counts and one head probe), so the operator's page can ask every few
seconds. The chain is probed with its own short-timeout client: a chain that is down must make the page say so in
about a second, not wait out the anchorer's retry budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from indexer.queries import MemberView
from medledger.addresses import Address
from medledger.chain.rpc import JsonRpcClient
from medledger.errors import MedLedgerError
from node.db.models import (
    AccessEntry,
    AccessState,
    AnchorBatch,
    AnchorOutbox,
    BatchState,
    ChainWrite,
    DeliveryState,
    NotificationDelivery,
    Record,
    RecordState,
    Staff,
    WriteState,
    as_utc,
)
from node.ledger_view import LedgerStale
from node.service import NodeServices

#: Seconds the head probe may take before the chain counts as unreachable.
PROBE_TIMEOUT = 2.0
#: Blocks the index may trail the head before the node is reported degraded (it follows within a poll interval).
MAX_INDEX_LAG = 10
#: Seconds the oldest pending item of a queue may wait before the queue is reported stuck.
MAX_QUEUE_AGE = 300.0


@dataclass(frozen=True)
class QueueState:
    """One work queue: items per status (every status, zero included), how many are not done yet, and since when
    the oldest of those has waited."""

    counts: dict[str, int]
    pending: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True)
class ChainState:
    rpc_reachable: bool
    error: dict[str, Any] | None
    chain_id: int | None
    head_block: int | None
    indexed_block: int | None
    index_lag: int | None
    ledger_fresh: bool
    member: bool | None
    roles: list[str]


@dataclass(frozen=True)
class Check:
    """One health check: ``level`` is ok, warning (the node works, something needs a look) or failing (a duty
    the node cannot perform now, e.g. releasing records without a current ledger)."""

    name: str
    level: str
    detail: str = ""


@dataclass(frozen=True)
class Overview:
    chain: ChainState
    queues: dict[str, QueueState]
    checks: list[Check] = field(default_factory=list)

    @property
    def health(self) -> str:
        levels = {c.level for c in self.checks}
        return "failing" if "failing" in levels else "warning" if "warning" in levels else "ok"


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _counts(s: Session, status: InstrumentedAttribute[str], states: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(states, 0)
    for state, n in s.execute(select(status, func.count()).group_by(status)):
        counts[str(state)] = int(n)
    return counts


def _oldest(s: Session, column: InstrumentedAttribute[datetime], *where: Any) -> datetime | None:
    return _aware(s.scalar(select(func.min(column)).where(*where)))


def queue_states(services: NodeServices) -> dict[str, QueueState]:
    """The node's queues: ``anchor`` (records by status; pending = queued + submitted, oldest = the outbox's
    oldest entry), ``anchor_batches``, ``access_log`` (journal entries), ``chain_writes`` and
    ``notifications`` (outbound deliveries)."""
    with services.sessions() as s:
        records = _counts(s, Record.status, [r.value for r in RecordState])
        batches = _counts(s, AnchorBatch.status, [b.value for b in BatchState])
        accesses = _counts(s, AccessEntry.status, [a.value for a in AccessState])
        writes = _counts(s, ChainWrite.status, [w.value for w in WriteState])
        deliveries = _counts(s, NotificationDelivery.status, [d.value for d in DeliveryState])
        return {
            "anchor": QueueState(
                records,
                records[RecordState.QUEUED] + records[RecordState.SUBMITTED],
                _oldest(s, AnchorOutbox.enqueued_at),
            ),
            "anchor_batches": QueueState(
                batches,
                batches[BatchState.SUBMITTED],
                _oldest(s, AnchorBatch.created_at, AnchorBatch.status == BatchState.SUBMITTED),
            ),
            "access_log": QueueState(
                accesses,
                accesses[AccessState.QUEUED] + accesses[AccessState.SUBMITTED],
                _oldest(s, AccessEntry.requested_at, AccessEntry.status != AccessState.CONFIRMED),
            ),
            "chain_writes": QueueState(
                writes,
                writes[WriteState.QUEUED] + writes[WriteState.SUBMITTED],
                _oldest(s, ChainWrite.created_at, ChainWrite.status.in_([WriteState.QUEUED, WriteState.SUBMITTED])),
            ),
            "notifications": QueueState(
                deliveries,
                deliveries[DeliveryState.QUEUED],
                _oldest(s, NotificationDelivery.created_at, NotificationDelivery.status == DeliveryState.QUEUED),
            ),
        }


def chain_state(services: NodeServices) -> ChainState:
    """The chain head (probed now), how far the node's index trails it, whether the node's ledger view is
    current enough to decide on consent, and this node's membership and roles."""
    probe = JsonRpcClient(services.config.rpc_url, timeout=PROBE_TIMEOUT, retries=0)
    try:
        head = probe.block_number()
        chain_id = probe.chain_id()
    except MedLedgerError as exc:
        return ChainState(False, exc.to_dict(), None, None, None, None, False, None, [])
    finally:
        probe.close()
    error: dict[str, Any] | None = None
    indexed: int | None = None
    fresh = False
    member: bool | None = None
    roles: list[str] = []
    try:
        ledger = services.ledger
        indexed = ledger.indexer.position().block_number
        try:
            ledger.snapshot()
            fresh = True
        except MedLedgerError as exc:
            error = exc.to_dict()
        me = ledger.member(Address(services.address))
        member = me is not None
        roles = me.role_names if me is not None else []
    except MedLedgerError as exc:
        error = exc.to_dict()
    lag = max(head - indexed, 0) if indexed is not None else None
    return ChainState(True, error, chain_id, head, indexed, lag, fresh, member, roles)


def _checks(chain: ChainState, queues: dict[str, QueueState], now: float) -> list[Check]:
    out: list[Check] = []
    if not chain.rpc_reachable:
        detail = (chain.error or {}).get("message", "")
        out.append(Check("chain", "failing", detail))
        return out + _queue_checks(queues, now)
    out.append(Check("chain", "ok"))
    stale = "" if chain.ledger_fresh else (chain.error or {}).get("message", "")
    out.append(Check("ledger", "ok" if chain.ledger_fresh else "failing", stale))
    out.append(Check("membership", "ok" if chain.member else "failing" if chain.member is False else "warning"))
    lagging = chain.index_lag is None or chain.index_lag > MAX_INDEX_LAG
    out.append(Check("index", "warning" if lagging else "ok", f"{chain.index_lag} blocks behind" if lagging else ""))
    return out + _queue_checks(queues, now)


def _queue_checks(queues: dict[str, QueueState], now: float) -> list[Check]:
    out = []
    for name in ("anchor", "access_log", "chain_writes", "notifications"):
        q = queues[name]
        failed = q.counts.get("failed", 0)
        oldest = q.oldest_pending_at
        age = now - oldest.timestamp() if oldest is not None else 0.0
        if age > MAX_QUEUE_AGE:
            out.append(Check(name, "warning", f"oldest pending item waits for {int(age)} s"))
        elif failed and name in ("chain_writes", "notifications"):
            # Failed anchor batches are retried by re-queuing their records; failed writes and deliveries stay.
            out.append(Check(name, "warning", f"{failed} failed"))
        else:
            out.append(Check(name, "ok"))
    return out


def overview(services: NodeServices) -> Overview:
    chain = chain_state(services)
    queues = queue_states(services)
    return Overview(chain, queues, _checks(chain, queues, time.time()))


@dataclass(frozen=True)
class StaffAccount:
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


def current_members(services: NodeServices) -> dict[Address, MemberView]:
    """The consortium's active members as the ledger view has them; ``LedgerStale`` (503) when they cannot be read,
    whatever kept the view from being built (chain down, no manifest)."""
    try:
        return services.ledger.members()
    except MedLedgerError as exc:
        raise LedgerStale(f"the consortium's members cannot be read: {exc.message}") from None


def staff_accounts(services: NodeServices) -> list[StaffAccount]:
    """Every staff account of this node, revoked ones included (never their token hashes)."""
    with services.sessions() as s:
        rows = s.scalars(select(Staff).order_by(Staff.id)).all()
        return [
            StaffAccount(r.id, r.name, r.role, _aware(r.created_at) or r.created_at, _aware(r.revoked_at)) for r in rows
        ]
