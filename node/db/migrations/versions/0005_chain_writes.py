"""The generic chain-write outbox: contract calls enqueued with a workflow's state change and submitted with
the write-ahead protocol (node.chain_outbox).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_writes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("to", sa.String(length=42), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("gas", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("sender", sa.String(length=42), nullable=True),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("broadcasts", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status in ('queued', 'submitted', 'confirmed', 'failed')", name=op.f("ck_chain_writes_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_writes")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_chain_writes_kind_key")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_chain_writes_tx_hash")),
    )
    with op.batch_alter_table("chain_writes", schema=None) as batch_op:
        batch_op.create_index("ix_chain_writes_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chain_writes", schema=None) as batch_op:
        batch_op.drop_index("ix_chain_writes_status_id")

    op.drop_table("chain_writes")
