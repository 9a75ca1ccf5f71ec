"""One demographic identity model for every source format (FHIR Patient, HL7 v2 PID, DICOM patient module).

The parsers (``node.ingest.fhir.from_fhir_patient``, ``node.ingest.hl7.from_pid``, ``node.ingest.dicom.from_dicom``)
each map their format onto :class:`Demographics`; a master patient index compares these, never format-specific
fields. The rules that make the same person come out equal whatever the format:

- **Names.** Each family and given part keeps its original text, a normalized form (NFKC, case-folded,
  whitespace collapsed) and, when it holds Han characters, a toneless pinyin romanization in the normalized
  form's case and spacing (family ``王`` → ``wang``, given ``小东`` → ``xiaodong``: syllables of one part run
  together, as GB/T 28039 writes Chinese names), so ``王 小东`` can be matched to ``Wang Xiaodong``. ``ü`` is
  written ``ü`` (``吕`` → ``lü``). Family names read with their surname readings where those differ from the
  common reading (``单`` shan, ``曾`` zeng, ``解`` xie, ...), which pypinyin alone gets wrong. Any Han text is
  romanized, so a Japanese or Korean name in Han characters gets its Mandarin reading (still a stable key for
  matching). Several given names are one part, joined by a space (FHIR ``given`` list, HL7 XPN-2 + XPN-3, DICOM
  given + middle). Names keep the source's order; a DICOM name's component groups (alphabetic, ideographic,
  phonetic) are separate names.
- **Sex.** :class:`Sex` holds HL7 table 0001 (a superset of FHIR administrative-gender and DICOM's M/F/O);
  :attr:`Sex.fhir` maps back to administrative-gender as the HL7 v2-to-FHIR concept map does (A, N → other).
- **Birth date.** A :class:`BirthDate` is the first day of what the source gave plus its precision (``1975``,
  ``1975-03``, ``1975-03-12``); an invalid date is absent, not an error (the record itself stays ingestible).
- **Identifiers.** ``authority`` is a URI when the source names the authority universally (FHIR ``system``, an
  HL7 HD or DICOM issuer qualifier with an ISO OID → ``urn:oid:…``, a UUID → ``urn:uuid:…``, a URI as is), else
  the source's local namespace (HL7 HD-1, DICOM IssuerOfPatientID). ``type_code`` is HL7 table 0203 (``MR``,
  ``NI``, ...). A Chinese resident identity number (GB 11643) that passes :func:`is_valid_resident_id` is typed
  :data:`RESIDENT_ID_TYPE` when the source left it untyped or typed it only as a national identifier; an
  identifier the source typed otherwise (e.g. ``MR``) keeps its type.
- **Address and telecom** use FHIR's element names and codes (``use`` home/work/temp/old/mobile, telecom
  ``system`` phone/fax/email/pager/url/sms/other); HL7 codes are mapped onto them.

Values are stripped of surrounding whitespace and otherwise kept as the source wrote them (only names gain
normalized forms); empty elements are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache

__all__ = [
    "EMPTY_NAME_TEXT",
    "RESIDENT_ID_TYPE",
    "Address",
    "BirthDate",
    "DatePrecision",
    "Demographics",
    "Identifier",
    "NameText",
    "PersonName",
    "ResidentId",
    "Sex",
    "Telecom",
    "authority_uri",
    "has_han",
    "is_valid_resident_id",
    "make_identifier",
    "name_text",
    "normalize_text",
    "parse_birth_date",
    "parse_resident_id",
    "person_name",
    "resident_id_check_char",
]

# --- sex ------------------------------------------------------------------------------------------------------


class Sex(StrEnum):
    """Administrative sex: HL7 v2 table 0001 (F, M, O, U, A, N), which FHIR's and DICOM's codes are subsets of."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"
    AMBIGUOUS = "ambiguous"
    NOT_APPLICABLE = "not-applicable"

    @property
    def fhir(self) -> str:
        """FHIR administrative-gender code (the v2-to-FHIR concept map sends A and N to ``other``)."""
        return _SEX_TO_FHIR.get(self, self.value)

    @classmethod
    def from_fhir(cls, code: str) -> Sex | None:
        """FHIR administrative-gender (male, female, other, unknown); anything else is None."""
        return _FHIR_SEX.get(code.strip())

    @classmethod
    def from_hl7(cls, code: str) -> Sex | None:
        """HL7 v2 table 0001 (M, F, O, U, A, N); anything else is None."""
        return _HL7_SEX.get(code.strip().upper())

    @classmethod
    def from_dicom(cls, code: str) -> Sex | None:
        """DICOM PatientSex (0010,0040): M, F or O; anything else (the value is optional) is None."""
        return _DICOM_SEX.get(code.strip().upper())


_SEX_TO_FHIR = {Sex.AMBIGUOUS: "other", Sex.NOT_APPLICABLE: "other"}
_FHIR_SEX = {s.value: s for s in (Sex.MALE, Sex.FEMALE, Sex.OTHER, Sex.UNKNOWN)}
_HL7_SEX = {
    "M": Sex.MALE,
    "F": Sex.FEMALE,
    "O": Sex.OTHER,
    "U": Sex.UNKNOWN,
    "A": Sex.AMBIGUOUS,
    "N": Sex.NOT_APPLICABLE,
}
_DICOM_SEX = {"M": Sex.MALE, "F": Sex.FEMALE, "O": Sex.OTHER}

# --- birth date -----------------------------------------------------------------------------------------------


class DatePrecision(StrEnum):
    YEAR = "year"
    MONTH = "month"
    DAY = "day"


_ISO_LENGTH = {DatePrecision.YEAR: 4, DatePrecision.MONTH: 7, DatePrecision.DAY: 10}


@dataclass(frozen=True)
class BirthDate:
    """A birth date as precise as the source gave it; ``date`` is the first day of that year or month."""

    date: date
    precision: DatePrecision = DatePrecision.DAY

    def __str__(self) -> str:
        """ISO 8601 at the date's precision (``1975``, ``1975-03``, ``1975-03-12``), as FHIR writes it."""
        return self.date.isoformat()[: _ISO_LENGTH[self.precision]]


_ISO_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
# HL7 DTM and DICOM DA: digits only, a time may follow the day (HL7); DICOM's retired ACR-NEMA form has dots.
_COMPACT_DATE = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(?:\d{2,}.*)?)?)?|(\d{4})\.(\d{2})\.(\d{2})")


def parse_birth_date(value: str) -> BirthDate | None:
    """FHIR ``YYYY[-MM[-DD]]``, HL7 DTM ``YYYY[MM[DD[HHMM...]]]`` or DICOM DA ``YYYYMMDD`` → BirthDate, else None."""
    text = value.strip()
    match = _ISO_DATE.fullmatch(text) if "-" in text or len(text) == 4 else _COMPACT_DATE.fullmatch(text)
    if match is None:
        return None
    groups = [g for g in match.groups() if g is not None]
    parts = [int(g) for g in groups] + [1, 1]
    try:
        when = date(parts[0], parts[1], parts[2])
    except ValueError:
        return None
    precision = (DatePrecision.YEAR, DatePrecision.MONTH, DatePrecision.DAY)[len(groups) - 1]
    return BirthDate(when, precision)


# --- names ----------------------------------------------------------------------------------------------------

# Han ideographs (unified blocks A-I, compatibility blocks); checked after NFKC, which folds most compatibility
# ideographs onto unified ones. Kana and Hangul are not Han and are left as they are.
_HAN = re.compile(
    "[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ee5f\U0002f800-\U0002fa1f\U00030000-\U000323af]"
)

# Surnames whose reading differs from the character's most common one (pypinyin's choice). Longest first, so a
# compound surname wins over its first character (单于 chanyu, but 单 shan).
_SURNAME_READINGS: dict[str, str] = {
    "单于": "chanyu",
    "尉迟": "yuchi",
    "万俟": "moqi",
    "澹台": "tantai",
    "长孙": "zhangsun",
    "乐正": "yuezheng",
    "单": "shan",
    "單": "shan",
    "曾": "zeng",
    "解": "xie",
    "仇": "qiu",
    "朴": "piao",
    "查": "zha",
    "区": "ou",
    "區": "ou",
    "盖": "ge",
    "蓋": "ge",
    "乐": "yue",
    "樂": "yue",
    "覃": "qin",
    "翟": "zhai",
    "缪": "miao",
    "繆": "miao",
    "秘": "bi",
    "员": "yun",
    "員": "yun",
    "种": "chong",
    "種": "chong",
    "召": "shao",
    "重": "chong",
    "薄": "bo",
    "句": "gou",
    "繁": "po",
    "都": "du",
    "隗": "wei",
    "折": "she",
    "么": "yao",
    "阚": "kan",
    "闞": "kan",
    "黑": "he",
    "祭": "zhai",
    "蕃": "pi",
    "能": "nai",
}
_SURNAME_PREFIXES = sorted(_SURNAME_READINGS, key=len, reverse=True)


def normalize_text(text: str) -> str:
    """NFKC, case-folded, runs of whitespace collapsed to one space, trimmed (full-width forms become ASCII)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


@lru_cache(maxsize=4096)  # the same names recur across a patient's records within a bulk ingest
def _pinyin(normalized: str, surname: bool) -> str:
    from pypinyin import Style, lazy_pinyin  # loaded on the first Han name only: its tables are large

    head, rest = "", normalized
    if surname:
        for prefix in _SURNAME_PREFIXES:
            if normalized.startswith(prefix):
                head, rest = _SURNAME_READINGS[prefix], normalized[len(prefix) :]
                break
    # Non-Han runs (Latin letters, spaces, kana) come back unchanged, so the spacing of the text is kept.
    syllables = lazy_pinyin(rest, style=Style.NORMAL, v_to_u=True) if rest else []
    return " ".join((head + "".join(syllables)).casefold().split())


@dataclass(frozen=True)
class NameText:
    """One name part: as written, normalized, and (Han text only, else "") romanized in toneless pinyin."""

    original: str
    normalized: str
    pinyin: str = ""


EMPTY_NAME_TEXT = NameText("", "", "")


def name_text(original: str, *, surname: bool = False) -> NameText:
    """Build a :class:`NameText`; ``surname`` applies the surname readings to the start of the text."""
    original = original.strip()
    if not original:
        return EMPTY_NAME_TEXT
    normalized = normalize_text(original)
    return NameText(original, normalized, _pinyin(normalized, surname) if has_han(normalized) else "")


@dataclass(frozen=True)
class PersonName:
    family: NameText = EMPTY_NAME_TEXT
    given: NameText = EMPTY_NAME_TEXT  # all given names, space-separated


def person_name(family: str, given: Iterable[str] = ()) -> PersonName | None:
    """A PersonName from a family name and the given names in order; None if both are empty."""
    given_text = " ".join(g.strip() for g in given if g and g.strip())
    if not family.strip() and not given_text:
        return None
    return PersonName(name_text(family, surname=True), name_text(given_text))


# --- identifiers ----------------------------------------------------------------------------------------------

#: HL7 table 0203 "NNxxx, National Person Identifier where xxx is the ISO 3166 country code", for China.
RESIDENT_ID_TYPE = "NNCHN"
# Types under which a source may send a resident identity number without saying which nation's it is.
_NATIONAL_TYPES = frozenset({"", "NI", "NN", RESIDENT_ID_TYPE})


@dataclass(frozen=True)
class Identifier:
    value: str
    authority: str = ""  # a URI when the source gives a universal id, else its local namespace
    type_code: str = ""  # HL7 table 0203


def authority_uri(namespace: str, universal_id: str = "", universal_id_type: str = "") -> str:
    """An assigning authority as one string: HL7 HD (HD-1, HD-2, HD-3) or DICOM issuer + qualifiers."""
    universal_id, kind = universal_id.strip(), universal_id_type.strip().upper()
    if universal_id:
        if universal_id.startswith("urn:"):
            return universal_id
        if kind == "ISO":
            return "urn:oid:" + universal_id
        if kind == "UUID":
            return "urn:uuid:" + universal_id.lower()
        if kind in ("URI", "URL"):
            return universal_id
    return namespace.strip() or universal_id


def make_identifier(value: str, authority: str = "", type_code: str = "") -> Identifier | None:
    """An Identifier (None for an empty value); a valid resident identity number is typed :data:`RESIDENT_ID_TYPE`
    unless the source gave it a more specific type than a national identifier."""
    value, type_code = value.strip(), type_code.strip()
    if not value:
        return None
    if type_code in _NATIONAL_TYPES and len(value) == 18 and is_valid_resident_id(value):
        return Identifier(value.upper(), authority.strip(), RESIDENT_ID_TYPE)
    return Identifier(value, authority.strip(), type_code)


# Resident identity number (GB 11643-1999): 6-digit address code (GB/T 2260), birth date YYYYMMDD, 3-digit
# sequence (odd for men, even for women), and an ISO 7064 MOD 11-2 check character (0-9 or X).
_RESIDENT_ID = re.compile(r"(\d{6})(\d{8})(\d{3})([0-9X])")
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum mod 11)
# GB/T 2260 province-level codes, plus 81/82/83: the residence permits for Hong Kong, Macao and Taiwan residents.
_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54}
    | {61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_EARLIEST_BIRTH = date(1800, 1, 1)


@dataclass(frozen=True)
class ResidentId:
    """What a valid resident identity number says about its holder."""

    value: str
    region: str  # GB/T 2260 code of the place of first registration
    birth_date: date
    sequence: str

    @property
    def sex(self) -> Sex:
        return Sex.MALE if int(self.sequence) % 2 else Sex.FEMALE


def resident_id_check_char(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits of a resident identity number."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("a resident identity number has 17 digits before its check character")
    return _CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def parse_resident_id(value: str, *, today: date | None = None) -> ResidentId | None:
    """The parts of a resident identity number if it is valid (18 characters, a GB/T 2260 province prefix, a real
    birth date not after ``today``, the right check character; a lower-case x is accepted), else None."""
    text = value.strip().upper()
    match = _RESIDENT_ID.fullmatch(text) if text.isascii() else None
    if match is None:
        return None
    region, birth, sequence, check = match.groups()
    if int(region[:2]) not in _PROVINCES:
        return None
    try:
        born = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        return None
    if not _EARLIEST_BIRTH <= born <= (today or date.today()):
        return None
    if resident_id_check_char(text[:17]) != check:
        return None
    return ResidentId(text, region, born, sequence)


def is_valid_resident_id(value: str, *, today: date | None = None) -> bool:
    """Whether ``value`` is a valid Chinese resident identity number (see :func:`parse_resident_id`)."""
    return parse_resident_id(value, today=today) is not None


# --- address, telecom, the whole ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...] = ()
    city: str = ""
    district: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    use: str = ""  # FHIR address-use: home, work, temp, old, billing

    def __bool__(self) -> bool:
        return any((self.lines, self.city, self.district, self.state, self.postal_code, self.country))


@dataclass(frozen=True)
class Telecom:
    system: str  # FHIR contact-point-system: phone, fax, email, pager, url, sms, other
    value: str
    use: str = ""  # FHIR contact-point-use: home, work, temp, old, mobile


@dataclass(frozen=True)
class Demographics:
    """Who a record is about, as its source describes them, in one shape for every format."""

    names: tuple[PersonName, ...] = ()
    sex: Sex | None = None
    birth_date: BirthDate | None = None
    identifiers: tuple[Identifier, ...] = ()
    addresses: tuple[Address, ...] = ()
    telecoms: tuple[Telecom, ...] = ()

    def identifier(self, type_code: str) -> Identifier | None:
        """The first identifier of an HL7 0203 type (e.g. ``MR``, :data:`RESIDENT_ID_TYPE`)."""
        return next((i for i in self.identifiers if i.type_code == type_code), None)
