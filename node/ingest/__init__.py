"""Ingest: turn clinical inputs (HL7 v2, DICOM, FHIR JSON) into validated canonical records.

``parse`` judges the format from the bytes (never the file name), refuses oversize input before parsing, and
returns every record of the input or raises :class:`IngestError`; it never returns part of an input.

Each record is a :class:`ParsedRecord`: the canonical record plus the patient's :class:`~medledger.demographics.
Demographics`, which every format maps onto the same model (``from_fhir_patient``, ``from_pid``, ``from_dicom``).
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, tzinfo
from os import PathLike
from pathlib import Path

from node.ingest.detect import Format, detect_format
from node.ingest.dicom import from_dicom, parse_dicom, parse_dicom_file
from node.ingest.errors import INGEST_LIMIT_EXCEEDED, INGEST_UNPARSEABLE, PAYLOAD_TOO_LARGE, IngestError
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

log = logging.getLogger(__name__)


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
    if validate not in ("full", "fast"):
        raise ValueError(f"validate must be 'full' or 'fast', not {validate!r}")
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    fmt = detect_format(data)
    try:
        return _parse_as(fmt, data, source_system, validate, fhir_version, assume_tz)
    except IngestError:
        raise
    # The parsers turn every failure they know of into a precise code; these are the last line, so that a
    # library's internal error on a hostile input is a refusal (4xx), never a traceback or a 500. The message
    # names the exception type only: a library's message may quote the input.
    except RecursionError:
        raise IngestError(
            INGEST_LIMIT_EXCEEDED, f"{fmt} input nested too deeply to parse", limit="max_depth", format=str(fmt)
        ) from None
    except MemoryError:
        raise IngestError(
            INGEST_LIMIT_EXCEEDED, f"{fmt} input needs more memory than the node allows", format=str(fmt)
        ) from None
    except Exception as exc:
        # The frames locate the fault for a developer; the exception's message is left out as it may quote PHI.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.warning("ingest: %s parser failed on an input with %s\n%s", fmt, type(exc).__name__, frames)
        raise IngestError(
            INGEST_UNPARSEABLE,
            f"{fmt} parser failed on this input ({type(exc).__name__}); it was refused",
            format=str(fmt),
            exception=type(exc).__name__,
        ) from None


def _parse_as(
    fmt: Format,
    data: bytes,
    source_system: str,
    validate: Validation,
    fhir_version: Version | None,
    assume_tz: tzinfo,
) -> list[ParsedRecord]:
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
        # Sized to the file, not to the limit: read(max_bytes + 1) makes CPython allocate the whole limit
        # (512 MiB by default) and shrink it, ~20% of the read time of a 32 MiB image. Still bounded if the
        # file grows between stat and read: whatever follows is read up to the limit and then refused.
        data = fh.read(size + 1)
        if len(data) > size and len(data) <= max_bytes:  # never read(-1), which would read everything
            data += fh.read(max_bytes + 1 - len(data))
    return parse(
        data,
        source_system=source_system,
        max_bytes=max_bytes,
        validate=validate,
        fhir_version=fhir_version,
        assume_tz=assume_tz,
    )
