"""Alembic environment of the node schema: runs on the connection medledger.db.upgrade hands over."""

from __future__ import annotations

from medledger.db import run_migrations
from node.db.models import Base

run_migrations(Base.metadata)
