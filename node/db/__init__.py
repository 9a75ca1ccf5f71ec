"""The node database: open it (upgrading the schema to the newest migration) and get a session factory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from medledger.db import make_engine, session_factory, upgrade

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def open_node_db(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Connect to the node database at ``url`` and bring its schema to the head revision."""
    engine = make_engine(url)
    upgrade(engine, MIGRATIONS)
    return engine, session_factory(engine)


__all__ = ["MIGRATIONS", "open_node_db"]
