"""Alembic environment of the indexer schema: runs on the connection medledger.db.upgrade hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from indexer.models import VERSION_TABLE, Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Only `alembic revision --autogenerate` during development gets here, with -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite://")
    with create_engine(url).connect() as conn:
        context.configure(
            connection=conn, target_metadata=Base.metadata, render_as_batch=True, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection, target_metadata=Base.metadata, render_as_batch=True, version_table=VERSION_TABLE
    )
    with context.begin_transaction():
        context.run_migrations()
