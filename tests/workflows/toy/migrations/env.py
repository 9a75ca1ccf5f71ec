from __future__ import annotations

from medledger.db import run_migrations
from tests.workflows.toy.models import Base

run_migrations(Base.metadata, version_table="alembic_version_toy")
