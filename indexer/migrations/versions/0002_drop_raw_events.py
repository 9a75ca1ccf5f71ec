"""drop the raw events table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:00:00.000000

Every log was written twice: to ``events`` (contract and event name per block and log index) and to its typed
table. Nothing reads ``events``: the queries, the reorg rollback and the idempotency key all work on the typed
tables, which carry the same (block number, log index, tx hash). Its rows were ~40% of the catch-up's
b-tree inserts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("events")


def downgrade() -> None:
    # Recreated empty: its rows cannot be derived back from the typed tables (logs of unknown events were
    # only there); `medledger indexer rebuild` refills it at that revision.
    op.create_table(
        "events",
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_events")),
    )
