"""index only the rows a rollback can reach in the status columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000

``records.status_block``, ``consent_grants.revoked_block`` and ``break_glass.closed_block`` are NULL when a row
is written and set only when a later event changes it (amendment, erasure, revocation, closure). Their indexes
serve one query, the reorg rollback's ``WHERE <column> > ancestor``, which never matches NULL; indexing only
the non-NULL rows keeps every anchored record out of an index it never needs (a quarter of the catch-up's
b-tree inserts into ``records``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: (table, column, index name) of the status columns.
STATUS_INDEXES = (
    ("records", "status_block", "ix_records_status_block"),
    ("consent_grants", "revoked_block", "ix_consent_grants_revoked_block"),
    ("break_glass", "closed_block", "ix_break_glass_closed_block"),
)


def upgrade() -> None:
    for table, column, name in STATUS_INDEXES:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for table, column, name in STATUS_INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column])
