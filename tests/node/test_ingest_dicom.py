"""DICOM ingest on pydicom's bundled real test files: header mapping, streaming, truncation and rejection."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medledger.records import MEDIA_DICOM
from medledger.vocabulary import RecordClass
from node.ingest import IngestError, parse, parse_file
from node.ingest.dicom import parse_dicom_file


def _path(name: str) -> Path:
    found = get_testdata_file(name, download=False)
    assert found is not None, name
    return Path(str(found))


def _error(data: bytes) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse(data)
    assert "\n" not in info.value.message
    return info.value


def test_ct_small_maps_header_fields():
    data = _path("CT_small.dcm").read_bytes()
    [record] = parse(data, source_system="pacs")
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    assert record.record_class is RecordClass.IMAGING
    assert record.type_code == "CT"
    assert record.patient.mrn == ds.PatientID == "1CT1"
    assert record.patient.family_name == "CompressedSamples"
    assert record.patient.given_name == "CT1"
    assert record.patient.sex == "other"
    assert record.source_id == ds.SOPInstanceUID
    assert record.summary["study_uid"] == ds.StudyInstanceUID
    assert record.summary["series_uid"] == ds.SeriesInstanceUID
    # StudyDate/Time 20040119 072730 with TimezoneOffsetFromUTC -0500 → 12:27:30 UTC.
    assert ds.TimezoneOffsetFromUTC == "-0500"
    assert record.clinical_time == datetime(2004, 1, 19, 12, 27, 30, tzinfo=UTC)
    assert record.media_type == MEDIA_DICOM
    assert record.payload == data


@pytest.mark.parametrize(
    "name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"]
)
def test_transfer_syntaxes_and_encapsulated_pixel_data(name):
    data = _path(name).read_bytes()
    [record] = parse(data)
    ds = pydicom.dcmread(_path(name), stop_before_pixels=True)
    assert (record.patient.mrn, record.type_code, record.source_id) == (ds.PatientID, ds.Modality, ds.SOPInstanceUID)
    assert record.clinical_time is not None and record.clinical_time.tzinfo is UTC
    assert record.payload == data


def test_parse_dicom_file_reads_once_and_keeps_bytes(tmp_path):
    target = tmp_path / "no-extension"
    target.write_bytes(_path("MR_small.dcm").read_bytes())
    record = parse_dicom_file(target)
    assert record.payload == target.read_bytes()
    assert record.type_code == "MR"


def test_parse_file_detects_dicom_regardless_of_extension(tmp_path):
    target = tmp_path / "report.json"
    target.write_bytes(_path("CT_small.dcm").read_bytes())
    [record] = parse_file(target)
    assert record.type_code == "CT"


def test_bundled_truncated_file_is_rejected():
    # MR_truncated.dcm: pydicom reads it without complaint, but its pixel data is short.
    assert pydicom.dcmread(_path("MR_truncated.dcm")).PatientID == "4MR1"
    error = _error(_path("MR_truncated.dcm").read_bytes())
    assert error.code == "dicom_truncated"
    assert error.details["tag"] == "7FE0,0010"


def test_bundled_truncated_rtplan_is_rejected():
    assert _error(_path("rtplan_truncated.dcm").read_bytes()).code == "dicom_truncated"


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3, 0.5, 0.9, 0.999])
def test_cut_anywhere_is_truncated(fraction):
    data = _path("CT_small.dcm").read_bytes()
    assert _error(data[: int(len(data) * fraction)]).code == "dicom_truncated"


def test_cut_inside_trailing_element_header_is_truncated():
    data = _path("CT_small.dcm").read_bytes()
    # CT_small ends with a (FFFC,FFFC) padding element; cut 6 bytes into its header.
    pad = data.rfind(b"\xfc\xff\xfc\xff")
    assert pad > 0
    assert _error(data[: pad + 6]).code == "dicom_truncated"


def test_missing_patient_id():
    # A real preamble-less data set (explicit VR little endian) with no (0010,0020).
    data = _path("ExplVR_LitEndNoMeta.dcm").read_bytes()
    assert "PatientID" not in pydicom.dcmread(_path("ExplVR_LitEndNoMeta.dcm"), force=True)
    assert _error(data).code == "dicom_missing_patient_id"


def test_empty_patient_id_is_missing():
    assert _error(_path("reportsi.dcm").read_bytes()).code == "dicom_missing_patient_id"


def test_missing_sop_instance_uid(tmp_path):
    ds = pydicom.dcmread(_path("MR_small.dcm"))
    del ds.SOPInstanceUID
    out = tmp_path / "no-uid.dcm"
    ds.save_as(out, enforce_file_format=False)
    error = _error(out.read_bytes())
    assert error.code == "dicom_missing_uid"
    assert "CompressedSamples" not in error.message


def test_preamble_without_dataset_is_not_dicom_or_truncated():
    data = b"\x00" * 128 + b"DICM" + b"\x02\x00"
    assert _error(data).code in {"dicom_truncated", "dicom_not_dicom"}


def test_non_dicom_text_with_dicm_marker_position_is_rejected():
    data = b"\x00" * 128 + b"DICM" + b"this is not a DICOM file at all, just text " * 4
    assert _error(data).code in {"dicom_not_dicom", "dicom_truncated"}


def test_garbage_that_looks_like_a_raw_dataset_is_not_dicom():
    # Starts with a plausible (0008,xxxx) tag but carries no SOP identification.
    data = b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + b"\x00" * 64
    assert _error(data).code in {"dicom_not_dicom", "dicom_truncated"}
