"""The node's own database: the local patient directory, the records it holds and the anchoring outbox.

Two rules shape it. The *transactional outbox*: a record row and its ``anchor_outbox`` row are written in the
same transaction, so a record can never be stored without being queued for anchoring (or queued without being
stored). The *write-ahead batch*: the anchorer stores a signed ``anchorRecords`` transaction in
``anchor_batches`` before broadcasting it, so after a crash it can re-send the very same transaction (same
nonce, same hash) instead of signing a second one that could anchor the records twice.

Outbox invariant: a record has an outbox row exactly while its status is ``queued`` or ``submitted``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Stable constraint names so later migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ADDR = 42
HASH = 66


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """``dt`` with its UTC zone: SQLite hands timestamps back naive, and everything the node writes is UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class RecordState(StrEnum):
    """Where a record stands on its way to the chain."""

    PENDING_LINK = "pending_link"  # stored; the patient has no ledger address yet, so it cannot be anchored
    QUEUED = "queued"  # in the outbox, waiting for a batch
    SUBMITTED = "submitted"  # in a signed batch that was (or is about to be) broadcast
    CONFIRMED = "confirmed"  # anchored on chain with enough confirmations
    ERASED = "erased"  # key and ciphertext destroyed (crypto-shredding)


class BatchState(StrEnum):
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"  # never mined (reverted or its nonce went to another tx); its records were re-queued


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: DateTime(timezone=True)}


class Patient(Base):
    """A patient as this institution knows them (MRN within an assigning authority), and, once the patient has
    linked their wallet, their ledger address, their registered X25519 key and the patient KEK (PKEK)."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("mrn", "assigning_authority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mrn: Mapped[str] = mapped_column(String(64))
    assigning_authority: Mapped[str] = mapped_column(String(64), default="")
    family_name: Mapped[str] = mapped_column(String(128), default="")
    given_name: Mapped[str] = mapped_column(String(128), default="")
    birth_date: Mapped[str] = mapped_column(String(10), default="")
    sex: Mapped[str] = mapped_column(String(8), default="")
    address: Mapped[str | None] = mapped_column(String(ADDR), index=True)
    encryption_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    #: The PKEK wrapped (AES-KW) under the custodian KEK named by ``kek_id``: how the node wraps new record keys.
    pkek_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    #: The same PKEK wrapped to ``encryption_key`` (ECIES/X25519): what the patient's wallet unwraps.
    pkek_for_patient: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    kek_id: Mapped[str | None] = mapped_column(String(128))
    linked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WriteAheadBatch:
    """The columns every write-ahead batch table shares (anchor_batches, access_batches): one signed
    transaction, persisted before it is broadcast, and where it stands (node.chain_outbox drives it)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(HASH), unique=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(String(ADDR))
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=BatchState.SUBMITTED, index=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AnchorBatch(WriteAheadBatch, Base):
    """One signed ``anchorRecords`` transaction, persisted before it is broadcast."""

    __tablename__ = "anchor_batches"
    __table_args__ = (CheckConstraint("status in ('submitted', 'confirmed', 'failed')", name="status"),)

    record_count: Mapped[int] = mapped_column(Integer)
    broadcasts: Mapped[int] = mapped_column(Integer, default=0)


class Record(Base):
    """A record this node holds: where its ciphertext is, its commitment, its wrapped keys and anchoring state."""

    __tablename__ = "records"
    __table_args__ = (
        CheckConstraint(
            "status in ('pending_link', 'queued', 'submitted', 'confirmed', 'erased')",
            name="status",
        ),
        Index("ix_records_patient_status", "patient_id", "status"),
    )

    record_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    record_class: Mapped[int] = mapped_column(SmallInteger)
    type_code: Mapped[str] = mapped_column(String(128))
    clinical_time: Mapped[datetime | None] = mapped_column()
    source_system: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(256))
    media_type: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    cid: Mapped[str] = mapped_column(String(128))
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32))
    size: Mapped[int] = mapped_column(BigInteger)
    #: Record key wrapped (AES-KW) under the custodian KEK ``kek_id``.
    custodian_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    kek_id: Mapped[str] = mapped_column(String(128))
    #: Record key wrapped (AES-KW) under the patient's PKEK; NULL until the patient is linked.
    patient_key: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("anchor_batches.id"), index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(HASH))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AnchorOutbox(Base):
    """Records waiting to be anchored (queued) or whose batch is not yet confirmed (submitted)."""

    __tablename__ = "anchor_outbox"
    __table_args__ = (Index("ix_anchor_outbox_order", "enqueued_at", "record_id"),)

    record_id: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("records.record_id", ondelete="CASCADE"), primary_key=True
    )
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Batches this record has been part of; > 1 means an earlier batch failed.
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class AccessState(StrEnum):
    """Where an access-journal entry stands on its way to the chain's AccessLog."""

    QUEUED = "queued"  # durably journaled; the key may already have been released
    SUBMITTED = "submitted"  # in a signed logAccesses batch
    CONFIRMED = "confirmed"  # on chain


class AccessBatch(WriteAheadBatch, Base):
    """One signed ``logAccesses`` transaction, persisted before it is broadcast (as AnchorBatch)."""

    __tablename__ = "access_batches"
    __table_args__ = (CheckConstraint("status in ('submitted', 'confirmed', 'failed')", name="status"),)

    entry_count: Mapped[int] = mapped_column(Integer)


class AccessEntry(Base):
    """The access journal: every release of a record key, written durably BEFORE the key leaves the node and
    then moved onto the chain's AccessLog in batches. No journal row, no key."""

    __tablename__ = "access_journal"
    __table_args__ = (
        CheckConstraint("status in ('queued', 'submitted', 'confirmed')", name="status"),
        Index("ix_access_journal_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient: Mapped[str] = mapped_column(String(ADDR), index=True)
    accessor: Mapped[str] = mapped_column(String(ADDR))
    record_id: Mapped[bytes] = mapped_column(LargeBinary(32))
    purpose: Mapped[int] = mapped_column(SmallInteger)
    auth_kind: Mapped[int] = mapped_column(SmallInteger)
    auth_id: Mapped[int] = mapped_column(BigInteger)
    staff_ref: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: The block whose consent state authorized the release (logged on chain with it; 0: unknown).
    decided_block: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=AccessState.QUEUED)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("access_batches.id"), index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(HASH))
    block_number: Mapped[int | None] = mapped_column(BigInteger)


class WriteState(StrEnum):
    """Where a generic contract write (``chain_writes``) stands."""

    QUEUED = "queued"  # enqueued with its workflow's state change; not yet signed
    SUBMITTED = "submitted"  # signed, persisted, broadcast (or about to be)
    CONFIRMED = "confirmed"  # mined with status 1 and enough confirmations
    FAILED = "failed"  # reverted (``error`` holds the decoded revert); never retried


class ChainWrite(Base):
    """One contract call a workflow wants on chain (a referral event, a kit code's use, an escrow call),
    enqueued in the same database transaction as the workflow's own state change and submitted by
    node.chain_outbox.ChainWriter with the write-ahead protocol: on chain or queued, never lost, never twice.

    ``(kind, key)`` is the idempotency key: ``kind`` names the owner ("referrals.event"), ``key`` the write within
    it, so enqueuing the same write twice is a no-op. ``gas`` NULL: estimated when signed (a call that would
    revert then fails before it costs a nonce)."""

    __tablename__ = "chain_writes"
    __table_args__ = (
        CheckConstraint("status in ('queued', 'submitted', 'confirmed', 'failed')", name="status"),
        UniqueConstraint("kind", "key"),
        Index("ix_chain_writes_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    to: Mapped[str] = mapped_column(String(ADDR))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    gas: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=WriteState.QUEUED)
    tx_hash: Mapped[str | None] = mapped_column(String(HASH), unique=True)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    sender: Mapped[str | None] = mapped_column(String(ADDR))
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Times this write was signed anew (its earlier transaction could never be mined: nonce taken).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    broadcasts: Mapped[int] = mapped_column(Integer, default=0)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SeenNonce(Base):
    """Nonces of signed institution requests already accepted, kept until they expire (replay protection that
    survives restarts)."""

    __tablename__ = "seen_nonces"

    signer: Mapped[str] = mapped_column(String(ADDR), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class SiweNonce(Base):
    """Sign-In with Ethereum nonces this node issued; each can be used once, before it expires."""

    __tablename__ = "siwe_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger)


class Notification(Base):
    """A notice, written in the same transaction as the event it reports (node.notifications): the recipient's
    in-app inbox, and the source its outbound deliveries (e-mail, SMS and voice gateways) are fanned out from.

    ``recipient`` is an address for patients and institutions, a staff id or a contact's id otherwise
    (``recipient_kind`` says which). ``dispatched_at`` is set once its deliveries have been created."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_recipient_id", "recipient", "id"),
        Index("ix_notifications_dispatched_at", "dispatched_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient_kind: Mapped[str] = mapped_column(String(16), default="patient", server_default="patient")
    recipient: Mapped[str] = mapped_column(String(ADDR))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
    dispatched_at: Mapped[datetime | None] = mapped_column()


class NotificationContact(Base):
    """Where a recipient wants notices delivered besides the inbox: one channel and destination per row
    (``email`` / ``alice@example.org``, ``sms`` / ``+8613800138000``)."""

    __tablename__ = "notification_contacts"
    __table_args__ = (UniqueConstraint("recipient_kind", "recipient", "channel", "destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(ADDR))
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryState(StrEnum):
    QUEUED = "queued"  # due at next_attempt_at
    SENT = "sent"  # the channel accepted it (``receipt`` holds its id)
    FAILED = "failed"  # given up: a permanent refusal, or max attempts


class NotificationDelivery(Base):
    """One notice to one destination over one channel, with its attempts and receipt. Unique per notice,
    channel and destination, so fanning a notice out twice delivers it once."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint("status in ('queued', 'sent', 'failed')", name="status"),
        UniqueConstraint("notification_id", "channel", "destination"),
        Index("ix_notification_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    receipt: Mapped[str | None] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BreakGlassNote(Base):
    """The reason behind a break-glass window this node opened (only its hash is on chain) and who opened it."""

    __tablename__ = "break_glass_notes"

    break_glass_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    patient: Mapped[str] = mapped_column(String(ADDR), index=True)
    staff_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(1000))
    expires_at: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(HASH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ErasureState(StrEnum):
    PENDING = "pending"  # shredded here; the erasure marker is not yet on chain
    CONFIRMED = "confirmed"  # marker anchored


class Erasure(Base):
    """A patient's signed erasure request, honored locally (key and ciphertext destroyed) in the same
    transaction that writes this row; the on-chain marker follows and is retried until anchored."""

    __tablename__ = "erasures"
    __table_args__ = (CheckConstraint("status in ('pending', 'confirmed')", name="status"),)

    record_id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    patient: Mapped[str] = mapped_column(String(ADDR))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    status: Mapped[str] = mapped_column(String(16), default=ErasureState.PENDING, index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(HASH))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)


class Staff(Base):
    """Staff of this institution who may use its node API; tokens are kept only as SHA-256 (node.auth)."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


__all__ = [
    "AccessBatch",
    "AccessEntry",
    "AccessState",
    "AnchorBatch",
    "AnchorOutbox",
    "Base",
    "BatchState",
    "BreakGlassNote",
    "ChainWrite",
    "DeliveryState",
    "Erasure",
    "ErasureState",
    "Notification",
    "NotificationContact",
    "NotificationDelivery",
    "Patient",
    "Record",
    "RecordState",
    "SeenNonce",
    "SiweNonce",
    "Staff",
    "WriteAheadBatch",
    "WriteState",
    "as_utc",
    "utcnow",
]
