"""The indexer's Alembic migrations produce exactly the schema its models declare, on both databases, and
upgrade an index built at an earlier revision without losing it."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from indexer.follower import HEAD_REVISION, MIGRATIONS, schema_revision
from indexer.models import VERSION_TABLE, Base
from medledger.db import upgrade


def _diff(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return [d for d in compare_metadata(ctx, Base.metadata) if not _is_version_table(d)]


def _is_version_table(diff) -> bool:
    return diff[0] == "remove_table" and diff[1].name == VERSION_TABLE


def test_migrations_match_models(engine):
    upgrade(engine, MIGRATIONS)
    assert schema_revision(engine) == HEAD_REVISION
    assert _diff(engine) == []


def test_status_indexes_cover_only_rows_a_rollback_can_reach(engine):
    """0003: the status-column indexes are partial (non-NULL rows), and downgrading restores full ones."""
    upgrade(engine, MIGRATIONS)

    def partial(table: str) -> dict[str, bool]:
        out = {}
        for ix in inspect(engine).get_indexes(table):
            options = ix.get("dialect_options", {})
            out[ix["name"]] = any(options.get(k) is not None for k in ("sqlite_where", "postgresql_where"))
        return out

    assert partial("records")["ix_records_status_block"] is True
    assert partial("consent_grants")["ix_consent_grants_revoked_block"] is True
    assert partial("break_glass")["ix_break_glass_closed_block"] is True

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert schema_revision(engine) == "0002"
    assert partial("records")["ix_records_status_block"] is False
    upgrade(engine, MIGRATIONS)
    assert _diff(engine) == []
