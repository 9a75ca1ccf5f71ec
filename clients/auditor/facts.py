"""Rebuild the ledger's facts from the chain alone: a fresh re-index into the auditor's private database,
then the in-scope accesses, records, grants, break-glass windows and erasures read back from it.

The index is built by the indexer's own :class:`~indexer.follower.Indexer` (so the auditor and every node
agree on how events are decoded) but into a database only the auditor writes: nothing a node stores is
trusted. Reads go through :class:`~indexer.queries.IndexQueries`; the only direct table reads select *which*
accesses, records and erasures are in scope (the query API filters by patient, accessor or record but not by
custodian or block), and each selected row is then read through the query API, whose
``grant_for_access`` is the consent re-check itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from clients.auditor.model import ChainInfo, ErasureFact, Facts, Scope
from indexer.follower import Indexer, IndexerConfig
from indexer.models import AccessEntry, Block, BreakGlassWindow, ConsentGrant, Erasure, Record
from indexer.queries import IndexQueries, TimelineEntry
from medledger.addresses import eip55
from medledger.chain.deploy import DeploymentManifest
from medledger.chain.rpc import JsonRpcClient

#: Progress callback: (blocks done, blocks total, events indexed so far).
ProgressFn = Callable[[int, int, int], None]

#: The re-index advances in about this many steps so a progress bar can move; each step is one ``sync``.
_PROGRESS_STEPS = 50
#: Bound on ``IN (...)`` lists (SQLite allows 32,766 parameters; PostgreSQL more).
_CHUNK = 500

_accesses = AccessEntry.__table__
_records = Record.__table__
_erasures = Erasure.__table__
_grants = ConsentGrant.__table__
_windows = BreakGlassWindow.__table__
_blocks = Block.__table__


def reindex(
    engine: Engine, rpc: JsonRpcClient, manifest: DeploymentManifest, *, on_progress: ProgressFn | None = None
) -> int:
    """Index the deployment into ``engine`` up to the current head; returns the last indexed block.

    A database that already holds an index of the same deployment is brought up to date (``--db`` reuse);
    one built from another chain raises :class:`~indexer.errors.ChainMismatch`.
    """
    ix = Indexer(engine, rpc, manifest, IndexerConfig())
    start = ix.position().block_number
    goal = ix.target_block()
    total = max(0, goal - start)
    step = max(1, math.ceil(total / _PROGRESS_STEPS))
    logs = 0
    if on_progress is not None:
        on_progress(0, total, 0)
    at = start
    while at < goal:
        result = ix.sync(target=min(goal, at + step))
        logs += result.logs
        at = result.position.block_number if result.position is not None else goal
        if on_progress is not None:
            on_progress(min(total, at - start), total, logs)
    return max(at, start)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _access_positions(engine: Engine, scope: Scope) -> list[tuple[int, int]]:
    a = _accesses.c
    r = _records.c
    if scope.kind == "patient":
        who = (scope.address or "").lower()
        # Also accesses to the patient's records logged under another patient address: a custodian could
        # otherwise hide a read from this patient's audit by naming someone else.
        cond: Any = or_(a.patient == who, a.record_id.in_(select(r.record_id).where(r.patient == who)))
    elif scope.kind == "institution":
        who = (scope.address or "").lower()
        cond = or_(
            a.accessor == who,
            a.custodian == who,
            a.record_id.in_(select(r.record_id).where(r.custodian == who)),
        )
    else:
        cond = and_(a.block_number >= scope.from_block, a.block_number <= scope.to_block)
    stmt = select(a.block_number, a.log_index).where(cond).order_by(a.block_number, a.log_index)
    with engine.connect() as conn:
        return [(int(b), int(i)) for b, i in conn.execute(stmt)]


def _scope_record_ids(engine: Engine, scope: Scope) -> list[str]:
    r = _records.c
    if scope.kind == "patient":
        stmt = select(r.record_id).where(r.patient == (scope.address or "").lower())
    elif scope.kind == "institution":
        stmt = select(r.record_id).where(r.custodian == (scope.address or "").lower())
    else:
        e = _erasures.c
        erased_in_range = select(e.record_id).where(
            e.block_number >= scope.from_block, e.block_number <= scope.to_block
        )
        stmt = select(r.record_id).where(
            or_(
                and_(r.block_number >= scope.from_block, r.block_number <= scope.to_block),
                r.record_id.in_(erased_in_range),
            )
        )
    with engine.connect() as conn:
        return [str(x) for x in conn.execute(stmt.order_by(r.block_number, r.log_index)).scalars()]


def _erasures_of(engine: Engine, record_ids: list[str]) -> list[ErasureFact]:
    e = _erasures.c
    b = _blocks.c
    out: list[ErasureFact] = []
    with engine.connect() as conn:
        for chunk in _chunks(record_ids):
            # Blocks with events keep their header, so the erasure's own block always has its time.
            stmt = (
                select(_erasures, b.timestamp)
                .join(_blocks, b.number == e.block_number, isouter=True)
                .where(e.record_id.in_(chunk))
            )
            out += [
                ErasureFact(
                    record_id=row.record_id,
                    custodian=eip55(row.custodian),
                    request_hash=row.request_hash,
                    block_number=int(row.block_number),
                    log_index=int(row.log_index),
                    tx_hash=row.tx_hash,
                    block_time=int(row.timestamp or 0),
                )
                for row in conn.execute(stmt)
            ]
    return sorted(out, key=_chain_order)


def _chain_order(x: Any) -> tuple[int, int]:
    return (x.block_number, x.log_index)


def _range_ids(engine: Engine, table: Any, id_column: str, scope: Scope) -> list[int]:
    c = table.c
    stmt = (
        select(getattr(c, id_column))
        .where(c.block_number >= scope.from_block, c.block_number <= scope.to_block)
        .order_by(c.block_number, c.log_index)
    )
    with engine.connect() as conn:
        return [int(x) for x in conn.execute(stmt).scalars()]


def gather(engine: Engine, manifest: DeploymentManifest, scope: Scope) -> Facts:
    """Read everything ``scope`` covers out of a finished re-index."""
    q = IndexQueries(engine)
    st = q.status()
    if st.chain_id is None or st.indexed_block is None or st.start_block is None:
        raise RuntimeError("gather() needs a database the re-index has run on")
    chain = ChainInfo(
        chain_id=st.chain_id,
        access_log=manifest.address("AccessLog"),
        start_block=st.start_block,
        indexed_block=st.indexed_block,
        indexed_block_hash=st.indexed_block_hash,
        indexed_block_time=st.indexed_block_time,
    )
    members = {m.account: m for m in q.members(include_removed=True)}

    accesses = [q.grant_for_access(b, i) for b, i in _access_positions(engine, scope)]
    scope_ids = _scope_record_ids(engine, scope)
    records_by_id: dict[str, TimelineEntry] = {}
    for rid in dict.fromkeys([*scope_ids, *(a.access.record_id for a in accesses)]):
        entry = q.record(rid)
        if entry is not None:
            records_by_id[rid.lower()] = entry
    records = [records_by_id[r.lower()] for r in scope_ids if r.lower() in records_by_id]

    if scope.kind == "patient":
        addr = scope.address or ""
        grants = q.grant_history(addr)
        windows = q.break_glass_windows(patient=addr)
    elif scope.kind == "institution":
        addr = scope.address or ""
        grants = q.grants_held(addr, active_only=False)
        windows = q.break_glass_windows(accessor=addr)
    else:
        grants = [g for gid in _range_ids(engine, _grants, "grant_id", scope) if (g := q.grant(gid)) is not None]
        ids = set(_range_ids(engine, _windows, "break_glass_id", scope))
        windows = [w for w in q.break_glass_windows() if w.break_glass_id in ids]
    if scope.kind == "range":
        from_block, to_block = int(scope.from_block or 0), int(scope.to_block or 0)
    else:
        from_block, to_block = chain.start_block, chain.indexed_block
    return Facts(
        scope=scope,
        chain=chain,
        from_block=from_block,
        to_block=to_block,
        members=members,
        accesses=accesses,
        records_by_id=records_by_id,
        records=records,
        grants=sorted(grants, key=_chain_order),
        break_glass=sorted(windows, key=_chain_order),
        erasures=_erasures_of(engine, list(records_by_id)),
    )
