"""Database plumbing shared by the node and the indexer: engines, sessions, Alembic migrations.

SQLite is the default (one file, WAL mode so readers never block the writer); PostgreSQL is used by giving
a ``postgresql://`` URL. Each component owns its schema and its Alembic migrations; this module only knows
how to connect and how to upgrade a database to a component's head revision.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from medledger.errors import ConfigError


def normalize_url(url: str) -> str:
    """Pin the PostgreSQL driver to psycopg 3 (``postgresql://`` would pick psycopg2, not installed)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def enable_wal(dbapi_conn: Any, timeout_s: float = 30.0) -> None:
    """Put a SQLite connection's database in WAL mode, waiting up to ``timeout_s`` while another connection holds
    the file: SQLite fails a journal-mode change on a busy file at once instead of calling its busy handler, so
    two processes opening a new database together (a node and the CLI) could fail with "database is locked"."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")  # ":memory:" answers "memory" and stays so
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


def make_engine(url: str, *, sqlite_page_size: int | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings MedLedger relies on (WAL, foreign keys, busy timeout on SQLite).

    ``sqlite_page_size`` sets the page size of a SQLite database file created through this engine (it must
    precede WAL mode, which fixes it; existing files keep theirs)."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if sqlite_page_size is not None:
                cur.execute(f"PRAGMA page_size={int(sqlite_page_size)}")
            enable_wal(dbapi_conn)
            cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps commits atomic
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class ThreadConnections:
    """One long-lived connection per thread for the short reads of a hot path (a record lookup per release):
    a pool checkout and its reset-on-return cost more than such a query. Reads only. Each use ends with a
    rollback on servers that open a transaction for a read (PostgreSQL), so no connection idles in a
    transaction and every read sees the latest commits; the SQLite driver starts no transaction for a read, so
    there nothing is needed (SQLAlchemy's own transaction marker stays open, harmlessly, until close)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()
        self._end_reads = engine.dialect.name != "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self._engine.connect()
            with self._lock:
                self._all.append(conn)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        if self._end_reads:
            conn.rollback()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` of the migrations in ``script_location``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine, version_table: str = "alembic_version") -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": version_table}).get_current_revision()


def run_migrations(metadata: MetaData, *, version_table: str = "alembic_version") -> None:
    """The body of every schema's Alembic ``env.py``: run on the connection :func:`upgrade` hands over, or, for
    ``alembic revision --autogenerate`` during development, on ``-x url=...``.

    Each schema keeps its own ``version_table``, so the node's own tables and each of its modules' tables live in
    one database with independent migration histories. ``render_as_batch``: SQLite cannot ALTER most things in
    place; batch mode copies the table instead."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    options: dict[str, Any] = {"target_metadata": metadata, "render_as_batch": True, "version_table": version_table}
    if connection is None:
        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite://")
        with create_engine(url).connect() as conn:
            context.configure(connection=conn, **options)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
