"""DICOM Part 10 files (and preamble-less data sets) → one IMAGING canonical record per SOP instance.

Only the header is parsed (``stop_before_pixels``, large values deferred), over a BytesIO on the very bytes that
become the payload, so a large study is read from disk once and never copied into a second buffer. pydicom
silently returns a partial data set for a truncated file, so completeness is checked explicitly: every element
value (header and the pixel data / trailing elements after it) must lie within the data, the data must end on an
element boundary, and image storage SOP classes must carry pixel data. Beyond completeness every element is
walked once (:func:`_check_stream`): tags ascend and none repeats, VRs are DICOM VRs, UIDs follow the UI grammar,
DA/TM/DT values are real dates and times, sequences stay within the nesting and item limits; the transfer syntax
must be known, a deflated data set is inflated within the size and ratio limits before pydicom sees it, and Pixel
Data must match the matrix the header declares (:func:`_check_pixels`).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from io import BytesIO
from os import PathLike
from pathlib import Path
from typing import Any

import pydicom
import pydicom.uid
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import _read_file_meta_info, data_element_generator, read_sequence
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
    DICOM_DUPLICATE_TAG,
    DICOM_INVALID,
    DICOM_INVALID_DATETIME,
    DICOM_INVALID_UID,
    DICOM_INVALID_VR,
    DICOM_MISSING_PATIENT_ID,
    DICOM_MISSING_UID,
    DICOM_NOT_DICOM,
    DICOM_PIXEL_DATA_INVALID,
    DICOM_PIXEL_DATA_SHORT,
    DICOM_TRUNCATED,
    DICOM_UNKNOWN_TRANSFER_SYNTAX,
    INGEST_DECOMPRESSION_BOMB,
    INGEST_LIMIT_EXCEEDED,
    IngestError,
)
from node.ingest.limits import LIMITS
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


# Value representations of PS3.5 6.2 (explicit-VR streams must use one of these; pydicom fails on others later).
_VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()  # noqa: SIM905
)
# PS3.5 9.1: components of digits, no leading zero but "0" itself, separated by dots; at most 64 characters.
_UID = re.compile(rb"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_DA = re.compile(rb"(\d{4})(\d{2})(\d{2})")
_TM = re.compile(rb"([01]\d|2[0-3])(:?[0-5]\d(:?([0-5]\d|60)(\.\d{1,6})?)?)?")
_DT = re.compile(
    rb"(\d{4})((0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])(([01]\d|2[0-3])([0-5]\d(([0-5]\d|60)(\.\d{1,6})?)?)?)?)?)?"
    rb"([+-]((0\d|1[0-3])[0-5]\d|1400))?"
)
_KNOWN_SYNTAXES = frozenset(str(uid) for uid in pydicom.uid.AllTransferSyntaxes) | frozenset(
    str(uid) for uid in pydicom.uid.PrivateTransferSyntaxes
)
_JPEG_SYNTAXES = frozenset(str(uid) for uid in (*pydicom.uid.JPEGTransferSyntaxes, *pydicom.uid.JPEGLSTransferSyntaxes))
_J2K_SYNTAXES = frozenset(str(uid) for uid in (*pydicom.uid.JPEG2000TransferSyntaxes, *pydicom.uid.HTJ2K))
_RLE_SYNTAXES = frozenset(str(uid) for uid in pydicom.uid.RLETransferSyntaxes)
_VIDEO_SYNTAXES = frozenset(str(uid) for uid in pydicom.uid.MPEGTransferSyntaxes)
_ITEM, _SEQ_DELIMITER = 0xFFFEE000, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_INFLATE_CHUNK = 1 << 20
# A stream this small may compress at any ratio (a blank header); the ratio limit applies beyond it.
_RATIO_FLOOR = 8 << 20


def _tag_text(tag: int) -> str:
    return f"{tag >> 16:04X},{tag & 0xFFFF:04X}"


def _limit_depth() -> IngestError:
    return IngestError(
        INGEST_LIMIT_EXCEEDED, f"sequences nested too deeply (limit max_depth {LIMITS.max_depth})", limit="max_depth"
    )


@dataclass(slots=True)
class _PixelElement:
    offset: int  # where its value starts in the stream
    length: int  # _UNDEFINED_LENGTH for encapsulated pixel data


def _file_meta(data: bytes, preamble: bool) -> tuple[int, str] | None:
    """(offset where the data set starts, Transfer Syntax UID) from the file meta; None if there is none or
    pydicom cannot read it (dcmread then reports the precise failure)."""
    if not preamble and data[:2] != b"\x02\x00":
        return None
    fp = BytesIO(data)
    fp.seek(132 if preamble else 0)
    try:
        meta = _read_file_meta_info(fp)
        # Inside the try: pydicom decodes the element here, and an unknown VR raises only now.
        syntax = str(meta.get("TransferSyntaxUID", "") or "").rstrip("\0 ")
    except Exception:  # the same bytes go to dcmread next, which classifies the failure
        return None
    return fp.tell(), syntax


def _inflate(data: bytes, start: int) -> bytes:
    """Inflate a Deflated Explicit VR Little Endian data set within the size and ratio limits (pydicom inflates
    it whole, into memory, before reading a single element, so a bomb must be stopped before dcmread)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    compressed = memoryview(data)[start:]
    chunks: list[bytes] = []
    produced = 0
    pending: bytes | memoryview = compressed
    try:
        while pending:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            produced += len(chunk)
            chunks.append(chunk)
            consumed = len(compressed) - len(inflater.unconsumed_tail)
            if produced > LIMITS.max_decompressed_bytes:
                raise IngestError(
                    INGEST_DECOMPRESSION_BOMB,
                    f"deflated data set inflates beyond {LIMITS.max_decompressed_bytes} bytes "
                    "(limit max_decompressed_bytes)",
                    limit="max_decompressed_bytes",
                )
            if produced > _RATIO_FLOOR and produced > LIMITS.max_compression_ratio * max(consumed, 1):
                raise IngestError(
                    INGEST_DECOMPRESSION_BOMB,
                    f"deflated data set inflates more than {LIMITS.max_compression_ratio}x "
                    "(limit max_compression_ratio)",
                    limit="max_compression_ratio",
                )
            # Past the end of the deflate stream decompress() returns nothing and keeps unconsumed_tail as it
            # was: stop at eof (bytes after the stream are ignored, as pydicom's one-shot inflate does) and on any
            # call that makes no progress, or a stream ending early with bytes after it would loop forever.
            if inflater.eof or not chunk:
                break
            pending = inflater.unconsumed_tail
        else:
            chunks.append(inflater.flush())
    except zlib.error:
        raise IngestError(DICOM_INVALID, "deflated data set is not a valid deflate stream") from None
    return b"".join(chunks)


def read_header(data: bytes) -> Dataset:
    """Parse and check the DICOM header of ``data`` (bytes of a whole file or data set): complete, within the
    limits, a known transfer syntax, valid VRs, UIDs and dates, no repeated tag, pixel data matching the matrix."""
    preamble = has_dicom_preamble(data)
    if not preamble and not looks_like_raw_dicom(data):
        raise IngestError(DICOM_NOT_DICOM, "not DICOM: no 'DICM' marker at offset 128 and no DICOM data set start")
    meta = _file_meta(data, preamble)
    syntax = meta[1] if meta else ""
    if syntax:
        _check_uid(syntax.encode(), 0x00020010)
        if syntax not in _KNOWN_SYNTAXES:
            raise IngestError(
                DICOM_UNKNOWN_TRANSFER_SYNTAX,
                "Transfer Syntax UID (0002,0010) names no known transfer syntax",
                tag="0002,0010",
            )
    inflated = _inflate(data, meta[0]) if meta and syntax == pydicom.uid.DeflatedExplicitVRLittleEndian else None
    fp = BytesIO(data)
    try:
        # force only for preamble-less data: with force pydicom "reads" arbitrary bytes, so that path must
        # additionally prove itself DICOM by the identifying tags checked below.
        ds = pydicom.dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE, force=not preamble)
    except InvalidDicomError as exc:
        raise IngestError(DICOM_NOT_DICOM, f"not DICOM: {exc}") from None
    except (EOFError, struct.error) as exc:
        raise _truncated(f"DICOM header ends mid-element ({type(exc).__name__})") from None
    except RecursionError:
        raise _limit_depth() from None
    except OSError:  # pydicom's "No tag to read": an item's elements do not parse (bad VR or length inside it)
        raise IngestError(DICOM_INVALID, "a sequence item is malformed (an element inside it does not parse)") from None
    except NotImplementedError as exc:
        raise IngestError(DICOM_INVALID_VR, f"unreadable DICOM header: {type(exc).__name__}") from None
    except BytesLengthException:  # a value's length is not a multiple of its VR's item size
        raise _truncated("an element's length does not fit its value representation") from None
    except zlib.error:  # pydicom's own inflate of a deflated data set cut short
        raise _truncated("the deflated data set ends inside its deflate stream") from None
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise IngestError(DICOM_INVALID, f"unreadable DICOM header: {type(exc).__name__}") from None
    if preamble and not getattr(ds, "file_meta", None):
        raise _truncated("file meta information is missing or cut short")
    if not preamble and "SOPClassUID" not in ds and "SOPInstanceUID" not in ds:
        raise IngestError(DICOM_NOT_DICOM, "not DICOM: no preamble and no SOP Class/Instance UID")
    if preamble and not ds._dict:
        raise _truncated("file meta information present but no data set follows it")

    implicit, little = ds.original_encoding
    start = meta[0] if meta else (132 if preamble else 0)
    stream, start = (inflated, 0) if inflated is not None else (data, start)
    for elem in getattr(ds, "file_meta", Dataset())._dict.values():
        _check_element(elem, 0)
    tags, pixel = _check_stream(stream, start, bool(implicit), bool(little))
    sop_class = UID(str(ds.get("SOPClassUID", "")))
    if sop_class.name.endswith("Image Storage") and not tags.intersection(_PIXEL_TAGS):
        raise _truncated(f"{sop_class.name} instance without pixel data: file cut before (7FE0,0010)")
    if pixel is not None:
        _check_pixels(ds, pixel, syntax, stream)
    return ds


def _check_stream(stream: bytes, start: int, implicit: bool, little: bool) -> tuple[set[int], _PixelElement | None]:
    """Walk every top-level element from ``start`` to the end without reading large values: each must lie within
    the data, the data must end on an element boundary, tags must ascend (a repeated tag is how a second,
    conflicting PatientID is smuggled past a reader that keeps the first or the last), and each element's VR and
    value must be valid (:func:`_check_element`, nested sequences included)."""
    size = len(stream)
    fp = BytesIO(stream)
    fp.seek(start)
    end = start
    tags: set[int] = set()
    previous = -1
    pixel: _PixelElement | None = None
    try:
        for elem in data_element_generator(fp, implicit, little, defer_size=DEFER_SIZE):
            tag = int(elem.tag)
            if tag == previous:
                raise IngestError(
                    DICOM_DUPLICATE_TAG, f"element ({_tag_text(tag)}) appears twice in the data set", tag=_tag_text(tag)
                )
            if tag < previous:
                raise IngestError(
                    DICOM_INVALID,
                    f"element ({_tag_text(tag)}) follows ({_tag_text(previous)}): tags must ascend",
                    tag=_tag_text(tag),
                )
            previous = tag
            tags.add(tag)
            checked = _check_raw(elem, size)
            end = checked if checked is not None else fp.tell()
            _check_element(elem, 0, stream, implicit, little)
            if tag == _PIXEL_DATA:
                pixel = _PixelElement(elem.value_tell, elem.length if checked is not None else _UNDEFINED_LENGTH)
    except (EOFError, struct.error) as exc:
        raise _truncated(f"an element is cut short ({type(exc).__name__})") from None
    except RecursionError:
        raise _limit_depth() from None
    except OSError:
        raise IngestError(DICOM_INVALID, "a sequence item is malformed (an element inside it does not parse)") from None
    if end != size:
        raise _truncated(f"data ends {size - end} bytes into an element after offset {end}", offset=end)
    return tags, pixel


def _element_vr(elem: Any) -> str:
    vr = elem.VR
    if vr is None:
        try:
            vr = dictionary_VR(elem.tag)
        except KeyError:
            return "UN"  # a private or unknown tag in an implicit-VR stream: its bytes are opaque
    return str(vr)


def _check_element(elem: Any, depth: int, stream: bytes = b"", implicit: bool = False, little: bool = True) -> None:
    tag = int(elem.tag)
    vr = _element_vr(elem)
    if vr not in _VRS and " or " not in vr:
        raise IngestError(
            DICOM_INVALID_VR, f"element ({_tag_text(tag)}) has a VR that is not a DICOM VR", tag=_tag_text(tag)
        )
    if vr == "SQ":
        _check_sequence(elem, depth, stream, implicit, little)
        return
    if vr not in ("UI", "DA", "TM", "DT"):
        return
    value = elem.value
    if isinstance(value, MultiValue | list | tuple):  # a converted element (file meta): back to its text form
        value = "\\".join(str(v) for v in value)
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if not isinstance(value, bytes):
        return
    if vr == "UI":
        _check_uid(value, tag)
    else:
        _check_datetime(value, vr, tag)


def _check_sequence(elem: Any, depth: int, stream: bytes, implicit: bool, little: bool) -> None:
    tag = _tag_text(int(elem.tag))
    if depth + 1 > LIMITS.max_depth:
        raise IngestError(
            INGEST_LIMIT_EXCEEDED,
            f"sequences nested deeper than {LIMITS.max_depth} levels (limit max_depth)",
            tag=tag,
            limit="max_depth",
        )
    items: Iterable[Dataset]
    if isinstance(elem, DataElement):
        items = elem.value or ()
    elif elem.length in (0, _UNDEFINED_LENGTH):
        return
    elif isinstance(elem.value, bytes):
        items = read_sequence(BytesIO(elem.value), implicit, little, elem.length, "iso8859")
    elif stream:  # deferred: a sequence larger than DEFER_SIZE is read from the stream where it lies
        fp = BytesIO(stream)
        fp.seek(elem.value_tell)
        items = read_sequence(fp, implicit, little, elem.length, "iso8859", elem.value_tell)
    else:
        return
    for count, item in enumerate(items, start=1):
        if count > LIMITS.max_array_length:
            raise IngestError(
                INGEST_LIMIT_EXCEEDED,
                f"sequence ({tag}) has more than {LIMITS.max_array_length} items (limit max_array_length)",
                tag=tag,
                limit="max_array_length",
            )
        for child in item._dict.values():
            _check_element(child, depth + 1, b"", implicit, little)


def _check_uid(value: bytes, tag: int) -> None:
    for uid in value.split(b"\\"):
        uid = uid.strip(b"\0 ")
        if uid and (len(uid) > 64 or _UID.fullmatch(uid) is None):
            raise IngestError(
                DICOM_INVALID_UID,
                f"element ({_tag_text(tag)}): not a UID (digits and dots, no leading zeros, at most 64 characters)",
                tag=_tag_text(tag),
            )


def _check_datetime(value: bytes, vr: str, tag: int) -> None:
    pattern = _DA if vr == "DA" else _TM if vr == "TM" else _DT
    for item in value.split(b"\\"):
        item = item.strip(b" \0")
        if not item:
            continue
        ok = pattern.fullmatch(item) is not None
        if ok and vr in ("DA", "DT") and len(item) >= 8:
            try:
                datetime(int(item[:4]), int(item[4:6]), int(item[6:8]))
            except ValueError:
                ok = False
        if not ok:
            raise IngestError(
                DICOM_INVALID_DATETIME,
                f"element ({_tag_text(tag)}): not a valid {vr} (a real date or time)",
                tag=_tag_text(tag),
            )


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise IngestError(DICOM_INVALID, f"{keyword} is not an integer", keyword=keyword) from None


def _check_pixels(ds: Dataset, pixel: _PixelElement, syntax: str, stream: bytes) -> None:
    """Pixel Data against the image matrix the header declares: the decoded size within the limit, native
    pixel data at least that long, encapsulated frames of the transfer syntax's codestream."""
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    samples, bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 0)
    frames = _int(ds, "NumberOfFrames", 1)
    if min(rows, columns, samples, bits, frames) < 0 or (rows and not bits):
        raise IngestError(DICOM_INVALID, "the image pixel module declares a negative or missing dimension")
    expected = (rows * columns * samples * frames * bits + 7) // 8
    if _text(ds, "PhotometricInterpretation") == "YBR_FULL_422" and samples == 3:
        expected = expected * 2 // 3  # native 4:2:2 stores two chroma samples per two pixels (PS3.3 C.7.6.3.1.2)
    if expected > LIMITS.max_decoded_pixel_bytes:
        raise IngestError(
            INGEST_LIMIT_EXCEEDED,
            f"the declared image matrix decodes to {expected} bytes, more than {LIMITS.max_decoded_pixel_bytes} "
            "(limit max_decoded_pixel_bytes)",
            tag="7FE0,0010",
            limit="max_decoded_pixel_bytes",
        )
    if pixel.length != _UNDEFINED_LENGTH:
        if pixel.length < expected:
            raise IngestError(
                DICOM_PIXEL_DATA_SHORT,
                f"Pixel Data has {pixel.length} bytes, Rows x Columns x Samples x Bits x Frames declare {expected}",
                tag="7FE0,0010",
            )
        return
    fragments = _fragments(stream, pixel.offset)
    if not fragments:
        raise IngestError(DICOM_PIXEL_DATA_INVALID, "encapsulated Pixel Data has no fragments", tag="7FE0,0010")
    if frames > len(fragments) and syntax not in _VIDEO_SYNTAXES:
        raise IngestError(
            DICOM_PIXEL_DATA_INVALID,
            f"{frames} frames declared but only {len(fragments)} fragments present",
            tag="7FE0,0010",
        )
    if frames == 1:
        bounds = [(0, len(fragments))]
    elif frames == len(fragments):
        bounds = [(i, i + 1) for i in range(frames)]
    else:
        return  # several fragments per frame: frame bounds need the offset table, which is not trusted here
    for number, (first, stop) in enumerate(bounds, start=1):
        head_offset, head_length = fragments[first]
        tail_offset, tail_length = fragments[stop - 1]
        head = stream[head_offset : head_offset + min(head_length, 64)]
        tail = stream[tail_offset + max(0, tail_length - 4) : tail_offset + tail_length]
        problem = _frame_problem(syntax, head, tail)
        if problem:
            raise IngestError(DICOM_PIXEL_DATA_INVALID, f"frame {number}: {problem}", tag="7FE0,0010", frame=number)


def _fragments(stream: bytes, offset: int) -> list[tuple[int, int]]:
    """(offset, length) of each fragment after the Basic Offset Table item of encapsulated pixel data."""
    out: list[tuple[int, int]] = []
    position = offset
    first = True
    while position + 8 <= len(stream):
        group = int.from_bytes(stream[position : position + 2], "little")
        element = int.from_bytes(stream[position + 2 : position + 4], "little")
        length = int.from_bytes(stream[position + 4 : position + 8], "little")
        tag = group << 16 | element
        position += 8
        if tag == _SEQ_DELIMITER:
            return out
        if tag != _ITEM or length == _UNDEFINED_LENGTH or position + length > len(stream):
            raise IngestError(DICOM_PIXEL_DATA_INVALID, "encapsulated Pixel Data items are malformed", tag="7FE0,0010")
        if not first:
            out.append((position, length))
        first = False
        position += length
    raise _truncated("encapsulated Pixel Data has no sequence delimiter", tag="7FE0,0010")


def _frame_problem(syntax: str, head: bytes, tail: bytes) -> str | None:
    if syntax in _JPEG_SYNTAXES:
        if not head.startswith(b"\xff\xd8"):
            return "JPEG frame does not start with SOI (FFD8)"
        if b"\xff\xd9" not in tail:  # EOI, then at most the padding to even length (00, or FF fill bytes)
            return "JPEG frame does not end with EOI (FFD9)"
    elif syntax in _J2K_SYNTAXES:
        if not (head.startswith(b"\xff\x4f\xff\x51") or head.startswith(b"\x00\x00\x00\x0cjP  ")):
            return "JPEG 2000 frame does not start with a codestream (FF4F FF51) or JP2 signature"
    elif syntax in _RLE_SYNTAXES:
        segments = int.from_bytes(head[:4], "little") if len(head) >= 8 else 0
        if not 1 <= segments <= 15 or int.from_bytes(head[4:8], "little") != 64:
            return "RLE frame does not start with a valid RLE header (1-15 segments, the first at offset 64)"
    return None


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
            raise IngestError(DICOM_INVALID_DATETIME, f"{date_kw}/{time_kw} is not a valid date/time") from None
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
        demographics=_demographics(ds, patient_id),
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


#: What pydicom raises when it first decodes a damaged element (a sequence cut short, an unknown VR, a bad value).
_DECODE_ERRORS = (OSError, EOFError, struct.error, ValueError, TypeError, KeyError, NotImplementedError, OverflowError)


def _demographics(ds: Dataset, patient_id: str) -> Demographics:
    try:
        return from_dicom(ds)
    except _DECODE_ERRORS:
        # from_dicom reads optional elements the record itself never needs (Other Patient IDs, issuer qualifiers,
        # address, telephones): one that cannot be decoded must not reject a file that is otherwise ingestible.
        # The patient key is known to be readable: it was read before.
        identifier = make_identifier(patient_id, _text(ds, "IssuerOfPatientID"))
        return Demographics(identifiers=(identifier,) if identifier is not None else ())
