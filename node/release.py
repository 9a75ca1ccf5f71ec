"""Releasing a record this node holds: the one path by which a record key leaves the custodian.

Order matters and is the point of this module::

    identity  →  authorization (patient / custodian staff / grant / break-glass)
              →  access journaled durably (no journal row, no key)
              →  record key re-wrapped to the requester's registered public key
              →  ciphertext + wrapped key returned

The requester verifies the ciphertext against the on-chain commitment before decrypting; the node never
sends plaintext to anyone but its own staff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from medledger.addresses import Address, eip55
from medledger.crypto import DecryptionError, decrypt_record, wrap_to_x25519
from medledger.db import ThreadConnections
from medledger.errors import MedLedgerError
from medledger.vocabulary import AuthKind, Purpose, RecordClass
from node.access_journal import AccessJournal, JournalEntry
from node.consent import ConsentDecider, Decision
from node.db.models import Erasure, Patient, Record, RecordState
from node.identity import Requester, RequesterKind
from node.keystore import KeyEncryptionKey
from node.ledger_view import HeadCheckNeeded, LedgerView
from node.notifications import Notice, NoticeKind, Recipient
from node.storage import BlobStore


class RecordUnavailable(MedLedgerError):
    """The record cannot be released: unknown (404), erased (410) or not yet anchored (409)."""

    code = "record_not_found"


class RequesterKeyMissing(MedLedgerError):
    """The requester has no registered encryption key to wrap the record key to (409)."""

    code = "requester_key_missing"


@dataclass(frozen=True)
class HeldRecord:
    """What the node knows of a record it holds (no key material)."""

    record_id: bytes
    patient: Address | None
    record_class: int
    type_code: str
    media_type: str
    cid: str
    commitment: bytes
    status: str
    clinical_time: int | None
    tx_hash: str | None
    block_number: int | None

    def meta(self) -> dict[str, Any]:
        return {
            "record_id": "0x" + self.record_id.hex(),
            "patient": self.patient,
            "record_class": RecordClass.label(self.record_class),
            "type_code": self.type_code,
            "media_type": self.media_type,
            "cid": self.cid,
            "commitment": "0x" + self.commitment.hex(),
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
        }


@dataclass(frozen=True)
class Release:
    record: HeldRecord
    custodian: Address
    ciphertext: bytes
    wrapped_key: bytes
    decision: Decision


@dataclass(frozen=True)
class _Prepared:
    """A release checked and read, waiting for its journal commit."""

    held: HeldRecord
    custodian_key: bytes
    decision: Decision
    public_key: bytes
    ciphertext: bytes
    entry: JournalEntry
    notify: Notice | None


@dataclass(frozen=True)
class Plaintext:
    """A decrypted record for this node's own staff."""

    record: HeldRecord
    custodian: Address
    content: bytes
    decision: Decision


# One Core statement (compiled once, cached): the ORM version cost ~1 ms per release.
_HELD = (
    select(
        Record.record_id,
        Record.record_class,
        Record.type_code,
        Record.media_type,
        Record.cid,
        Record.commitment,
        Record.status,
        Record.clinical_time,
        Record.tx_hash,
        Record.block_number,
        Record.custodian_key,
        Patient.address,
    )
    .join(Patient, Patient.id == Record.patient_id)
    .where(Record.record_id == bindparam("rid"))
)


class ReleaseService:
    """Releases records held by the custodian ``address``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        kek: KeyEncryptionKey,
        address: Address,
        view: LedgerView,
        decider: ConsentDecider,
        journal: AccessJournal,
    ) -> None:
        self._sessions = sessions
        self._reads = ThreadConnections(sessions.kw["bind"])
        self.store = store
        self.kek = kek
        self.address = address
        self.view = view
        self.decider = decider
        self.journal = journal

    def close(self) -> None:
        self._reads.close()

    # ------------------------------------------------------------------ lookups

    def held(self, record_id: bytes) -> tuple[HeldRecord, bytes]:
        """The record and its custodian-wrapped key; 404 if not held here, 410 if erased."""
        with self._reads.read() as conn:
            row = conn.execute(_HELD, {"rid": record_id}).one_or_none()
        if row is None:
            raise RecordUnavailable(f"this node holds no record 0x{record_id.hex()}", code="record_not_found")
        if row.status == RecordState.ERASED:
            with self._sessions() as s:
                er = s.get(Erasure, record_id)
            raise RecordUnavailable(
                f"record 0x{record_id.hex()} was erased at the patient's request",
                code="record_erased",
                details={
                    "record_id": "0x" + record_id.hex(),
                    "erasure_status": er.status if er else "confirmed",
                    "tx_hash": er.tx_hash if er else None,
                    "block_number": er.block_number if er else None,
                },
            )
        held = HeldRecord(
            bytes(row.record_id),
            eip55(row.address) if row.address is not None else None,  # stored checksummed; typed here
            row.record_class,
            row.type_code,
            row.media_type,
            row.cid,
            bytes(row.commitment),
            row.status,
            int(row.clinical_time.timestamp()) if row.clinical_time else None,
            row.tx_hash,
            row.block_number,
        )
        return held, bytes(row.custodian_key)

    def ciphertext(self, record_id: bytes) -> tuple[HeldRecord, bytes]:
        """The stored ciphertext (for auditors checking commitments); no key, so no access to log."""
        held, _ = self.held(record_id)
        return held, self.store.get(held.cid)

    # ------------------------------------------------------------------ releases

    def release(self, requester: Requester, record_id: bytes, purpose: Purpose) -> Release:
        """Release to a patient or another institution, wrapped to their registered key."""
        prepared = self._prepare(requester, record_id, purpose, wait=True)
        self.journal.append(prepared.entry, notify=prepared.notify)
        return self._complete(prepared)

    async def release_async(self, requester: Requester, record_id: bytes, purpose: Purpose) -> Release:
        """:meth:`release` for the API's event loop: the local work runs on the loop (it is short and never
        waits), the journal commit is awaited, a decision that needs a fresher view awaits the ledger view's
        head watcher, and only what must block on the chain (a denial to re-check at the head, no watcher)
        moves to a thread."""
        # Freshness is judged from the request's arrival: a probe that started since (or within max_head_age
        # before) serves it, including the watcher probe it may await below.
        asked_at = time.monotonic()
        try:
            prepared = self._prepare(requester, record_id, purpose, wait=False, asked_at=asked_at)
        except HeadCheckNeeded:
            prepared = await self._prepare_at_head(requester, record_id, purpose, asked_at)
        await self.journal.append_async(prepared.entry, notify=prepared.notify)
        return self._complete(prepared)

    async def _prepare_at_head(
        self, requester: Requester, record_id: bytes, purpose: Purpose, asked_at: float
    ) -> _Prepared:
        """:meth:`_prepare` when the decision needs the chain head checked first."""
        # The view's head watcher is due to verify the chain anyway: wait for it without taking a thread.
        if await self.view.fresh_async(self.decider.max_head_age, asked_at=asked_at):
            with contextlib.suppress(HeadCheckNeeded):
                return self._prepare(requester, record_id, purpose, wait=False, asked_at=asked_at)
        # No watcher, or a denial to re-check against the head: probe from a thread.
        return await asyncio.to_thread(self._prepare, requester, record_id, purpose, wait=True, asked_at=asked_at)

    def _prepare(
        self, requester: Requester, record_id: bytes, purpose: Purpose, *, wait: bool, asked_at: float | None = None
    ) -> _Prepared:
        """Everything up to the journal: the record, the authorization, the requester's key, the ciphertext."""
        held, custodian_key = self.held(record_id)
        if held.status != RecordState.CONFIRMED or held.patient is None:
            raise RecordUnavailable(
                f"record 0x{record_id.hex()} is not anchored yet; its commitment could not be verified",
                code="record_not_anchored",
                details={"status": held.status},
            )
        decision = self._authorize(requester, held, purpose, wait=wait, asked_at=asked_at)
        public_key = self._public_key(requester)
        # Read (and so integrity-check) the ciphertext before journaling: a corrupt store releases nothing
        # and must not leave an access in the log that never happened.
        ciphertext = self.store.get(held.cid)
        entry = JournalEntry(
            held.patient, requester.address, record_id, purpose, decision.kind, decision.auth_id,
            requester.staff_ref, max(0, decision.block_number),
        )  # fmt: skip
        notify = _break_glass_notice(held, requester, decision, self.address)
        return _Prepared(held, custodian_key, decision, public_key, ciphertext, entry, notify)

    def _complete(self, prepared: _Prepared) -> Release:
        """After the journal commit: the record key, re-wrapped to the requester."""
        key = self.kek.unwrap(prepared.custodian_key)
        wrapped = wrap_to_x25519(key, prepared.public_key)
        return Release(prepared.held, self.address, prepared.ciphertext, wrapped, prepared.decision)

    def read_own(self, requester: Requester, record_id: bytes, purpose: Purpose) -> Plaintext:
        """Decrypt for this node's own staff (custodian duty of care), logged like any other access."""
        if requester.kind is not RequesterKind.STAFF:
            raise MedLedgerError("only this node's staff read plaintext here", code="forbidden")
        held, custodian_key = self.held(record_id)
        if held.patient is None:
            raise RecordUnavailable(
                "the record's patient has not linked a ledger address yet; it cannot be logged",
                code="patient_not_linked",
            )
        decision = Decision(AuthKind.CUSTODIAN, 0, self.view.snapshot().block_number)
        self.journal.append(
            JournalEntry(
                held.patient,
                self.address,
                record_id,
                purpose,
                decision.kind,
                0,
                requester.staff_ref,
                max(0, decision.block_number),
            )
        )
        key = self.kek.unwrap(custodian_key)
        ciphertext = self.store.get(held.cid)
        try:
            content = decrypt_record(ciphertext, key=key, record_id=record_id, custodian=self.address)
        except DecryptionError as exc:
            raise MedLedgerError(
                "stored ciphertext does not decrypt: the store is corrupted", code="ciphertext_corrupted"
            ) from exc
        return Plaintext(held, self.address, content, decision)

    def _authorize(
        self, requester: Requester, held: HeldRecord, purpose: Purpose, *, wait: bool, asked_at: float | None
    ) -> Decision:
        assert held.patient is not None
        if requester.kind is RequesterKind.PATIENT:
            if requester.address != held.patient:
                raise MedLedgerError("this record belongs to another patient", code="forbidden")
            return Decision(AuthKind.PATIENT, 0, self.view.snapshot().block_number)
        if requester.kind is RequesterKind.INSTITUTION:
            return self.decider.decide(
                held.patient, requester.address, held.record_class, purpose, wait=wait, asked_at=asked_at
            )
        raise MedLedgerError("staff read through their own node's record endpoints", code="forbidden")

    def _public_key(self, requester: Requester) -> bytes:
        if requester.kind is RequesterKind.PATIENT:
            key = self.view.patient_key(requester.address)
            if key is None:
                with self._sessions() as s:
                    key = s.scalars(select(Patient.encryption_key).where(Patient.address == requester.address)).first()
        else:
            member = self.view.member(requester.address)
            raw = member.encryption_key if member is not None else ""
            key = bytes.fromhex(raw.removeprefix("0x")) if raw else None
        if not key or len(key) != 32:
            raise RequesterKeyMissing(
                f"{requester.address} has no registered X25519 encryption key to release the record key to",
                details={"requester": requester.address},
            )
        return bytes(key)


def _break_glass_notice(
    held: HeldRecord, requester: Requester, decision: Decision, custodian: Address
) -> Notice | None:
    if decision.kind is not AuthKind.BREAK_GLASS or held.patient is None:
        return None
    return Notice(
        Recipient.patient(held.patient),
        NoticeKind.BREAK_GLASS_ACCESS,
        {
            "break_glass_id": decision.auth_id,
            "accessor": requester.address,
            "custodian": custodian,
            "record_id": "0x" + held.record_id.hex(),
            "record_class": RecordClass.label(held.record_class),
            "block_number": decision.block_number,
        },
    )
