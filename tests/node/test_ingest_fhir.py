"""FHIR JSON ingest (R4B and R5): fixtures validated with fhir.resources map to the right records in both
validation modes; invalid input fails with a precise code and path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.bundle import Bundle
from fhir.resources.encounter import Encounter as EncounterR5
from fhir.resources.observation import Observation
from fhir.resources.patient import Patient
from fhir.resources.R4B.bundle import Bundle as BundleR4B
from fhir.resources.R4B.encounter import Encounter as EncounterR4B

from medledger.records import MEDIA_FHIR_JSON
from medledger.vocabulary import RecordClass
from node.ingest import IngestError, parse
from node.ingest.fhir import FHIR_LOGICAL_ID_AUTHORITY, canonical_json, parse_fhir

DATA = Path(__file__).parent / "data" / "fhir"
MODES = ["fast", "full"]


def _raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _json(name: str) -> dict:
    return json.loads(_raw(name))


def _error(data: bytes | dict, mode: str = "full", **kwargs) -> IngestError:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    with pytest.raises(IngestError) as info:
        parse(data, validate=mode, **kwargs)
    assert "\n" not in info.value.message
    return info.value


def test_fixtures_validate_with_fhir_resources():
    Patient.model_validate_json(_raw("r5_patient.json"))
    Observation.model_validate_json(_raw("r5_observation_vitals.json"))
    Observation.model_validate_json(_raw("r5_observation_lab_4k.json"))
    Bundle.model_validate_json(_raw("r5_bundle_transaction.json"))
    EncounterR4B.model_validate_json(_raw("r4b_encounter.json"))
    BundleR4B.model_validate_json(_raw("r4b_bundle_collection.json"))
    with pytest.raises(ValueError):
        EncounterR5.model_validate_json(_raw("r4b_encounter.json"))  # class is a Coding in R4B, a list in R5


@pytest.mark.parametrize("mode", MODES)
def test_patient_prefers_mr_identifier_and_official_name(mode):
    data = _raw("r5_patient.json")
    [record] = parse(data, source_system="ehr", validate=mode)
    assert record.record_class is RecordClass.DEMOGRAPHICS
    assert record.patient.mrn == "MRN-1001"
    assert record.patient.assigning_authority == "urn:oid:1.2.840.114350.1.13.99.1"
    assert (record.patient.family_name, record.patient.given_name) == ("Okafor", "Ada Chioma")
    assert (record.patient.birth_date, record.patient.sex) == ("1984-03-17", "female")
    assert record.source_id == "Patient/pat-1001"
    assert record.media_type == MEDIA_FHIR_JSON
    assert record.payload == data
    assert record.clinical_time is None


@pytest.mark.parametrize("mode", MODES)
def test_vital_signs_observation(mode):
    [record] = parse(_raw("r5_observation_vitals.json"), validate=mode)
    assert record.record_class is RecordClass.VITAL_SIGNS
    assert record.type_code == "Observation/8867-4"
    assert record.clinical_time == datetime(2024, 5, 1, 8, 15, tzinfo=UTC)
    # Only a literal reference: the patient is identified by the FHIR logical id.
    assert (record.patient.mrn, record.patient.assigning_authority) == ("pat-1001", FHIR_LOGICAL_ID_AUTHORITY)


@pytest.mark.parametrize("mode", MODES)
def test_lab_observation_4k(mode):
    data = _raw("r5_observation_lab_4k.json")
    assert 4000 < len(data) < 4600
    [record] = parse(data, validate=mode)
    assert record.record_class is RecordClass.LAB
    assert record.type_code == "Observation/24331-1"
    assert record.payload == data


def test_observation_without_category_is_lab():
    obs = _json("r5_observation_vitals.json")
    del obs["category"]
    [record] = parse(json.dumps(obs).encode())
    assert record.record_class is RecordClass.LAB


@pytest.mark.parametrize("mode", MODES)
def test_r4b_encounter_detected_by_fallback(mode):
    [record] = parse(_raw("r4b_encounter.json"), validate=mode)
    assert record.summary["fhir_version"] == "R4B"
    assert record.record_class is RecordClass.ENCOUNTER
    assert record.type_code == "Encounter/AMB"
    assert record.clinical_time == datetime(2024, 4, 30, 9, 0, tzinfo=UTC)
    assert record.patient.mrn == "MRN-1001"  # reference.identifier beats the literal id


def test_explicit_version_is_enforced():
    # R4B's Encounter.status "finished" is outside R5's required value set (and its class is a Coding, not a list).
    assert _error(_raw("r4b_encounter.json"), fhir_version="R5").code == "fhir_invalid_code"


@pytest.mark.parametrize("mode", MODES)
def test_r5_transaction_bundle_one_record_per_entry(mode):
    records = parse(_raw("r5_bundle_transaction.json"), source_system="ehr", validate=mode)
    classes = [r.record_class for r in records]
    assert classes == [
        RecordClass.DEMOGRAPHICS,
        RecordClass.LAB,
        RecordClass.CONDITION,
        RecordClass.MEDICATION,
        RecordClass.ALLERGY,
        RecordClass.IMMUNIZATION,
        RecordClass.PROCEDURE,
        RecordClass.IMAGING,  # DiagnosticReport with RAD category
        RecordClass.CLINICAL_NOTE,
        RecordClass.ENCOUNTER,
    ]
    assert {r.patient.mrn for r in records} == {"MRN-2002"}  # subjects resolve to the bundle's Patient entry
    assert records[0].patient.family_name == "Jansen"
    assert records[3].type_code == "MedicationRequest/860975"
    assert records[3].clinical_time == datetime(2024, 5, 2, 6, 0, tzinfo=UTC)
    assert records[2].clinical_time == datetime(2019, 6, 1, tzinfo=UTC)  # date-only onset
    assert records[1].source_id == "urn:uuid:7d1c9a52-7f0e-4b8e-9a35-1f0d4b2a0002"
    bundle = _json("r5_bundle_transaction.json")
    for record, entry in zip(records, bundle["entry"], strict=True):
        assert json.loads(record.payload) == entry["resource"]
        assert record.payload == canonical_json(json.loads(record.payload, parse_float=Decimal))


def test_bundle_entry_payload_keeps_decimal_digits():
    records = parse(_raw("r5_bundle_transaction.json"))
    assert b'"value":5.50' in records[1].payload


@pytest.mark.parametrize("mode", MODES)
def test_r4b_collection_bundle_with_profile_hint(mode):
    records = parse(_raw("r4b_bundle_collection.json"), validate=mode)
    assert {r.summary["fhir_version"] for r in records} == {"R4B"}
    assert [r.type_code for r in records] == [
        "Patient",
        "Encounter/EMER",
        "MedicationRequest/197361",
        "Procedure/80146002",
    ]
    assert {r.patient.mrn for r in records} == {"NL-77"}
    assert records[3].clinical_time == datetime(2024, 2, 11, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize("mode", MODES)
def test_bundle_with_unsupported_entry_is_rejected_whole(mode):
    bundle = _json("r5_bundle_transaction.json")
    bundle["entry"].insert(2, {"fullUrl": "urn:uuid:c1", "resource": {"resourceType": "Claim", "status": "active"}})
    error = _error(bundle, mode)
    assert error.code == "fhir_unsupported_resource"
    assert error.details["path"] == "Bundle.entry[2].resource"


@pytest.mark.parametrize("mode", MODES)
def test_bundle_with_one_invalid_entry_is_rejected_whole(mode):
    bundle = _json("r5_bundle_transaction.json")
    bundle["entry"][5]["resource"]["occurrenceDateTime"] = "12/10/2023"
    error = _error(bundle, mode)
    assert error.code == "fhir_invalid"
    assert "entry" in error.details["path"] and "occurrenceDateTime" in error.details["path"]


def test_unsupported_bundle_type():
    bundle = _json("r5_bundle_transaction.json")
    bundle["type"] = "searchset"
    assert _error(bundle).code == "fhir_unsupported_resource"


def test_unsupported_single_resource():
    error = _error({"resourceType": "Claim", "id": "c1"})
    assert error.code == "fhir_unsupported_resource"


@pytest.mark.parametrize("mode", MODES)
def test_wrong_resource_type(mode):
    patient = _json("r5_patient.json")
    patient["resourceType"] = "Patinet"
    error = _error(patient, mode)
    assert error.code == "fhir_invalid"
    assert "Patinet" in error.message


def test_resource_type_of_a_datatype_is_invalid():
    assert _error({"resourceType": "CodeableConcept", "text": "x"}).code == "fhir_invalid"


@pytest.mark.parametrize("mode", MODES)
def test_string_for_number_is_wrong_type(mode):
    obs = _json("r5_observation_vitals.json")
    obs["valueQuantity"]["value"] = "72"
    # pydantic alone would accept this by coercion: the strict check is what catches it.
    Observation.model_validate(obs)
    error = _error(obs, mode)
    assert error.code == "fhir_wrong_type"
    assert error.details["path"] == "Observation.valueQuantity.value"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p.__setitem__("active", "true"), "Patient.active"),
        (lambda p: p.__setitem__("name", {"family": "X"}), "Patient.name"),
        (lambda p: p["name"][1].__setitem__("given", "Ada"), "Patient.name[1].given"),
        (lambda p: p.__setitem__("birthDate", 19840317), "Patient.birthDate"),
    ],
    ids=["bool-as-string", "object-for-array", "string-for-array", "number-for-date"],
)
@pytest.mark.parametrize("mode", MODES)
def test_other_json_type_errors(mode, mutate, path):
    patient = _json("r5_patient.json")
    mutate(patient)
    error = _error(patient, mode)
    assert error.code == "fhir_wrong_type"
    assert error.details["path"] == path
    assert "Okafor" not in error.message


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda o: o.pop("status"), "Observation.status"),
        (lambda o: o.pop("code"), "Observation.code"),
        (lambda o: o.__setitem__("bogus", 1), "Observation.bogus"),
        (lambda o: o.__setitem__("valueString", "high"), "Observation"),
        (lambda o: o.__setitem__("effectiveDateTime", "2024-05-01 10:15"), "Observation.effectiveDateTime"),
        (lambda o: o.__setitem__("category", []), "Observation.category"),
        (lambda o: o["code"]["coding"][0].__setitem__("code", ""), "Observation.code.coding[0].code"),
    ],
    ids=["missing-status", "missing-code", "unknown-element", "two-values", "bad-datetime", "empty-array", "empty"],
)
@pytest.mark.parametrize("mode", MODES)
def test_schema_errors_with_path(mode, mutate, path):
    obs = _json("r5_observation_vitals.json")
    mutate(obs)
    error = _error(obs, mode)
    assert error.code == "fhir_invalid"
    assert error.details["path"] == path


@pytest.mark.parametrize("mode", MODES)
def test_id_grammar_is_checked_in_both_modes(mode):
    patient = _json("r5_patient.json")
    patient["id"] = "not a valid id!"  # id pattern [A-Za-z0-9\-\.]{1,64}: once only the models checked it
    error = _error(patient, mode)
    assert error.code == "fhir_invalid_id"
    assert error.details["path"] == "Patient.id"
    assert "valid" not in error.message


@pytest.mark.parametrize(
    "data",
    [b'{"resourceType": "Patient", "id": "x"', b'{"resourceType": "Patient", "id": NaN}', b'{"resourceType": "P\xff"}'],
    ids=["truncated", "nan", "bad-utf8"],
)
def test_invalid_json(data):
    assert _error(data).code == "fhir_invalid_json"


def test_duplicate_keys():
    data = b'{"resourceType": "Patient", "id": "a", "gender": "female", "id": "b"}'
    error = _error(data)
    assert error.code == "fhir_duplicate_key"
    assert error.details["key"] == "id"


def test_nested_duplicate_keys():
    data = _raw("r5_observation_vitals.json").replace(b'"value": 72,', b'"value": 72, "value": 73,')
    assert _error(data).code == "fhir_duplicate_key"


def test_observation_about_a_group_has_no_patient():
    obs = _json("r5_observation_vitals.json")
    obs["subject"] = {"reference": "Group/g1"}
    assert _error(obs).code == "fhir_missing_patient"


def test_resource_without_id_gets_content_hash_source_id():
    obs = _json("r5_observation_vitals.json")
    del obs["id"]
    data = json.dumps(obs).encode()
    [first] = parse_fhir(data)
    [second] = parse_fhir(data)
    assert first.source_id == second.source_id
    assert first.source_id.startswith("Observation/sha256:")


def test_fast_and_full_agree_on_records():
    for name in ["r5_bundle_transaction.json", "r4b_bundle_collection.json", "r5_observation_lab_4k.json"]:
        assert parse(_raw(name), validate="fast") == parse(_raw(name), validate="full")
