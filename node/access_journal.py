"""The access journal: a release of a record key is written here, durably, before the key leaves the node.

Concurrent releases are group-committed: each caller hands its entry to one writer thread and blocks (or, on
an event loop, awaits) until the transaction holding it has committed, so N concurrent requests cost one
commit instead of N (the same trick databases use for their own logs). A caller never returns before its
entry is durable; if the write fails, the caller gets the error and releases nothing. On SQLite the writer's
connection commits with ``synchronous=FULL`` (fsync per commit), so a journaled access survives a power loss,
not only a crash.

The access logger (node.access_logger) later moves journal entries onto the chain's AccessLog.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, insert

from medledger.db import make_engine
from medledger.errors import MedLedgerError
from medledger.vocabulary import AuthKind, Purpose
from node.db.fast_insert import fast_insert, insert_ignoring_conflicts
from node.db.models import AccessEntry, AccessState, Notification, SeenNonce, utcnow
from node.notifications.notices import Notice

_table = AccessEntry.__table__
_notifications = Notification.__table__
_nonces = SeenNonce.__table__


#: Seconds a claimed nonce waits at most for a commit to ride along with (see AccessJournal.remember_nonce).
NONCE_FLUSH_INTERVAL = 0.5


class JournalUnavailable(MedLedgerError):
    """The access could not be journaled, so nothing was released (503)."""

    code = "access_log_unavailable"


@dataclass(frozen=True)
class JournalEntry:
    patient: str
    accessor: str
    record_id: bytes
    purpose: Purpose
    auth_kind: AuthKind
    auth_id: int
    staff_ref: bytes = b"\x00" * 32
    #: The block whose consent state authorized the release (0: unknown).
    decided_block: int = 0

    def row(self, requested_at: datetime) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "accessor": self.accessor,
            "record_id": self.record_id,
            "purpose": int(self.purpose),
            "auth_kind": int(self.auth_kind),
            "auth_id": self.auth_id,
            "staff_ref": self.staff_ref,
            "decided_block": self.decided_block,
            "requested_at": requested_at,
            "status": AccessState.QUEUED.value,
        }


@dataclass
class _Pending:
    entry: JournalEntry
    notify: Notice | None = None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    #: Set for callers awaiting on an event loop (append_async): resolved from the writer thread.
    future: asyncio.Future[None] | None = None


class AccessJournal:
    """Group-committing writer of :class:`JournalEntry` rows into the node database behind ``engine``.

    Args:
        engine: The node database.
        max_group: Entries per commit at most.
        commit_delay: Seconds a commit that follows another one within this interval waits for more entries
            (adds at most this much to a release's latency under load; none when idle).
        timeout: Seconds a caller waits for its commit before giving up (and releasing nothing).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_group: int = 512,
        timeout: float = 10.0,
        commit_delay: float = 0.004,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.commit_delay = commit_delay
        #: Called after a commit that journaled accesses (the access logger's doorbell).
        self.on_commit = on_commit
        self.max_group = max_group
        self.timeout = timeout
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._nonces: list[tuple[str, str, int]] = []
        self._nonce_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="access-journal", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self._durable_engine = self._make_durable(engine)
        self._conn: Connection | None = None  # the writer thread's own

    @staticmethod
    def _make_durable(engine: Engine) -> Engine:
        if engine.dialect.name != "sqlite":
            return engine  # PostgreSQL commits are durable (synchronous_commit on) already
        # A dedicated engine, so only the journal's connections pay for an fsync per commit.
        durable = make_engine(engine.url.render_as_string(hide_password=False))

        @event.listens_for(durable, "connect")
        def _full_sync(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return durable

    def append(self, entry: JournalEntry, *, notify: Notice | None = None) -> None:
        """Journal one access (and, in the same transaction, its notification) and return once it is durable;
        raises :class:`JournalUnavailable` otherwise."""
        self._ensure_started()
        pending = _Pending(entry, notify)
        self._queue.put(pending)
        if not pending.done.wait(self.timeout):
            raise JournalUnavailable("the access journal did not commit in time; nothing was released")
        if pending.error is not None:
            raise JournalUnavailable("the access could not be journaled; nothing was released") from pending.error

    async def append_async(self, entry: JournalEntry, *, notify: Notice | None = None) -> None:
        """:meth:`append` for event-loop callers: awaits the commit instead of blocking a thread on it."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        pending = _Pending(entry, notify, future=future)
        self._queue.put(pending)
        # A timer rather than asyncio.wait_for (a task and a shield per release on the hot path); the writer
        # resolves every future it takes, so the timer only fires if it is stuck.
        timer = loop.call_later(self.timeout, _expire, future)
        try:
            await future
        except TimeoutError:
            raise JournalUnavailable("the access journal did not commit in time; nothing was released") from None
        finally:
            timer.cancel()
        if pending.error is not None:
            raise JournalUnavailable("the access could not be journaled; nothing was released") from pending.error

    def remember_nonce(self, signer: str, nonce: str, expires: int) -> None:
        """Persist a claimed request nonce with the next group commit, without waiting. A release that
        follows the claim is journaled in the same or a later commit, so its nonce is durable before any key
        leaves; a refused request's nonce is written within ``NONCE_FLUSH_INTERVAL`` seconds (nonces never
        cost a commit of their own while accesses are being journaled)."""
        self._ensure_started()
        with self._nonce_lock:
            self._nonces.append((signer.lower(), nonce, expires))

    def close(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=self.timeout)
        self._drop_connection()
        if self._durable_engine is not self.engine:
            self._durable_engine.dispose()

    def _ensure_started(self) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    self._thread.start()
                    self._started = True

    def _drop_connection(self) -> None:
        # After an error the connection may be unusable (the database restarted): the next commit reconnects.
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _take_nonces(self) -> list[tuple[str, str, int]]:
        with self._nonce_lock:
            nonces, self._nonces = self._nonces, []
        return nonces

    def _run(self) -> None:
        last_commit = 0.0
        while True:
            try:
                first = self._queue.get(timeout=NONCE_FLUSH_INTERVAL)
            except queue.Empty:  # no access for a while: write the nonces of refused requests, if any
                self._commit([], self._take_nonces())
                continue
            if first is None:
                self._commit([], self._take_nonces())
                return
            group = [first]
            stop = False
            # Commit delay: while accesses keep coming (the last commit was less than commit_delay ago), wait
            # out the rest of that interval for more to join this commit. Each commit is an fsync, and at a
            # few hundred releases per second they arrive one at a time; an idle journal commits at once.
            deadline = last_commit + self.commit_delay
            while len(group) < self.max_group:
                wait = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            last_commit = time.monotonic()
            # Nonces claimed before these entries were queued are taken with them (see remember_nonce).
            error = self._commit(group, self._take_nonces())
            if error is None and self.on_commit is not None:
                self.on_commit()
            awaited: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for p in group:
                p.error = error
                p.done.set()
                if p.future is not None:
                    awaited.setdefault(p.future.get_loop(), []).append(p.future)
            for loop, futures in awaited.items():
                # One wake-up per event loop for the whole group.
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                    loop.call_soon_threadsafe(_resolve, futures)
            if stop:
                return

    def _commit(self, group: list[_Pending], nonces: list[tuple[str, str, int]]) -> BaseException | None:
        """One transaction with the group's entries and notifications and the nonces; the error, if any."""
        if not group and not nonces:
            return None
        try:
            if self._conn is None or self._conn.closed:
                # The writer keeps one connection: a pool checkout per commit cost as much as the insert.
                self._conn = self._durable_engine.connect()
            conn = self._conn
            with conn.begin():
                if group:
                    now = utcnow()  # one timestamp per commit: adapted once for the whole group
                    fast_insert(conn, _table, [p.entry.row(now) for p in group])
                notices = [p.notify.row() for p in group if p.notify is not None]
                if notices:
                    conn.execute(insert(_notifications), notices)
                if nonces:
                    # Ignoring conflicts: nonces kept after a failed commit may have been written by it (the
                    # connection broke after the server committed), and must not fail every later commit.
                    insert_ignoring_conflicts(
                        conn,
                        _nonces,
                        [{"signer": n[0], "nonce": n[1], "expires_at": n[2]} for n in nonces],
                        ["signer", "nonce"],
                    )
        except Exception as exc:  # reported to every waiting caller; none of them releases anything
            self._drop_connection()
            if nonces:  # keep them for the next commit: a claimed nonce must reach the database
                with self._nonce_lock:
                    self._nonces[:0] = nonces
            return exc
        return None


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for f in futures:
        if not f.done():
            f.set_result(None)
