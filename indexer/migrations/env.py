"""Alembic environment of the indexer schema: runs on the connection medledger.db.upgrade hands over."""

from __future__ import annotations

from indexer.models import VERSION_TABLE, Base
from medledger.db import run_migrations

run_migrations(Base.metadata, version_table=VERSION_TABLE)
