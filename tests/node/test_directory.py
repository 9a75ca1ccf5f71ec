"""The patient directory: demographics, linking, and the pending-link → queued hand-over with the PKEK."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from medledger.crypto import decrypt_record, unwrap_key, unwrap_with_x25519
from medledger.errors import InputError
from medledger.records import PatientIdentity
from node.db.models import AnchorOutbox, Patient, Record, RecordState
from node.directory import PatientDirectory, PatientLinkConflict
from node.pipeline import IngestPipeline
from tests.node.conftest import CUSTODIAN, assert_outbox_invariant, fhir_record, patient_keys


def test_upsert_creates_then_updates_only_given_fields(node_db, kek):
    d = PatientDirectory(node_db.sessions, kek)
    first = d.upsert(PatientIdentity("M1", "AUTH", "Doe", "Jane", "1980", "F"))
    again = d.upsert(PatientIdentity("M1", "AUTH", family_name="Smith"))
    assert again.id == first.id
    assert (again.family_name, again.given_name, again.birth_date, again.sex) == ("Smith", "Jane", "1980", "F")
    assert not again.linked
    assert d.get("M1", "OTHER") is None
    with pytest.raises(InputError) as err:
        d.upsert(PatientIdentity(" "))
    assert err.value.code == "patient_mrn_missing"


def test_link_queues_pending_records_with_keys_the_patient_can_unwrap(node_db, kek, store):
    pipeline = IngestPipeline(node_db.sessions, store, kek, CUSTODIAN)
    records = [fhir_record(i, mrn="M2") for i in range(5)]
    results = pipeline.ingest(records)
    assert {r.status for r in results} == {"pending_link"}
    assert_outbox_invariant(node_db.sessions)
    with node_db.sessions() as s:
        assert s.scalar(select(AnchorOutbox).limit(1)) is None
        assert all(r.patient_key is None for r in s.scalars(select(Record)))

    address, public, private = patient_keys()
    directory = PatientDirectory(node_db.sessions, kek)
    assert directory.pending_count("M2", "HOSP-A") == 5
    linked = directory.link("M2", "HOSP-A", address.lower(), public)
    assert linked.queued == 5
    assert linked.patient.address == address  # stored checksummed
    assert directory.pending_count("M2", "HOSP-A") == 0
    assert_outbox_invariant(node_db.sessions)

    # After linking, a new record of the patient is queued at once, its key wrapped under the same PKEK.
    later = pipeline.ingest([fhir_record(99, mrn="M2")])
    assert later[0].status == "queued"

    with node_db.sessions() as s:
        patient = s.scalars(select(Patient).where(Patient.mrn == "M2")).one()
        pkek = unwrap_with_x25519(patient.pkek_for_patient, private)  # what the patient's wallet does
        rows = s.scalars(select(Record)).all()
        assert {r.status for r in rows} == {RecordState.QUEUED}
        by_source = {r.source_id: r for r in rows}
        for rec in [*records, fhir_record(99, mrn="M2")]:
            row = by_source[rec.source_id]
            key = unwrap_key(row.patient_key, pkek)
            assert key == kek.unwrap(row.custodian_key)
            plain = decrypt_record(store.get(row.cid), key=key, record_id=bytes(row.record_id), custodian=CUSTODIAN)
            assert plain == rec.payload


def test_link_is_idempotent_rotates_key_and_refuses_another_address(node_db, kek):
    d = PatientDirectory(node_db.sessions, kek)
    address, public, _ = patient_keys()
    first = d.link("M3", "", address, public)  # linking an unknown patient creates them
    assert first.queued == 0 and first.patient.linked
    with node_db.sessions() as s:
        before = s.scalars(select(Patient).where(Patient.mrn == "M3")).one()
    assert d.link("M3", "", address, public).queued == 0

    _, rotated, rotated_private = patient_keys()
    d.link("M3", "", address, rotated)
    with node_db.sessions() as s:
        after = s.scalars(select(Patient).where(Patient.mrn == "M3")).one()
    assert after.pkek_wrapped == before.pkek_wrapped  # same PKEK: old record keys stay readable
    assert after.encryption_key == rotated
    assert unwrap_with_x25519(after.pkek_for_patient, rotated_private) == kek.unwrap(after.pkek_wrapped)

    other, _, _ = patient_keys()
    with pytest.raises(PatientLinkConflict) as err:
        d.link("M3", "", other, public)
    assert err.value.code == "patient_link_conflict"
    with pytest.raises(InputError) as bad_key:
        d.link("M4", "", other, b"\x00" * 32)
    assert bad_key.value.code == "invalid_public_key"
    with pytest.raises(InputError) as bad_address:
        d.link("M4", "", "0x" + "00" * 20, public)
    assert bad_address.value.code == "invalid_address"
    assert d.get("M4", "") is None  # refused links leave nothing behind
