"""HL7 v2 ingest: real v2.5.1 messages (hl7apy-validated) map to the right records; malformed ones fail precisely."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from medledger.records import MEDIA_HL7V2
from medledger.vocabulary import RecordClass
from node.ingest import IngestError, parse
from node.ingest.hl7 import parse_hl7

DATA = Path(__file__).parent / "data" / "hl7"


def _message(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _error(data: bytes) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse(data, source_system="his")
    assert "\n" not in info.value.message
    return info.value


@pytest.mark.parametrize("name", ["adt_a01.hl7", "adt_a08.hl7", "oru_r01.hl7", "mdm_t02.hl7"])
def test_fixtures_are_valid_hl7_v251(name):
    message = parse_message(_message(name).decode(), validation_level=VALIDATION_LEVEL.STRICT)
    assert message.validate()
    assert message.msh.msh_12.to_er7() == "2.5.1"


def test_adt_a01_maps_to_demographics_with_mr_identifier():
    data = _message("adt_a01.hl7")
    [record] = parse(data, source_system="his")
    assert record.record_class is RecordClass.DEMOGRAPHICS
    assert record.type_code == "ADT^A01"
    # PID-3 lists the SSN first; the MR-typed identifier is the MRN.
    assert record.patient.mrn == "MRN-3003"
    assert record.patient.assigning_authority == "HOSPA"
    assert (record.patient.family_name, record.patient.given_name) == ("Bakker", "Jan Willem")
    assert (record.patient.birth_date, record.patient.sex) == ("1975-03-12", "M")
    # EVN-6 (event occurred, +0200) is the clinical time, normalised to UTC.
    assert record.clinical_time == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert record.source_id == "ADT1|HOSPA|ADT0001"
    assert record.media_type == MEDIA_HL7V2
    assert record.payload == data


def test_adt_a08_without_offset_uses_assumed_zone():
    [record] = parse(_message("adt_a08.hl7"))
    assert record.type_code == "ADT^A08"
    assert record.clinical_time == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)


def test_oru_r01_maps_to_lab_with_obr_code_and_time():
    data = _message("oru_r01.hl7")
    [record] = parse(data)
    assert record.record_class is RecordClass.LAB
    assert record.type_code == "24331-1"
    assert record.clinical_time == datetime(2024, 5, 3, 6, 15, tzinfo=UTC)  # OBR-7 20240503081500+0200
    assert record.patient.mrn == "MRN-4004"
    assert record.source_id == "LIS|LABCORP|LAB-77812"
    assert record.payload == data


def test_oru_falls_back_to_obx14_when_obr7_is_empty():
    data = _message("oru_r01.hl7").replace(b"|||20240503081500+0200|||", b"|||||||", 1)
    [record] = parse(data)
    assert record.clinical_time == datetime(2024, 5, 3, 6, 30, tzinfo=UTC)


def test_mdm_t02_maps_to_clinical_note():
    [record] = parse(_message("mdm_t02.hl7"))
    assert record.record_class is RecordClass.CLINICAL_NOTE
    assert record.type_code == "DS"
    assert record.clinical_time == datetime(2024, 5, 4, 13, 30, tzinfo=UTC)  # TXA-4


@pytest.mark.parametrize("separator", [b"\n", b"\r\n"])
def test_any_segment_separator_is_accepted(separator):
    data = _message("oru_r01.hl7").replace(b"\r", separator)
    [record] = parse(data)
    assert record.type_code == "24331-1"
    assert record.payload == data


def test_mllp_framing_and_bom_are_tolerated_and_kept_in_payload():
    data = b"\x0b" + b"\xef\xbb\xbf" + _message("adt_a08.hl7") + b"\x1c\r"
    [record] = parse(data)
    assert record.patient.mrn == "MRN-3003"
    assert record.payload == data


def test_reingest_yields_same_source_id():
    assert parse(_message("oru_r01.hl7"))[0].source_id == parse(_message("oru_r01.hl7"))[0].source_id


def test_missing_msh():
    data = _message("adt_a08.hl7").split(b"\r", 1)[1]
    assert _error(data).code == "hl7_missing_msh"


@pytest.mark.parametrize(
    "msh_start",
    [b"MSH|^~\\|", b"MSH|^~\\&&|", b"MSH|^~\\|&|", b"MSHA^~\\&A", b"MSH|^^\\&|"],
    ids=["three-chars", "repeated", "contains-field-sep", "alnum-separator", "not-distinct"],
)
def test_bad_delimiters(msh_start):
    data = _message("adt_a08.hl7").replace(b"MSH|^~\\&|", msh_start, 1)
    assert _error(data).code == "hl7_bad_delimiters"


def test_wrong_segment_order():
    data = _message("oru_r01.hl7")
    segments = data.split(b"\r")
    obr = next(s for s in segments if s.startswith(b"OBR"))
    first_obx = next(s for s in segments if s.startswith(b"OBX"))
    swapped = data.replace(obr, b"@@").replace(first_obx, obr).replace(b"@@", first_obx)
    error = _error(swapped)
    assert error.code == "hl7_segment_order"
    assert error.details["segments"][:5] == ["MSH", "PID", "PV1", "ORC", "OBX"]
    assert "Smit" not in error.message


def test_missing_required_segment_is_an_order_error():
    data = b"\r".join(s for s in _message("adt_a08.hl7").split(b"\r") if not s.startswith(b"PV1"))
    assert _error(data).code == "hl7_segment_order"


def test_z_segments_are_allowed_anywhere_after_msh():
    [record] = parse(_message("adt_a01.hl7"))
    assert b"ZPD|" in record.payload


def test_missing_pid3():
    data = _message("adt_a08.hl7").replace(b"PID|1||MRN-3003^^^HOSPA^MR||", b"PID|1||||")
    error = _error(data)
    assert error.code == "hl7_missing_patient_id"
    assert "Bakker" not in error.message


def test_missing_pid_segment():
    data = b"\r".join(s for s in _message("oru_r01.hl7").split(b"\r") if not s.startswith(b"PID"))
    assert _error(data).code == "hl7_missing_patient_id"


def test_unsupported_message_type():
    data = _message("adt_a08.hl7").replace(b"ADT^A08^ADT_A01", b"SIU^S12^SIU_S12")
    error = _error(data)
    assert error.code == "hl7_unsupported_message"
    assert error.details["message_type"] == "SIU^S12"


def test_missing_control_id_is_invalid():
    data = _message("adt_a08.hl7").replace(b"|ADT0002|", b"||")
    assert _error(data).code == "hl7_invalid"


def test_invalid_timestamp_is_invalid():
    data = _message("adt_a08.hl7").replace(b"EVN|A08|20240502093000", b"EVN|A08|2024-05-02")
    error = _error(data)
    assert error.code == "hl7_invalid_datetime"
    assert error.details["field"] == "EVN-2"


def test_parse_hl7_directly_keeps_source_system():
    [record] = parse_hl7(_message("mdm_t02.hl7"), source_system="dictation")
    assert record.source_system == "dictation"
