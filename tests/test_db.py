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
