"""accesses.decided_block: the block a custodian decided an access at (AccessLog's ``decidedAt``)

Revision ID: 0004
Revises: 0003

Audits judge an access's grant or break-glass window at the block it was decided at, so a revocation mined
between a release and its (batched) logging does not make an authorized access look unauthorized. Rows
indexed before have 0 (unknown: judged at their own position), as do logs of an AccessLog without the field.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accesses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decided_block", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("accesses", schema=None) as batch_op:
        batch_op.drop_column("decided_block")
