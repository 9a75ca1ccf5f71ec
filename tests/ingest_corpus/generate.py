"""Write the ingest corpus: one file per defect (and valid inputs), with a manifest of the expected verdicts.

usage: python tests/ingest_corpus/generate.py [--out DIR]   (default: tests/ingest_corpus, the committed corpus)

Every file is built here from code: HL7 v2 messages as text, FHIR resources as JSON, and DICOM files byte by byte
with a small explicit encoder (no pydicom writer), so the output depends on nothing but this script and is
byte-for-byte reproducible (tests/node/test_ingest_corpus.py regenerates it and compares). The manifest
(manifest.json) lists each file with the format, the expected verdict ("accept", with the number of records, or
"reject" with the error code the node's default settings must answer) and what the file tests.

The bombs are generated compactly: the 1 GiB deflate bomb is ~1 MiB of zeros deflated (deflate cannot exceed
~1032:1), the 3,000-level DICOM sequence and 10,000-level JSON are a few tens of KB, the 20,000 repetitions and
100,000 names a few hundred KB. Names and identifiers are invented; no file holds real patient data.
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "node" / "data"

Entry = dict[str, Any]


class Corpus:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.entries: list[Entry] = []

    def add(
        self, fmt: str, name: str, data: bytes, verdict: str, code: str = "", *, records: int = 0, about: str
    ) -> None:
        path = f"{fmt}/{name}"
        if any(e["file"] == path for e in self.entries):
            raise ValueError(f"duplicate corpus file {path}")
        (self.out / fmt).mkdir(parents=True, exist_ok=True)
        (self.out / path).write_bytes(data)
        entry: Entry = {"file": path, "format": fmt, "verdict": verdict, "about": about}
        if verdict == "accept":
            entry["records"] = records
        else:
            entry["code"] = code
        self.entries.append(entry)

    def ok(self, fmt: str, name: str, data: bytes, records: int = 1, *, about: str) -> None:
        self.add(fmt, name, data, "accept", records=records, about=about)

    def bad(self, fmt: str, name: str, data: bytes, code: str, *, about: str) -> None:
        self.add(fmt, name, data, "reject", code, about=about)

    def write_manifest(self) -> None:
        manifest = {"files": len(self.entries), "entries": self.entries}
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


# --- HL7 v2 -------------------------------------------------------------------------------------------------


def _hl7(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode()


MSH_ORU = "MSH|^~\\&|LIS|LAB|MEDLEDGER|REGION|20240503120000+0000||ORU^R01^ORU_R01|CORPUS-1|P|2.5.1"
MSH_ADT = "MSH|^~\\&|ADT1|HOSPA|MEDLEDGER|REGION|20240501101500+0200||ADT^A01^ADT_A01|CORPUS-2|P|2.5.1"
PID = "PID|1||MRN-9001^^^HOSPA^MR||Tester^Alex||19800101|F"
OBR = "OBR|1|ORD1|FIL1|2345-7^Glucose^LN|||20240503080000+0000"
EVN = "EVN|A01|20240501101500+0200"
PV1 = "PV1|1|I|WARD1"


def oru(*obx: str, pid: str = PID, msh: str = MSH_ORU, obr: str = OBR) -> bytes:
    return _hl7(msh, pid, obr, *obx)


def adt(pid: str = PID, msh: str = MSH_ADT, evn: str = EVN, pv1: str = PV1, *extra: str) -> bytes:
    return _hl7(msh, evn, pid, pv1, *extra)


OBX_NM = "OBX|1|NM|2345-7^Glucose^LN||5.5|mmol/L|3.9-5.6|N|||F|||20240503080000+0000"


def hl7_corpus(c: Corpus) -> None:
    for name in ("adt_a01", "adt_a08", "mdm_t02", "oru_r01"):
        c.ok("hl7", f"valid_{name}.hl7", (FIXTURES / "hl7" / f"{name}.hl7").read_bytes(), about=f"fixture {name}")
    c.ok("hl7", "valid_oru_nm.hl7", oru(OBX_NM), about="ORU with a numeric NM result")
    c.ok("hl7", "valid_oru_nm_signed.hl7", oru(OBX_NM.replace("|5.5|", "|-0.25|")), about="NM with sign and fraction")
    c.ok("hl7", "valid_oru_sn.hl7", oru("OBX|1|SN|2345-7^Glucose^LN||>^5.5|mmol/L"), about="SN structured numeric")
    c.ok("hl7", "valid_oru_sn_range.hl7", oru("OBX|1|SN|2345-7^Glucose^LN||^1^-^5|mmol/L"), about="SN range")
    pdf = base64.b64encode(b"%PDF-1.4 corpus").decode()
    c.ok("hl7", "valid_oru_ed_base64.hl7", oru(f"OBX|1|ED|PDF^Report||LAB^AP^PDF^Base64^{pdf}"), about="ED Base64")
    c.ok("hl7", "valid_oru_ed_hex.hl7", oru("OBX|1|ED|TXT^Report||LAB^TX^PLAIN^Hex^48656C6C6F"), about="ED Hex")
    c.ok("hl7", "valid_oru_dt.hl7", oru("OBX|1|DT|21112-8^Birth date^LN||19800101"), about="OBX-5 DT")
    c.ok("hl7", "valid_adt_a04.hl7", adt(msh=MSH_ADT.replace("ADT^A01^ADT_A01", "ADT^A04^ADT_A01")), about="A04")
    c.ok("hl7", "valid_adt_leap_day.hl7", adt(pid=PID.replace("19800101", "20000229")), about="PID-7 on a leap day")
    c.ok("hl7", "valid_adt_lf.hl7", adt().replace(b"\r", b"\n"), about="LF segment separators")
    c.ok("hl7", "valid_adt_escapes.hl7", adt(pid=PID.replace("Tester^Alex", "O\\T\\Brien^Alex")), about="escapes")
    c.ok("hl7", "valid_adt_null.hl7", adt(pid=PID.replace("19800101", '""')), about='PID-7 HL7 null ""')
    c.ok("hl7", "valid_adt_zsegment.hl7", adt(PID, MSH_ADT, EVN, PV1, "ZPD|1|local"), about="Z-segment")
    c.ok(
        "hl7",
        "valid_adt_reps.hl7",
        adt(pid=PID.replace("MRN-9001^^^HOSPA^MR", "A1^^^H^MR~A2^^^H^PI")),
        about="PID-3 reps",
    )

    bad = c.bad
    bad("hl7", "missing_msh.hl7", _hl7(PID, OBR, OBX_NM), "hl7_missing_msh", about="no MSH")
    bad(
        "hl7",
        "bad_delimiters_alnum.hl7",
        oru(OBX_NM, msh=MSH_ORU.replace("|", "A")),
        "hl7_bad_delimiters",
        about="MSH-1 'A'",
    )
    bad(
        "hl7",
        "bad_encoding_chars.hl7",
        oru(OBX_NM, msh=MSH_ORU.replace("^~\\&", "^^")),
        "hl7_bad_delimiters",
        about="MSH-2",
    )
    bad("hl7", "segment_order.hl7", _hl7(MSH_ORU, OBR, PID, OBX_NM), "hl7_segment_order", about="OBR before PID")
    bad(
        "hl7",
        "unsupported_type.hl7",
        oru(OBX_NM, msh=MSH_ORU.replace("ORU^R01^ORU_R01", "SIU^S12")),
        "hl7_unsupported_message",
        about="SIU",
    )
    bad(
        "hl7",
        "unsupported_version.hl7",
        oru(OBX_NM, msh=MSH_ORU.replace("|2.5.1", "|9.9")),
        "hl7_unsupported_message",
        about="MSH-12",
    )
    bad("hl7", "missing_pid.hl7", _hl7(MSH_ORU, OBR, OBX_NM), "hl7_missing_patient_id", about="no PID")
    bad("hl7", "empty_pid3.hl7", oru(OBX_NM, pid="PID|1||||Tester^Alex"), "hl7_missing_patient_id", about="PID-3 empty")
    bad("hl7", "two_pids.hl7", _hl7(MSH_ORU, PID, PID, OBR, OBX_NM), "hl7_unsupported_message", about="two patients")
    bad("hl7", "two_msh.hl7", _hl7(MSH_ORU, PID, OBR, OBX_NM, MSH_ORU, PID, OBR), "hl7_invalid", about="batch")
    bad(
        "hl7",
        "empty_control_id.hl7",
        oru(OBX_NM, msh=MSH_ORU.replace("|CORPUS-1|", "||")),
        "hl7_invalid",
        about="MSH-10",
    )
    bad("hl7", "bad_segment_id.hl7", _hl7(MSH_ORU, PID, "ob1|x", OBR), "hl7_invalid", about="lower-case id")
    bad("hl7", "bad_utf8.hl7", oru(OBX_NM).replace(b"Tester", b"Test\xff\xfe"), "hl7_invalid", about="not UTF-8")
    # Impossible dates and times in DTM/DT/TS fields.
    dates = {
        "pid7_month13": (PID.replace("19800101", "19801301"), "PID-7 month 13"),
        "pid7_word": (PID.replace("19800101", "yesterday"), "PID-7 'yesterday'"),
        "pid7_feb29_nonleap": (PID.replace("19800101", "19810229"), "PID-7 1981-02-29"),
        "pid7_day32": (PID.replace("19800101", "19800132"), "PID-7 day 32"),
        "pid7_hour25": (PID.replace("19800101", "198001012500"), "PID-7 hour 25"),
    }
    for name, (pid, about) in dates.items():
        bad("hl7", f"date_{name}.hl7", oru(OBX_NM, pid=pid), "hl7_invalid_datetime", about=about)
    msh7 = {
        "msh7_month13": MSH_ORU.replace("20240503120000", "20241303120000"),
        "msh7_word": MSH_ORU.replace("20240503120000+0000", "yesterday"),
        "msh7_offset": MSH_ORU.replace("+0000", "+2500"),
        "msh7_minute61": MSH_ORU.replace("20240503120000", "20240503126100"),
    }
    for name, msh in msh7.items():
        bad("hl7", f"date_{name}.hl7", oru(OBX_NM, msh=msh), "hl7_invalid_datetime", about=name)
    bad(
        "hl7",
        "date_obr7_feb30.hl7",
        oru(OBX_NM, obr=OBR.replace("20240503", "20240230")),
        "hl7_invalid_datetime",
        about="OBR-7",
    )
    bad(
        "hl7",
        "date_obx14.hl7",
        oru(OBX_NM.replace("20240503080000", "20240503086000")),
        "hl7_invalid_datetime",
        about="OBX-14",
    )
    bad("hl7", "date_evn2.hl7", adt(evn="EVN|A01|2024-05-01"), "hl7_invalid_datetime", about="EVN-2 ISO format")
    bad(
        "hl7",
        "date_obx5_dt.hl7",
        oru("OBX|1|DT|21112-8^Birth date^LN||19801399"),
        "hl7_invalid_datetime",
        about="OBX-5 DT",
    )
    # Control characters (log and terminal injection).
    for name, char in (("nul", "\x00"), ("esc", "\x1b[31m"), ("bel", "\x07"), ("del", "\x7f"), ("c1_nel", "\x85")):
        pid = PID.replace("Tester^Alex", f"Tester{char}^Alex")
        bad("hl7", f"control_{name}.hl7", oru(OBX_NM, pid=pid), "ingest_control_character", about=f"{name} in PID-5")
    bad(
        "hl7",
        "control_esc_obx5.hl7",
        oru("OBX|1|ST|X^Note||\x1b]0;pwned\x07ok"),
        "ingest_control_character",
        about="OSC",
    )
    # OBX-5 against OBX-2.
    nm = {
        "word": "high",
        "two_dots": "1.2.3",
        "components": "5^5",
        "comma": "5,5",
        "empty_exponent": "1e",
    }
    for name, value in nm.items():
        bad(
            "hl7",
            f"obx_nm_{name}.hl7",
            oru(OBX_NM.replace("|5.5|", f"|{value}|")),
            "hl7_invalid_number",
            about=f"NM {value!r}",
        )
    bad("hl7", "obx_sn_comparator.hl7", oru("OBX|1|SN|X^Y||=>^5|u"), "hl7_invalid_number", about="SN comparator")
    bad("hl7", "obx_sn_word.hl7", oru("OBX|1|SN|X^Y||>^five|u"), "hl7_invalid_number", about="SN number")
    bad(
        "hl7",
        "obx_ed_not_base64.hl7",
        oru("OBX|1|ED|PDF^R||LAB^AP^PDF^Base64^not*base64!"),
        "hl7_invalid_base64",
        about="ED",
    )
    bad(
        "hl7",
        "obx_ed_base64_length.hl7",
        oru("OBX|1|ED|PDF^R||LAB^AP^PDF^Base64^QUJDRA="),
        "hl7_invalid_base64",
        about="ED length",
    )
    bad("hl7", "obx_ed_bad_hex.hl7", oru("OBX|1|ED|TXT^R||LAB^TX^PLAIN^Hex^XYZ"), "hl7_invalid_base64", about="ED hex")
    # Components beyond the data type.
    bad(
        "hl7",
        "components_pid5.hl7",
        oru(OBX_NM, pid=PID.replace("Tester^Alex", "^".join(["x"] * 40))),
        "hl7_too_many_components",
        about="XPN x40",
    )
    bad(
        "hl7",
        "components_pid8.hl7",
        oru(OBX_NM, pid=PID + "^x^y"),
        "hl7_too_many_components",
        about="IS with components",
    )
    bad(
        "hl7",
        "components_pid3.hl7",
        oru(OBX_NM, pid=PID.replace("^MR", "^MR" + "^z" * 30)),
        "hl7_too_many_components",
        about="CX x35",
    )
    bad(
        "hl7",
        "components_msh9.hl7",
        oru(OBX_NM, msh=MSH_ORU.replace("ORU_R01", "ORU_R01^a^b^c")),
        "hl7_too_many_components",
        about="MSG",
    )
    # Resource limits.
    reps = "~".join(f"ID{i}^^^H^MR" for i in range(20_000))
    bad(
        "hl7",
        "limit_20000_repetitions.hl7",
        oru(OBX_NM, pid=PID.replace("MRN-9001^^^HOSPA^MR", reps)),
        "ingest_limit_exceeded",
        about="PID-3 x20000",
    )
    bad(
        "hl7",
        "limit_600_fields.hl7",
        _hl7(MSH_ORU, PID, OBR, "NTE|1" + "|x" * 600),
        "ingest_limit_exceeded",
        about="600 fields",
    )
    nte = [f"NTE|{i}|L|note" for i in range(12_000)]
    bad(
        "hl7",
        "limit_12000_segments.hl7",
        _hl7(MSH_ORU, PID, *nte, OBR),
        "ingest_limit_exceeded",
        about="12000 segments",
    )


# --- DICOM --------------------------------------------------------------------------------------------------

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
DEFLATED, JPEG_BASELINE, RLE = "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5"
J2K = "1.2.840.10008.1.2.4.90"
CT_STORAGE, SR_STORAGE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.22"
ROOT_UID = "1.2.826.0.1.3680043.10.1234"
UNDEFINED = 0xFFFFFFFF


def _pad(value: bytes, vr: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in (b"UI", b"OB", b"OW", b"UN", b"RAW") else b" "
    return value


def el(
    tag: int, vr: str, value: bytes | str | int, *, implicit: bool = False, big: bool = False, length: int | None = None
) -> bytes:
    """One data element (tag group/element, VR, length, value) in the given encoding."""
    vrb = vr.encode()
    if isinstance(value, int):
        value = struct.pack(">H" if big else "<H", value) if vr == "US" else struct.pack(">I" if big else "<I", value)
    elif isinstance(value, str):
        value = value.encode("latin-1")
    value = _pad(value, vrb) if length is None else value
    size = len(value) if length is None else length
    order = ">" if big else "<"
    head = struct.pack(order + "HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack("<I", size) + value
    if vrb in _LONG_VRS:
        return head + vrb + b"\0\0" + struct.pack(order + "I", size) + value
    return head + vrb + struct.pack(order + "H", size) + value


def meta(syntax: str, sop_instance: str, sop_class: str = CT_STORAGE) -> bytes:
    body = (
        el(0x00020001, "OB", b"\x00\x01")
        + el(0x00020002, "UI", sop_class)
        + el(0x00020003, "UI", sop_instance)
        + el(0x00020010, "UI", syntax)
        + el(0x00020012, "UI", ROOT_UID + ".1")
    )
    return b"\0" * 128 + b"DICM" + el(0x00020000, "UL", len(body)) + body


def ct_elements(uid: str, **over: Any) -> dict[int, tuple[str, Any]]:
    """The elements of a small CT image (8x8, 16 bits) by tag; ``over`` replaces or removes (None) by keyword."""
    elements: dict[int, tuple[str, Any]] = {
        0x00080016: ("UI", CT_STORAGE),
        0x00080018: ("UI", uid),
        0x00080020: ("DA", "20240501"),
        0x00080030: ("TM", "101500"),
        0x00080060: ("CS", "CT"),
        0x00100010: ("PN", "Tester^Alex"),
        0x00100020: ("LO", "CORPUS-DCM-1"),
        0x00100030: ("DA", "19800101"),
        0x00100040: ("CS", "F"),
        0x0020000D: ("UI", uid + ".1"),
        0x0020000E: ("UI", uid + ".2"),
        0x00280002: ("US", 1),
        0x00280004: ("CS", "MONOCHROME2"),
        0x00280010: ("US", 8),
        0x00280011: ("US", 8),
        0x00280100: ("US", 16),
        0x00280101: ("US", 12),
        0x00280102: ("US", 11),
        0x00280103: ("US", 0),
        0x7FE00010: ("OW", bytes(128)),
    }
    for tag, item in over.items():
        key = KEYWORDS[tag] if tag in KEYWORDS else int(tag, 16)  # a keyword, or the tag as 8 hex digits
        if item is None:
            elements.pop(key, None)
        else:
            elements[key] = item
    return elements


KEYWORDS = {
    "SOPInstanceUID": 0x00080018,
    "StudyDate": 0x00080020,
    "StudyTime": 0x00080030,
    "AcquisitionDateTime": 0x0008002A,
    "PatientID": 0x00100020,
    "PatientBirthDate": 0x00100030,
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "NumberOfFrames": 0x00280008,
    "Rows": 0x00280010,
    "Columns": 0x00280011,
    "BitsAllocated": 0x00280100,
    "PixelData": 0x7FE00010,
}


def dataset(elements: dict[int, tuple[str, Any]], *, implicit: bool = False, big: bool = False) -> bytes:
    out = b""
    for tag in sorted(elements):
        vr, value = elements[tag]
        if vr == "RAW":
            out += value
        else:
            out += el(tag, vr, value, implicit=implicit, big=big)
    return out


def dicom(
    uid: str, elements: dict[int, tuple[str, Any]] | None = None, syntax: str = EXPLICIT_LE, **over: Any
) -> bytes:
    elements = elements if elements is not None else ct_elements(uid, **over)
    implicit, big = syntax == IMPLICIT_LE, syntax == EXPLICIT_BE
    body = dataset(elements, implicit=implicit, big=big)
    if syntax == DEFLATED:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = deflater.compress(body) + deflater.flush()
    return meta(syntax, uid) + body


def encapsulated(*fragments: bytes) -> tuple[str, bytes]:
    """Encapsulated Pixel Data: an empty Basic Offset Table, the fragments, the sequence delimiter."""
    items = el(0xFFFEE000, "RAW", b"", implicit=True)
    for fragment in fragments:
        items += el(0xFFFEE000, "RAW", fragment, implicit=True)
    items += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return "RAW", el(0x7FE00010, "OB", b"", length=UNDEFINED) + items


JPEG_FRAME = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(32) + b"\xff\xd9"
J2K_FRAME = b"\xff\x4f\xff\x51\x00\x29" + bytes(40) + b"\xff\xd9"
RLE_FRAME = struct.pack("<16I", 1, 64, *([0] * 14)) + b"\x3f" + bytes(64) + b"\x80"  # one literal run of 64 px


def sequence(tag: int, *items: bytes) -> tuple[str, bytes]:
    """An undefined-length sequence of undefined-length items (``items`` are encoded item bodies)."""
    out = el(tag, "SQ", b"", length=UNDEFINED)
    for body in items:
        out += struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + body + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    return "RAW", out + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def nested(depth: int) -> tuple[str, bytes]:
    """ContentSequence nested ``depth`` levels (built iteratively: the bytes are flat, the structure deep)."""
    open_level = el(0x0040A730, "SQ", b"", length=UNDEFINED) + struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
    close_level = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    inner = el(0x0040A040, "CS", "TEXT")
    return "RAW", open_level * depth + inner + close_level * depth


def uid_of(n: int) -> str:
    return f"{ROOT_UID}.{n}"


def dicom_corpus(c: Corpus) -> None:
    n = iter(range(1, 10_000))

    def u() -> str:
        return uid_of(next(n))

    c.ok("dicom", "valid_ct_explicit_le.dcm", dicom(u()), about="CT, explicit VR little endian")
    c.ok("dicom", "valid_ct_implicit_le.dcm", dicom(u(), syntax=IMPLICIT_LE), about="implicit VR little endian")
    c.ok("dicom", "valid_ct_explicit_be.dcm", dicom(u(), syntax=EXPLICIT_BE), about="explicit VR big endian")
    c.ok("dicom", "valid_ct_deflated.dcm", dicom(u(), syntax=DEFLATED), about="deflated explicit VR LE")
    uid = u()
    c.ok("dicom", "valid_raw_dataset.dcm", dataset(ct_elements(uid)), about="no preamble or file meta")
    uid = u()
    c.ok(
        "dicom",
        "valid_multiframe.dcm",
        dicom(uid, NumberOfFrames=("IS", "3"), PixelData=("OW", bytes(384))),
        about="3 frames",
    )
    uid = u()
    jpeg = ct_elements(uid, BitsAllocated=("US", 8), PixelData=encapsulated(JPEG_FRAME))
    c.ok("dicom", "valid_jpeg_baseline.dcm", dicom(uid, jpeg, JPEG_BASELINE), about="encapsulated JPEG frame")
    uid = u()
    jpeg_pad = ct_elements(uid, BitsAllocated=("US", 8), PixelData=encapsulated(JPEG_FRAME[:-1] + b"\xd9\x00"))
    c.ok("dicom", "valid_jpeg_padded.dcm", dicom(uid, jpeg_pad, JPEG_BASELINE), about="JPEG frame padded after EOI")
    uid = u()
    c.ok(
        "dicom",
        "valid_j2k.dcm",
        dicom(uid, ct_elements(uid, PixelData=encapsulated(J2K_FRAME)), J2K),
        about="J2K frame",
    )
    uid = u()
    rle = ct_elements(uid, BitsAllocated=("US", 8), PixelData=encapsulated(RLE_FRAME))
    c.ok("dicom", "valid_rle.dcm", dicom(uid, rle, RLE), about="RLE frame")
    uid = u()
    sr = ct_elements(uid)
    sr[0x0040A730] = nested(20)
    c.ok("dicom", "valid_nested_20.dcm", dicom(uid, sr), about="sequences nested 20 deep")
    uid = u()
    c.ok("dicom", "valid_empty_dates.dcm", dicom(uid, StudyDate=("DA", ""), StudyTime=("TM", "")), about="empty DA/TM")
    uid = u()
    c.ok("dicom", "valid_time_fraction.dcm", dicom(uid, StudyTime=("TM", "101500.123456")), about="TM with fraction")

    bad = c.bad
    bad(
        "dicom",
        "not_dicom_after_preamble.dcm",
        b"\0" * 128 + b"DICM" + b"garbage" * 20,
        "dicom_truncated",
        about="junk after DICM: no file meta",
    )
    full = dicom(u())
    bad("dicom", "truncated_pixels.dcm", full[:-40], "dicom_truncated", about="cut inside Pixel Data")
    bad("dicom", "truncated_header.dcm", full[:300], "dicom_truncated", about="cut inside the header")
    bad(
        "dicom",
        "truncated_element_header.dcm",
        full + b"\xe0\x7f\x10",
        "dicom_truncated",
        about="partial element header",
    )
    bad("dicom", "missing_patient_id.dcm", dicom(u(), PatientID=None), "dicom_missing_patient_id", about="no PatientID")
    bad("dicom", "empty_patient_id.dcm", dicom(u(), PatientID=("LO", "")), "dicom_missing_patient_id", about="empty")
    uid = u()
    bad(
        "dicom",
        "missing_sop_instance.dcm",
        dicom(uid, SOPInstanceUID=None),
        "dicom_missing_uid",
        about="no SOP Instance UID",
    )
    bad(
        "dicom",
        "image_without_pixels.dcm",
        dicom(u(), PixelData=None),
        "dicom_truncated",
        about="CT without Pixel Data",
    )
    # UI grammar.
    uids = {
        "path_traversal": "../../etc/passwd",
        "86_chars": "1.2." + "3" * 82,
        "leading_zero": "1.2.03.4",
        "letters": "1.2.abc.4",
        "trailing_dot": "1.2.3.",
        "double_dot": "1.2..3",
    }
    for name, value in uids.items():
        bad(
            "dicom",
            f"uid_sop_{name}.dcm",
            dicom(u(), SOPInstanceUID=("UI", value)),
            "dicom_invalid_uid",
            about=f"SOP UID {name}",
        )
    bad(
        "dicom",
        "uid_study_traversal.dcm",
        dicom(u(), StudyInstanceUID=("UI", "1.2/../3")),
        "dicom_invalid_uid",
        about="study UID",
    )
    uid = u()
    ref = sequence(0x00081140, el(0x00081150, "UI", CT_STORAGE) + el(0x00081155, "UI", "1.2.3.x"))
    bad(
        "dicom",
        "uid_nested_reference.dcm",
        dicom(uid, ct_elements(uid, **{"00081140": ref})),
        "dicom_invalid_uid",
        about="in a sequence",
    )
    uid = u()
    bad(
        "dicom",
        "uid_file_meta.dcm",
        meta(EXPLICIT_LE, "1.2.3..4") + dataset(ct_elements(uid)),
        "dicom_invalid_uid",
        about="meta UID",
    )
    # Transfer syntax.
    for name, syntax in (("unknown", "1.2.840.10008.1.2.4.999"), ("private_made_up", "1.2.3.4.5")):
        uid = u()
        bad(
            "dicom",
            f"transfer_syntax_{name}.dcm",
            meta(syntax, uid) + dataset(ct_elements(uid)),
            "dicom_unknown_transfer_syntax",
            about=syntax,
        )
    uid = u()
    bad(
        "dicom",
        "transfer_syntax_not_uid.dcm",
        meta("explicit-le", uid) + dataset(ct_elements(uid)),
        "dicom_invalid_uid",
        about="not a UID",
    )
    # Pixel data against the matrix.
    bad(
        "dicom",
        "pixels_short.dcm",
        dicom(u(), PixelData=("OW", bytes(64))),
        "dicom_pixel_data_short",
        about="64 of 128 bytes",
    )
    bad(
        "dicom",
        "pixels_short_frames.dcm",
        dicom(u(), NumberOfFrames=("IS", "10")),
        "dicom_pixel_data_short",
        about="10 frames, 1 present",
    )
    bad(
        "dicom",
        "pixels_short_rows.dcm",
        dicom(u(), Rows=("US", 512)),
        "dicom_pixel_data_short",
        about="Rows 512, 8 rows of data",
    )
    uid = u()
    bomb = ct_elements(
        uid, Rows=("US", 65535), Columns=("US", 65535), NumberOfFrames=("IS", "100000"), PixelData=("OW", bytes(4096))
    )
    bad(
        "dicom",
        "allocation_bomb_native.dcm",
        dicom(uid, bomb),
        "ingest_limit_exceeded",
        about="terabytes declared, 4 KB present",
    )
    uid = u()
    bomb = ct_elements(
        uid,
        Rows=("US", 65535),
        Columns=("US", 65535),
        NumberOfFrames=("IS", "100000"),
        PixelData=encapsulated(JPEG_FRAME),
    )
    bad(
        "dicom",
        "allocation_bomb_jpeg.dcm",
        dicom(uid, bomb, JPEG_BASELINE),
        "ingest_limit_exceeded",
        about="terabytes, one JPEG",
    )
    # Encapsulated frames.
    random_bytes = bytes((i * 131 + 7) % 251 for i in range(256))
    frames = {
        "jpeg_random": (JPEG_BASELINE, encapsulated(random_bytes), "random bytes, no SOI"),
        "jpeg_no_eoi": (JPEG_BASELINE, encapsulated(JPEG_FRAME[:-2] + b"\0\0"), "no EOI"),
        "jpeg_frames_gt_fragments": (JPEG_BASELINE, encapsulated(JPEG_FRAME), "2 frames, 1 fragment"),
        "j2k_random": (J2K, encapsulated(random_bytes), "no J2K codestream marker"),
        "rle_bad_header": (RLE, encapsulated(struct.pack("<16I", 99, 64, *([0] * 14)) + bytes(8)), "99 segments"),
        "no_fragments": (JPEG_BASELINE, encapsulated(), "offset table only"),
    }
    for name, (syntax, pixels, about) in frames.items():
        uid = u()
        extra = {"NumberOfFrames": ("IS", "2")} if name == "jpeg_frames_gt_fragments" else {}
        elements = ct_elements(uid, BitsAllocated=("US", 8), PixelData=pixels, **extra)
        bad("dicom", f"frames_{name}.dcm", dicom(uid, elements, syntax), "dicom_pixel_data_invalid", about=about)
    # Repeated and disordered tags, invalid VRs.
    uid = u()
    elements = ct_elements(uid)
    elements[0x00100020] = ("RAW", el(0x00100020, "LO", "CORPUS-DCM-1") + el(0x00100020, "LO", "SOMEONE-ELSE"))
    bad(
        "dicom",
        "duplicate_patient_id.dcm",
        dicom(uid, elements),
        "dicom_duplicate_tag",
        about="PatientID twice, different",
    )
    uid = u()
    elements = ct_elements(uid)
    elements[0x00100020] = ("RAW", el(0x00100020, "LO", "CORPUS-DCM-1") * 2)
    bad(
        "dicom",
        "duplicate_patient_id_same.dcm",
        dicom(uid, elements),
        "dicom_duplicate_tag",
        about="PatientID twice, same",
    )
    uid = u()
    elements = ct_elements(uid)
    elements[0x00100020] = ("RAW", el(0x00100020, "LO", "CORPUS-DCM-1") + el(0x00080060, "CS", "MR"))
    bad("dicom", "tags_out_of_order.dcm", dicom(uid, elements), "dicom_invalid", about="(0008,0060) after (0010,0020)")
    uid = u()
    elements = ct_elements(uid)
    elements[0x00100020] = ("RAW", el(0x00100020, "ZZ", "CORPUS-DCM-1"))
    bad("dicom", "invalid_vr.dcm", dicom(uid, elements), "dicom_invalid_vr", about="VR 'ZZ'")
    uid = u()
    elements = ct_elements(uid)
    elements[0x00081140] = sequence(0x00081140, el(0x00081150, "U1", CT_STORAGE))
    # Inside an undefined-length item an unknown VR derails pydicom's reading of the item (its length is then
    # read from the wrong bytes): the node can only say the item is malformed.
    bad("dicom", "invalid_vr_nested.dcm", dicom(uid, elements), "dicom_invalid", about="VR 'U1' in an item")
    # Nesting and item limits.
    for depth in (100, 3000):
        uid = u()
        elements = ct_elements(uid)
        elements[0x0040A730] = nested(depth)
        bad("dicom", f"nested_{depth}.dcm", dicom(uid, elements), "ingest_limit_exceeded", about=f"{depth} levels")
    uid = u()
    elements = ct_elements(uid)
    elements[0x00081140] = sequence(0x00081140, *([el(0x00081155, "UI", "1.2")] * 10_001))
    bad("dicom", "sequence_10001_items.dcm", dicom(uid, elements), "ingest_limit_exceeded", about="10,001 items")
    # Decompression bombs.
    uid = u()
    head = meta(DEFLATED, uid)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(dataset(ct_elements(uid, PixelData=None)))
    tail = el(0x7FE00010, "OB", b"", length=1 << 30)
    body += deflater.compress(tail)
    zeros = bytes(1 << 24)
    for _ in range(64):  # 1 GiB of zeros, 16 MiB at a time: the bomb is ~1 MiB on disk
        body += deflater.compress(zeros)
    body += deflater.flush()
    bad("dicom", "deflate_bomb_1gib.dcm", head + body, "ingest_decompression_bomb", about="~1 MiB inflating to 1 GiB")
    uid = u()
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(dataset(ct_elements(uid, PixelData=None)) + el(0x7FE00010, "OB", b"", length=16 << 20))
    body += deflater.compress(bytes(16 << 20)) + deflater.flush()
    bad(
        "dicom",
        "deflate_bomb_small.dcm",
        meta(DEFLATED, uid) + body,
        "ingest_decompression_bomb",
        about="16 KB to 16 MiB",
    )
    uid = u()
    bad(
        "dicom",
        "deflate_corrupt.dcm",
        meta(DEFLATED, uid) + b"\xff" * 64,
        "dicom_invalid",
        about="not a deflate stream",
    )
    # DA/TM/DT values.
    dates = {
        "study_month13": {"StudyDate": ("DA", "20231301")},
        "study_word": {"StudyDate": ("DA", "yesterday")},
        "study_iso": {"StudyDate": ("DA", "2023-01-01")},
        "birth_feb29": {"PatientBirthDate": ("DA", "19810229")},
        "time_hour25": {"StudyTime": ("TM", "256000")},
        "datetime_day32": {"AcquisitionDateTime": ("DT", "20230132101500")},
    }
    for name, over in dates.items():
        bad("dicom", f"date_{name}.dcm", dicom(u(), **over), "dicom_invalid_datetime", about=name)


# --- FHIR ---------------------------------------------------------------------------------------------------


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / "fhir" / name).read_text())


def _j(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "corpus-p1",
    "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-F1"}],
    "name": [{"family": "Tester", "given": ["Alex"]}],
    "gender": "female",
    "birthDate": "1980-01-01",
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "corpus-o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    "subject": {"reference": "Patient/corpus-p1"},
    "effectiveDateTime": "2024-05-02T07:30:00Z",
    "valueQuantity": {"value": 5.5, "unit": "mmol/L"},
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(base))
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def document(*authors: dict[str, Any], first: str = "Composition", **changes: Any) -> dict[str, Any]:
    composition = {
        "resourceType": "Composition",
        "id": "corpus-c1",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}],
        "date": "2024-05-02T07:30:00Z",
        "author": [{"reference": f"urn:uuid:00000000-0000-4000-8000-00000000010{i}"} for i in range(len(authors))],
        "title": "Consultation note",
    }
    entries = [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": with_(PATIENT)},
        *(
            {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000010{i}", "resource": author}
            for i, author in enumerate(authors)
        ),
    ]
    entries.insert(
        0 if first == "Composition" else 1,
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000009", "resource": composition},
    )
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:00000000-0000-4000-8000-0000000000aa"},
        "type": "document",
        "timestamp": "2024-05-02T07:31:00Z",
        "entry": entries,
    }
    return with_(bundle, **changes)


PRACTITIONER = {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Visser", "given": ["Anna"]}]}
ORGANIZATION = {"resourceType": "Organization", "id": "org1", "name": "Hospital A"}
ROLE = {"resourceType": "PractitionerRole", "id": "role1", "practitioner": {"reference": "Practitioner/pr1"}}
DEVICE = {"resourceType": "Device", "id": "dev1", "serialNumber": "SN-1"}


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def entry(resource: dict[str, Any], n: int, **extra: Any) -> dict[str, Any]:
    out = {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}", "resource": resource}
    out.update(extra)
    return out


POST_PATIENT = {"method": "POST", "url": "Patient"}
POST_OBS = {"method": "POST", "url": "Observation"}


def narrative(div: str) -> dict[str, Any]:
    return with_(PATIENT, text={"status": "generated", "div": div})


XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def fhir_corpus(c: Corpus) -> None:
    for name, records in (
        ("r5_patient.json", 1),
        ("r5_observation_vitals.json", 1),
        ("r5_observation_lab_4k.json", 1),
        ("r4b_encounter.json", 1),
        ("r5_bundle_transaction.json", 10),
        ("r4b_bundle_collection.json", 4),
    ):
        c.ok("fhir", f"valid_{name}", (FIXTURES / "fhir" / name).read_bytes(), records, about=f"fixture {name}")
    c.ok(
        "fhir",
        "valid_document_authors.json",
        _j(document(PRACTITIONER, ORGANIZATION, ROLE, DEVICE)),
        2,
        about="document with authors",
    )
    c.ok(
        "fhir", "valid_document_practitioner.json", _j(document(PRACTITIONER)), 2, about="document, Practitioner author"
    )
    c.ok("fhir", "valid_leap_day.json", _j(with_(PATIENT, birthDate="2000-02-29")), about="leap day")
    c.ok("fhir", "valid_partial_dates.json", _j(with_(PATIENT, birthDate="1980-02")), about="partial date")
    c.ok(
        "fhir",
        "valid_int_max.json",
        _j(with_(OBSERVATION, valueQuantity=None, valueInteger=2**31 - 1)),
        about="integer max",
    )
    c.ok(
        "fhir",
        "valid_int_min.json",
        _j(with_(OBSERVATION, valueQuantity=None, valueInteger=-(2**31))),
        about="integer min",
    )
    photo = [{"contentType": "image/png", "data": base64.b64encode(b"\x89PNG corpus").decode()}]
    c.ok("fhir", "valid_base64.json", _j(with_(PATIENT, photo=photo)), about="Attachment.data Base64")
    table = f'<div {XHTML}><table><tr><td>Glucose</td><td>5.5 &amp; ok</td></tr></table><img src="#p1" alt="x"/></div>'
    c.ok("fhir", "valid_narrative.json", _j(narrative(table)), about="table, entity, internal image")
    c.ok(
        "fhir",
        "valid_transaction_put.json",
        _j(transaction(entry(PATIENT, 1, request={"method": "PUT", "url": "Patient/corpus-p1"}))),
        about="PUT",
    )
    c.ok("fhir", "valid_statuses.json", _j(with_(OBSERVATION, status="amended")), about="another status")
    c.ok(
        "fhir",
        "valid_control_tab.json",
        _j(with_(PATIENT, name=[{"family": "Tester\tA", "given": ["Alex"]}])),
        about="tab allowed",
    )

    bad = c.bad
    bad(
        "fhir",
        "invalid_json.json",
        b'{"resourceType": "Patient", "id": "x"',
        "fhir_invalid_json",
        about="truncated JSON",
    )
    bad("fhir", "nan.json", b'{"resourceType": "Observation", "valueDecimal": NaN}', "fhir_invalid_json", about="NaN")
    bad(
        "fhir",
        "duplicate_key.json",
        b'{"resourceType":"Patient","id":"a","gender":"male","id":"b"}',
        "fhir_duplicate_key",
        about="id twice",
    )
    bad(
        "fhir",
        "unsupported_resource.json",
        _j({"resourceType": "Claim", "id": "c1"}),
        "fhir_unsupported_resource",
        about="Claim",
    )
    bad("fhir", "unknown_resource.json", _j({"resourceType": "Patinet", "id": "c1"}), "fhir_invalid", about="typo")
    bad("fhir", "wrong_type.json", _j(with_(PATIENT, active="true")), "fhir_wrong_type", about="string for boolean")
    bad("fhir", "unknown_element.json", _j(with_(PATIENT, nickname="Al")), "fhir_invalid", about="unknown element")
    bad("fhir", "empty_string.json", _j(with_(PATIENT, birthDate="")), "fhir_invalid", about="empty value")
    bad(
        "fhir",
        "missing_patient.json",
        _j(with_(OBSERVATION, subject={"reference": "Group/g1"})),
        "fhir_missing_patient",
        about="Group",
    )
    # Calendar dates.
    dates = {
        "birth_feb29": with_(PATIENT, birthDate="1981-02-29"),
        "birth_apr31": with_(PATIENT, birthDate="1980-04-31"),
        "effective_jun31": with_(OBSERVATION, effectiveDateTime="2023-06-31T08:00:00Z"),
        "issued_feb30": with_(OBSERVATION, issued="2023-02-30T08:00:00Z"),
        "period_nov31": with_(OBSERVATION, effectiveDateTime=None, effectivePeriod={"start": "2023-11-31"}),
        "feb29_1900": with_(PATIENT, birthDate="1900-02-29"),
    }
    for name, doc in dates.items():
        bad("fhir", f"date_{name}.json", _j(doc), "fhir_invalid_datetime", about=name)
    bad("fhir", "date_month13.json", _j(with_(PATIENT, birthDate="1980-13-01")), "fhir_invalid", about="grammar")
    # Integer ranges.
    ints = {
        "above": with_(OBSERVATION, valueQuantity=None, valueInteger=2**31),
        "below": with_(OBSERVATION, valueQuantity=None, valueInteger=-(2**31) - 1),
        "huge": with_(PATIENT, multipleBirthInteger=10**30),
    }
    for name, doc in ints.items():
        bad("fhir", f"integer_{name}.json", _j(doc), "fhir_out_of_range", about=name)
    sampled = {"origin": {"value": 0}, "dimensions": 0, "intervalUnit": "ms", "interval": 1, "data": "1 2"}
    obs = with_(OBSERVATION, valueQuantity=None, valueSampledData=sampled)
    bad("fhir", "positiveint_zero.json", _j(obs), "fhir_out_of_range", about="SampledData.dimensions 0")
    # Id grammar.
    for name, value in (
        ("traversal", "../../etc"),
        ("65_chars", "a" * 65),
        ("space", "a b"),
        ("underscore", "a_b"),
        ("unicode", "pätient"),
    ):
        bad("fhir", f"id_{name}.json", _j(with_(PATIENT, id=value)), "fhir_invalid_id", about=f"id {name}")
    # Base64.
    for name, value in (("chars", "not base64!!"), ("length", "QUJDRA="), ("inner_pad", "QQ==QUJD")):
        doc = with_(PATIENT, photo=[{"contentType": "image/png", "data": value}])
        bad("fhir", f"base64_{name}.json", _j(doc), "fhir_invalid_base64", about=f"Attachment.data {name}")
    # Bundle rules.
    bundles = {
        "no_request": (transaction(entry(PATIENT, 1)), "bdl-3 request missing"),
        "bad_method": (transaction(entry(PATIENT, 1, request={"method": "FETCH", "url": "Patient"})), "bdl-3 FETCH"),
        "lowercase_method": (
            transaction(entry(PATIENT, 1, request={"method": "post", "url": "Patient"})),
            "bdl-3 post",
        ),
        "collection_with_request": (
            {"resourceType": "Bundle", "type": "collection", "entry": [entry(PATIENT, 1, request=POST_PATIENT)]},
            "bdl-3 request in a collection",
        ),
        "total_in_transaction": (dict(transaction(entry(PATIENT, 1, request=POST_PATIENT)), total=1), "bdl-1"),
        "search_in_transaction": (
            transaction(entry(PATIENT, 1, request=POST_PATIENT, search={"mode": "match"})),
            "bdl-2",
        ),
        "response_in_transaction": (
            transaction(entry(PATIENT, 1, request=POST_PATIENT, response={"status": "201"})),
            "bdl-4",
        ),
        "history_fullurl": (
            transaction(
                {"fullUrl": "http://x.org/fhir/Patient/1/_history/2", "resource": PATIENT, "request": POST_PATIENT}
            ),
            "bdl-8",
        ),
        "duplicate_fullurl": (
            transaction(entry(PATIENT, 1, request=POST_PATIENT), entry(OBSERVATION, 1, request=POST_OBS)),
            "bdl-7",
        ),
        "document_not_composition_first": (document(PRACTITIONER, first="Patient"), "bdl-11"),
        "document_no_identifier": (document(PRACTITIONER, identifier=None), "bdl-9"),
        "document_no_timestamp": (document(PRACTITIONER, timestamp=None), "bdl-10"),
    }
    for name, (doc, about) in bundles.items():
        bad("fhir", f"bundle_{name}.json", _j(doc), "fhir_bundle_invalid", about=about)
    practitioner_in_txn = transaction(entry(PRACTITIONER, 1, request={"method": "POST", "url": "Practitioner"}))
    bad(
        "fhir",
        "bundle_practitioner_in_transaction.json",
        _j(practitioner_in_txn),
        "fhir_unsupported_resource",
        about="not a document",
    )
    bad(
        "fhir",
        "bundle_searchset.json",
        _j({"resourceType": "Bundle", "type": "searchset", "entry": [entry(PATIENT, 1)]}),
        "fhir_unsupported_resource",
        about="searchset",
    )
    # Required value sets.
    codes = {
        "observation_status": with_(OBSERVATION, status="done-ish"),
        "patient_gender": with_(PATIENT, gender="M"),
        "name_use": with_(PATIENT, name=[{"use": "formal", "family": "Tester"}]),
        "encounter_status": {"resourceType": "Encounter", "status": "done", "subject": {"reference": "Patient/p"}},
        "narrative_status": with_(PATIENT, text={"status": "auto", "div": f"<div {XHTML}>x</div>"}),
        "bundle_type_case": {"resourceType": "Bundle", "type": "Transaction", "entry": [entry(PATIENT, 1)]},
    }
    for name, doc in codes.items():
        expected = "fhir_unsupported_resource" if name == "bundle_type_case" else "fhir_invalid_code"
        bad("fhir", f"code_{name}.json", _j(doc), expected, about=name)
    bad(
        "fhir",
        "code_grammar.json",
        _j(with_(OBSERVATION, status="fi  nal")),
        "fhir_invalid",
        about="double space in a code",
    )
    # Narrative (txt-1, txt-2).
    divs = {
        "script": f"<div {XHTML}><script>alert(1)</script>x</div>",
        "onclick": f'<div {XHTML}><p onclick="alert(1)">x</p></div>',
        "onload_img": f'<div {XHTML}><img src="#a" onload="alert(1)"/></div>',
        "javascript_href": f'<div {XHTML}><a href="javascript:alert(1)">x</a></div>',
        "iframe": f'<div {XHTML}><iframe src="http://x.org"></iframe></div>',
        "style_expression": f'<div {XHTML}><p style="width: expression(alert(1))">x</p></div>',
        "no_namespace": "<div><p>x</p></div>",
        "empty": f"<div {XHTML}>   </div>",
        "unclosed": f"<div {XHTML}><p>x</div>",
        "not_div": f"<p {XHTML}>x</p>",
        "form": f'<div {XHTML}><form action="http://x.org"><input/></form></div>',
    }
    for name, div in divs.items():
        bad("fhir", f"narrative_{name}.json", _j(narrative(div)), "fhir_unsafe_narrative", about=name)
    # Control characters (escaped: raw ones are not even JSON).
    for name, char in (("nul", "\x00"), ("esc", "\x1b[2J"), ("bel", "\x07")):
        doc = with_(PATIENT, name=[{"family": f"Tester{char}", "given": ["Alex"]}])
        bad("fhir", f"control_{name}.json", json.dumps(doc).encode(), "ingest_control_character", about=name)
    bad(
        "fhir",
        "control_raw_nul.json",
        _j(PATIENT).replace(b"Tester", b"Test\x00er"),
        "fhir_invalid_json",
        about="raw NUL",
    )
    # Resource limits.
    names = with_(PATIENT, name=[{"family": "Tester", "given": ["x"] * 100_000}])
    bad("fhir", "limit_100000_given.json", _j(names), "ingest_limit_exceeded", about="100,000 given names")
    bad(
        "fhir",
        "limit_json_depth_10000.json",
        b'{"resourceType":"Patient","extension":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        "ingest_limit_exceeded",
        about="10,000 levels",
    )
    # 100,000 levels: with the node's recursion limit (100,000) the C decoder would overflow the stack here.
    deep = b'{"resourceType":"Patient","extension":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bad("fhir", "limit_json_depth_100000.json", deep, "ingest_limit_exceeded", about="100,000 levels")
    deep_objects = b'{"resourceType":"Patient","extension":[' + b'{"extension":[' * 5_000 + b"]}" * 5_000 + b"]}"
    bad("fhir", "limit_json_objects_5000.json", deep_objects, "ingest_limit_exceeded", about="5,000 object levels")
    ext: dict[str, Any] = {"url": "http://x.org/e", "valueString": "leaf"}
    for _ in range(100):
        ext = {"url": "http://x.org/e", "extension": [ext]}
    bad(
        "fhir",
        "limit_extension_depth_100.json",
        _j(with_(PATIENT, extension=[ext])),
        "ingest_limit_exceeded",
        about="100 levels",
    )
    entries = [{"resource": {"resourceType": "Patient"}}] * 10_001
    bad(
        "fhir",
        "limit_bundle_10001_entries.json",
        _j(transaction(*entries)),
        "ingest_limit_exceeded",
        about="10,001 entries",
    )


# --- API payloads (framing and non-clinical bodies) ------------------------------------------------------------


def api_corpus(c: Corpus) -> None:
    message = adt()
    c.ok("api", "mllp_framed.hl7", b"\x0b" + message + b"\x1c\r", about="MLLP start/end bytes")
    c.ok("api", "crlf_segments.hl7", message.replace(b"\r", b"\r\n"), about="CRLF separators")
    c.ok("api", "bom_fhir.json", b"\xef\xbb\xbf" + _j(PATIENT), about="UTF-8 BOM before JSON")
    c.ok("api", "pretty_fhir.json", json.dumps(OBSERVATION, indent=2).encode(), about="indented JSON")
    c.ok("api", "fhir_named_txt.txt", _j(PATIENT), about="content decides, not the name")
    c.ok("api", "hl7_named_json.json", message, about="HL7 in a .json file")
    for name, data, about in (
        ("plain_text.txt", b"Patient feels better today.\n", "prose"),
        ("png.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "an image format"),
        ("json_no_resource_type.json", b'{"id": "x", "name": "y"}', "JSON, not FHIR"),
        ("json_array.json", b'[{"resourceType": "Patient"}]', "a JSON array"),
        ("fhir_xml.xml", b'<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>', "FHIR XML"),
        ("zip.zip", b"PK\x03\x04" + bytes(60), "an archive"),
        ("html.html", b"<!doctype html><script>alert(1)</script>", "HTML"),
        ("whitespace.txt", b" \r\n\t ", "whitespace only"),
    ):
        c.bad("api", name, data, "unknown_format", about=about)


GENERATORS: tuple[Callable[[Corpus], None], ...] = (hl7_corpus, dicom_corpus, fhir_corpus, api_corpus)


def generate(out: Path) -> Corpus:
    corpus = Corpus(out)
    for generator in GENERATORS:
        generator(corpus)
    corpus.write_manifest()
    return corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    corpus = generate(args.out)
    print(f"{len(corpus.entries)} files in {args.out}")


if __name__ == "__main__":
    main()
