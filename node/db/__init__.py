"""The node database: open it (upgrading the schema to the newest migration) and get a session factory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from medledger.db import make_engine, session_factory, upgrade
from node.db.models import Record, RecordState

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def open_node_db(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Connect to the node database at ``url`` and bring its schema to the head revision."""
    engine = make_engine(url)
    upgrade(engine, MIGRATIONS)
    return engine, session_factory(engine)


def records_by_status(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Records per status, every status present (zero included)."""
    counts = {s.value: 0 for s in RecordState}
    with sessions() as session:
        for status, n in session.execute(select(Record.status, func.count()).group_by(Record.status)):
            counts[status] = int(n)
    return counts


__all__ = ["MIGRATIONS", "open_node_db", "records_by_status"]
