"""The access journal records the block each release was decided at (logged on chain as AccessLog's
``decidedAt``); entries journaled before this revision have 0 (unknown).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_journal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decided_block", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("access_journal", schema=None) as batch_op:
        batch_op.drop_column("decided_block")
