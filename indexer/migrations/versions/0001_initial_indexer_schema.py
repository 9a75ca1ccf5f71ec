"""initial indexer schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 09:02:17.244924
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accesses",
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("accessor", sa.String(length=42), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("custodian", sa.String(length=42), nullable=False),
        sa.Column("purpose", sa.Integer(), nullable=False),
        sa.Column("auth_kind", sa.Integer(), nullable=False),
        sa.Column("auth_id", sa.String(length=78), nullable=False),
        sa.Column("staff_ref", sa.String(length=66), nullable=False),
        sa.Column("sequence", sa.String(length=78), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_accesses")),
    )
    with op.batch_alter_table("accesses", schema=None) as batch_op:
        batch_op.create_index("ix_accesses_accessor", ["accessor", "block_number", "log_index"], unique=False)
        batch_op.create_index("ix_accesses_patient", ["patient", "block_number", "log_index"], unique=False)
        batch_op.create_index("ix_accesses_record", ["record_id", "block_number", "log_index"], unique=False)
        batch_op.create_index("ix_accesses_time", ["block_time"], unique=False)

    op.create_table(
        "amendments",
        sa.Column("previous_id", sa.String(length=66), nullable=False),
        sa.Column("new_id", sa.String(length=66), nullable=False),
        sa.Column("custodian", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_amendments")),
    )
    with op.batch_alter_table("amendments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_amendments_new_id"), ["new_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_amendments_previous_id"), ["previous_id"], unique=False)

    op.create_table(
        "blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("parent_hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("has_events", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_blocks")),
    )
    op.create_table(
        "break_glass",
        sa.Column("break_glass_id", sa.BigInteger(), nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("accessor", sa.String(length=42), nullable=False),
        sa.Column("reason_hash", sa.String(length=66), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("closed_block", sa.BigInteger(), nullable=True),
        sa.Column("closed_time", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_break_glass")),
        sa.UniqueConstraint("break_glass_id", name=op.f("uq_break_glass_break_glass_id")),
    )
    with op.batch_alter_table("break_glass", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_break_glass_accessor"), ["accessor"], unique=False)
        batch_op.create_index(batch_op.f("ix_break_glass_closed_block"), ["closed_block"], unique=False)
        batch_op.create_index(batch_op.f("ix_break_glass_patient"), ["patient"], unique=False)

    op.create_table(
        "break_glass_closures",
        sa.Column("break_glass_id", sa.BigInteger(), nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("accessor", sa.String(length=42), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_break_glass_closures")),
    )
    with op.batch_alter_table("break_glass_closures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_break_glass_closures_break_glass_id"), ["break_glass_id"], unique=False)

    op.create_table(
        "consent_grants",
        sa.Column("grant_id", sa.BigInteger(), nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("grantee", sa.String(length=42), nullable=False),
        sa.Column("classes", sa.String(length=78), nullable=False),
        sa.Column("purpose", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.BigInteger(), nullable=False),
        sa.Column("valid_until", sa.BigInteger(), nullable=False),
        sa.Column("replaces_grant_id", sa.BigInteger(), nullable=False),
        sa.Column("relayer", sa.String(length=42), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("revoked_block", sa.BigInteger(), nullable=True),
        sa.Column("revoked_log_index", sa.Integer(), nullable=True),
        sa.Column("revoked_time", sa.BigInteger(), nullable=True),
        sa.Column("replaced", sa.Boolean(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_consent_grants")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_consent_grants_grant_id")),
    )
    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_grants_grantee"), ["grantee"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_grants_patient"), ["patient"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_grants_revoked_block"), ["revoked_block"], unique=False)

    op.create_table(
        "consent_revocations",
        sa.Column("grant_id", sa.BigInteger(), nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("grantee", sa.String(length=42), nullable=False),
        sa.Column("replaced", sa.Boolean(), nullable=False),
        sa.Column("relayer", sa.String(length=42), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_consent_revocations")),
    )
    with op.batch_alter_table("consent_revocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_revocations_grant_id"), ["grant_id"], unique=False)

    op.create_table(
        "digests",
        sa.Column("digest_id", sa.BigInteger(), nullable=False),
        sa.Column("custodian", sa.String(length=42), nullable=False),
        sa.Column("kind", sa.String(length=66), nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_digests")),
        sa.UniqueConstraint("digest_id", name=op.f("uq_digests_digest_id")),
        sa.UniqueConstraint("root", name=op.f("uq_digests_root")),
    )
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_digests_custodian"), ["custodian"], unique=False)

    op.create_table(
        "erasures",
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("custodian", sa.String(length=42), nullable=False),
        sa.Column("request_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_erasures")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasures_record_id"), ["record_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_events")),
    )
    op.create_table(
        "governance_events",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_governance_events")),
    )
    op.create_table(
        "indexer_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("start_block", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indexer_cursor")),
    )
    op.create_table(
        "member_events",
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("roles", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("encryption_key", sa.Text(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_member_events")),
    )
    with op.batch_alter_table("member_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_events_account"), ["account"], unique=False)

    op.create_table(
        "patient_keys",
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("encryption_key", sa.Text(), nullable=False),
        sa.Column("relayer", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_patient_keys")),
    )
    with op.batch_alter_table("patient_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_keys_patient"), ["patient"], unique=False)

    op.create_table(
        "records",
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("custodian", sa.String(length=42), nullable=False),
        sa.Column("commitment", sa.String(length=66), nullable=False),
        sa.Column("record_class", sa.Integer(), nullable=False),
        sa.Column("clinical_time", sa.BigInteger(), nullable=False),
        sa.Column("event_time", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("superseded_by", sa.String(length=66), nullable=True),
        sa.Column("status_block", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_records")),
        sa.UniqueConstraint("record_id", name=op.f("uq_records_record_id")),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_custodian", ["custodian", "event_time"], unique=False)
        batch_op.create_index("ix_records_status_block", ["status_block"], unique=False)
        batch_op.create_index(
            "ix_records_timeline", ["patient", "event_time", "block_number", "log_index"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_timeline")
        batch_op.drop_index("ix_records_status_block")
        batch_op.drop_index("ix_records_custodian")

    op.drop_table("records")
    with op.batch_alter_table("patient_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_keys_patient"))

    op.drop_table("patient_keys")
    with op.batch_alter_table("member_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_events_account"))

    op.drop_table("member_events")
    op.drop_table("indexer_cursor")
    op.drop_table("governance_events")
    op.drop_table("events")
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasures_record_id"))

    op.drop_table("erasures")
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digests_custodian"))

    op.drop_table("digests")
    with op.batch_alter_table("consent_revocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_revocations_grant_id"))

    op.drop_table("consent_revocations")
    with op.batch_alter_table("consent_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_grants_revoked_block"))
        batch_op.drop_index(batch_op.f("ix_consent_grants_patient"))
        batch_op.drop_index(batch_op.f("ix_consent_grants_grantee"))

    op.drop_table("consent_grants")
    with op.batch_alter_table("break_glass_closures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_break_glass_closures_break_glass_id"))

    op.drop_table("break_glass_closures")
    with op.batch_alter_table("break_glass", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_break_glass_patient"))
        batch_op.drop_index(batch_op.f("ix_break_glass_closed_block"))
        batch_op.drop_index(batch_op.f("ix_break_glass_accessor"))

    op.drop_table("break_glass")
    op.drop_table("blocks")
    with op.batch_alter_table("amendments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amendments_previous_id"))
        batch_op.drop_index(batch_op.f("ix_amendments_new_id"))

    op.drop_table("amendments")
    with op.batch_alter_table("accesses", schema=None) as batch_op:
        batch_op.drop_index("ix_accesses_time")
        batch_op.drop_index("ix_accesses_record")
        batch_op.drop_index("ix_accesses_patient")
        batch_op.drop_index("ix_accesses_accessor")

    op.drop_table("accesses")
