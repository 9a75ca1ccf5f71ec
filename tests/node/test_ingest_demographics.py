"""The three parsers produce one demographic model: the same person sent as a FHIR Patient, an HL7 v2 ADT^A01 and a
DICOM image comes out as the same Demographics, while each record's ``patient`` key stays what it was."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from datetime import date
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from medledger.demographics import (
    Address,
    BirthDate,
    DatePrecision,
    Demographics,
    Identifier,
    PersonName,
    Sex,
    Telecom,
    name_text,
)
from medledger.records import PatientIdentity
from node.ingest import ParsedRecord, from_dicom, from_fhir_patient, from_pid, parse
from node.ingest.dicom import record_from_dataset
from node.ingest.fhir import FHIR_LOGICAL_ID_AUTHORITY

DATA = Path(__file__).parent / "data"
OID = "2.16.840.1.113883.19.5"  # HL7's example organization
RESIDENT_ID = "110101198005170011"  # Beijing Dongcheng, born 1980-05-17, sequence 001 (male), check digit 1
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

#: Wang Xiaodong as every format should describe him.
EXPECTED = Demographics(
    names=(
        PersonName(name_text("Wang", surname=True), name_text("Xiaodong")),
        PersonName(name_text("王", surname=True), name_text("小东")),
    ),
    sex=Sex.MALE,
    birth_date=BirthDate(date(1980, 5, 17), DatePrecision.DAY),
    identifiers=(Identifier("MRN-7788", f"urn:oid:{OID}", "MR"), Identifier(RESIDENT_ID, "", "NNCHN")),
    addresses=(
        Address(
            lines=("东华门大街1号",),
            city="北京",
            district="东城区",
            state="北京",
            postal_code="100006",
            country="CN",
            use="home",
        ),
    ),
    telecoms=(Telecom("phone", "+86 10 6512 3456", "home"), Telecom("email", "wxd@example.cn", "home")),
)

FHIR_PATIENT = {
    "resourceType": "Patient",
    "id": "wxd",
    "identifier": [
        {
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "system": f"urn:oid:{OID}",
            "value": "MRN-7788",
        },
        # typed only as a national identifier: the number itself says it is a resident identity number
        {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}]},
            "value": RESIDENT_ID,
        },
    ],
    "name": [
        {"use": "official", "family": "Wang", "given": ["Xiaodong"]},
        {"family": "王", "given": ["小东"]},
    ],
    "gender": "male",
    "birthDate": "1980-05-17",
    "address": [
        {
            "use": "home",
            "line": ["东华门大街1号"],
            "city": "北京",
            "district": "东城区",
            "state": "北京",
            "postalCode": "100006",
            "country": "CN",
        }
    ],
    "telecom": [
        {"system": "phone", "value": "+86 10 6512 3456", "use": "home"},
        {"system": "email", "value": "wxd@example.cn", "use": "home"},
    ],
}

HL7_PID = (
    f"PID|1||MRN-7788^^^HOSP-BJ&{OID}&ISO^MR~{RESIDENT_ID}||Wang^Xiaodong~王^小东||19800517|M|||"
    "东华门大街1号^^北京^北京^100006^CN^H^^东城区||+86 10 6512 3456^PRN^PH~^NET^Internet^wxd@example.cn"
)
HL7_ADT = "\r".join(
    [
        "MSH|^~\\&|HIS|HOSP-BJ|MEDLEDGER|REGION|20240501101500+0800||ADT^A01^ADT_A01|BJ0001|P|2.5.1|||AL|NE||"
        "UNICODE UTF-8",
        "EVN|A01|20240501101500+0800",
        HL7_PID,
        "PV1|1|O",
    ]
).encode()


def _dicom_bytes() -> bytes:
    """A real CT instance (pydicom's CT_small) re-labelled with Wang Xiaodong's patient module, in UTF-8."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Wang^Xiaodong=王^小东"
    ds.PatientID = "MRN-7788"
    ds.IssuerOfPatientID = "HOSP-BJ"
    qualifier = Dataset()
    qualifier.UniversalEntityID = OID
    qualifier.UniversalEntityIDType = "ISO"
    qualifier.IdentifierTypeCode = "MR"
    ds.IssuerOfPatientIDQualifiersSequence = [qualifier]
    other = Dataset()
    other.PatientID = RESIDENT_ID
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]  # replaces CT_small's two
    ds.PatientBirthDate = "19800517"
    ds.PatientSex = "M"
    # DICOM has no structured address: one free-text line and the country of residence.
    ds.PatientAddress = "北京市东城区东华门大街1号"
    ds.CountryOfResidence = "CN"
    ds.PatientTelephoneNumbers = "+86 10 6512 3456"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _record(data: bytes) -> ParsedRecord:
    [record] = parse(data, source_system="test")
    assert isinstance(record, ParsedRecord)
    return record


def test_fhir_patient_demographics():
    record = _record(json.dumps(FHIR_PATIENT).encode())
    assert record.demographics == EXPECTED
    assert from_fhir_patient(FHIR_PATIENT) == EXPECTED


def test_hl7_pid_demographics():
    record = _record(HL7_ADT)
    assert record.demographics == EXPECTED
    assert from_pid(HL7_PID) == EXPECTED


def test_dicom_demographics():
    record = _record(_dicom_bytes())
    demographics = record.demographics
    assert replace(demographics, addresses=EXPECTED.addresses, telecoms=EXPECTED.telecoms) == EXPECTED
    assert demographics.addresses == (Address(lines=("北京市东城区东华门大街1号",), country="CN"),)
    assert demographics.telecoms == (Telecom("phone", "+86 10 6512 3456"),)
    assert from_dicom(pydicom.dcmread(BytesIO(_dicom_bytes()), stop_before_pixels=True)) == demographics


def test_the_three_formats_agree():
    fhir, hl7, dicom = (_record(d).demographics for d in (json.dumps(FHIR_PATIENT).encode(), HL7_ADT, _dicom_bytes()))
    assert fhir == hl7
    assert (dicom.names, dicom.sex, dicom.birth_date, dicom.identifiers) == (
        fhir.names,
        fhir.sex,
        fhir.birth_date,
        fhir.identifiers,
    )
    # what a master patient index would match on: the Han name romanized equals the Latin spelling
    latin, han = fhir.names
    assert (han.family.pinyin, han.given.pinyin) == (latin.family.normalized, latin.given.normalized)


def test_existing_patient_keys_are_unchanged():
    """``patient`` keeps each format's own conventions (HL7 and DICOM name the authority by its namespace)."""
    assert _record(json.dumps(FHIR_PATIENT).encode()).patient == PatientIdentity(
        "MRN-7788", f"urn:oid:{OID}", "Wang", "Xiaodong", "1980-05-17", "male"
    )
    assert _record(HL7_ADT).patient == PatientIdentity("MRN-7788", "HOSP-BJ", "Wang", "Xiaodong", "1980-05-17", "M")
    assert _record(_dicom_bytes()).patient == PatientIdentity(
        "MRN-7788", "HOSP-BJ", "Wang", "Xiaodong", "1980-05-17", "male"
    )


def test_a_damaged_optional_element_does_not_reject_the_record():
    """Demographics read elements the record never needed; one pydicom cannot decode leaves only the patient key."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False), stop_before_pixels=True)
    tag = Tag("PatientAddress")
    ds._dict[tag] = RawDataElement(tag, "LL", 4, b"abcd", 0, False, True)  # not a VR: fails when first decoded
    with pytest.raises(NotImplementedError):
        from_dicom(ds)
    record = record_from_dataset(ds, b"")
    assert record.patient.mrn == "1CT1"
    assert record.demographics == Demographics(identifiers=(Identifier("1CT1"),))


@pytest.mark.parametrize(("name", "given"), [("chrX1.dcm", "小東"), ("chrX2.dcm", "小东")])
def test_pydicom_chinese_names_in_utf8_and_gb18030(name, given):
    """pydicom's character-set samples: traditional (UTF-8) and simplified (GB18030) spellings both romanize to
    the alphabetic component group."""
    path = Path(pydicom.data.__file__).parent / "charset_files" / name
    demographics = from_dicom(pydicom.dcmread(path))
    latin, han = demographics.names
    assert (latin.family.original, latin.given.original) == ("Wang", "XiaoDong")
    assert (han.family.original, han.given.original) == ("王", given)
    assert (
        (han.family.pinyin, han.given.pinyin)
        == ("wang", "xiaodong")
        == (latin.family.normalized, latin.given.normalized)
    )


def test_partial_birth_dates_agree():
    fhir = from_fhir_patient({**FHIR_PATIENT, "birthDate": "1980-05"})
    hl7 = from_pid(HL7_PID.replace("|19800517|", "|198005|"))
    assert fhir.birth_date == hl7.birth_date == BirthDate(date(1980, 5, 1), DatePrecision.MONTH)
    assert from_fhir_patient({**FHIR_PATIENT, "birthDate": "1980"}).birth_date == BirthDate(
        date(1980, 1, 1), DatePrecision.YEAR
    )


def test_hl7_fixture_authority_is_the_oid_and_every_pid3_identifier_is_kept():
    demographics = _record((DATA / "hl7" / "adt_a01.hl7").read_bytes()).demographics
    assert demographics.identifiers == (
        Identifier("999-00-1234", "SSA", "SS"),
        Identifier("MRN-3003", "urn:oid:1.2.840.114350.1.13.99.1", "MR"),
    )
    assert demographics.addresses == (
        Address(lines=("Stationsweg 1",), city="Leiden", postal_code="2312AV", country="NL"),
    )


def test_hl7_escapes_mobile_and_work_numbers():
    pid = "PID|1||A1^^^H^MR||O\\T\\Brien^Mary\\S\\Ann||||||||^ORN^CP^^31^6^12345678|^^PH^^^^^^^^^+31715550100"
    demographics = from_pid(pid)
    [name] = demographics.names
    assert (name.family.original, name.given.original) == ("O&Brien", "Mary^Ann")
    assert demographics.telecoms == (
        Telecom("phone", "+31 6 12345678", "mobile"),
        Telecom("phone", "+31715550100", "work"),
    )


def test_fhir_references_carry_what_they_know():
    """A clinical resource's demographics are its bundle Patient's; outside a bundle only the reference's identifier."""
    bundle = json.loads((DATA / "fhir" / "r5_bundle_transaction.json").read_text())
    records = parse(json.dumps(bundle).encode())
    patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patients
    expected = from_fhir_patient(patients[0])
    assert all(r.demographics == expected for r in records), [r.source_id for r in records]

    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"identifier": {"system": "urn:oid:2.16.156", "value": "11010519491231002x"}},
    }
    [record] = parse(json.dumps(observation).encode())
    assert record.patient == PatientIdentity("11010519491231002x", "urn:oid:2.16.156")  # unchanged: as sent
    assert record.demographics == Demographics(
        identifiers=(Identifier("11010519491231002X", "urn:oid:2.16.156", "NNCHN"),)
    )
    [record] = parse(json.dumps({**observation, "subject": {"reference": "Patient/p7"}}).encode())
    assert record.demographics == Demographics(identifiers=(Identifier("p7", FHIR_LOGICAL_ID_AUTHORITY),))


def test_patient_known_only_by_logical_id():
    demographics = from_fhir_patient({"resourceType": "Patient", "id": "p7", "gender": "unknown"})
    assert demographics == Demographics(sex=Sex.UNKNOWN, identifiers=(Identifier("p7", FHIR_LOGICAL_ID_AUTHORITY),))


def test_parsed_records_survive_the_bulk_process_boundary():
    for data in (json.dumps(FHIR_PATIENT).encode(), HL7_ADT, _dicom_bytes()):
        record = _record(data)
        copy = pickle.loads(pickle.dumps(record))
        assert type(copy) is ParsedRecord and copy == record and copy.demographics == record.demographics
