"""The node's Alembic migrations produce exactly the schema its models declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from medledger.db import current_revision
from node.db import open_node_db
from node.db.models import Base


def test_migrations_match_models(db_url):
    engine, _ = open_node_db(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert current_revision(engine) == "0006"
    finally:
        engine.dispose()
