"""Recognise an input's format from its content alone.

File names and declared MIME types are not trusted: senders mislabel files (``.txt`` HL7 exports, DICOM
without an extension), and a wrong guess would route the bytes to a parser that reports a misleading error.
Detection is deliberately cheap (prefix checks, no full parse); each parser then validates completely and
reports its own precise error, so detection only has to be right about *which* parser should judge.
"""

from __future__ import annotations

import re
from enum import StrEnum

from node.ingest.errors import UNKNOWN_FORMAT, IngestError

_BOM = b"\xef\xbb\xbf"
_MLLP_START = b"\x0b"
# A segment id followed by a field separator: enough to say "this is HL7 v2", even if MSH is missing, so the
# HL7 parser can report hl7_missing_msh rather than a vague unknown_format.
_HL7_SEGMENT_START = re.compile(rb"[A-Z][A-Z0-9]{2}[|^~\\&]")
# Explicit-VR value representations (PS3.5 6.2); used to sanity-check a DICOM stream that has no preamble.
_DICOM_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_PREAMBLE_LEN = 128


class Format(StrEnum):
    HL7V2 = "hl7v2"
    DICOM = "dicom"
    FHIR_JSON = "fhir_json"


def strip_text_framing(data: bytes) -> bytes:
    """Drop a UTF-8 BOM, MLLP start byte and leading whitespace (none of which belong to the message)."""
    text = data
    while True:  # MLLP start byte and BOM can come in either order depending on the sending engine
        stripped = text.lstrip(b" \t\r\n")
        stripped = stripped.removeprefix(_BOM).removeprefix(_MLLP_START)
        if stripped == text:
            break
        text = stripped
    return text


def has_dicom_preamble(data: bytes) -> bool:
    return len(data) >= _PREAMBLE_LEN + 4 and data[_PREAMBLE_LEN : _PREAMBLE_LEN + 4] == b"DICM"


def looks_like_raw_dicom(data: bytes) -> bool:
    """A DICOM data set without preamble/meta (old ACR-NEMA style or stripped by a gateway).

    The first element must be a plausible low group (0002 file meta, 0008 identifying) in either byte order,
    followed by either an explicit VR or an implicit-VR 32-bit length that fits in the data. This rejects text
    (HL7, JSON) outright; the DICOM parser still requires the key identifying tags before accepting anything.
    """
    if len(data) < 8:
        return False
    group_le = int.from_bytes(data[0:2], "little")
    group_be = int.from_bytes(data[0:2], "big")
    if group_le not in (0x0002, 0x0008) and group_be not in (0x0002, 0x0008):
        return False
    if data[4:6] in _DICOM_VRS:
        return True
    length = int.from_bytes(data[4:8], "little" if group_le in (0x0002, 0x0008) else "big")
    return length < len(data)


def detect_format(data: bytes) -> Format:
    """The format of ``data``, judged from its bytes. Raises ``IngestError(unknown_format)``."""
    if has_dicom_preamble(data):
        return Format.DICOM
    text = strip_text_framing(data[:4096])
    if text.startswith(b"MSH") or _HL7_SEGMENT_START.match(text):
        return Format.HL7V2
    if text.startswith(b"{"):
        # Cheap containment test instead of a JSON parse: the FHIR parser parses exactly once and reports
        # malformed JSON itself. resourceType is the first key in practice, but JSON objects are unordered.
        if b'"resourceType"' in data:
            return Format.FHIR_JSON
        raise IngestError(UNKNOWN_FORMAT, "JSON object without a resourceType: not a FHIR resource")
    if looks_like_raw_dicom(data):
        return Format.DICOM
    raise IngestError(
        UNKNOWN_FORMAT,
        "unrecognised content: not DICOM (no DICM marker), HL7 v2 (no MSH segment) or FHIR JSON",
        length=len(data),
    )
