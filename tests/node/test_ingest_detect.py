"""Format detection works from content, tolerates text framing, and rejects everything else precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from node.ingest import DEFAULT_MAX_BYTES, Format, IngestError, detect_format, parse, parse_file

DATA = Path(__file__).parent / "data"


def _dicom(name: str) -> bytes:
    return Path(str(get_testdata_file(name, download=False))).read_bytes()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_dicom("CT_small.dcm"), Format.DICOM),
        (_dicom("ExplVR_LitEndNoMeta.dcm"), Format.DICOM),  # no preamble
        ((DATA / "hl7" / "adt_a01.hl7").read_bytes(), Format.HL7V2),
        (b"\xef\xbb\xbf  \r\n" + (DATA / "hl7" / "adt_a08.hl7").read_bytes(), Format.HL7V2),
        (b"\x0b" + (DATA / "hl7" / "oru_r01.hl7").read_bytes() + b"\x1c\r", Format.HL7V2),
        ((DATA / "fhir" / "r5_patient.json").read_bytes(), Format.FHIR_JSON),
        (b'\xef\xbb\xbf\n{"id": "x", "resourceType": "Patient"}', Format.FHIR_JSON),
    ],
    ids=["dicom", "dicom-raw", "hl7", "hl7-bom-whitespace", "hl7-mllp", "fhir", "fhir-bom-key-order"],
)
def test_detects_from_content(data, expected):
    assert detect_format(data) is expected


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"%PDF-1.7\n", b'{"name": "not fhir"}', b"[1, 2, 3]", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200],
    ids=["empty", "text", "pdf", "json-no-resourcetype", "json-array", "png"],
)
def test_unknown_format(data):
    with pytest.raises(IngestError) as info:
        parse(data)
    assert info.value.code == "unknown_format"


@pytest.mark.parametrize(
    ("source", "suffix"),
    [("hl7/oru_r01.hl7", ".dcm"), ("fhir/r5_patient.json", ".hl7"), ("hl7/mdm_t02.hl7", ".json")],
)
def test_file_extension_is_ignored(tmp_path, source, suffix):
    target = tmp_path / f"misnamed{suffix}"
    target.write_bytes((DATA / source).read_bytes())
    [record] = parse_file(target)
    assert record.payload == target.read_bytes()


def test_oversize_payload_is_rejected_before_parsing():
    data = (DATA / "fhir" / "r5_patient.json").read_bytes()
    with pytest.raises(IngestError) as info:
        parse(data, max_bytes=len(data) - 1)
    assert info.value.code == "payload_too_large"
    assert info.value.details == {"size": len(data), "max_bytes": len(data) - 1}
    assert parse(data, max_bytes=len(data))  # exactly at the limit is fine


def test_oversize_garbage_is_too_large_not_unknown():
    with pytest.raises(IngestError) as info:
        parse(b"\x00" * 2048, max_bytes=1024)
    assert info.value.code == "payload_too_large"


def test_oversize_file_is_rejected_from_its_size(tmp_path):
    target = tmp_path / "big.dcm"
    target.write_bytes(_dicom("CT_small.dcm"))
    with pytest.raises(IngestError) as info:
        parse_file(target, max_bytes=1000)
    assert info.value.code == "payload_too_large"


def test_default_limit_is_64_mib():
    assert DEFAULT_MAX_BYTES == 64 * 1024 * 1024
