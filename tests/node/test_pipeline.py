"""Ingest pipeline: idempotency and the transactional outbox, with failures injected as real conditions (a blob
store whose shard directories are blocked by files, a real constraint violation inside the batch transaction)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, select

from medledger.crypto import commitment, decrypt_record
from medledger.vocabulary import RecordClass
from node.db.models import AnchorOutbox, Record
from node.directory import PatientDirectory
from node.pipeline import IngestPipeline
from node.storage import LocalBlobStore
from tests.node.conftest import CUSTODIAN, assert_outbox_invariant, fhir_record, patient_keys


def _linked_pipeline(node_db, store, kek, mrn: str = "MRN-1") -> IngestPipeline:
    address, public, _ = patient_keys()
    PatientDirectory(node_db.sessions, kek).link(mrn, "HOSP-A", address, public)
    return IngestPipeline(node_db.sessions, store, kek, CUSTODIAN)


def test_ingest_stores_encrypts_and_queues_each_record_once(node_db, kek, store):
    pipeline = _linked_pipeline(node_db, store, kek)
    records = [fhir_record(i) for i in range(20)]
    results = pipeline.ingest([*records, records[3]])  # the same source record twice in one batch
    assert [r.status for r in results] == ["queued"] * 20 + ["duplicate"]
    assert results[20].record_id == results[3].record_id
    assert results[0].as_api()["record_class"] == "lab"

    with node_db.sessions() as s:
        rows = {bytes(r.record_id): r for r in s.scalars(select(Record))}
    assert len(rows) == 20
    for rec, res in zip(records, results, strict=False):
        row = rows[rec.record_id(CUSTODIAN)]
        ct = store.get(row.cid)
        assert res.cid == row.cid and row.commitment == commitment(ct) and row.size == len(ct)
        assert rec.payload not in ct
        key = kek.unwrap(row.custodian_key)
        assert decrypt_record(ct, key=key, record_id=bytes(row.record_id), custodian=CUSTODIAN) == rec.payload
    assert_outbox_invariant(node_db.sessions)

    again = pipeline.ingest(records)
    assert {r.status for r in again} == {"duplicate"}
    assert [r.cid for r in again] == [r.cid for r in results[:20]]
    assert pipeline.status_counts()["queued"] == 20
    info = pipeline.record_status(records[0].record_id(CUSTODIAN))
    assert info is not None and info["status"] == "queued" and info["tx_hash"] is None
    assert pipeline.record_status(b"\x01" * 32) is None


def test_invalid_record_fails_alone(node_db, kek, store):
    pipeline = _linked_pipeline(node_db, store, kek)
    good = fhir_record(1)
    bad = fhir_record(2, mrn=" ")
    results = pipeline.ingest([good, bad])
    assert [r.status for r in results] == ["queued", "failed"]
    assert results[1].error == "invalid_record"
    assert pipeline.status_counts()["queued"] == 1
    assert_outbox_invariant(node_db.sessions)


def _block_shards(root, prefixes) -> None:
    """Occupy shard directory names with plain files: the store cannot create blobs under them (even as root)."""
    for p in prefixes:
        (root / p).write_bytes(b"")


def test_store_failure_writes_nothing_for_the_failed_records_and_the_rest_go_through(node_db, kek, tmp_path):
    root = tmp_path / "blocked"
    # Every blob as a file (no SQLite pack), so blocked shard directories make the store fail for half the CIDs.
    store = LocalBlobStore(root, fsync=False, small_blob_limit=0)
    _block_shards(root, [f"{i:02x}" for i in range(128)])  # CIDs whose digest starts below 0x80 cannot be stored
    pipeline = _linked_pipeline(node_db, store, kek)
    records = [fhir_record(i) for i in range(40)]
    results = pipeline.ingest(records)
    failed = [r for r in results if r.status == "failed"]
    ok = [r for r in results if r.status == "queued"]
    # 40 random ciphertexts all landing in one half has probability 2**-39.
    assert failed and ok and len(failed) + len(ok) == 40
    assert {r.error for r in failed} == {"store_failed"} and all(r.cid is None for r in failed)
    with node_db.sessions() as s:
        stored = {"0x" + bytes(r).hex() for r in s.scalars(select(Record.record_id))}
    assert stored == {r.record_id for r in ok}
    assert all(store.has(r.cid) for r in ok)
    assert_outbox_invariant(node_db.sessions)

    # Once the store works again the failed records go through; the stored ones are duplicates.
    for i in range(128):
        (root / f"{i:02x}").unlink()
    retry = pipeline.ingest(records)
    assert {r.record_id for r in retry if r.status == "queued"} == {r.record_id for r in failed}
    assert {r.record_id for r in retry if r.status == "duplicate"} == {r.record_id for r in ok}
    assert_outbox_invariant(node_db.sessions)


def _walk(params: Any) -> Iterator[Any]:
    if isinstance(params, dict):
        params = list(params.values())
    if isinstance(params, list | tuple):
        for p in params:
            yield from _walk(p)
    else:
        value = getattr(params, "obj", params)  # psycopg wraps binary parameters in Binary(obj)
        yield bytes(value) if isinstance(value, bytes | bytearray | memoryview) else value


def test_constraint_violation_mid_batch_rolls_back_only_that_record(node_db, kek, store):
    """A real unique violation in the outbox insert of one record (an outbox row for it appears inside the
    transaction): the batch insert fails, and the record-by-record retry keeps every other record, with its
    outbox row, and leaves no record row without an outbox row for the victim."""
    pipeline = _linked_pipeline(node_db, store, kek)
    records = [fhir_record(i) for i in range(10)]
    victim = records[4].record_id(CUSTODIAN)
    marker = "?" if node_db.engine.dialect.name == "sqlite" else "%s"
    fired: list[str] = []

    def inject(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ANCHOR_OUTBOX") and victim in list(_walk(parameters)):
            fired.append("batch" if executemany or len(list(_walk(parameters))) > 3 else "single")
            cur = cursor.connection.cursor()
            cur.execute(
                f"INSERT INTO anchor_outbox (record_id, enqueued_at, attempts) VALUES ({marker}, {marker}, 0)",
                (victim, "2024-01-01 00:00:00"),
            )
            cur.close()

    event.listen(node_db.engine, "before_cursor_execute", inject)
    try:
        results = pipeline.ingest(records)
    finally:
        event.remove(node_db.engine, "before_cursor_execute", inject)
    assert fired[0] == "batch" and "single" in fired  # both the batch and the per-record path met the failure
    by_id = {r.record_id: r for r in results}
    assert by_id["0x" + victim.hex()].status == "failed"
    assert by_id["0x" + victim.hex()].error == "constraint_violation"
    assert sorted(r.status for r in results).count("queued") == 9
    with node_db.sessions() as s:
        assert s.get(Record, victim) is None
        assert s.get(AnchorOutbox, victim) is None
        assert len(s.scalars(select(Record.record_id)).all()) == 9
    assert_outbox_invariant(node_db.sessions)

    retry = pipeline.ingest(records)
    assert by_id["0x" + victim.hex()].record_id in {r.record_id for r in retry if r.status == "queued"}
    assert_outbox_invariant(node_db.sessions)


def test_unknown_patient_is_stored_pending_then_queued_on_link(node_db, kek, store):
    pipeline = IngestPipeline(node_db.sessions, store, kek, CUSTODIAN)
    mixed = [fhir_record(i, mrn="KNOWN") for i in range(3)] + [fhir_record(10 + i, mrn="NEW") for i in range(3)]
    address, public, _ = patient_keys()
    PatientDirectory(node_db.sessions, kek).link("KNOWN", "HOSP-A", address, public)
    results = pipeline.ingest(mixed)
    assert [r.status for r in results] == ["queued"] * 3 + ["pending_link"] * 3
    assert pipeline.status_counts() == {
        "pending_link": 3,
        "queued": 3,
        "submitted": 0,
        "confirmed": 0,
        "erased": 0,
    }
    other, public2, _ = patient_keys()
    assert PatientDirectory(node_db.sessions, kek).link("NEW", "HOSP-A", other, public2).queued == 3
    assert pipeline.status_counts()["queued"] == 6
    assert_outbox_invariant(node_db.sessions)
    assert RecordClass.LAB.name.lower() == results[0].record_class
