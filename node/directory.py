"""The node's local patient directory: who a record is about (MRN within an assigning authority) and, once the
patient has linked their wallet, their ledger address and registered X25519 key.

A record about a patient the directory does not know yet (or who has not linked) is never dropped: it is stored
as ``pending_link`` (a record cannot be anchored without the patient's address) and :meth:`PatientDirectory.link`
queues all of that patient's pending records for anchoring in the same transaction that records the link.

Linking also creates the patient KEK (PKEK, see :mod:`medledger.crypto`): one random key per (patient, custodian),
kept wrapped under the custodian KEK and wrapped once to the patient's X25519 key, under which every record key
of the patient is wrapped with cheap AES-KW.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import is_address, to_checksum_address
from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.addresses import Address, eip55
from medledger.crypto import new_key, wrap_key, wrap_to_x25519
from medledger.errors import InputError, MedLedgerError
from medledger.records import PatientIdentity
from node.db.fast_insert import insert_ignoring_conflicts
from node.db.models import AnchorOutbox, Patient, Record, RecordState, utcnow

if TYPE_CHECKING:
    from medledger.chain.contracts import ConsortiumClient
    from node.keystore import KeyEncryptionKey

PatientKey = tuple[str, str]  # (mrn, assigning authority)


class PatientNotFound(MedLedgerError):
    code = "patient_not_found"


class PatientLinkConflict(MedLedgerError):
    """The patient is already linked to another ledger address; re-linking would orphan anchored records."""

    code = "patient_link_conflict"


class PatientKeyNotRegistered(MedLedgerError):
    """The patient's address has no X25519 key registered on chain, so nothing can be wrapped to them."""

    code = "patient_key_not_registered"


@dataclass(frozen=True)
class PatientEntry:
    id: int
    mrn: str
    assigning_authority: str
    family_name: str
    given_name: str
    birth_date: str
    sex: str
    address: Address | None
    encryption_key: bytes | None

    @property
    def linked(self) -> bool:
        return self.address is not None

    @classmethod
    def of(cls, p: Patient) -> PatientEntry:
        return cls(
            p.id,
            p.mrn,
            p.assigning_authority,
            p.family_name,
            p.given_name,
            p.birth_date,
            p.sex,
            eip55(p.address) if p.address is not None else None,  # stored checksummed; typed here
            p.encryption_key,
        )


@dataclass(frozen=True)
class LinkResult:
    patient: PatientEntry
    #: Records moved from ``pending_link`` to ``queued`` by this link.
    queued: int


@dataclass(frozen=True)
class PatientKeys:
    """What ingest needs to know about a patient: the row id and, if linked, the wrapped PKEK."""

    id: int
    address: Address | None
    pkek_wrapped: bytes | None


def _identity_row(identity: PatientIdentity) -> dict[str, Any]:
    now = utcnow()
    return {
        "mrn": identity.mrn,
        "assigning_authority": identity.assigning_authority,
        "family_name": identity.family_name,
        "given_name": identity.given_name,
        "birth_date": identity.birth_date,
        "sex": identity.sex,
        "created_at": now,
        "updated_at": now,
    }


def _check_identity(mrn: str) -> None:
    if not mrn or not mrn.strip():
        raise InputError("a patient needs an MRN", code="patient_mrn_missing")


class PatientDirectory:
    """Patients known to this node. ``kek`` is the custodian key-encryption key (wraps the PKEKs)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        kek: KeyEncryptionKey,
        *,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = session_factory
        self._kek = kek
        #: Called after a link queued records for anchoring (the anchorer's doorbell).
        self.on_queued = on_queued

    # ------------------------------------------------------------------ reads

    def get(self, mrn: str, assigning_authority: str = "") -> PatientEntry | None:
        with self._sessions() as s:
            p = s.scalar(select(Patient).where(Patient.mrn == mrn, Patient.assigning_authority == assigning_authority))
            return PatientEntry.of(p) if p else None

    def pending_count(self, mrn: str, assigning_authority: str = "") -> int:
        """Records of this patient waiting for the link."""
        with self._sessions() as s:
            return len(
                s.scalars(
                    select(Record.record_id)
                    .join(Patient, Patient.id == Record.patient_id)
                    .where(
                        Patient.mrn == mrn,
                        Patient.assigning_authority == assigning_authority,
                        Record.status == RecordState.PENDING_LINK,
                    )
                ).all()
            )

    # ------------------------------------------------------------------ writes

    def upsert(self, identity: PatientIdentity) -> PatientEntry:
        """Create or update a patient from demographics (an ADT message): non-empty fields overwrite."""
        _check_identity(identity.mrn)
        with self._sessions.begin() as s:
            insert_ignoring_conflicts(s, Patient.__table__, [_identity_row(identity)], ["mrn", "assigning_authority"])
            changes = {
                k: v
                for k, v in {
                    "family_name": identity.family_name,
                    "given_name": identity.given_name,
                    "birth_date": identity.birth_date,
                    "sex": identity.sex,
                }.items()
                if v
            }
            if changes:
                s.execute(
                    update(Patient)
                    .where(Patient.mrn == identity.mrn, Patient.assigning_authority == identity.assigning_authority)
                    .values(**changes, updated_at=utcnow())
                )
            p = s.scalars(
                select(Patient).where(
                    Patient.mrn == identity.mrn, Patient.assigning_authority == identity.assigning_authority
                )
            ).one()
            return PatientEntry.of(p)

    def resolve(self, session: Session, identities: Iterable[PatientIdentity]) -> dict[PatientKey, PatientKeys]:
        """Inside the caller's transaction: make sure every patient exists and return their keys.

        The rows are read with a shared lock (PostgreSQL) after a write (which takes SQLite's write lock), so a
        concurrent :meth:`link` cannot slip between this read and the caller's inserts: otherwise a record could
        be stored as ``pending_link`` for a patient whose link already swept the pending records.
        """
        by_key: dict[PatientKey, PatientIdentity] = {}
        for ident in identities:
            by_key.setdefault((ident.mrn, ident.assigning_authority), ident)
        if not by_key:
            return {}
        keys = sorted(by_key)
        insert_ignoring_conflicts(
            session, Patient.__table__, [_identity_row(by_key[k]) for k in keys], ["mrn", "assigning_authority"]
        )
        out: dict[PatientKey, PatientKeys] = {}
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            rows = session.execute(
                select(Patient.id, Patient.mrn, Patient.assigning_authority, Patient.address, Patient.pkek_wrapped)
                .where(tuple_(Patient.mrn, Patient.assigning_authority).in_(chunk))
                .order_by(Patient.id)
                .with_for_update(read=True)
            ).all()
            for pid, mrn, authority, address, pkek in rows:
                out[(mrn, authority)] = PatientKeys(pid, eip55(address) if address is not None else None, pkek)
        return out

    def link(self, mrn: str, assigning_authority: str, address: str, public_key: bytes) -> LinkResult:
        """Record the patient's ledger ``address`` and registered X25519 ``public_key``; queue their pending records.

        Idempotent for the same address. A new ``public_key`` for the same address (the patient rotated it)
        re-wraps the PKEK to it. Another address raises :class:`PatientLinkConflict`.
        """
        _check_identity(mrn)
        if not isinstance(address, str) or not is_address(address) or int(address, 16) == 0:
            raise InputError(f"not a ledger address: {address!r}", code="invalid_address")
        if not isinstance(public_key, bytes | bytearray) or len(public_key) != 32 or not any(public_key):
            raise InputError("a patient encryption key is a 32-byte X25519 public key", code="invalid_public_key")
        address = eip55(address)  # validated above
        public_key = bytes(public_key)
        with self._sessions.begin() as s:
            ident = PatientIdentity(mrn=mrn, assigning_authority=assigning_authority)
            insert_ignoring_conflicts(s, Patient.__table__, [_identity_row(ident)], ["mrn", "assigning_authority"])
            p = s.scalars(
                select(Patient)
                .where(Patient.mrn == mrn, Patient.assigning_authority == assigning_authority)
                .with_for_update()
            ).one()
            if p.address is not None and p.address != address:
                raise PatientLinkConflict(
                    f"patient {mrn} ({assigning_authority or 'no authority'}) is linked to another address",
                    details={"linked": p.address, "requested": address},
                )
            if p.pkek_wrapped is None:
                pkek = new_key()
                p.pkek_wrapped = self._kek.wrap(pkek)
                p.kek_id = self._kek.key_id
            else:
                pkek = self._kek.unwrap(p.pkek_wrapped)
            if p.encryption_key != public_key or p.pkek_for_patient is None:
                p.pkek_for_patient = wrap_to_x25519(pkek, public_key)  # the one X25519 operation per patient
                p.encryption_key = public_key
            if p.address is None:
                p.address = address
                p.linked_at = utcnow()
            p.updated_at = utcnow()
            s.flush()
            queued = self._queue_pending(s, p.id, pkek)
            result = LinkResult(PatientEntry.of(p), queued)
        if queued and self.on_queued is not None:
            self.on_queued()
        return result

    def link_from_chain(
        self, mrn: str, assigning_authority: str, address: str, consortium: ConsortiumClient
    ) -> LinkResult:
        """:meth:`link` with the X25519 key the patient registered on chain for ``address``."""
        key = consortium.patient_key(to_checksum_address(address))
        if not key or not any(key):
            raise PatientKeyNotRegistered(f"{address} has no encryption key registered on chain")
        return self.link(mrn, assigning_authority, address, key)

    def _queue_pending(self, s: Session, patient_id: int, pkek: bytes) -> int:
        rows: Sequence[Any] = s.execute(
            select(Record.record_id, Record.custodian_key).where(
                Record.patient_id == patient_id, Record.status == RecordState.PENDING_LINK
            )
        ).all()
        if not rows:
            return 0
        now = utcnow()
        s.execute(
            update(Record.__table__)
            .where(Record.__table__.c.record_id == bindparam("rid"))
            .values(patient_key=bindparam("pk"), status=RecordState.QUEUED, updated_at=now),
            [{"rid": rid, "pk": wrap_key(self._kek.unwrap(ck), pkek)} for rid, ck in rows],
        )
        s.execute(
            AnchorOutbox.__table__.insert(),
            [{"record_id": rid, "enqueued_at": now, "attempts": 0} for rid, _ in rows],
        )
        return len(rows)


__all__ = [
    "LinkResult",
    "PatientDirectory",
    "PatientEntry",
    "PatientKeyNotRegistered",
    "PatientKeys",
    "PatientLinkConflict",
    "PatientNotFound",
]
