"""The shared database plumbing works on both supported databases."""

from __future__ import annotations

from sqlalchemy import text

from medledger.db import make_engine, normalize_url


def test_engine_connects_and_sqlite_uses_wal(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        else:
            assert engine.dialect.name == "postgresql"
            assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_postgres_urls_use_psycopg3():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_thread_connections_read_the_latest_commits_and_leave_no_transaction_open(db_url):
    """The hot-path reader keeps one connection per thread; every read sees what other connections committed
    since, and on PostgreSQL the connection does not idle in a transaction between reads."""
    from sqlalchemy import text

    from medledger.db import ThreadConnections, make_engine

    engine = make_engine(db_url)
    reads = ThreadConnections(engine)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE hot (v INTEGER)"))
            conn.execute(text("INSERT INTO hot VALUES (1)"))
        with reads.read() as conn:
            assert conn.execute(text("SELECT max(v) FROM hot")).scalar() == 1
            first = conn
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO hot VALUES (2)"))
        with reads.read() as conn:
            assert conn is first  # the same connection, no pool round trip
            assert conn.execute(text("SELECT max(v) FROM hot")).scalar() == 2
        if engine.dialect.name == "postgresql":
            assert not first.in_transaction()
            with engine.connect() as admin:
                idle = admin.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE state = 'idle in transaction' AND datname = current_database()"
                    )
                ).scalar()
            assert idle == 0
    finally:
        reads.close()
        engine.dispose()
