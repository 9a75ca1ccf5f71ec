"""Ingest: canonical records in, encrypted blobs and queued anchors out.

Per batch of records: derive ids (deterministic, so re-ingest is idempotent) → skip ids already stored →
encrypt each payload under a fresh record key → store all ciphertexts with one ``put_many`` → in ONE database
transaction insert the record rows and their outbox rows (transactional outbox: the anchorer can never miss a
stored record, nor anchor one that is not stored).

Throughput comes from doing per-batch what can be per-batch: one duplicate query, one patient lookup, one
``executemany`` per table, one fsync round in the store; the only per-record work is AES-GCM, keccak and two
AES-KW wraps. X25519 never runs here: record keys are wrapped under the patient's PKEK, which is unwrapped
once per patient and cached.

A record that fails (bad input, the store refusing it, a constraint violation) is reported as ``failed`` with
an error code and leaves nothing behind in the database; the other records of the batch still go through.
Ciphertexts stored for records whose database insert then failed stay in the content-addressed store as
unreferenced blobs: harmless (encrypted, keys never persisted) and reused if the record is ingested again.
A full blob store is different: the whole ingest is refused (``StorageFull``, 507) and the blobs of the batch
already written are deleted, so a disk that filled mid-batch leaves neither a partial record nor an orphan blob
taking the space the retry needs. Deleting them is safe: every ciphertext here is new (fresh record key), so no
other record references it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from eth_utils import is_address, to_checksum_address
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medledger.crypto import commitment, encrypt_record, wrap_key
from medledger.errors import ConfigError, MedLedgerError
from medledger.records import CanonicalRecord
from medledger.vocabulary import RecordClass
from node.db import records_by_status
from node.db.fast_insert import fast_insert
from node.db.models import AnchorOutbox, Record, RecordState, utcnow
from node.directory import PatientDirectory, PatientKeys
from node.storage.local import StorageFull, is_storage_full

if TYPE_CHECKING:
    from node.keystore import KeyEncryptionKey
    from node.storage import BlobStore

#: Result statuses besides the stored ones (``queued``, ``pending_link``).
DUPLICATE = "duplicate"
FAILED = "failed"

#: Ids per ``IN (...)`` query: well under SQLite's bound-parameter limit.
_IN_CHUNK = 900


@dataclass(frozen=True)
class IngestResult:
    """What happened to one input record. ``status``: ``queued``, ``pending_link``, ``duplicate`` or ``failed``
    (then ``error`` is a stable error code and ``message`` says why)."""

    record_id: str
    status: str
    record_class: str
    type_code: str
    cid: str | None = None
    error: str | None = None
    message: str | None = None

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "status": self.status,
            "record_class": self.record_class,
            "type_code": self.type_code,
            "cid": self.cid,
        }
        if self.error is not None:
            out["error"] = {"code": self.error, "message": self.message or ""}
        return out


@dataclass
class _Prepared:
    """A record encrypted and stored, waiting for its database rows."""

    index: int
    rid: bytes
    record: CanonicalRecord
    key: bytes = field(repr=False)
    custodian_key: bytes
    ciphertext: bytes = field(repr=False)
    commitment: bytes
    cid: str = ""


class IngestPipeline:
    """Encrypts, stores and queues records of ``custodian`` (this node's ledger address)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        store: BlobStore,
        kek: KeyEncryptionKey,
        custodian: str,
        *,
        directory: PatientDirectory | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        if not is_address(custodian):
            raise ConfigError(f"custodian must be a ledger address, got {custodian!r}")
        self._sessions = session_factory
        self._store = store
        self._kek = kek
        self.custodian = to_checksum_address(custodian)
        #: Called after an ingest or a patient link queued records for anchoring (the anchorer's doorbell).
        self.on_queued = on_queued
        self.directory = directory or PatientDirectory(session_factory, kek, on_queued=on_queued)
        # patient id -> (wrapped PKEK, PKEK): unwrapping is cheap, but not free at 5,000 records/s.
        self._pkeks: dict[int, tuple[bytes, bytes]] = {}
        self._pkek_lock = threading.Lock()

    # ------------------------------------------------------------------ ingest

    def ingest(self, records: Sequence[CanonicalRecord]) -> list[IngestResult]:
        """Store and queue ``records``; one result per input record, in input order."""
        results: list[IngestResult | None] = [None] * len(records)
        ids = [r.record_id(self.custodian) for r in records]

        first: dict[bytes, int] = {}
        for i, rid in enumerate(ids):
            if rid in first:
                results[i] = self._result(records[i], rid, DUPLICATE)
            else:
                first[rid] = i
        existing = self._existing(list(first))
        todo: list[int] = []
        for rid, i in first.items():
            if rid in existing:
                results[i] = self._result(records[i], rid, DUPLICATE, cid=existing[rid])
            else:
                todo.append(i)

        prepared = self._encrypt(records, ids, todo, results)
        prepared = self._put(prepared, results)
        if prepared:
            self._commit(prepared, results)
        out = [r for r in results if r is not None]
        if self.on_queued is not None and any(r.status == RecordState.QUEUED for r in out):
            self.on_queued()
        return out

    def _encrypt(
        self,
        records: Sequence[CanonicalRecord],
        ids: list[bytes],
        todo: list[int],
        results: list[IngestResult | None],
    ) -> list[_Prepared]:
        out: list[_Prepared] = []
        for i in todo:
            rec, rid = records[i], ids[i]
            problem = _invalid(rec)
            if problem:
                results[i] = self._result(rec, rid, FAILED, error="invalid_record", message=problem)
                continue
            try:
                key, ct = encrypt_record(rec.payload, record_id=rid, custodian=self.custodian)
                ck = self._kek.wrap(key)
            except MedLedgerError as exc:
                results[i] = self._result(rec, rid, FAILED, error=exc.code, message=exc.message)
                continue
            out.append(_Prepared(i, rid, rec, key, ck, ct, commitment(ct)))
        return out

    def _put(self, prepared: list[_Prepared], results: list[IngestResult | None]) -> list[_Prepared]:
        if not prepared:
            return []
        try:
            # The commitments are the ciphertexts' SHA-256: passing them lets the store skip hashing large blobs again.
            cids = self._store.put_many([p.ciphertext for p in prepared], digests=[p.commitment for p in prepared])
        except Exception as exc:  # full: refuse the ingest; else fall back to one put per record to isolate it
            if is_storage_full(exc):
                self._discard(prepared)
                _raise_storage_full(exc)
            return self._put_each(prepared, results)
        for p, cid in zip(prepared, cids, strict=True):
            p.cid = cid
        return prepared

    def _put_each(self, prepared: list[_Prepared], results: list[IngestResult | None]) -> list[_Prepared]:
        ok: list[_Prepared] = []
        for p in prepared:
            try:
                p.cid = self._store.put(p.ciphertext)
            except Exception as exc:  # reported per record; the store's own type varies by backend
                if is_storage_full(exc):
                    self._discard(prepared)
                    _raise_storage_full(exc)
                code = exc.code if isinstance(exc, MedLedgerError) else "store_failed"
                results[p.index] = self._result(p.record, p.rid, FAILED, error=code, message=str(exc)[:200])
                continue
            ok.append(p)
        return ok

    def _discard(self, prepared: list[_Prepared]) -> None:
        """Delete what a failed put may have stored for ``prepared`` (best effort: a blob left behind is
        unreferenced ciphertext, never a record)."""
        for p in prepared:
            try:
                self._store.delete(p.cid or self._store.cid_for(p.ciphertext))
            except Exception:  # the ingest is refused with the original error either way
                continue

    def _commit(self, prepared: list[_Prepared], results: list[IngestResult | None]) -> None:
        try:
            with self._sessions.begin() as s:
                self._insert(s, prepared, results, isolate=False)
            return
        except IntegrityError:
            pass  # a concurrent ingest of the same record, or one bad row: redo the batch record by record
        except DBAPIError as exc:
            self._fail_all(prepared, results, "database_error", str(exc.orig)[:200])
            return
        try:
            with self._sessions.begin() as s:
                self._insert(s, prepared, results, isolate=True)
        except DBAPIError as exc:
            self._fail_all(prepared, results, "database_error", str(exc.orig)[:200])

    def _insert(
        self, s: Session, prepared: list[_Prepared], results: list[IngestResult | None], *, isolate: bool
    ) -> None:
        patients = self.directory.resolve(s, (p.record.patient for p in prepared))
        # Re-check under the lock: another ingest may have stored some of these since the first check.
        existing = self._existing([p.rid for p in prepared], session=s)
        now = utcnow()
        record_rows: list[dict[str, Any]] = []
        outbox_rows: list[dict[str, Any]] = []
        staged: list[tuple[_Prepared, str]] = []
        for p in prepared:
            if p.rid in existing:
                results[p.index] = self._result(p.record, p.rid, DUPLICATE, cid=existing[p.rid])
                continue
            patient = patients[(p.record.patient.mrn, p.record.patient.assigning_authority)]
            status = RecordState.QUEUED if patient.address is not None else RecordState.PENDING_LINK
            pkek = self._pkek(patient) if patient.address is not None else None
            record_rows.append(self._row(p, patient.id, status, pkek, now))
            if status == RecordState.QUEUED:
                outbox_rows.append({"record_id": p.rid, "enqueued_at": now, "attempts": 0})
            staged.append((p, status))
        if not isolate:
            conn = s.connection()
            if record_rows:
                fast_insert(conn, Record.__table__, record_rows)
            if outbox_rows:
                fast_insert(conn, AnchorOutbox.__table__, outbox_rows)
            for p, status in staged:
                results[p.index] = self._result(p.record, p.rid, status, cid=p.cid)
            return
        for (p, status), row in zip(staged, record_rows, strict=True):
            try:
                with s.begin_nested():
                    s.execute(Record.__table__.insert(), [row])
                    if status == RecordState.QUEUED:
                        s.execute(AnchorOutbox.__table__.insert(), [{"record_id": p.rid, "enqueued_at": now}])
            except IntegrityError as exc:
                dup = self._existing([p.rid], session=s)
                if dup:
                    results[p.index] = self._result(p.record, p.rid, DUPLICATE, cid=dup[p.rid])
                else:
                    results[p.index] = self._result(
                        p.record, p.rid, FAILED, error="constraint_violation", message=str(exc.orig)[:200]
                    )
                continue
            results[p.index] = self._result(p.record, p.rid, status, cid=p.cid)

    def _row(self, p: _Prepared, patient_id: int, status: str, pkek: bytes | None, now: Any) -> dict[str, Any]:
        rec = p.record
        return {
            "record_id": p.rid,
            "patient_id": patient_id,
            "record_class": int(rec.record_class),
            "type_code": rec.type_code,
            "clinical_time": rec.clinical_time,
            "source_system": rec.source_system,
            "source_id": rec.source_id,
            "media_type": rec.media_type,
            "summary": dict(rec.summary),
            "cid": p.cid,
            "commitment": p.commitment,
            "size": len(p.ciphertext),
            "custodian_key": p.custodian_key,
            "kek_id": self._kek.key_id,
            "patient_key": wrap_key(p.key, pkek) if pkek is not None else None,
            "status": status,
            "batch_id": None,
            "tx_hash": None,
            "block_number": None,
            "created_at": now,
            "updated_at": now,
        }

    def _pkek(self, patient: PatientKeys) -> bytes:
        assert patient.pkek_wrapped is not None  # linking always stores a PKEK before setting the address
        with self._pkek_lock:
            cached = self._pkeks.get(patient.id)
        if cached is not None and cached[0] == patient.pkek_wrapped:
            return cached[1]
        pkek = self._kek.unwrap(patient.pkek_wrapped)
        with self._pkek_lock:
            self._pkeks[patient.id] = (patient.pkek_wrapped, pkek)
        return pkek

    def _existing(self, ids: list[bytes], *, session: Session | None = None) -> dict[bytes, str]:
        if not ids:
            return {}
        out: dict[bytes, str] = {}

        def run(s: Session) -> None:
            for i in range(0, len(ids), _IN_CHUNK):
                for rid, cid in s.execute(
                    select(Record.record_id, Record.cid).where(Record.record_id.in_(ids[i : i + _IN_CHUNK]))
                ):
                    out[bytes(rid)] = cid

        if session is not None:
            run(session)
        else:
            with self._sessions() as s:
                run(s)
        return out

    def _fail_all(self, prepared: list[_Prepared], results: list[IngestResult | None], code: str, msg: str) -> None:
        for p in prepared:
            results[p.index] = self._result(p.record, p.rid, FAILED, error=code, message=msg)

    @staticmethod
    def _result(
        rec: CanonicalRecord,
        rid: bytes,
        status: str,
        *,
        cid: str | None = None,
        error: str | None = None,
        message: str | None = None,
    ) -> IngestResult:
        return IngestResult(
            "0x" + rid.hex(), status, RecordClass.label(int(rec.record_class)), rec.type_code, cid, error, message
        )

    # ------------------------------------------------------------------ reads

    def status_counts(self) -> dict[str, int]:
        """Records per status (every status present, zero included)."""
        return records_by_status(self._sessions)

    def record_status(self, record_id: bytes) -> dict[str, Any] | None:
        """One record's state, or None if this node does not hold it."""
        with self._sessions() as s:
            r = s.get(Record, record_id)
            if r is None:
                return None
            return {
                "record_id": "0x" + bytes(r.record_id).hex(),
                "status": r.status,
                "record_class": RecordClass.label(r.record_class),
                "type_code": r.type_code,
                "cid": r.cid,
                "commitment": "0x" + bytes(r.commitment).hex(),
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
            }


def _raise_storage_full(exc: BaseException) -> NoReturn:
    # Other stores (Kubo) raise their own errors for a full disk; the caller sees one code for all.
    if isinstance(exc, StorageFull):
        raise exc
    raise StorageFull("the blob store's file system is full") from exc


def _invalid(rec: CanonicalRecord) -> str | None:
    """Why a record cannot be stored, or None. Parsers validate already; this guards direct callers."""
    if not rec.patient.mrn.strip():
        return "record has no patient MRN"
    if not 1 <= int(rec.record_class) <= 255:
        return f"record class {int(rec.record_class)} is out of range"
    if not rec.source_system or not rec.source_id:
        return "record has no source system or source id"
    return None


__all__ = ["DUPLICATE", "FAILED", "IngestPipeline", "IngestResult"]
