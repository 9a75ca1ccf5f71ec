"""DICOM Part 10 files (and preamble-less data sets) → one IMAGING canonical record per SOP instance.

Only the header is parsed (``stop_before_pixels``, large values deferred), over a BytesIO on the very bytes that
become the payload, so a large study is read from disk once and never copied into a second buffer. pydicom
silently returns a partial data set for a truncated file, so completeness is checked explicitly: every element
value (header and the pixel data / trailing elements after it) must lie within the data, the data must end on an
element boundary, and image storage SOP classes must carry pixel data.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from io import BytesIO
from os import PathLike
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator
from pydicom.multival import MultiValue
from pydicom.uid import UID

from medledger.demographics import (
    Address,
    Demographics,
    Identifier,
    PersonName,
    Sex,
    Telecom,
    authority_uri,
    make_identifier,
    parse_birth_date,
    person_name,
)
from medledger.records import MEDIA_DICOM, PatientIdentity
from medledger.vocabulary import RecordClass
from node.ingest.detect import has_dicom_preamble, looks_like_raw_dicom
from node.ingest.errors import (
    DICOM_INVALID,
    DICOM_MISSING_PATIENT_ID,
    DICOM_MISSING_UID,
    DICOM_NOT_DICOM,
    DICOM_TRUNCATED,
    IngestError,
)
from node.ingest.parsed import ParsedRecord

#: Values larger than this are not read while parsing the header (pydicom seeks past them instead).
DEFER_SIZE = 4096
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float Pixel Data
_SEX = {"M": "male", "F": "female", "O": "other"}


def _truncated(message: str, **details: Any) -> IngestError:
    return IngestError(DICOM_TRUNCATED, message, **details)


def _check_raw(elem: Any, size: int) -> int | None:
    """Raise if a raw element's value runs past the data; return where it ends (None if unknown)."""
    if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
        return None
    end = elem.value_tell + elem.length
    if end > size or (elem.value is not None and len(elem.value) != elem.length):
        raise _truncated(
            f"element ({elem.tag.group:04X},{elem.tag.element:04X}) needs {elem.length} bytes at offset "
            f"{elem.value_tell}, data ends at {size}",
            tag=f"{elem.tag.group:04X},{elem.tag.element:04X}",
        )
    return end


def read_header(data: bytes) -> Dataset:
    """Parse and completeness-check the DICOM header of ``data`` (bytes of a whole file or data set)."""
    size = len(data)
    preamble = has_dicom_preamble(data)
    if not preamble and not looks_like_raw_dicom(data):
        raise IngestError(DICOM_NOT_DICOM, "not DICOM: no 'DICM' marker at offset 128 and no DICOM data set start")
    fp = BytesIO(data)
    try:
        # force only for preamble-less data: with force pydicom "reads" arbitrary bytes, so that path must
        # additionally prove itself DICOM by the identifying tags checked below.
        ds = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE, force=not preamble)
    except InvalidDicomError as exc:
        raise IngestError(DICOM_NOT_DICOM, f"not DICOM: {exc}") from None
    except (EOFError, struct.error) as exc:
        raise _truncated(f"DICOM header ends mid-element ({type(exc).__name__})") from None
    except (ValueError, TypeError, KeyError, NotImplementedError, OverflowError) as exc:
        raise IngestError(DICOM_INVALID, f"unreadable DICOM header: {type(exc).__name__}: {exc}") from None
    if preamble and not getattr(ds, "file_meta", None):
        raise _truncated("file meta information is missing or cut short")
    if not preamble and "SOPClassUID" not in ds and "SOPInstanceUID" not in ds:
        raise IngestError(DICOM_NOT_DICOM, "not DICOM: no preamble and no SOP Class/Instance UID")

    if preamble and not ds._dict:
        raise _truncated("file meta information present but no data set follows it")
    header_end = fp.tell()
    for elem in ds._dict.values():  # raw elements still carry the offsets the truncation check needs
        _check_raw(elem, size)
    deflated = preamble and ds.file_meta.get("TransferSyntaxUID") == pydicom.uid.DeflatedExplicitVRLittleEndian
    tail_tags: set[int] = set()
    if deflated:
        pass  # offsets refer to the inflated stream; pydicom's own EOF errors are the only check possible
    elif header_end < size:
        tail_tags = _check_tail(fp, header_end, ds, size)
    elif ds._dict:
        # pydicom stops silently on a partial element header at the very end: the last element must end exactly
        # where the data does.
        last_end = _check_raw(next(reversed(ds._dict.values())), size)
        if last_end is not None and last_end != size:
            raise _truncated(f"data ends {size - last_end} bytes into an element header", offset=last_end)
    sop_class = UID(str(ds.get("SOPClassUID", "")))
    has_pixels = any(int(t) in _PIXEL_TAGS for t in (*ds._dict, *tail_tags))
    if sop_class.name.endswith("Image Storage") and not has_pixels and not deflated:
        raise _truncated(f"{sop_class.name} instance without pixel data: file cut before (7FE0,0010)")
    return ds


def _check_tail(fp: BytesIO, start: int, ds: Dataset, size: int) -> set[int]:
    """Walk the elements after the header (pixel data, trailing padding) without reading large values."""
    implicit, little = ds.original_encoding
    fp.seek(start)
    end = start
    tags: set[int] = set()
    try:
        for elem in data_element_generator(fp, bool(implicit), bool(little), defer_size=DEFER_SIZE):
            tags.add(int(elem.tag))
            checked = _check_raw(elem, size)
            end = checked if checked is not None else fp.tell()
    except (EOFError, struct.error) as exc:
        raise _truncated(f"pixel data or trailing elements cut short ({type(exc).__name__})") from None
    if end != size:
        raise _truncated(f"data ends {size - end} bytes into an element after offset {end}", offset=end)
    return tags


def _clinical_time(ds: Dataset, assume_tz: tzinfo) -> datetime | None:
    for date_kw, time_kw in (
        ("StudyDate", "StudyTime"),
        ("SeriesDate", "SeriesTime"),
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
    ):
        date = str(ds.get(date_kw, "") or "").strip()
        if len(date) != 8 or not date.isdigit():
            continue
        clock = str(ds.get(time_kw, "") or "").strip().replace(":", "")
        clock_digits = clock.split(".")[0]
        hour, minute, second = (int(clock_digits[i : i + 2] or 0) for i in (0, 2, 4))
        fraction = clock.split(".")[1] if "." in clock else ""
        tz = assume_tz
        offset = str(ds.get("TimezoneOffsetFromUTC", "") or "").strip()  # (0008,0201) "+HHMM"
        if len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
            sign = 1 if offset[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        try:
            moment = datetime(
                int(date[:4]),
                int(date[4:6]),
                int(date[6:8]),
                hour,
                minute,
                second,
                int(fraction[:6].ljust(6, "0")) if fraction.isdigit() else 0,
                tzinfo=tz,
            )
        except ValueError:
            raise IngestError(DICOM_INVALID, f"{date_kw}/{time_kw} is not a valid date/time") from None
        return moment.astimezone(UTC)
    return None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip() if value is not None else ""


def record_from_dataset(
    ds: Dataset, payload: bytes, *, source_system: str = "", assume_tz: tzinfo = UTC
) -> ParsedRecord:
    patient_id = _text(ds, "PatientID")
    if not patient_id:
        raise IngestError(DICOM_MISSING_PATIENT_ID, "Patient ID (0010,0020) is missing or empty")
    sop_instance = _text(ds, "SOPInstanceUID")
    if not sop_instance:
        raise IngestError(DICOM_MISSING_UID, "SOP Instance UID (0008,0018) is missing or empty")
    name = ds.get("PatientName")
    birth = _text(ds, "PatientBirthDate")
    summary = {"sop_class_uid": _text(ds, "SOPClassUID"), "modality": _text(ds, "Modality")}
    for keyword, key in (("StudyInstanceUID", "study_uid"), ("SeriesInstanceUID", "series_uid")):
        if _text(ds, keyword):
            summary[key] = _text(ds, keyword)
    return ParsedRecord(
        patient=PatientIdentity(
            mrn=patient_id,
            assigning_authority=_text(ds, "IssuerOfPatientID"),
            family_name=str(name.family_name) if name else "",
            given_name=" ".join(p for p in (name.given_name, name.middle_name) if p) if name else "",
            birth_date=f"{birth[:4]}-{birth[4:6]}-{birth[6:8]}" if len(birth) == 8 and birth.isdigit() else "",
            sex=_SEX.get(_text(ds, "PatientSex"), ""),
        ),
        record_class=RecordClass.IMAGING,
        type_code=_text(ds, "Modality") or "OT",
        clinical_time=_clinical_time(ds, assume_tz),
        source_system=source_system,
        source_id=sop_instance,
        media_type=MEDIA_DICOM,
        payload=payload,
        summary=summary,
        demographics=from_dicom(ds),
    )


def parse_dicom(data: bytes, *, source_system: str = "", assume_tz: tzinfo = UTC) -> list[ParsedRecord]:
    """One IMAGING record for a DICOM instance; ``assume_tz`` applies when (0008,0201) gives no UTC offset."""
    return [record_from_dataset(read_header(data), data, source_system=source_system, assume_tz=assume_tz)]


def parse_dicom_file(path: str | PathLike[str], *, source_system: str = "", assume_tz: tzinfo = UTC) -> ParsedRecord:
    """Read the file once; the header is parsed from a BytesIO over the same bytes that become the payload."""
    data = Path(path).read_bytes()
    return parse_dicom(data, source_system=source_system, assume_tz=assume_tz)[0]


# --- demographics -------------------------------------------------------------------------------------------


def _values(ds: Dataset, keyword: str) -> list[str]:
    """A possibly multi-valued string element as a list of stripped, non-empty values."""
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    return [text for text in (str(v).strip() for v in items) if text]


def _identifier(item: Dataset, type_code: str = "") -> Identifier | None:
    """PatientID of ``item`` with its issuer: IssuerOfPatientID, refined by the (0010,0024) qualifiers' universal
    entity id and identifier type code when present."""
    universal_id = universal_type = ""
    qualifiers = item.get("IssuerOfPatientIDQualifiersSequence")
    if qualifiers:
        qualifier = qualifiers[0]
        universal_id, universal_type = _text(qualifier, "UniversalEntityID"), _text(qualifier, "UniversalEntityIDType")
        type_code = _text(qualifier, "IdentifierTypeCode") or type_code
    authority = authority_uri(_text(item, "IssuerOfPatientID"), universal_id, universal_type)
    return make_identifier(_text(item, "PatientID"), authority, type_code)


def _names(ds: Dataset) -> tuple[PersonName, ...]:
    """Every component group of PatientName (alphabetic, ideographic, phonetic) is a name: ``Wang^XiaoDong=王^小东``
    gives both the Latin and the Han spelling."""
    names: list[PersonName] = []
    for value in _values(ds, "PatientName"):
        for group in value.split("="):
            parts = group.split("^") + [""] * 3
            name = person_name(parts[0], (parts[1], parts[2]))
            if name is not None:
                names.append(name)
    return tuple(names)


def from_dicom(ds: Dataset) -> Demographics:
    """The demographics of a DICOM data set's patient module: PatientName, PatientID with its issuer (and the
    Other Patient IDs), PatientBirthDate, PatientSex, PatientAddress, Country/RegionOfResidence, telephones."""
    identifiers = [_identifier(ds)]
    identifiers += [_identifier(item) for item in ds.get("OtherPatientIDsSequence") or ()]
    identifiers += [make_identifier(value) for value in _values(ds, "OtherPatientIDs")]  # retired, still sent
    address = Address(
        lines=tuple(_values(ds, "PatientAddress")),
        state=_text(ds, "RegionOfResidence"),
        country=_text(ds, "CountryOfResidence"),
    )
    return Demographics(
        names=_names(ds),
        sex=Sex.from_dicom(_text(ds, "PatientSex")),
        birth_date=parse_birth_date(_text(ds, "PatientBirthDate")),
        identifiers=tuple(i for i in identifiers if i is not None),
        addresses=(address,) if address else (),
        telecoms=tuple(Telecom("phone", number) for number in _values(ds, "PatientTelephoneNumbers")),
    )
