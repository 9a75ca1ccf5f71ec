"""Consent-checked sharing: the access journal and its batches, replay-protection nonces, SIWE nonces, the
notification outbox, break-glass notes and erasures.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status in ('submitted', 'confirmed', 'failed')", name=op.f("ck_access_batches_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_batches")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_access_batches_tx_hash")),
    )
    with op.batch_alter_table("access_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_batches_status"), ["status"], unique=False)

    op.create_table(
        "break_glass_notes",
        sa.Column("break_glass_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("break_glass_id", name=op.f("pk_break_glass_notes")),
    )
    with op.batch_alter_table("break_glass_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_break_glass_notes_patient"), ["patient"], unique=False)

    op.create_table(
        "erasures",
        sa.Column("record_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status in ('pending', 'confirmed')", name=op.f("ck_erasures_status")),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_erasures")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasures_status"), ["status"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=42), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_recipient_id", ["recipient", "id"], unique=False)

    op.create_table(
        "seen_nonces",
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("signer", "nonce", name=op.f("pk_seen_nonces")),
    )
    with op.batch_alter_table("seen_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seen_nonces_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "siwe_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_siwe_nonces")),
    )
    with op.batch_alter_table("siwe_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_siwe_nonces_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "access_journal",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient", sa.String(length=42), nullable=False),
        sa.Column("accessor", sa.String(length=42), nullable=False),
        sa.Column("record_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("purpose", sa.SmallInteger(), nullable=False),
        sa.Column("auth_kind", sa.SmallInteger(), nullable=False),
        sa.Column("auth_id", sa.BigInteger(), nullable=False),
        sa.Column("staff_ref", sa.LargeBinary(length=32), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status in ('queued', 'submitted', 'confirmed')", name=op.f("ck_access_journal_status")),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["access_batches.id"], name=op.f("fk_access_journal_batch_id_access_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_journal")),
    )
    with op.batch_alter_table("access_journal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_journal_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_journal_patient"), ["patient"], unique=False)
        batch_op.create_index("ix_access_journal_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_journal", schema=None) as batch_op:
        batch_op.drop_index("ix_access_journal_status_id")
        batch_op.drop_index(batch_op.f("ix_access_journal_patient"))
        batch_op.drop_index(batch_op.f("ix_access_journal_batch_id"))

    op.drop_table("access_journal")
    with op.batch_alter_table("siwe_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_siwe_nonces_expires_at"))

    op.drop_table("siwe_nonces")
    with op.batch_alter_table("seen_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_nonces_expires_at"))

    op.drop_table("seen_nonces")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_recipient_id")

    op.drop_table("notifications")
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasures_status"))

    op.drop_table("erasures")
    with op.batch_alter_table("break_glass_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_break_glass_notes_patient"))

    op.drop_table("break_glass_notes")
    with op.batch_alter_table("access_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_batches_status"))

    op.drop_table("access_batches")
