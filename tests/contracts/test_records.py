"""RecordRegistry: batched anchoring, duplicates, amendments, erasures, digests, role gating."""

from __future__ import annotations

import secrets

import pytest

from medledger.chain.abi import ContractRevert
from medledger.chain.types import RecordAnchor
from medledger.vocabulary import RecordClass, RecordStatus, Role


def anchor(
    patient: str, record_class: RecordClass = RecordClass.LAB, clinical_time: int = 1_700_000_000
) -> RecordAnchor:
    return RecordAnchor(secrets.token_bytes(32), patient, secrets.token_bytes(32), record_class, clinical_time)


def test_batch_anchors_every_record_with_one_event_each(chain):
    records = chain.as_(chain.hospital_a).records
    patient = chain.new_patient().address
    batch = [anchor(patient, RecordClass(c)) for c in (3, 4, 5, 6, 7)]
    receipt = records.anchor_records(batch)

    events = [e for e in records.events(receipt) if e.name == "RecordAnchored"]
    assert [e.args["recordId"] for e in events] == [r.record_id for r in batch]
    for ev, rec in zip(events, batch, strict=True):
        assert ev.args["patient"] == patient
        assert ev.args["custodian"] == chain.hospital_a.address
        assert ev.args["commitment"] == rec.commitment
        assert ev.args["recordClass"] == rec.record_class
        assert ev.args["clinicalTime"] == rec.clinical_time
        state = records.get_record(rec.record_id)
        assert state.custodian == chain.hospital_a.address
        assert state.status is RecordStatus.ACTIVE
        assert state.anchored_block == receipt.block_number
        assert state.record_class == rec.record_class


def test_patient_custodian_and_record_are_indexed_topics(chain):
    records = chain.as_(chain.hospital_a).records
    patient = chain.new_patient().address
    rec = anchor(patient)
    receipt = records.anchor_records([rec])
    (log,) = receipt.logs
    assert len(log["topics"]) == 4
    assert log["topics"][1][-40:].lower() == patient[2:].lower()
    assert log["topics"][2][-40:].lower() == chain.hospital_a.address[2:].lower()
    assert log["topics"][3] == "0x" + rec.record_id.hex()


def test_duplicate_record_is_rejected_across_batches_and_within_a_batch(chain):
    records = chain.as_(chain.hospital_a).records
    rec = anchor(chain.new_patient().address)
    records.anchor_records([rec])
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.hospital_b).records.anchor_records([rec])
    assert exc.value.error == "DuplicateRecord"
    assert exc.value.args_by_name["recordId"] == rec.record_id

    fresh = anchor(chain.new_patient().address)
    with pytest.raises(ContractRevert) as exc:
        records.anchor_records([fresh, fresh])
    assert exc.value.error == "DuplicateRecord"
    # all-or-nothing: the first copy was not anchored either
    assert records.get_record(fresh.record_id).status is RecordStatus.NONE


@pytest.mark.parametrize(
    "field",
    ["record_id", "patient", "commitment", "record_class"],
)
def test_zero_fields_are_rejected(chain, field):
    rec = anchor(chain.new_patient().address)
    zero = {"record_id": b"\x00" * 32, "patient": "0x" + "00" * 20, "commitment": b"\x00" * 32, "record_class": 0}
    bad = RecordAnchor(**{**rec.__dict__, field: zero[field]})
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.hospital_a).records.anchor_records([bad])
    assert exc.value.error == "InvalidRecord"


def test_empty_batch_is_rejected(chain):
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.hospital_a).records.anchor_records([])
    assert exc.value.error == "EmptyBatch"


@pytest.mark.parametrize("who", ["auditor", "outsider", "patient"])
def test_only_custodial_roles_may_anchor(chain, who):
    account = {"auditor": chain.auditor, "outsider": chain.outsider(), "patient": chain.new_patient()}[who]
    with pytest.raises(ContractRevert) as exc:
        chain.as_(account).records.anchor_records([anchor(chain.new_patient().address)])
    assert exc.value.error == "MissingRole"
    assert exc.value.args_by_name == {"account": account.address, "requiredRoles": int(Role.custodian())}


def test_cdc_is_a_custodian(chain):
    rec = anchor(chain.new_patient().address, RecordClass.SELF_TEST)
    chain.as_(chain.cdc).records.anchor_records([rec])
    assert chain.read.records.get_record(rec.record_id).custodian == chain.cdc.address


def test_amendment_supersedes_previous_version(chain):
    records = chain.as_(chain.hospital_a).records
    patient = chain.new_patient().address
    v1 = anchor(patient)
    records.anchor_records([v1])
    v2 = anchor(patient)
    receipt = records.amend_records([(v1.record_id, v2)])

    names = [e.name for e in records.events(receipt)]
    assert names == ["RecordAnchored", "RecordAmended"]
    amended = records.events(receipt)[1].args
    assert amended == {"previousId": v1.record_id, "newId": v2.record_id, "custodian": chain.hospital_a.address}
    assert records.get_record(v1.record_id).status is RecordStatus.SUPERSEDED
    assert records.get_record(v2.record_id).status is RecordStatus.ACTIVE

    with pytest.raises(ContractRevert) as exc:  # a superseded version cannot be amended again
        records.amend_records([(v1.record_id, anchor(patient))])
    assert exc.value.error == "RecordNotActive"


def test_amendment_failures(chain):
    a = chain.as_(chain.hospital_a).records
    b = chain.as_(chain.hospital_b).records
    patient = chain.new_patient().address
    v1 = anchor(patient)
    a.anchor_records([v1])

    with pytest.raises(ContractRevert) as exc:
        b.amend_records([(v1.record_id, anchor(patient))])
    assert exc.value.error == "NotCustodian"

    with pytest.raises(ContractRevert) as exc:
        a.amend_records([(secrets.token_bytes(32), anchor(patient))])
    assert exc.value.error == "UnknownRecord"

    with pytest.raises(ContractRevert) as exc:  # the new version must be a new id
        a.amend_records([(v1.record_id, v1)])
    assert exc.value.error == "DuplicateRecord"

    with pytest.raises(ContractRevert) as exc:
        a.amend_records([])
    assert exc.value.error == "EmptyBatch"


def test_erasure_marks_records_and_is_final(chain):
    records = chain.as_(chain.hospital_a).records
    patient = chain.new_patient().address
    recs = [anchor(patient), anchor(patient)]
    records.anchor_records(recs)
    request = secrets.token_bytes(32)
    receipt = records.erase_records([r.record_id for r in recs], request)

    erased = [e.args for e in records.events(receipt)]
    assert erased == [
        {"recordId": r.record_id, "custodian": chain.hospital_a.address, "requestHash": request} for r in recs
    ]
    assert all(records.get_record(r.record_id).status is RecordStatus.ERASED for r in recs)

    for call in (
        lambda: records.erase_records([recs[0].record_id], request),
        lambda: records.amend_records([(recs[0].record_id, anchor(patient))]),
    ):
        with pytest.raises(ContractRevert) as exc:
            call()
        assert exc.value.error == "RecordNotActive"

    with pytest.raises(ContractRevert) as exc:  # an erased id can never be reused
        records.anchor_records([recs[0]])
    assert exc.value.error == "DuplicateRecord"


def test_erasure_only_by_custodian(chain):
    rec = anchor(chain.new_patient().address)
    chain.as_(chain.hospital_a).records.anchor_records([rec])
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.hospital_b).records.erase_records([rec.record_id], secrets.token_bytes(32))
    assert exc.value.error == "NotCustodian"
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.auditor).records.erase_records([rec.record_id], secrets.token_bytes(32))
    assert exc.value.error == "MissingRole"


def test_digest_anchoring(chain):
    records = chain.as_(chain.hospital_a).records
    root, kind = secrets.token_bytes(32), secrets.token_bytes(32)
    first = records.anchor_digest(root, 1000, kind)
    second = records.anchor_digest(secrets.token_bytes(32), 5, kind)
    assert (first, second) == (1, 2)
    digest = records.get_digest(root)
    assert (digest.custodian, digest.count, digest.kind) == (chain.hospital_a.address, 1000, kind)

    with pytest.raises(ContractRevert) as exc:
        records.anchor_digest(root, 1000, kind)
    assert exc.value.error == "DuplicateDigest"
    for bad_root, count in ((b"\x00" * 32, 10), (secrets.token_bytes(32), 0)):
        with pytest.raises(ContractRevert) as exc:
            records.anchor_digest(bad_root, count, kind)
        assert exc.value.error == "InvalidDigest"
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.auditor).records.anchor_digest(secrets.token_bytes(32), 3, kind)
    assert exc.value.error == "MissingRole"


def test_anchor_gas_bound_covers_worst_case_batches(chain):
    # 0xff-filled ids/commitments/patients and the largest clinical time make nearly every calldata byte
    # non-zero, the costliest calldata; every record is a fresh (cold) storage slot.
    records = chain.as_(chain.hospital_a).records
    for round_, n in enumerate((1, 50, 400)):
        batch = [
            RecordAnchor(
                bytes([0xFF] * 28) + round_.to_bytes(2, "big") + i.to_bytes(2, "big"),
                "0x" + "ff" * 20,
                b"\xff" * 32,
                RecordClass.SELF_TEST,
                2**64 - 1,
            )
            for i in range(n)
        ]
        estimated = records.sender.estimate_gas(records.address, records.encode_anchor_records(batch))
        assert estimated <= records.anchor_gas(n)
        receipt = records.sender.wait([records.send_anchor_records(batch)])[0]
        assert receipt.status == 1
        assert receipt.gas_used <= records.anchor_gas(n)
