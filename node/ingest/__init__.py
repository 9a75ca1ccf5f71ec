"""Ingest: turn clinical inputs (HL7 v2, DICOM, FHIR JSON) into validated canonical records.

``parse`` judges the format from the bytes (never the file name), refuses oversize input before parsing, and
returns every record of the input or raises :class:`IngestError`; it never returns part of an input.

Each record is a :class:`ParsedRecord`: the canonical record plus the patient's :class:`~medledger.demographics.
Demographics`, which every format maps onto the same model (``from_fhir_patient``, ``from_pid``, ``from_dicom``).
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from os import PathLike
from pathlib import Path

from node.ingest.detect import Format, detect_format
from node.ingest.dicom import from_dicom, parse_dicom, parse_dicom_file
from node.ingest.errors import PAYLOAD_TOO_LARGE, IngestError
from node.ingest.fhir import Validation, Version, from_fhir_patient, parse_fhir
from node.ingest.hl7 import from_pid, parse_hl7
from node.ingest.parsed import ParsedRecord

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Format",
    "IngestError",
    "ParsedRecord",
    "detect_format",
    "from_dicom",
    "from_fhir_patient",
    "from_pid",
    "parse",
    "parse_dicom",
    "parse_dicom_file",
    "parse_fhir",
    "parse_file",
    "parse_hl7",
]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _too_large(size: int, max_bytes: int) -> IngestError:
    return IngestError(
        PAYLOAD_TOO_LARGE, f"input is {size} bytes, limit is {max_bytes}", size=size, max_bytes=max_bytes
    )


def parse(
    data: bytes,
    *,
    source_system: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    validate: Validation = "full",
    fhir_version: Version | None = None,
    assume_tz: tzinfo = UTC,
) -> list[ParsedRecord]:
    """Detect the format of ``data`` and parse it into canonical records (all of them, or an IngestError).

    ``validate`` and ``fhir_version`` apply to FHIR only (see :mod:`node.ingest.fhir`); ``assume_tz`` is the zone
    of source times that carry no UTC offset (HL7 timestamps, DICOM dates without (0008,0201), FHIR dates).
    """
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    fmt = detect_format(data)
    if fmt is Format.DICOM:
        return parse_dicom(data, source_system=source_system, assume_tz=assume_tz)
    if fmt is Format.HL7V2:
        return parse_hl7(data, source_system=source_system, assume_tz=assume_tz)
    return parse_fhir(
        data, source_system=source_system, validate=validate, fhir_version=fhir_version, assume_tz=assume_tz
    )


def parse_file(
    path: str | PathLike[str],
    *,
    source_system: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    validate: Validation = "full",
    fhir_version: Version | None = None,
    assume_tz: tzinfo = UTC,
) -> list[ParsedRecord]:
    """``parse`` for a file: the size is checked from the file system before reading, and the file is read once
    (for DICOM the header is parsed from a BytesIO over those same bytes, which become the payload)."""
    file = Path(path)
    size = file.stat().st_size
    if size > max_bytes:
        raise _too_large(size, max_bytes)
    with file.open("rb") as fh:
        data = fh.read(max_bytes + 1)  # bounded even if the file grows between stat and read
    return parse(
        data,
        source_system=source_system,
        max_bytes=max_bytes,
        validate=validate,
        fhir_version=fhir_version,
        assume_tz=assume_tz,
    )
