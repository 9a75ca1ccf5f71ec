"""HL7 v2 (ER7) messages → canonical records.

Supported: ADT^A01/A04/A08 (demographics), ORU^R01 (lab results), MDM^T02 (clinical notes); one record per message.

Structure is validated here, not by hl7apy: hl7apy silently regroups out-of-order segments and drops Z-segments,
so a message it accepts may not be what the sender meant. We split segments ourselves, check delimiters and the
segment order against the abstract message structure (v2.5.1, Z-segments allowed anywhere after MSH), and use
hl7apy only to read fields of individual segments. Fields are checked against the v2 data types hl7apy defines
for the message's version: no more components than the type has, DTM/DT/TS values that are real dates and times,
OBX-5 against OBX-2 (NM and SN numbers, ED Base64/Hex, DT/DTM), no control characters, and the limits of
:mod:`node.ingest.limits`. The payload is the original bytes exactly as received, including any MLLP framing or
BOM: the ledger commits to what the sender produced.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any

from hl7apy import SUPPORTED_LIBRARIES, load_reference
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_segment

from medledger.demographics import (
    Address,
    Demographics,
    Sex,
    Telecom,
    authority_uri,
    make_identifier,
    parse_birth_date,
    person_name,
)
from medledger.records import MEDIA_HL7V2, PatientIdentity
from medledger.vocabulary import RecordClass
from node.ingest.detect import strip_text_framing
from node.ingest.errors import (
    HL7_BAD_DELIMITERS,
    HL7_INVALID,
    HL7_INVALID_BASE64,
    HL7_INVALID_DATETIME,
    HL7_INVALID_NUMBER,
    HL7_MISSING_MSH,
    HL7_MISSING_PATIENT_ID,
    HL7_SEGMENT_ORDER,
    HL7_TOO_MANY_COMPONENTS,
    HL7_UNSUPPORTED_MESSAGE,
    INGEST_CONTROL_CHARACTER,
    INGEST_LIMIT_EXCEEDED,
    IngestError,
)
from node.ingest.limits import LIMITS
from node.ingest.parsed import ParsedRecord


@dataclass(frozen=True)
class _Structure:
    name: str
    record_class: RecordClass
    order: re.Pattern[str]  # over the concatenated 3-letter segment ids, Z-segments removed
    expected: str  # the order in HL7 notation, for error messages


# Abstract message structures of v2.5.1 (chapters 3, 7, 9), reduced to the segments a sender may use; every
# token is exactly three letters, so matching the concatenated ids with these patterns cannot misalign.
_ADT_A01 = _Structure(
    "ADT_A01",
    RecordClass.DEMOGRAPHICS,
    re.compile(
        r"MSH(SFT)*(UAC)?EVNPID(PD1)?(ROL)*(NK1)*PV1(PV2)?(ROL)*(DB1)*(OBX)*(AL1)*(DG1)*(DRG)?(PR1(ROL)*)*"
        r"(GT1)*(IN1(IN2)?(IN3)*(ROL)*)*(ACC)?(UB1)?(UB2)?(PDA)?"
    ),
    "MSH [SFT] EVN PID [PD1] [NK1] PV1 [PV2] [OBX] [AL1] [DG1] [PR1] [GT1] [IN1 [IN2] [IN3]] ...",
)
_ORU_R01 = _Structure(
    "ORU_R01",
    RecordClass.LAB,
    re.compile(
        r"MSH(SFT)*PID(PD1)?(NTE)*(NK1)*(PV1(PV2)?)?"
        r"((ORC)?OBR(NTE)*(TQ1(TQ2)*)*(CTD)?(OBX(NTE)*)*(FT1)*(CTI)*(SPM(OBX)*)*)+(DSC)?"
    ),
    "MSH [SFT] PID [PD1] [NTE] [NK1] [PV1 [PV2]] {[ORC] OBR [NTE] [TQ1] [CTD] {OBX [NTE]} [SPM]} [DSC]",
)
_MDM_T02 = _Structure(
    "MDM_T02",
    RecordClass.CLINICAL_NOTE,
    re.compile(r"MSH(SFT)*EVNPIDPV1(ORC(TQ1(TQ2)*)*OBR(NTE)*)*(CON)*TXA(OBX(NTE)*)+"),
    "MSH [SFT] EVN PID PV1 [{ORC [TQ1] OBR [NTE]}] [CON] TXA {OBX [NTE]}",
)
_MESSAGES: dict[tuple[str, str], _Structure] = {
    ("ADT", "A01"): _ADT_A01,
    ("ADT", "A04"): _ADT_A01,
    ("ADT", "A08"): _ADT_A01,
    ("ORU", "R01"): _ORU_R01,
    ("MDM", "T02"): _MDM_T02,
}

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_HL7_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?")
# MSH-18 values (HL7 table 0211) → Python codecs; unlisted or absent means UTF-8 (ASCII-compatible).
_CHARSETS = {"ASCII": "ascii", "8859/1": "latin-1", "8859/15": "iso8859-15", "UNICODE UTF-8": "utf-8"}


def _fail(code: str, message: str, **details: Any) -> IngestError:
    return IngestError(code, message, **details)


def parse_hl7_timestamp(value: str, assume_tz: tzinfo = UTC) -> datetime | None:
    """HL7 DTM/TS (``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]``) → aware UTC datetime; no offset means ``assume_tz``."""
    match = _HL7_TS.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int(float(fraction) * 1_000_000) if fraction else 0,
            tzinfo=assume_tz,
        )
    except ValueError:
        return None
    if offset:
        if int(offset[1:3]) > 14 or int(offset[3:5]) > 59:
            return None
        sign = 1 if offset[0] == "+" else -1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:5]))
        moment = moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    return moment.astimezone(UTC)


def _decode(body: bytes) -> str:
    # MSH-18 is itself in the message: find it on the ASCII-compatible first line before choosing the codec.
    first_line = _SEGMENT_SPLIT.split(body.decode("latin-1"), maxsplit=1)[0]
    charset = ""
    if len(first_line) > 3:
        fields = first_line.split(first_line[3])
        if len(fields) > 17:
            charset = fields[17].split(first_line[4] if len(first_line) > 4 else "^")[0].strip()
    codec = _CHARSETS.get(charset.upper(), "utf-8")
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        raise _fail(
            HL7_INVALID, f"message is not valid {codec} (MSH-18 {charset or 'absent'}) at byte {exc.start}"
        ) from None


def _delimiters(msh: str) -> dict[str, str]:
    if len(msh) < 8:
        raise _fail(HL7_BAD_DELIMITERS, "MSH segment too short to hold MSH-1 and MSH-2")
    field_sep = msh[3]
    if field_sep.isalnum() or field_sep.isspace() or not field_sep.isprintable():
        raise _fail(HL7_BAD_DELIMITERS, f"MSH-1 field separator {field_sep!r} must be a printable non-alphanumeric")
    encoding = msh[4:].split(field_sep, 1)[0]
    if len(encoding) not in (4, 5):
        raise _fail(HL7_BAD_DELIMITERS, f"MSH-2 must be 4 encoding characters (5 with truncation), got {len(encoding)}")
    if len(set(encoding)) != len(encoding) or field_sep in encoding:
        raise _fail(
            HL7_BAD_DELIMITERS, f"MSH-2 encoding characters {encoding!r} must be distinct from each other and MSH-1"
        )
    if any(c.isalnum() or c.isspace() or not c.isprintable() for c in encoding):
        raise _fail(HL7_BAD_DELIMITERS, f"MSH-2 encoding characters {encoding!r} must be printable non-alphanumerics")
    return {
        "FIELD": field_sep,
        "COMPONENT": encoding[0],
        "REPETITION": encoding[1],
        "ESCAPE": encoding[2],
        "SUBCOMPONENT": encoding[3],
        "GROUP": "\r",
        "SEGMENT": "\r",
    }


def _field(segment: str, index: int, delims: Mapping[str, str]) -> str:
    """Raw field ``index`` (MSH counts MSH-1 as the separator itself, per the standard)."""
    fields = segment.split(delims["FIELD"])
    position = index - 1 if segment.startswith("MSH") else index
    return fields[position] if position < len(fields) else ""


def _component(value: str, index: int, delims: dict[str, str]) -> str:
    first_repetition = value.split(delims["REPETITION"], 1)[0]
    components = first_repetition.split(delims["COMPONENT"])
    return components[index - 1] if index - 1 < len(components) else ""


def parse_hl7(data: bytes, *, source_system: str = "", assume_tz: tzinfo = UTC) -> list[ParsedRecord]:
    """Parse one HL7 v2 message (optionally MLLP-framed) into one canonical record."""
    body = strip_text_framing(data).rstrip(b" \t\r\n")
    if body.endswith(b"\x1c"):
        body = body[:-1].rstrip(b" \t\r\n")
    text = _decode(body)
    segments = [s for s in _SEGMENT_SPLIT.split(text) if s.strip()]
    if len(segments) > LIMITS.max_segments:
        raise _fail(
            INGEST_LIMIT_EXCEEDED,
            f"message has {len(segments)} segments, more than {LIMITS.max_segments} (limit max_segments)",
            limit="max_segments",
        )
    if _CONTROL.search(text):
        _raise_control(segments)
    if not segments or not segments[0].startswith("MSH"):
        found = segments[0][:3] if segments else "nothing"
        raise _fail(HL7_MISSING_MSH, f"message must start with an MSH segment, found {found!r}")
    delims = _delimiters(segments[0])
    ids: list[str] = []
    for number, segment in enumerate(segments, start=1):
        seg_id = segment[:3]
        if not _SEGMENT_ID.fullmatch(seg_id) or (len(segment) > 3 and segment[3] != delims["FIELD"]):
            raise _fail(HL7_INVALID, f"segment {number}: invalid segment id or missing field separator", segment=number)
        ids.append(seg_id)
    if "MSH" in ids[1:]:
        raise _fail(HL7_INVALID, "more than one MSH segment: batches must be split before ingest")
    _check_limits(segments, delims)

    msh = segments[0]
    message_type = _field(msh, 9, delims)
    msg_code, event = _component(message_type, 1, delims), _component(message_type, 2, delims)
    structure = _MESSAGES.get((msg_code, event))
    if structure is None:
        raise _fail(
            HL7_UNSUPPORTED_MESSAGE,
            f"message type {msg_code}^{event} is not ingested; supported: ADT^A01/A04/A08, ORU^R01, MDM^T02",
            message_type=f"{msg_code}^{event}",
        )
    declared = _component(message_type, 3, delims)
    if declared and declared != structure.name:
        raise _fail(
            HL7_UNSUPPORTED_MESSAGE,
            f"MSH-9.3 structure {declared} does not match {msg_code}^{event} ({structure.name})",
        )
    version = _component(_field(msh, 12, delims), 1, delims)
    if version not in SUPPORTED_LIBRARIES:
        raise _fail(HL7_UNSUPPORTED_MESSAGE, f"MSH-12 version {version!r} is not a supported HL7 v2 version")
    control_id = _field(msh, 10, delims).strip()
    if not control_id:
        raise _fail(HL7_INVALID, "MSH-10 message control id is empty: it is needed to identify the message")

    if ids.count("PID") == 0:
        raise _fail(HL7_MISSING_PATIENT_ID, f"{msg_code}^{event} has no PID segment")
    if ids.count("PID") > 1:
        raise _fail(HL7_UNSUPPORTED_MESSAGE, "message holds more than one PID (several patients): split it first")
    standard_ids = [i for i in ids if not i.startswith("Z")]
    if structure.order.fullmatch("".join(standard_ids)) is None:
        raise _fail(
            HL7_SEGMENT_ORDER,
            f"{msg_code}^{event} segments out of order or missing: got {' '.join(standard_ids)}; "
            f"expected {structure.expected}",
            segments=standard_ids,
        )

    _check_fields(segments, ids, delims, version)
    parsed = _Parsed(segments, ids, delims, version)
    patient = _patient(parsed)
    sending_app = _component(_field(msh, 3, delims), 1, delims)
    sending_facility = _component(_field(msh, 4, delims), 1, delims)
    message_time = _field(msh, 7, delims)
    type_code = f"{msg_code}^{event}"
    summary = {"message_type": f"{msg_code}^{event}", "hl7_version": version}
    times: list[str] = []
    if structure is _ORU_R01:
        obr = parsed.get("OBR")
        code = _component(_field(obr, 4, delims), 1, delims)
        if code:
            type_code = code
            summary["obr4"] = code
        times = [_field(obr, 7, delims)] + [_field(s, 14, delims) for s in parsed.all("OBX")]
    elif structure is _MDM_T02:
        txa = parsed.get("TXA")
        doc_type = _component(_field(txa, 2, delims), 1, delims)
        if doc_type:
            type_code = doc_type
            summary["document_type"] = doc_type
        times = [_field(txa, 4, delims), _field(txa, 6, delims)]
    else:
        evn = parsed.get("EVN")
        times = [_field(evn, 6, delims), _field(evn, 2, delims)]
    clinical_time = None
    for candidate in [*times, message_time]:
        if candidate.strip():
            clinical_time = parse_hl7_timestamp(_component(candidate, 1, delims), assume_tz)
            if clinical_time is None:
                raise _fail(
                    HL7_INVALID_DATETIME,
                    "invalid HL7 timestamp in a date/time field (expected YYYYMMDD[HHMM[SS]][+ZZZZ])",
                )
            break
    return [
        ParsedRecord(
            patient=patient,
            record_class=structure.record_class,
            type_code=type_code,
            clinical_time=clinical_time,
            source_system=source_system,
            source_id=f"{sending_app}|{sending_facility}|{control_id}",
            media_type=MEDIA_HL7V2,
            payload=data,
            summary=summary,
            demographics=from_pid(parsed.get("PID"), delims),
        )
    ]


# --- field validation ---------------------------------------------------------------------------------------

# C0 controls but CR and LF (the segment separators, already split on) and tab; DEL; C1 controls. NUL ends C
# strings in downstream tools, ESC drives terminals and BEL rings them: none belongs in a clinical value.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")
_NM = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_DT = re.compile(r"(\d{4})((\d{2})(\d{2})?)?")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX = re.compile(r"([0-9A-Fa-f]{2})*")
_SN_COMPARATORS = frozenset({"", ">", "<", ">=", "<=", "=", "<>"})
_SN_SEPARATORS = frozenset({"", "-", "+", "/", ".", ":"})
_HL7_NULL = '""'


def _location(segment: str, number: int, index: int) -> str:
    return f"segment {number} ({segment[:3]}) field {segment[:3]}-{index}"


def _raise_control(segments: list[str]) -> None:
    for number, segment in enumerate(segments, start=1):
        match = _CONTROL.search(segment)
        if match is not None:
            index = segment.count(segment[3] if len(segment) > 3 else "|", 0, match.start())
            index += 1 if segment.startswith("MSH") else 0
            raise _fail(
                INGEST_CONTROL_CHARACTER,
                f"{_location(segment, number, index)}: control character U+{ord(match.group()):04X} in a value",
                segment=number,
                field=f"{segment[:3]}-{index}",
            )


def _fields(segment: str, delims: Mapping[str, str]) -> list[str]:
    """Fields by HL7 number: ``fields[n]`` is SEG-n (for MSH, MSH-1 is the separator itself)."""
    fields = segment.split(delims["FIELD"])
    if segment.startswith("MSH"):
        fields.insert(1, delims["FIELD"])
    return fields


def _check_limits(segments: list[str], delims: Mapping[str, str]) -> None:
    rep = delims["REPETITION"]
    for number, segment in enumerate(segments, start=1):
        fields = _fields(segment, delims)
        if len(fields) - 1 > LIMITS.max_fields:
            raise _fail(
                INGEST_LIMIT_EXCEEDED,
                f"segment {number} ({segment[:3]}) has {len(fields) - 1} fields, more than {LIMITS.max_fields} "
                "(limit max_fields)",
                segment=number,
                limit="max_fields",
            )
        for index, value in enumerate(
            fields[3:] if segment.startswith("MSH") else fields[1:], start=3 if segment.startswith("MSH") else 1
        ):
            if len(value) > LIMITS.max_base64_length or (
                len(value) > LIMITS.max_string_length and not segment.startswith("OBX")
            ):
                raise _fail(
                    INGEST_LIMIT_EXCEEDED,
                    f"{_location(segment, number, index)}: {len(value)} characters (limit max_string_length)",
                    segment=number,
                    field=f"{segment[:3]}-{index}",
                    limit="max_string_length",
                )
            if value.count(rep) >= LIMITS.max_repetitions:
                raise _fail(
                    INGEST_LIMIT_EXCEEDED,
                    f"{_location(segment, number, index)}: {value.count(rep) + 1} repetitions, more than "
                    f"{LIMITS.max_repetitions} (limit max_repetitions)",
                    segment=number,
                    field=f"{segment[:3]}-{index}",
                    limit="max_repetitions",
                )


@lru_cache(maxsize=512)
def _profile(seg_id: str, version: str) -> tuple[tuple[int, str], ...] | None:
    """(components, data type) of each field of a standard segment in ``version``, or None (Z- or unknown)."""
    try:
        reference = load_reference(seg_id, "Segment", version)
    except Exception:  # hl7apy raises ChildNotFound and others for segments it does not define
        return None
    out = []
    for _name, definition, *_rest in reference[1]:
        if definition[0] == "leaf":
            out.append((1, str(definition[2])))
        else:
            out.append((len(definition[1]), str(definition[2])))
    return tuple(out)


def _valid_dt(value: str) -> bool:
    match = _DT.fullmatch(value)
    if match is None:
        return False
    try:
        datetime(int(match.group(1)), int(match.group(3) or 1), int(match.group(4) or 1))
    except ValueError:
        return False
    return True


def _check_datetime(value: str, datatype: str, where: str, number: int, field: str) -> None:
    if not value or value == _HL7_NULL:
        return
    ok = _valid_dt(value) if datatype == "DT" else parse_hl7_timestamp(value) is not None
    if not ok:
        raise _fail(
            HL7_INVALID_DATETIME,
            f"{where}: not a valid HL7 {datatype} (a real date and time, YYYY[MM[DD[HH[MM[SS]]]]][+ZZZZ])",
            segment=number,
            field=field,
        )


def _check_fields(segments: list[str], ids: list[str], delims: Mapping[str, str], version: str) -> None:
    """Components per field against the data type, date/time fields, and OBX-5 against OBX-2."""
    comp, rep = delims["COMPONENT"], delims["REPETITION"]
    for number, (segment, seg_id) in enumerate(zip(segments, ids, strict=True), start=1):
        profile = _profile(seg_id, version)
        if profile is None:
            continue
        fields = _fields(segment, delims)
        first = 3 if seg_id == "MSH" else 1  # MSH-1 and MSH-2 hold the delimiters themselves
        for index in range(first, min(len(fields), len(profile) + 1)):
            value = fields[index]
            if not value:
                continue
            components, datatype = profile[index - 1]
            if datatype == "varies":
                continue
            field = f"{seg_id}-{index}"
            for repetition in value.split(rep):
                parts = repetition.split(comp)
                used = len(parts)
                while used > 1 and not parts[used - 1]:
                    used -= 1
                if used > components:
                    raise _fail(
                        HL7_TOO_MANY_COMPONENTS,
                        f"{_location(segment, number, index)}: {used} components, data type {datatype} has "
                        f"{components}",
                        segment=number,
                        field=field,
                    )
                if datatype in ("TS", "DTM", "DT"):
                    _check_datetime(
                        parts[0], "DT" if datatype == "DT" else "DTM", _location(segment, number, index), number, field
                    )
        if seg_id == "OBX":
            _check_obx(segment, fields, number, delims)


def _check_obx(segment: str, fields: list[str], number: int, delims: Mapping[str, str]) -> None:
    value_type = fields[2].split(delims["COMPONENT"])[0].strip() if len(fields) > 2 else ""
    if len(fields) <= 5 or not fields[5]:
        return
    where = _location(segment, number, 5)
    for repetition in fields[5].split(delims["REPETITION"]):
        if not repetition or repetition == _HL7_NULL:
            continue
        parts = repetition.split(delims["COMPONENT"])
        if value_type == "NM":
            if len(parts) > 1 or _NM.fullmatch(repetition.strip()) is None:
                raise _fail(
                    HL7_INVALID_NUMBER,
                    f"{where}: OBX-2 is NM but the value is not a number",
                    segment=number,
                    field="OBX-5",
                )
        elif value_type == "SN":
            parts += [""] * 4
            if (
                parts[0] not in _SN_COMPARATORS
                or parts[2] not in _SN_SEPARATORS
                or any(p and _NM.fullmatch(p) is None for p in (parts[1], parts[3]))
                or len([p for p in parts[4:] if p])
            ):
                raise _fail(
                    HL7_INVALID_NUMBER,
                    f"{where}: OBX-2 is SN but the value is not a structured numeric",
                    segment=number,
                    field="OBX-5",
                )
        elif value_type in ("DT", "DTM", "TS"):
            _check_datetime(parts[0], "DT" if value_type == "DT" else "DTM", where, number, "OBX-5")
        elif value_type == "ED":
            encoding = parts[3].strip() if len(parts) > 3 else ""
            data = parts[4] if len(parts) > 4 else ""
            if encoding.upper() == "BASE64":
                if len(data) % 4 or _BASE64.fullmatch(data) is None:
                    raise _fail(
                        HL7_INVALID_BASE64,
                        f"{where}: ED declares Base64 but the data is not Base64",
                        segment=number,
                        field="OBX-5",
                    )
                try:
                    binascii.a2b_base64(data)
                except binascii.Error:
                    raise _fail(
                        HL7_INVALID_BASE64,
                        f"{where}: ED declares Base64 but the data is not Base64",
                        segment=number,
                        field="OBX-5",
                    ) from None
            elif encoding.upper() == "HEX" and _HEX.fullmatch(data) is None:
                raise _fail(
                    HL7_INVALID_BASE64,
                    f"{where}: ED declares Hex but the data is not hexadecimal",
                    segment=number,
                    field="OBX-5",
                )


@dataclass
class _Parsed:
    segments: list[str]
    ids: list[str]
    delims: dict[str, str]
    version: str

    def get(self, seg_id: str) -> str:
        return self.segments[self.ids.index(seg_id)]

    def all(self, seg_id: str) -> list[str]:
        return [s for s, i in zip(self.segments, self.ids, strict=True) if i == seg_id]

    def hl7apy_segment(self, seg_id: str) -> Any:
        """Parse one segment with hl7apy for typed field access (it validates field structure as it goes)."""
        try:
            return parse_segment(self.get(seg_id), version=self.version, encoding_chars=self.delims)
        except HL7apyException as exc:
            raise _fail(HL7_INVALID, f"{seg_id} segment rejected by hl7apy: {type(exc).__name__}") from None


def _patient(parsed: _Parsed) -> PatientIdentity:
    pid = parsed.hl7apy_segment("PID")
    chosen = None
    for repetition in pid.pid_3:
        if not repetition.cx_1.to_er7().strip():
            continue
        if repetition.cx_5.to_er7() == "MR":
            chosen = repetition
            break
        chosen = chosen or repetition
    if chosen is None:
        raise _fail(HL7_MISSING_PATIENT_ID, "PID-3 patient identifier list has no identifier (MRN) value")
    authority_hd = chosen.cx_4
    authority = authority_hd.hd_1.to_er7() or authority_hd.hd_2.to_er7()
    name = pid.pid_5[0] if pid.pid_5 else None
    family = given = ""
    if name is not None:
        family = name.xpn_1.fn_1.to_er7() if name.xpn_1.children else ""
        given = " ".join(p for p in (name.xpn_2.to_er7(), name.xpn_3.to_er7()) if p)
    birth = pid.pid_7.to_er7()[:8] if pid.pid_7 else ""
    birth_iso = "-".join(p for p in (birth[:4], birth[4:6], birth[6:8]) if p)
    return PatientIdentity(
        mrn=_unescape(chosen.cx_1.to_er7(), parsed.delims),
        assigning_authority=_unescape(authority, parsed.delims),
        family_name=_unescape(family, parsed.delims),
        given_name=_unescape(given, parsed.delims),
        birth_date=birth_iso,
        sex=pid.pid_8.to_er7() if pid.pid_8 else "",
    )


def _unescape(value: str, delims: Mapping[str, str]) -> str:
    esc = delims["ESCAPE"]
    if esc not in value:
        return value
    table = {
        "F": delims["FIELD"],
        "S": delims["COMPONENT"],
        "R": delims["REPETITION"],
        "E": esc,
        "T": delims["SUBCOMPONENT"],
    }
    return re.sub(re.escape(esc) + r"([FSRET])" + re.escape(esc), lambda m: table[m.group(1)], value)


# --- demographics -------------------------------------------------------------------------------------------

#: The delimiters of a message whose MSH-1/MSH-2 are the recommended ``|^~\\&``.
STANDARD_DELIMITERS = {"FIELD": "|", "COMPONENT": "^", "REPETITION": "~", "ESCAPE": "\\", "SUBCOMPONENT": "&"}
# XAD-7 address type (table 0190) → FHIR address-use.
_ADDRESS_USE = {"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "old"}
# XTN-2 use (table 0201) and XTN-3 equipment (table 0202) → FHIR ContactPoint, after the v2-to-FHIR XTN map.
_TELECOM_USE = {"PRN": "home", "ORN": "home", "VHN": "temp", "WPN": "work"}
_TELECOM_SYSTEM = {
    "PH": "phone",
    "CP": "phone",
    "SAT": "phone",
    "FX": "fax",
    "BP": "pager",
    "INTERNET": "email",
    "X.400": "email",
    "MD": "other",
    "TDD": "other",
    "TTY": "other",
}


class _Field:
    """One field of a segment split into repetitions, components and subcomponents, unescaped on access."""

    def __init__(self, raw: str, delims: Mapping[str, str]) -> None:
        self.delims = delims
        self.repetitions = [r.split(delims["COMPONENT"]) for r in raw.split(delims["REPETITION"])] if raw else []

    def get(self, repetition: list[str], component: int, subcomponent: int = 1) -> str:
        value = repetition[component - 1] if component <= len(repetition) else ""
        parts = value.split(self.delims["SUBCOMPONENT"])
        value = parts[subcomponent - 1] if subcomponent <= len(parts) else ""
        return _unescape(value, self.delims).strip()


def _xtn(field: _Field, rep: list[str], default_use: str) -> Telecom | None:
    """One XTN: the address from XTN-4 (e-mail) or the number from XTN-12 (unformatted), XTN-1 (the formatted
    number of older versions) or XTN-5/6/7 (country, area, local)."""
    use_code, equipment = field.get(rep, 2), field.get(rep, 3).upper()
    system = "email" if use_code == "NET" else _TELECOM_SYSTEM.get(equipment, "pager" if use_code == "BPN" else "")
    if system == "email":
        value = field.get(rep, 4) or field.get(rep, 1)
    else:
        country = field.get(rep, 5)
        parts = ("+" + country if country else "", field.get(rep, 6), field.get(rep, 7))
        value = field.get(rep, 12) or field.get(rep, 1) or " ".join(p for p in parts if p)
        system = system or "phone"
    if not value:
        return None
    # PID-13 holds home and PID-14 business numbers unless XTN-2 names another use (NET, BPN name none).
    use = "mobile" if equipment == "CP" else _TELECOM_USE.get(use_code, default_use)
    return Telecom(system, value, use)


def from_pid(segment: str, delims: Mapping[str, str] | None = None) -> Demographics:
    """The demographics of one PID segment (text, as decoded from the message; ``delims`` as MSH-1/MSH-2 define,
    the standard ones if omitted): PID-3 identifiers, PID-5 names, PID-7 birth date, PID-8 sex, PID-11 addresses,
    PID-13/14 home and business telecoms."""
    delims = delims or STANDARD_DELIMITERS

    def field(index: int) -> _Field:
        return _Field(_field(segment, index, delims), delims)

    identifiers = []
    pid3 = field(3)
    for rep in pid3.repetitions:
        authority = authority_uri(pid3.get(rep, 4, 1), pid3.get(rep, 4, 2), pid3.get(rep, 4, 3))
        identifier = make_identifier(pid3.get(rep, 1), authority, pid3.get(rep, 5))
        if identifier is not None:
            identifiers.append(identifier)
    pid5 = field(5)
    names = (person_name(pid5.get(r, 1), (pid5.get(r, 2), pid5.get(r, 3))) for r in pid5.repetitions)
    pid7, pid8, pid11 = field(7), field(8), field(11)
    birth = pid7.get(pid7.repetitions[0], 1) if pid7.repetitions else ""
    sex = pid8.get(pid8.repetitions[0], 1) if pid8.repetitions else ""
    addresses = (
        Address(
            lines=tuple(line for line in (pid11.get(r, 1), pid11.get(r, 2)) if line),
            city=pid11.get(r, 3),
            district=pid11.get(r, 9),
            state=pid11.get(r, 4),
            postal_code=pid11.get(r, 5),
            country=pid11.get(r, 6),
            use=_ADDRESS_USE.get(pid11.get(r, 7), ""),
        )
        for r in pid11.repetitions
    )
    telecoms = []
    for index, default_use in ((13, "home"), (14, "work")):
        xtn = field(index)
        telecoms += [t for t in (_xtn(xtn, r, default_use) for r in xtn.repetitions) if t is not None]
    return Demographics(
        names=tuple(n for n in names if n is not None),
        sex=Sex.from_hl7(sex),
        birth_date=parse_birth_date(birth),
        identifiers=tuple(identifiers),
        addresses=tuple(a for a in addresses if a),
        telecoms=tuple(telecoms),
    )
