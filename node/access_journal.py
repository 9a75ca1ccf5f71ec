"""The access journal: a release of a record key is written here, durably, before the key leaves the node.

Concurrent releases are group-committed: each caller hands its entry to one writer thread and blocks until
the transaction holding it has committed, so N concurrent requests cost one commit instead of N (the same
trick databases use for their own logs). A caller never returns before its entry is durable; if the write
fails, the caller gets the error and releases nothing. On SQLite the writer's connection commits with
``synchronous=FULL`` (fsync per commit), so a journaled access survives a power loss, not only a crash.

The access logger (node.access_logger) later moves journal entries onto the chain's AccessLog.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event, insert

from medledger.db import make_engine
from medledger.errors import MedLedgerError
from medledger.vocabulary import AuthKind, Purpose
from node.db.models import AccessEntry, AccessState, Notification, SeenNonce, utcnow

_table = AccessEntry.__table__
_notifications = Notification.__table__
_nonces = SeenNonce.__table__


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

    def row(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "accessor": self.accessor,
            "record_id": self.record_id,
            "purpose": int(self.purpose),
            "auth_kind": int(self.auth_kind),
            "auth_id": self.auth_id,
            "staff_ref": self.staff_ref,
            "requested_at": utcnow(),
            "status": AccessState.QUEUED.value,
        }


@dataclass(frozen=True)
class NotificationDraft:
    """A message for the notification outbox (node.db.models.Notification)."""

    recipient: str
    kind: str
    payload: dict[str, Any]

    def row(self) -> dict[str, Any]:
        return {"recipient": self.recipient, "kind": self.kind, "payload": self.payload, "created_at": utcnow()}


@dataclass
class _Pending:
    entry: JournalEntry | None
    notify: NotificationDraft | None = None
    nonce: tuple[str, str, int] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class AccessJournal:
    """Group-committing writer of :class:`JournalEntry` rows into the node database behind ``engine``.

    Args:
        engine: The node database.
        max_group: Entries per commit at most.
        timeout: Seconds a caller waits for its commit before giving up (and releasing nothing).
    """

    def __init__(self, engine: Engine, *, max_group: int = 512, timeout: float = 10.0) -> None:
        self.engine = engine
        self.max_group = max_group
        self.timeout = timeout
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="access-journal", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self._durable_engine = self._make_durable(engine)

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

    def append(self, entry: JournalEntry, *, notify: NotificationDraft | None = None) -> None:
        """Journal one access (and, in the same transaction, its notification) and return once it is durable;
        raises :class:`JournalUnavailable` otherwise."""
        self._ensure_started()
        pending = _Pending(entry, notify)
        self._queue.put(pending)
        if not pending.done.wait(self.timeout):
            raise JournalUnavailable("the access journal did not commit in time; nothing was released")
        if pending.error is not None:
            raise JournalUnavailable("the access could not be journaled; nothing was released") from pending.error

    def remember_nonce(self, signer: str, nonce: str, expires: int) -> None:
        """Persist a claimed request nonce with the next group commit, without waiting. A release that
        follows the claim is journaled in the same or a later commit, so its nonce is durable before any key
        leaves; a refused request's nonce follows within one commit."""
        self._ensure_started()
        p = _Pending(None, nonce=(signer.lower(), nonce, expires))
        p.done.set()  # nobody waits on it
        self._queue.put(p)

    def close(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=self.timeout)
        if self._durable_engine is not self.engine:
            self._durable_engine.dispose()

    def _ensure_started(self) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    self._thread.start()
                    self._started = True

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            error: BaseException | None = None
            try:
                with self._durable_engine.begin() as conn:
                    entries = [p.entry.row() for p in group if p.entry is not None]
                    if entries:
                        conn.execute(insert(_table), entries)
                    notices = [p.notify.row() for p in group if p.notify is not None]
                    if notices:
                        conn.execute(insert(_notifications), notices)
                    nonces = [
                        {"signer": n[0], "nonce": n[1], "expires_at": n[2]} for p in group if (n := p.nonce) is not None
                    ]
                    if nonces:
                        conn.execute(insert(_nonces).prefix_with("OR IGNORE", dialect="sqlite"), nonces)
            except Exception as exc:  # reported to every waiting caller; none of them releases anything
                error = exc
            for p in group:
                p.error = error
                p.done.set()
            if stop:
                return
