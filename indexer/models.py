"""The indexer's schema: one table per kind of ledger fact, every row keyed by the log that produced it.

Every derived table carries ``block_number`` (and ``log_index``) so a reorg rollback is a ``DELETE ... WHERE
block_number > ancestor`` per table. The few mutable columns (a record's status, a grant's revocation, a
break-glass closure) also record the block that set them (``*_block``) so a rollback can reset exactly the
changes it undoes; everything else is insert-only. Addresses are lowercase ``0x`` hex, 32-byte values
``0x`` hex, unbounded ``uint256`` values decimal strings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Stable constraint names so Alembic migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

#: Alembic version table of this schema, apart from other components' migrations in a shared database.
VERSION_TABLE = "indexer_alembic_version"

ADDR = 42
HASH = 66
UINT = 78


def not_null(column: str) -> dict[str, Any]:
    """Index options for a status column set by a later event: only its non-NULL rows are indexed (the
    rollback's ``column > ancestor`` is the one query, and it never matches NULL)."""
    where = text(f"{column} IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class LogKeyed:
    """Columns every event-derived row has: its position in the chain."""

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    tx_hash: Mapped[str] = mapped_column(String(HASH))


class Cursor(Base):
    """Where indexing stands: the last fully processed block (one row, id 1)."""

    __tablename__ = "indexer_cursor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    start_block: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HASH))
    block_time: Mapped[int] = mapped_column(BigInteger)


class Block(Base):
    """Headers of processed blocks: those with events (kept, for their time) and range ends (reorg checks)."""

    __tablename__ = "blocks"
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HASH))
    parent_hash: Mapped[str] = mapped_column(String(HASH))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    has_events: Mapped[bool] = mapped_column(Boolean)


class MemberEvent(LogKeyed, Base):
    """Membership changes; current members are replayed from these (see queries.members)."""

    __tablename__ = "member_events"
    account: Mapped[str] = mapped_column(String(ADDR), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # admitted | removed | roles | profile
    roles: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(Text)
    endpoint: Mapped[str | None] = mapped_column(Text)
    encryption_key: Mapped[str | None] = mapped_column(Text)


class PatientKey(LogKeyed, Base):
    __tablename__ = "patient_keys"
    patient: Mapped[str] = mapped_column(String(ADDR), index=True)
    encryption_key: Mapped[str] = mapped_column(Text)
    relayer: Mapped[str] = mapped_column(String(ADDR))


class GovernanceEvent(LogKeyed, Base):
    """Proposals, approvals, threshold changes and node (de)registrations, arguments as JSON."""

    __tablename__ = "governance_events"
    name: Mapped[str] = mapped_column(String(40))
    args: Mapped[str] = mapped_column(Text)


class Record(LogKeyed, Base):
    """A timeline entry: one anchored record version."""

    __tablename__ = "records"
    record_id: Mapped[str] = mapped_column(String(HASH), unique=True)
    patient: Mapped[str] = mapped_column(String(ADDR))
    custodian: Mapped[str] = mapped_column(String(ADDR))
    commitment: Mapped[str] = mapped_column(String(HASH))
    record_class: Mapped[int] = mapped_column(Integer)
    clinical_time: Mapped[int] = mapped_column(BigInteger)
    #: Timeline order: the clinical time, or the anchoring block's time when the custodian gave none.
    event_time: Mapped[int] = mapped_column(BigInteger)
    block_time: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[int] = mapped_column(Integer)
    superseded_by: Mapped[str | None] = mapped_column(String(HASH))
    #: Block of the amendment/erasure that set ``status``; NULL while active.
    status_block: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_records_timeline", "patient", "event_time", "block_number", "log_index"),
        Index("ix_records_custodian", "custodian", "event_time"),
        Index("ix_records_status_block", "status_block", **not_null("status_block")),
    )


class Amendment(LogKeyed, Base):
    __tablename__ = "amendments"
    previous_id: Mapped[str] = mapped_column(String(HASH), index=True)
    new_id: Mapped[str] = mapped_column(String(HASH), index=True)
    custodian: Mapped[str] = mapped_column(String(ADDR))


class Erasure(LogKeyed, Base):
    __tablename__ = "erasures"
    record_id: Mapped[str] = mapped_column(String(HASH), index=True)
    custodian: Mapped[str] = mapped_column(String(ADDR))
    request_hash: Mapped[str] = mapped_column(String(HASH))


class Digest(LogKeyed, Base):
    __tablename__ = "digests"
    digest_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    custodian: Mapped[str] = mapped_column(String(ADDR), index=True)
    kind: Mapped[str] = mapped_column(String(HASH))
    root: Mapped[str] = mapped_column(String(HASH), unique=True)
    count: Mapped[int] = mapped_column(BigInteger)
    block_time: Mapped[int] = mapped_column(BigInteger)


class ConsentGrant(LogKeyed, Base):
    """A grant as made, plus how it ended (revoked or replaced) once it did."""

    __tablename__ = "consent_grants"
    grant_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    patient: Mapped[str] = mapped_column(String(ADDR), index=True)
    grantee: Mapped[str] = mapped_column(String(ADDR), index=True)
    classes: Mapped[str] = mapped_column(String(UINT))
    purpose: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[int] = mapped_column(BigInteger)
    replaces_grant_id: Mapped[int] = mapped_column(BigInteger)
    relayer: Mapped[str] = mapped_column(String(ADDR))
    block_time: Mapped[int] = mapped_column(BigInteger)
    revoked_block: Mapped[int | None] = mapped_column(BigInteger)
    revoked_log_index: Mapped[int | None] = mapped_column(Integer)
    revoked_time: Mapped[int | None] = mapped_column(BigInteger)
    replaced: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (Index("ix_consent_grants_revoked_block", "revoked_block", **not_null("revoked_block")),)


class ConsentRevocation(LogKeyed, Base):
    __tablename__ = "consent_revocations"
    grant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    patient: Mapped[str] = mapped_column(String(ADDR))
    grantee: Mapped[str] = mapped_column(String(ADDR))
    replaced: Mapped[bool] = mapped_column(Boolean)
    relayer: Mapped[str] = mapped_column(String(ADDR))
    block_time: Mapped[int] = mapped_column(BigInteger)


class BreakGlassWindow(LogKeyed, Base):
    """A break-glass window; ``closed_*`` set when it was closed early."""

    __tablename__ = "break_glass"
    break_glass_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    patient: Mapped[str] = mapped_column(String(ADDR), index=True)
    accessor: Mapped[str] = mapped_column(String(ADDR), index=True)
    reason_hash: Mapped[str] = mapped_column(String(HASH))
    opened_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    closed_block: Mapped[int | None] = mapped_column(BigInteger)
    closed_time: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_break_glass_closed_block", "closed_block", **not_null("closed_block")),)


class BreakGlassClosure(LogKeyed, Base):
    __tablename__ = "break_glass_closures"
    break_glass_id: Mapped[int] = mapped_column(BigInteger, index=True)
    patient: Mapped[str] = mapped_column(String(ADDR))
    accessor: Mapped[str] = mapped_column(String(ADDR))
    block_time: Mapped[int] = mapped_column(BigInteger)


class AccessEntry(LogKeyed, Base):
    __tablename__ = "accesses"
    patient: Mapped[str] = mapped_column(String(ADDR))
    accessor: Mapped[str] = mapped_column(String(ADDR))
    record_id: Mapped[str] = mapped_column(String(HASH))
    custodian: Mapped[str] = mapped_column(String(ADDR))
    purpose: Mapped[int] = mapped_column(Integer)
    auth_kind: Mapped[int] = mapped_column(Integer)
    auth_id: Mapped[str] = mapped_column(String(UINT))
    staff_ref: Mapped[str] = mapped_column(String(HASH))
    sequence: Mapped[str] = mapped_column(String(UINT))
    #: The block the custodian decided the access at (its consent state authorized it); 0: unknown.
    decided_block: Mapped[int] = mapped_column(BigInteger, server_default="0")
    block_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_accesses_patient", "patient", "block_number", "log_index"),
        Index("ix_accesses_accessor", "accessor", "block_number", "log_index"),
        Index("ix_accesses_record", "record_id", "block_number", "log_index"),
        Index("ix_accesses_time", "block_time"),
    )


#: Tables whose rows all derive from logs: emptied above the ancestor on a rollback, and compared in tests.
EVENT_TABLES = [
    MemberEvent.__table__,
    PatientKey.__table__,
    GovernanceEvent.__table__,
    Record.__table__,
    Amendment.__table__,
    Erasure.__table__,
    Digest.__table__,
    ConsentGrant.__table__,
    ConsentRevocation.__table__,
    BreakGlassWindow.__table__,
    BreakGlassClosure.__table__,
    AccessEntry.__table__,
]

#: The event tables' secondary (non-unique) indexes: an initial catch-up builds them after loading the rows
#: (Indexer.sync). Unique constraints stay: they keep re-delivered logs out and serve the status updates. The
#: partial status indexes stay too: rows are inserted with their status columns NULL, outside those indexes,
#: so keeping them costs the inserts nothing, while building one later would scan its whole table.
DEFERRED_INDEXES = [
    index
    for table in EVENT_TABLES
    for index in sorted(table.indexes, key=lambda i: i.name or "")
    if not index.unique and index.dialect_kwargs.get("sqlite_where") is None
]
