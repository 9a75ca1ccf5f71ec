"""Follow the chain into the indexer database: adaptive ``eth_getLogs`` ranges, pipelined fetch and write,
reorg detection and rollback, a confirmation depth.

One range is written in one transaction together with the cursor, so the database always stands at a range
boundary: a crash or a stop loses at most the range in flight, which the next run fetches again. Rows are
inserted with insert-or-ignore on their (block number, log index) key, so re-delivered logs change nothing.

Reorgs: every range carries the header of its first block, whose parent hash must equal the stored hash of
the last processed block. On a mismatch (or when the stored hash of the last block no longer matches the
chain's) the indexer walks back over stored block hashes to the newest block the chain still has, deletes
everything derived from later blocks, resets the status columns those blocks changed, and indexes forward
again. The result equals a fresh index of the new chain (tests/indexer/test_reorg.py).
"""

from __future__ import annotations

import gc
import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, select, text, update

from indexer.decode import (
    COLUMNS,
    CONTRACTS,
    KEY,
    BlockInfo,
    Decoded,
    Log,
    LogDecoder,
    Values,
    block_info,
    column,
    logs_from_json,
)
from indexer.errors import ChainMismatch, IndexerError, ReorgDetected, SchemaMissing
from indexer.fetch_worker import adapt_range, frame, read_frame
from indexer.models import (
    DEFERRED_INDEXES,
    EVENT_TABLES,
    VERSION_TABLE,
    Base,
    Block,
    BreakGlassWindow,
    ConsentGrant,
    Cursor,
    Record,
)
from medledger.chain.deploy import DeploymentManifest
from medledger.chain.rpc import JsonRpcClient, RpcError, RpcUnavailable
from medledger.db import upgrade
from medledger.vocabulary import RecordStatus

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD_REVISION = "0004"
ZERO_HASH = "0x" + "00" * 32

_records = Record.__table__
_grants = ConsentGrant.__table__
_windows = BreakGlassWindow.__table__
_blocks = Block.__table__
_cursor = Cursor.__table__

# Positions of the columns the status updates read from decoded rows.
_AM_PREV, _AM_NEW = column("amendments", "previous_id"), column("amendments", "new_id")
_ER_ID = column("erasures", "record_id")
_RV_ID, _RV_TIME = column("consent_revocations", "grant_id"), column("consent_revocations", "block_time")
_RV_REPLACED = column("consent_revocations", "replaced")
_BC_ID, _BC_TIME = column("break_glass_closures", "break_glass_id"), column("break_glass_closures", "block_time")

#: Substrings of node errors that mean "ask for a smaller range" (Geth, Besu, Erigon, hosted providers).
_RANGE_ERRORS = ("too many", "limit", "exceed", "range", "size", "timeout", "timed out", "10000 results")


@dataclass(frozen=True)
class IndexerConfig:
    """How the indexer reads the chain.

    Attributes:
        confirmations: Blocks to stay behind the head; only blocks at depth ≥ this are indexed.
        initial_range: Blocks in the first ``eth_getLogs`` range; later ranges adapt to ``target_logs``.
        max_range: Largest range in blocks.
        target_logs: Logs per range aimed at: big enough to amortize a transaction, small enough to pipeline.
        reorg_window: Headers of blocks without events are kept this far back, for reorg detection.
        pipeline_depth: Fetched ranges waiting for the writer at most.
        poll_interval: Seconds between head polls when following.
        fetch_process: Read and decode ranges in a child process (see ``indexer.fetch_worker``) when the
            node is a plain HTTP(S) :class:`JsonRpcClient`; otherwise, or after a worker error, in a thread.
        catch_up_blocks: Fewest blocks behind for a sync to be a catch-up: read by the fetch worker (starting
            it costs ~0.1 s; following a few new blocks, as the node's ledger view does every 50 ms, stays in
            process) and, on an empty index, loaded with the secondary indexes deferred.
        defer_indexes: Build the event tables' secondary indexes after an initial catch-up instead of row by
            row (see :meth:`Indexer.sync`).
    """

    confirmations: int = 0
    initial_range: int = 8
    max_range: int = 50_000
    target_logs: int = 5_000
    reorg_window: int = 128
    pipeline_depth: int = 3
    poll_interval: float = 1.0
    fetch_process: bool = True
    catch_up_blocks: int = 64
    defer_indexes: bool = True

    def __post_init__(self) -> None:
        if self.confirmations < 0:
            raise IndexerError(f"confirmations must be ≥ 0, got {self.confirmations}", code="invalid_input")
        if not 1 <= self.initial_range <= self.max_range:
            raise IndexerError("need 1 ≤ initial_range ≤ max_range", code="invalid_input")
        if self.target_logs < 1 or self.reorg_window < 1 or self.pipeline_depth < 1 or self.catch_up_blocks < 1:
            raise IndexerError(
                "target_logs, reorg_window, pipeline_depth and catch_up_blocks must be ≥ 1", code="invalid_input"
            )


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass
class RangeBatch:
    """Everything read for blocks ``start..end``: logs in chain order, the headers the writer needs (the first
    and last block and every block with a log), and the logs decoded into rows (by the fetch thread, so the
    writer only writes)."""

    start: int
    end: int
    logs: list[Log]
    headers: dict[int, Header]
    decoded: Decoded | None = None
    #: Logs read, when ``logs`` is not kept (the fetch worker sends decoded rows only).
    count: int | None = None

    @property
    def log_count(self) -> int:
        return len(self.logs) if self.count is None else self.count


def merge_batches(batches: list[RangeBatch]) -> RangeBatch:
    """Consecutive ranges as one: applying it equals applying them in order (same rows, same cursor)."""
    if len(batches) == 1:
        return batches[0]
    for a, b in itertools.pairwise(batches):
        if b.start != a.end + 1:
            raise IndexerError(f"ranges {a.start}..{a.end} and {b.start}..{b.end} are not consecutive")
    headers: dict[int, Header] = {}
    decoded: Decoded | None = None
    if all(b.decoded is not None for b in batches):
        decoded = Decoded({}, set())
        for b in batches:
            decoded.extend(b.decoded)  # type: ignore[arg-type]
    for b in batches:
        headers.update(b.headers)
    return RangeBatch(
        batches[0].start,
        batches[-1].end,
        [lg for b in batches for lg in b.logs],
        dict(sorted(headers.items())),
        decoded,
        sum(b.log_count for b in batches),
    )


class _WorkerFailed(Exception):
    """The fetch worker stopped on something it does not handle; the writer continues without it."""


@dataclass(frozen=True)
class Position:
    block_number: int
    block_hash: str
    block_time: int


@dataclass
class SyncResult:
    ranges: int = 0
    logs: int = 0
    reorgs: int = 0
    rolled_back_blocks: int = 0
    position: Position | None = None
    target: int = 0


@dataclass(frozen=True)
class Progress:
    """What ``follow`` reports after each step: where it is and how far behind the head."""

    head: int
    indexed: int
    lag_blocks: int
    lag_seconds: int
    logs: int
    reorgs: int


@dataclass
class _Stats:
    """Seconds spent per stage, summed over ranges (the bench prints them)."""

    fetch_s: float = 0.0
    write_s: float = 0.0
    decode_s: float = 0.0
    insert_s: float = 0.0


def _block_info(logs: list[Log], headers: dict[int, Header]) -> BlockInfo:
    return block_info(logs, {n: (h.hash, h.timestamp) for n, h in headers.items()})


def _header(raw: dict[str, Any]) -> Header:
    return Header(int(raw["number"], 16), raw["hash"], raw["parentHash"], int(raw["timestamp"], 16))


#: SQLite page cache of the writing connection, KiB (see Indexer._tune_sqlite).
SQLITE_CACHE_KIB = 65_536
#: WAL pages between automatic checkpoints of the writing connection.
SQLITE_CHECKPOINT_PAGES = 16_384

_BLOCK_COLUMNS = ("number", "hash", "parent_hash", "timestamp", "has_events")


#: Bound parameters per SQLite statement at most (SQLITE_MAX_VARIABLE_NUMBER is 32,766 since 3.32).
SQLITE_MAX_PARAMS = 32_766


@dataclass(frozen=True)
class InsertSql:
    """An insert that skips rows colliding with an existing key (re-delivered logs), in the driver's
    placeholder style. ``ON CONFLICT DO NOTHING`` (not SQLite's ``INSERT OR IGNORE``, which would also
    swallow NOT NULL violations) on both databases."""

    dialect: str
    table: str
    columns: tuple[str, ...]

    @property
    def sql(self) -> str:
        return self.values(1)

    def values(self, rows: int) -> str:
        """The insert with ``rows`` row placeholders in one ``VALUES`` list."""
        mark = "?" if self.dialect == "sqlite" else "%s"
        row = f"({', '.join([mark] * len(self.columns))})"
        values = ", ".join([row] * rows)
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES {values} ON CONFLICT DO NOTHING"

    @property
    def rows_per_statement(self) -> int:
        return max(1, SQLITE_MAX_PARAMS // len(self.columns))


def _insert_sql(dialect: str, table: str, columns: Iterable[str]) -> InsertSql:
    return InsertSql(dialect, table, tuple(columns))


def insert_ignore(conn: Connection, insert: InsertSql, rows: list[Values]) -> None:
    """Insert ``rows`` (tuples in column order) through the DBAPI cursor of ``conn`` (inside its transaction).

    The rows are already tuples, so nothing is gained from SQLAlchemy's per-row parameter processing, which
    cost as much as SQLite's own work on a 5,000-log range. On SQLite the rows go in as multi-row ``VALUES``
    statements: the ``sqlite3`` module releases and re-takes the GIL around every statement step, and with
    ``executemany`` (one step per row) each re-take waited behind the fetch thread (JSON parsing, decoding)
    for up to the 5 ms switch interval, which made the inserts ~2.5x slower than SQLite's own work. With
    ~2,000 rows per step the writer holds the GIL only to bind and runs SQLite in parallel with the fetcher."""
    if not rows:
        return
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if insert.dialect != "sqlite":
            cur.executemany(insert.sql, rows)
            return
        step = insert.rows_per_statement
        full = insert.values(step)
        flat = itertools.chain.from_iterable
        for i in range(0, len(rows), step):
            chunk = rows[i : i + step]
            cur.execute(full if len(chunk) == step else insert.values(len(chunk)), tuple(flat(chunk)))
    finally:
        cur.close()


#: Seconds a catch-up's writer waits for more ranges to join a group commit. Measured on the 2-core bench: the
#: writer spent ~10% less time (fewer commits rewriting the same index pages), and the CPU it leaves while
#: waiting goes to the fetch worker and the node, which share the cores.
GROUP_WAIT = 0.03


class _CollectorPause:
    """Python's cyclic garbage collector paused while a catch-up streams rows from the fetch worker.

    The rows (~1.4M strings and ints in ~100k lists per 100,000 logs) hold no reference cycles, so reference
    counting frees them; but their allocation triggered collections that walked them, ~0.2-0.4 s of CPU per
    100,000 logs (5x the MessagePack decoding itself), holding the GIL against the inserts. The collector is
    process-wide: it is resumed when the catch-up ends (also on errors), and left alone if it was already
    disabled."""

    def __init__(self) -> None:
        self._paused = False

    def pause(self) -> None:
        if gc.isenabled():
            gc.disable()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            gc.enable()
            self._paused = False


class Indexer:
    """Indexes one MedLedger deployment from ``rpc`` into the database behind ``engine``.

    Args:
        engine: From :func:`medledger.db.make_engine` (SQLite or PostgreSQL).
        rpc: The chain node.
        manifest: The deployment whose four contracts are indexed, from its start block on.
        config: Reading parameters.
        migrate: Bring the schema to the current revision first (otherwise a missing schema is an error).
    """

    def __init__(
        self,
        engine: Engine,
        rpc: JsonRpcClient,
        manifest: DeploymentManifest,
        config: IndexerConfig | None = None,
        *,
        migrate: bool = True,
    ) -> None:
        self.engine = engine
        self.rpc = rpc
        self.manifest = manifest
        self.config = config or IndexerConfig()
        self.addresses = {name: manifest.address(name) for name in CONTRACTS}
        self.decoder = LogDecoder(self.addresses)
        self._address_filter = [a.lower() for a in self.addresses.values()]
        self._range = self.config.initial_range
        self._worker_ok = True
        self.stats = _Stats()
        dialect = engine.dialect.name
        self._insert = {t: _insert_sql(dialect, t, (*KEY, *cols)) for t, cols in COLUMNS.items()}
        self._insert_blocks = _insert_sql(dialect, "blocks", _BLOCK_COLUMNS)
        self._sqlite = dialect == "sqlite"
        if migrate:
            upgrade(engine, MIGRATIONS)
            self.build_indexes()  # completes a deferred-index load that was interrupted
        elif schema_revision(engine) != HEAD_REVISION:
            raise SchemaMissing(f"database has no indexer schema at revision {HEAD_REVISION}: run the indexer once")

    # ------------------------------------------------------------------ position

    def position(self) -> Position:
        """The last processed block (``start_block - 1`` before the first range); creates the cursor row."""
        with self.engine.begin() as conn:
            return self._position(conn)

    def _position(self, conn: Connection) -> Position:
        row = conn.execute(select(_cursor).where(_cursor.c.id == 1)).one_or_none()
        chain_id = self.rpc.chain_id()
        start = self.manifest.start_block
        if row is None:
            pos = self._genesis_position(start)
            conn.execute(
                _cursor.insert().values(
                    id=1,
                    chain_id=chain_id,
                    start_block=start,
                    block_number=pos.block_number,
                    block_hash=pos.block_hash,
                    block_time=pos.block_time,
                )
            )
            return pos
        if row.chain_id != chain_id or row.start_block != start:
            raise ChainMismatch(
                f"the index was built from chain {row.chain_id} starting at block {row.start_block}, but the "
                f"deployment is on chain {chain_id} starting at block {start}: use `rebuild` or another --db"
            )
        return Position(row.block_number, row.block_hash, row.block_time)

    def _genesis_position(self, start: int) -> Position:
        if start == 0:
            return Position(-1, ZERO_HASH, 0)
        h = self._headers([start - 1])[start - 1]
        return Position(h.number, h.hash, h.timestamp)

    def head(self) -> Header:
        raw = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        return _header(raw)

    def target_block(self, head: int | None = None) -> int:
        """Highest block to index now: the head minus the confirmation depth."""
        if head is None:
            head = self.rpc.block_number()
        return head - self.config.confirmations

    # ------------------------------------------------------------------ reading

    def _headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        nums = sorted(set(numbers))
        replies = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in nums])
        out: dict[int, Header] = {}
        for n, raw in zip(nums, replies, strict=True):
            if raw is None:
                # The block vanished between reading the head and now: the chain got shorter (a reorg).
                raise ReorgDetected(f"block {n} is no longer on the chain")
            out[n] = _header(raw)
        return out

    def fetch_range(self, start: int, end: int) -> RangeBatch:
        """Read blocks ``start..end``: their MedLedger logs and the headers needed to check and time them.
        Raises :class:`ReorgDetected` if the logs and headers disagree (the chain changed while reading)."""
        logs = logs_from_json(
            self.rpc.call(
                "eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "address": self._address_filter}]
            )
        )
        numbers = {start, end}
        for lg in logs:
            numbers.add(int(lg.blockNumber, 16))
        headers = self._headers(numbers)
        decoded = self.decoder.decode(logs, _block_info(logs, headers))
        return RangeBatch(start, end, logs, headers, decoded)

    def _fetch_adaptive(self, start: int, limit: int) -> RangeBatch:
        """Fetch a range from ``start`` of the current adaptive size, halving it on range/size errors."""
        while True:
            end = min(limit, start + self._range - 1)
            try:
                batch = self.fetch_range(start, end)
            except (RpcError, RpcUnavailable) as exc:
                text = str(exc).lower()
                if end > start and (isinstance(exc, RpcUnavailable) or any(s in text for s in _RANGE_ERRORS)):
                    self._range = max(1, (end - start + 1) // 2)
                    continue
                raise
            self._range = adapt_range(end - start + 1, len(batch.logs), self.config.target_logs, self.config.max_range)
            return batch

    # ------------------------------------------------------------------ writing

    def apply(self, batch: RangeBatch) -> Position:
        """Write one fetched range and move the cursor to its end, in one transaction.

        A batch that starts right after the cursor must continue its chain (parent hash check); a batch
        that lies (partly) at or below the cursor is a re-delivery: its rows are ignored where they exist
        and the cursor only moves forward. Raises :class:`ReorgDetected` if the batch is from another fork.
        """
        t0 = time.perf_counter()
        with self.engine.begin() as conn:
            if self._sqlite:
                self._tune_sqlite(conn)
            pos = self._position(conn)
            if batch.start > pos.block_number + 1:
                raise IndexerError(f"range {batch.start}..{batch.end} leaves a gap after block {pos.block_number}")
            first = batch.headers[batch.start]
            if batch.start == pos.block_number + 1:
                if first.parent_hash != pos.block_hash:
                    raise ReorgDetected(f"block {batch.start} does not extend indexed block {pos.block_number}")
            else:
                self._check_known_headers(conn, batch)
            t1 = time.perf_counter()
            decoded = batch.decoded
            if decoded is None:
                decoded = self.decoder.decode(batch.logs, _block_info(batch.logs, batch.headers))
            t2 = time.perf_counter()
            self._write(conn, decoded)
            self.stats.decode_s += t2 - t1
            self.stats.insert_s += time.perf_counter() - t2
            with_events = decoded.blocks
            insert_ignore(
                conn,
                self._insert_blocks,
                [
                    (h.number, h.hash, h.parent_hash, h.timestamp, h.number in with_events)
                    for h in batch.headers.values()
                ],
            )
            if batch.end > pos.block_number:
                last = batch.headers[batch.end]
                pos = Position(last.number, last.hash, last.timestamp)
                conn.execute(
                    update(_cursor)
                    .where(_cursor.c.id == 1)
                    .values(block_number=pos.block_number, block_hash=pos.block_hash, block_time=pos.block_time)
                )
                # Headers of event-less blocks matter only while a reorg can still reach them.
                conn.execute(
                    delete(_blocks).where(
                        _blocks.c.has_events.is_(False),
                        _blocks.c.number < pos.block_number - self.config.reorg_window,
                    )
                )
        self.stats.write_s += time.perf_counter() - t0
        return pos

    def _tune_sqlite(self, conn: Connection) -> None:
        """Per-connection SQLite settings for bulk writes (once per pooled connection).

        A range dirties pages all over the random-keyed indexes (record ids, patients): a 64 MiB page cache
        keeps them in memory instead of spilling mid-transaction. The default autocheckpoint (1,000 pages)
        copied the WAL into the database and fsynced after nearly every range; 16,384 pages (64 MiB) lets
        several ranges share one checkpoint. Neither touches atomicity or the WAL + synchronous=NORMAL
        durability set by make_engine: each range + cursor is still one commit."""
        info = conn.connection.info
        if info.get("indexer_tuned"):
            return
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
        info["indexer_tuned"] = True

    def _check_known_headers(self, conn: Connection, batch: RangeBatch) -> None:
        nums = list(batch.headers)
        stored = dict(conn.execute(select(_blocks.c.number, _blocks.c.hash).where(_blocks.c.number.in_(nums))).all())
        for n, h in batch.headers.items():
            if n in stored and stored[n] != h.hash:
                raise ReorgDetected(f"re-delivered block {n} differs from the indexed one")

    def _write(self, conn: Connection, decoded: Decoded) -> None:
        tables = decoded.tables
        # Inserts first: an amendment or revocation may refer to a row anchored earlier in the same range.
        for name, rows in tables.items():
            insert_ignore(conn, self._insert[name], rows)
        if rows := tables.get("amendments"):
            conn.execute(
                update(_records)
                .where(_records.c.record_id == bindparam("b_id"))
                .values(
                    status=int(RecordStatus.SUPERSEDED),
                    superseded_by=bindparam("b_new"),
                    status_block=bindparam("b_block"),
                ),
                [{"b_id": r[_AM_PREV], "b_new": r[_AM_NEW], "b_block": r[0]} for r in rows],
            )
        if rows := tables.get("erasures"):
            conn.execute(
                update(_records)
                .where(_records.c.record_id == bindparam("b_id"))
                .values(status=int(RecordStatus.ERASED), status_block=bindparam("b_block")),
                [{"b_id": r[_ER_ID], "b_block": r[0]} for r in rows],
            )
        if rows := tables.get("consent_revocations"):
            conn.execute(
                update(_grants)
                .where(_grants.c.grant_id == bindparam("b_id"))
                .values(
                    revoked_block=bindparam("b_block"),
                    revoked_log_index=bindparam("b_log"),
                    revoked_time=bindparam("b_time"),
                    replaced=bindparam("b_replaced"),
                ),
                [
                    {
                        "b_id": r[_RV_ID],
                        "b_block": r[0],
                        "b_log": r[1],
                        "b_time": r[_RV_TIME],
                        "b_replaced": r[_RV_REPLACED],
                    }
                    for r in rows
                ],
            )
        if rows := tables.get("break_glass_closures"):
            conn.execute(
                update(_windows)
                .where(_windows.c.break_glass_id == bindparam("b_id"))
                .values(closed_block=bindparam("b_block"), closed_time=bindparam("b_time")),
                [{"b_id": r[_BC_ID], "b_block": r[0], "b_time": r[_BC_TIME]} for r in rows],
            )

    # ------------------------------------------------------------------ reorgs

    def _check_reorg_at(self, pos: Position, head: Header) -> int:
        """The reorg checks a sync needs before reading on, with the head already at hand; blocks rolled back.

        A head above the indexed block needs no check here: the next range's first block must name the
        indexed block as its parent (see :meth:`apply`). A head at the indexed height must be that very block;
        a lower head means the chain got shorter. Only when nothing will be read (a confirmation depth or an
        explicit target below the head) is the indexed block's header fetched to compare."""
        if pos.block_number < self.manifest.start_block:
            return 0
        if head.number == pos.block_number:
            return 0 if head.hash == pos.block_hash else self._rollback_to_ancestor()
        if head.number < pos.block_number:
            return self._rollback_to_ancestor()
        return 0 if head.number - self.config.confirmations > pos.block_number else self.check_reorg()

    def _apply_inline(self, start: int, goal: int, result: SyncResult) -> None:
        a = start
        while a <= goal:
            batch = self._fetch_adaptive(a, goal)
            result.position = self.apply(batch)
            result.ranges += 1
            result.logs += batch.log_count
            a = batch.end + 1

    def check_reorg(self) -> int:
        """Roll back if the chain no longer has the last processed block; returns blocks rolled back."""
        pos = self.position()
        if pos.block_number < self.manifest.start_block:
            return 0
        try:
            h = self._headers([pos.block_number])[pos.block_number]
        except ReorgDetected:
            return self._rollback_to_ancestor()
        if h.hash == pos.block_hash:
            return 0
        return self._rollback_to_ancestor()

    def _rollback_to_ancestor(self) -> int:
        """Find the newest stored block the chain still has and roll back to it."""
        pos = self.position()
        start = self.manifest.start_block
        below = pos.block_number + 1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(_blocks.c.number, _blocks.c.hash, _blocks.c.timestamp)
                    .where(_blocks.c.number < below, _blocks.c.number >= start)
                    .order_by(_blocks.c.number.desc())
                    .limit(64)
                ).all()
            if not rows:
                ancestor = self._genesis_position(start)
                break
            replies = self.rpc.batch([("eth_getBlockByNumber", [hex(r.number), False]) for r in rows])
            found = next(
                (r for r, raw in zip(rows, replies, strict=True) if raw is not None and raw["hash"] == r.hash), None
            )
            if found is not None:
                ancestor = Position(found.number, found.hash, found.timestamp)
                break
            below = rows[-1].number
        self.rollback(ancestor)
        return pos.block_number - ancestor.block_number

    def rollback(self, to: Position) -> None:
        """Forget everything derived from blocks after ``to`` and put the cursor there, in one transaction."""
        a = to.block_number
        with self.engine.begin() as conn:
            conn.execute(
                update(_records)
                .where(_records.c.status_block > a)
                .values(status=int(RecordStatus.ACTIVE), superseded_by=None, status_block=None)
            )
            conn.execute(
                update(_grants)
                .where(_grants.c.revoked_block > a)
                .values(revoked_block=None, revoked_log_index=None, revoked_time=None, replaced=None)
            )
            conn.execute(
                update(_windows).where(_windows.c.closed_block > a).values(closed_block=None, closed_time=None)
            )
            for table in EVENT_TABLES:
                conn.execute(delete(table).where(table.c.block_number > a))
            conn.execute(delete(_blocks).where(_blocks.c.number > a))
            conn.execute(
                update(_cursor)
                .where(_cursor.c.id == 1)
                .values(block_number=a, block_hash=to.block_hash, block_time=to.block_time)
            )

    # ------------------------------------------------------------------ driving

    def sync(self, *, target: int | None = None, max_ranges: int | None = None) -> SyncResult:
        """Catch up to ``target`` (default: head minus confirmations), handling reorgs on the way.

        ``max_ranges`` stops after that many written ranges (to resume later, e.g. in restart tests).
        Fetching runs in a thread ahead of decoding and writing, so node I/O overlaps the database work.

        An initial catch-up (empty index, at least ``catch_up_blocks`` to read) loads the event tables without
        their secondary indexes and builds those at the end, as bulk loads into SQLite and PostgreSQL are best
        done: one sort per index instead of a random b-tree insert per row and index. Until they are built,
        queries are correct but slow; an interrupted build is completed by the next :class:`Indexer`.
        """
        result = SyncResult()
        while True:
            pos = self.position()
            head = self.head()
            result.rolled_back_blocks += (rolled := self._check_reorg_at(pos, head))
            result.reorgs += rolled > 0
            if rolled:
                pos = self.position()
            goal = head.number - self.config.confirmations if target is None else target
            result.target = goal
            if pos.block_number >= goal or (max_ranges is not None and result.ranges >= max_ranges):
                result.position = pos
                return result
            try:
                if goal - pos.block_number <= self.config.initial_range and max_ranges is None:
                    # Following the head: a few blocks, read and written right here (a fetch thread and its
                    # queue would cost more than the range).
                    self._apply_inline(pos.block_number + 1, goal, result)
                    return result
                with self._deferred_indexes(pos, goal):
                    self._pipeline(pos.block_number + 1, goal, result, max_ranges)
            except _WorkerFailed:
                self._worker_ok = False  # the rest of the run fetches in-process (full client, its errors)
            except ReorgDetected:
                rolled = self._rollback_to_ancestor()
                result.reorgs += 1
                result.rolled_back_blocks += rolled

    @contextmanager
    def _deferred_indexes(self, pos: Position, goal: int) -> Iterator[None]:
        initial = pos.block_number < self.manifest.start_block
        if not (self.config.defer_indexes and initial and goal - pos.block_number >= self.config.catch_up_blocks):
            yield
            return
        with self.engine.begin() as conn:
            for index in DEFERRED_INDEXES:
                index.drop(conn, checkfirst=True)
        try:
            yield
        finally:
            self.build_indexes()

    def build_indexes(self) -> None:
        """Create any secondary index of the event tables that is missing (after a deferred-index load)."""
        with self.engine.begin() as conn:
            for index in DEFERRED_INDEXES:
                index.create(conn, checkfirst=True)

    def _pipeline(self, start: int, goal: int, result: SyncResult, max_ranges: int | None) -> None:
        q: queue.Queue[RangeBatch | BaseException | None] = queue.Queue(maxsize=self.config.pipeline_depth)
        stop = threading.Event()

        def put(item: RangeBatch | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                a = start
                while a <= goal and not stop.is_set():
                    t0 = time.perf_counter()
                    batch = self._fetch_adaptive(a, goal)
                    self.stats.fetch_s += time.perf_counter() - t0
                    if not put(batch):
                        return
                    a = batch.end + 1
                put(None)
            except BaseException as exc:  # handed to the writer thread, which re-raises it
                put(exc)

        worker = None
        # The worker takes ~0.1 s to start: meanwhile the first range is read and written here, and the worker
        # begins after it (not with restart tests, which count ranges one transaction each).
        lead_end = start - 1
        if self._use_worker(start, goal):
            if max_ranges is None:
                lead_end = min(goal - 1, start + self._range - 1)
            try:
                worker = self._start_worker(lead_end + 1, goal)
            except OSError:  # no interpreter to start, or it died before taking its job
                self._worker_ok = False
                lead_end = start - 1

        def receive() -> None:
            assert worker is not None and worker.stdout is not None
            try:
                while not stop.is_set():
                    msg = read_frame(worker.stdout)
                    if msg[0] == "done":
                        put(None)
                        return
                    if msg[0] != "range":
                        put(ReorgDetected(msg[1]) if msg[0] == "reorg" else _WorkerFailed(msg[1]))
                        return
                    if not put(self._worker_batch(msg)):
                        return
            except BaseException as exc:  # EOF or a broken message: the worker died
                put(_WorkerFailed(f"fetch worker: {exc!r}"))

        thread = threading.Thread(target=produce if worker is None else receive, name="indexer-fetch", daemon=True)
        thread.start()
        pending: RangeBatch | BaseException | None = None
        held = False
        collector = _CollectorPause()
        try:
            if worker is not None:
                collector.pause()
            self._apply_inline(start, lead_end, result)
            while True:
                item = pending if held else q.get()
                held = False
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                # Group commit: ranges already fetched are written in one transaction (cursor at the last
                # one's end). A commit rewrites every page a range dirtied in the random-keyed indexes, so
                # fewer, larger commits cost less per log. Fed by the worker (a catch-up), the writer waits up
                # to GROUP_WAIT for the next range to join; otherwise it takes only what is already there.
                group = [item]
                logs = item.log_count
                budget = self.config.target_logs * self.config.pipeline_depth
                if max_ranges is not None:
                    budget = 0  # restart tests count written ranges: one range per transaction
                until = time.monotonic() + (GROUP_WAIT if worker is not None else 0.0)
                while logs < budget:
                    try:
                        wait = until - time.monotonic()
                        nxt = q.get(timeout=wait) if wait > 0 else q.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(nxt, RangeBatch):
                        pending, held = nxt, True
                        break
                    group.append(nxt)
                    logs += nxt.log_count
                result.position = self.apply(merge_batches(group))
                result.ranges += len(group)
                result.logs += logs
                if max_ranges is not None and result.ranges >= max_ranges:
                    return
        finally:
            stop.set()
            if worker is not None:
                # Our own child: stopping it early (max_ranges, an error) loses only ranges not yet written.
                worker.kill()
                worker.wait()
            thread.join()
            if worker is not None and worker.stdout is not None:
                worker.stdout.close()
            collector.resume()

    def _use_worker(self, start: int, goal: int) -> bool:
        # Only for catch-up: starting a process costs ~0.1 s, far more than following a few new blocks
        # (the node's ledger view syncs every 50 ms).
        return (
            goal - start + 1 >= self.config.catch_up_blocks
            and self.config.fetch_process
            and self._worker_ok
            and type(self.rpc) is JsonRpcClient
            and self.rpc.url.startswith(("http://", "https://"))
        )

    def _start_worker(self, start: int, goal: int) -> subprocess.Popen[bytes]:
        """Start the fetch worker for blocks ``start..goal`` (see ``indexer.fetch_worker``)."""
        specs = {
            addr: {t: (spec.table, spec.name) for t, spec in by_topic.items()}
            for addr, by_topic in self.decoder.specs_by_address().items()
        }
        job = {
            "url": self.rpc.url,
            "timeout": self._rpc_timeout(),
            "specs": specs,
            "start": start,
            "goal": goal,
            "range": self._range,
            "max_range": self.config.max_range,
            "target_logs": self.config.target_logs,
            "range_errors": _RANGE_ERRORS,
            "depth": self.config.pipeline_depth,
        }
        # The worker must import this very package: PYTHONPATH names its root, and -P keeps the working directory
        # (which may hold another checkout) off the path.
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(
            [sys.executable, "-P", "-c", "from indexer.fetch_worker import serve_ranges; serve_ranges()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(frame(job))
            proc.stdin.close()
        except OSError:
            proc.kill()
            proc.wait()
            raise
        return proc

    def _rpc_timeout(self) -> float:
        return float(getattr(self.rpc, "timeout", 30.0))

    def _worker_batch(self, msg: tuple[Any, ...]) -> RangeBatch:
        _, start, end, count, raw_headers, tables, blocks, other, size, seconds = msg
        headers = {n: Header(n, h, p, ts) for n, h, p, ts in raw_headers}
        decoded = Decoded(tables, set(blocks))
        if other:  # events without a fast decoder (the Consortium's): rare, decoded here with eth_abi
            logs = [Log(*fields) for fields in other]
            decoded.extend(self.decoder.decode(logs, _block_info(logs, headers)))
        self._range = size
        self.stats.fetch_s += seconds
        return RangeBatch(start, end, [], headers, decoded, count)

    def follow(
        self,
        *,
        stop: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        """Keep the index at the head (minus confirmations), polling every ``poll_interval`` seconds until
        ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            result = self.sync()
            if on_progress is not None:
                on_progress(self.progress(result))
            stop.wait(self.config.poll_interval)

    def progress(self, result: SyncResult | None = None) -> Progress:
        head = self.head()
        pos = self.position()
        return Progress(
            head=head.number,
            indexed=pos.block_number,
            lag_blocks=max(0, head.number - pos.block_number),
            lag_seconds=max(0, head.timestamp - pos.block_time) if pos.block_time else 0,
            logs=result.logs if result else 0,
            reorgs=result.reorgs if result else 0,
        )

    # ------------------------------------------------------------------ maintenance

    def reset(self) -> None:
        """Empty the index (all tables and the cursor); the next :meth:`sync` starts from the start block."""
        with self.engine.begin() as conn:
            for table in [*EVENT_TABLES, _blocks, _cursor]:
                conn.execute(delete(table))
        self._range = self.config.initial_range


def drop_schema(engine: Engine) -> None:
    """Drop every indexer table and its migration version table (``rebuild`` then migrates afresh)."""
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))


def schema_revision(engine: Engine) -> str | None:
    """The indexer schema's migration revision in this database (None if never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
