"""Index databases: how an engine for one is made (SQLite file layout tuned for the indexer's writes)."""

from __future__ import annotations

from sqlalchemy import Engine

from medledger.db import make_engine

#: Page size of new SQLite index files. The index's b-trees are keyed by random values (record ids,
#: patients), so every range of logs dirties pages all over them and each commit rewrites those pages into
#: the WAL. With 16 KiB pages instead of SQLite's 4 KiB, a catch-up of 100,000 anchored records spent ~35%
#: less time in SQLite (fewer, fuller pages to split, balance and log); point and timeline queries are
#: unaffected at this size (bench/indexer.py).
SQLITE_PAGE_SIZE = 16_384


def index_engine(url: str) -> Engine:
    """An engine for the index database at ``url`` (SQLite or PostgreSQL; see :func:`medledger.db.make_engine`)."""
    return make_engine(url, sqlite_page_size=SQLITE_PAGE_SIZE)


def adopt_page_size(engine: Engine) -> None:
    """Give an emptied SQLite index file the page size of new ones (``rebuild`` after :func:`drop_schema`).

    WAL mode fixes the page size, so the file leaves WAL for the ``VACUUM`` that rewrites it and goes back.
    Needs the only connection to the file; a no-op on PostgreSQL and when the size is already right."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        if conn.exec_driver_sql("PRAGMA page_size").scalar() == SQLITE_PAGE_SIZE:
            return
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
        conn.exec_driver_sql(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
