"""Erasure by crypto-shredding, on the patient's EIP-712 signed request.

In one database transaction the custodian destroys the record key (every wrapped copy), marks the record
erased and records the request; then it deletes the ciphertext and anchors an erasure marker
(``eraseRecords``) carrying the request's EIP-712 digest. If the chain is down the marker stays pending
and :meth:`ErasureService.submit_pending` retries it (the serve loop calls it), so an erasure is never lost;
from the local commit on, reads of the record get 410 ``record_erased``.

The marker waits for the record's journaled accesses to reach the AccessLog first: an access released before
the shredding must appear on chain before the erasure, or an auditor would (rightly, from the chain's order)
see an access after erasure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from medledger.addresses import Address, eip55
from medledger.chain.abi import ContractRevert
from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.rpc import RpcUnavailable
from medledger.chain.typed_data import ERASURE_DOMAIN_NAME, domain, erase_typed_data, recover_signer, typed_data_digest
from medledger.errors import MedLedgerError
from medledger.vocabulary import RecordStatus
from node.db.models import AccessEntry, AccessState, AnchorOutbox, Erasure, ErasureState, Patient, Record, RecordState
from node.relay import MAX_DEADLINE_SECONDS, RelayRejected
from node.storage import BlobStore

log = logging.getLogger(__name__)


class ErasureRefused(MedLedgerError):
    code = "erasure_refused"


class ErasureService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        records: RecordRegistryClient,
        chain_id: int,
        *,
        access_log_wait: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self.store = store
        self.records = records
        self.domain = domain(ERASURE_DOMAIN_NAME, chain_id, to_checksum_address(records.address))
        #: Seconds a request waits for the record's earlier accesses to be logged before answering "pending".
        self.access_log_wait = access_log_wait

    def request(self, record_id: bytes, patient: Address, deadline: int, signature: bytes) -> dict[str, Any]:
        now = int(time.time())
        if deadline < now:
            raise RelayRejected("the signature's deadline has passed", code="signature_expired")
        if deadline > now + MAX_DEADLINE_SECONDS:
            raise RelayRejected("deadline too far ahead", code="deadline_too_far")
        typed = erase_typed_data(self.domain, patient, record_id, deadline)
        try:
            signer = recover_signer(typed, signature)
        except Exception:  # malformed signature bytes: same answer as a wrong signer
            signer = None
        if signer != patient:
            raise RelayRejected(
                "signature was not made by the patient over this erasure request", code="invalid_signature"
            )
        with self._sessions.begin() as s:
            row = s.execute(
                select(Record, Patient.address)
                .join(Patient, Patient.id == Record.patient_id)
                .where(Record.record_id == record_id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                raise ErasureRefused(f"this node holds no record 0x{record_id.hex()}", code="record_not_found")
            rec, owner = row
            if owner is None or eip55(owner) != patient:
                raise ErasureRefused("the record belongs to another patient", code="not_record_patient")
            if rec.status == RecordState.ERASED:
                raise ErasureRefused("the record is already erased", code="record_erased")
            if rec.status == RecordState.SUBMITTED:
                raise ErasureRefused(
                    "the record is being anchored right now; retry in a few seconds", code="record_busy"
                )
            anchored = rec.status == RecordState.CONFIRMED
            if not anchored:
                # Never on chain: nothing to mark there, only the queue entry to drop.
                s.execute(delete(AnchorOutbox).where(AnchorOutbox.record_id == record_id))
            rec.status = RecordState.ERASED
            rec.custodian_key = b""
            rec.patient_key = None
            cid = rec.cid
            s.add(
                Erasure(
                    record_id=record_id,
                    patient=patient,
                    request_hash=typed_data_digest(typed),
                    signature=signature,
                    status=ErasureState.PENDING if anchored else ErasureState.CONFIRMED,
                )
            )
        self._delete_blob(cid)
        if anchored:
            wait_until = time.monotonic() + self.access_log_wait
            while self._unlogged_accesses(record_id) and time.monotonic() < wait_until:
                time.sleep(0.05)  # the access logger is moving them on chain
            self.submit_pending()
        return self.state(record_id)

    def _unlogged_accesses(self, record_id: bytes) -> int:
        with self._sessions() as s:
            return int(
                s.scalar(
                    select(func.count()).where(
                        AccessEntry.record_id == record_id, AccessEntry.status != AccessState.CONFIRMED
                    )
                )
                or 0
            )

    def state(self, record_id: bytes) -> dict[str, Any]:
        with self._sessions() as s:
            e = s.get(Erasure, record_id)
            if e is None:
                raise ErasureRefused(f"no erasure of 0x{record_id.hex()}", code="record_not_found")
            return {
                "record_id": "0x" + record_id.hex(),
                "status": e.status,
                "request_hash": "0x" + bytes(e.request_hash).hex(),
                "tx_hash": e.tx_hash,
                "block_number": e.block_number,
            }

    def submit_pending(self) -> int:
        """Anchor erasure markers not yet on chain; returns how many were confirmed. Stops if the chain is down."""
        with self._sessions() as s:
            pending = s.execute(
                select(Erasure.record_id, Erasure.request_hash, Record.cid)
                .join(Record, Record.record_id == Erasure.record_id)
                .where(Erasure.status == ErasureState.PENDING)
            ).all()
        done = 0
        for rid, request_hash, cid in pending:
            self._delete_blob(cid)
            if self._unlogged_accesses(bytes(rid)):
                continue  # earlier accesses first (see the module docstring); retried on the next round
            try:
                receipt = self.records.erase_records([bytes(rid)], bytes(request_hash))
                tx, block = receipt.tx_hash, receipt.block_number
            except RpcUnavailable:
                return done
            except ContractRevert as exc:
                state = self.records.get_record(bytes(rid))
                if int(state.status) != int(RecordStatus.ERASED):
                    log.error("erasure of 0x%s refused by the contract: %s", bytes(rid).hex(), exc.message)
                    continue
                tx, block = None, None  # erased by an earlier attempt whose receipt we did not keep
            with self._sessions.begin() as s:
                e = s.get(Erasure, rid)
                if e is not None:
                    e.status, e.tx_hash, e.block_number = ErasureState.CONFIRMED, tx, block
            done += 1
        return done

    def _delete_blob(self, cid: str) -> None:
        try:
            self.store.delete(cid)
        except MedLedgerError as exc:  # the key is gone already; the blob is retried with the marker
            log.warning("could not delete erased blob %s: %s", cid, exc.message)
