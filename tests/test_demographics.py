"""The demographic identity model: name normalization and pinyin, sex vocabularies, partial birth dates, and the
Chinese resident identity number check (GB 11643, ISO 7064 MOD 11-2)."""

from __future__ import annotations

import pickle
from datetime import date

import pytest

from medledger.demographics import (
    RESIDENT_ID_TYPE,
    BirthDate,
    DatePrecision,
    Demographics,
    Identifier,
    PersonName,
    Sex,
    authority_uri,
    is_valid_resident_id,
    make_identifier,
    name_text,
    normalize_text,
    parse_birth_date,
    parse_resident_id,
    person_name,
    resident_id_check_char,
)

# --- names ------------------------------------------------------------------------------------------------------


def _fullwidth(text: str) -> str:
    """The full-width (CJK typesetting) forms of ASCII letters and digits."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("  Jan   Willem ", "jan willem"),
        (_fullwidth("WANG") + "\u3000Xiaodong", "wang xiaodong"),  # full-width letters and the ideographic space (NFKC)
        ("STRAßE", "strasse"),  # case folding, not lower-casing
        (_fullwidth("Anna") + "-Marie\t\nde  Vries", "anna-marie de vries"),
        ("王\u3000小东", "王 小东"),
    ],
)
def test_normalized_form_is_nfkc_casefolded_and_whitespace_collapsed(text, normalized):
    assert normalize_text(text) == normalized
    assert name_text(text).normalized == normalized
    assert name_text(text).original == text.strip()


@pytest.mark.parametrize(
    ("text", "surname", "pinyin"),
    [
        ("王", True, "wang"),
        ("小东", False, "xiaodong"),  # the syllables of one name part run together (GB/T 28039)
        ("小東", False, "xiaodong"),  # traditional characters
        ("張偉", False, "zhangwei"),
        ("欧阳", True, "ouyang"),
        ("诸葛", True, "zhuge"),
        ("吕", True, "lü"),  # toneless pinyin keeps ü
        ("女", False, "nü"),
        ("李 小明", False, "li xiaoming"),  # the text's own spacing is kept
        ("Li小明", False, "lixiaoming"),  # Latin letters pass through, normalized
    ],
)
def test_han_names_get_toneless_pinyin(text, surname, pinyin):
    assert name_text(text, surname=surname).pinyin == pinyin


@pytest.mark.parametrize(
    ("surname", "reading", "common"),
    [
        ("单", "shan", "dan"),
        ("曾", "zeng", "ceng"),
        ("解", "xie", "jie"),
        ("仇", "qiu", "chou"),
        ("朴", "piao", "pu"),
        ("查", "zha", "cha"),
        ("区", "ou", "qu"),
        ("翟", "zhai", "di"),
        ("单于", "chanyu", "chanyu"),  # the compound surname reads 单 as chan, not shan
        ("尉迟", "yuchi", "yuchi"),
    ],
)
def test_family_names_use_surname_readings(surname, reading, common):
    assert name_text(surname, surname=True).pinyin == reading
    assert name_text(surname).pinyin == common  # the same characters in a given name read as usual


@pytest.mark.parametrize("text", ["Bakker", "やまだ", "홍길동", "Διονυσιος", ""])
def test_names_without_han_characters_have_no_pinyin(text):
    assert name_text(text).pinyin == ""


def test_pinyin_of_a_han_name_matches_its_latin_spelling():
    han = person_name("王", ["小东"])
    latin = person_name("Wang", ["Xiaodong"])
    assert han is not None and latin is not None
    assert (han.family.pinyin, han.given.pinyin) == (latin.family.normalized, latin.given.normalized)


def test_person_name_joins_given_names_and_drops_empty_names():
    name = person_name(" Bakker ", ["Jan", "", " Willem "])
    assert name == PersonName(name_text("Bakker", surname=True), name_text("Jan Willem"))
    assert name.given.original == "Jan Willem"
    assert person_name("", ["", " "]) is None
    assert person_name("Madonna") == PersonName(name_text("Madonna", surname=True))


# --- sex ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "sex"),
    [("male", Sex.MALE), ("female", Sex.FEMALE), ("other", Sex.OTHER), ("unknown", Sex.UNKNOWN), ("M", None)],
)
def test_sex_from_fhir_administrative_gender(code, sex):
    assert Sex.from_fhir(code) is sex


@pytest.mark.parametrize(
    ("code", "sex", "fhir"),
    [
        ("M", Sex.MALE, "male"),
        ("F", Sex.FEMALE, "female"),
        ("O", Sex.OTHER, "other"),
        ("U", Sex.UNKNOWN, "unknown"),
        ("A", Sex.AMBIGUOUS, "other"),  # the HL7 v2-to-FHIR concept map sends A and N to "other"
        ("N", Sex.NOT_APPLICABLE, "other"),
        ("m", Sex.MALE, "male"),
    ],
)
def test_sex_from_hl7_table_0001(code, sex, fhir):
    assert Sex.from_hl7(code) is sex
    assert sex.fhir == fhir


@pytest.mark.parametrize("code", ["X", "male", "", "  "])
def test_unknown_hl7_sex_codes_are_absent(code):
    assert Sex.from_hl7(code) is None


@pytest.mark.parametrize(
    ("code", "sex"), [("M", Sex.MALE), ("F", Sex.FEMALE), ("O", Sex.OTHER), ("U", None), ("A", None), ("", None)]
)
def test_sex_from_dicom(code, sex):
    assert Sex.from_dicom(code) is sex


# --- birth dates --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first_day", "precision", "iso"),
    [
        ("1975", date(1975, 1, 1), DatePrecision.YEAR, "1975"),  # FHIR partial dates
        ("1975-03", date(1975, 3, 1), DatePrecision.MONTH, "1975-03"),
        ("1975-03-12", date(1975, 3, 12), DatePrecision.DAY, "1975-03-12"),
        ("197503", date(1975, 3, 1), DatePrecision.MONTH, "1975-03"),  # HL7 DTM
        ("19750312", date(1975, 3, 12), DatePrecision.DAY, "1975-03-12"),  # HL7 DTM, DICOM DA
        ("197503121030+0100", date(1975, 3, 12), DatePrecision.DAY, "1975-03-12"),  # HL7 birth time: the date
        ("1975.03.12", date(1975, 3, 12), DatePrecision.DAY, "1975-03-12"),  # retired ACR-NEMA DA
        ("2000-02-29", date(2000, 2, 29), DatePrecision.DAY, "2000-02-29"),
    ],
)
def test_birth_dates_keep_their_precision(text, first_day, precision, iso):
    birth = parse_birth_date(text)
    assert birth == BirthDate(first_day, precision)
    assert str(birth) == iso


@pytest.mark.parametrize("text", ["", "19751312", "1975-02-30", "1900-02-29", "19750", "1975-3", "abcd", "75-03-12"])
def test_invalid_birth_dates_are_absent(text):
    assert parse_birth_date(text) is None


# --- resident identity numbers ------------------------------------------------------------------------------------

# The two worked examples of GB 11643-1999, and one built here (Beijing Dongcheng, born 1980-05-17, 001).
STANDARD_EXAMPLES = ["11010519491231002X", "440524188001010014"]
BUILT = "110101198005170011"


def test_check_character_is_iso_7064_mod_11_2():
    assert resident_id_check_char("11010519491231002") == "X"  # weighted sum mod 11 == 2 → X
    assert resident_id_check_char("44052418800101001") == "4"
    # 1·7 + 1·9 + 0·10 + 1·5 + 0·8 + 1·4 + 1·2 + 9·1 + 8·6 + 0·3 + 0·7 + 5·9 + 1·10 + 7·5 + 0·8 + 0·4 + 1·2 = 176,
    # 176 mod 11 = 0 → "1"
    assert resident_id_check_char(BUILT[:17]) == "1"
    with pytest.raises(ValueError):
        resident_id_check_char("1101011980051700")


@pytest.mark.parametrize("value", [*STANDARD_EXAMPLES, BUILT, "11010519491231002x", " 440524188001010014 "])
def test_valid_resident_ids(value):
    assert is_valid_resident_id(value)


def test_resident_id_parts():
    info = parse_resident_id("11010519491231002x")
    assert info is not None
    assert (info.value, info.region, info.birth_date, info.sequence) == (
        "11010519491231002X",
        "110105",
        date(1949, 12, 31),
        "002",
    )
    assert info.sex is Sex.FEMALE  # even sequence
    built = parse_resident_id(BUILT)
    assert built is not None and built.sex is Sex.MALE


def test_every_single_digit_error_is_caught():
    for position in range(17):
        for digit in "0123456789":
            if digit != BUILT[position]:
                wrong = BUILT[:position] + digit + BUILT[position + 1 :]
                # some substitutions also break the region or date; none may pass
                assert not is_valid_resident_id(wrong), wrong


def test_adjacent_transpositions_are_caught():
    for position in range(16):
        a, b = BUILT[position], BUILT[position + 1]
        if a != b:
            swapped = BUILT[:position] + b + a + BUILT[position + 2 :]
            assert not is_valid_resident_id(swapped), swapped


def _with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("110101198005170012", "wrong check digit"),
        ("11010119800517001X", "X where 1 is due"),
        (_with_check("99010119800517001"), "no province 99 in GB/T 2260"),
        (_with_check("00010119800517001"), "no province 00"),
        (_with_check("11010119800230001"), "30 February"),
        (_with_check("11010119801317001"), "month 13"),
        (_with_check("11010117991231001"), "born before 1800"),
        (_with_check("11010130000101001"), "born in the future"),
        ("11010119800517001", "17 characters"),
        ("1101011980051700111", "19 characters"),
        ("11010119800517001Y", "Y is no check character"),
        (_fullwidth(BUILT), "full-width digits"),
        ("110101-19800517-0011", "separators"),
    ],
)
def test_invalid_resident_ids(value, why):
    assert not is_valid_resident_id(value), why


def test_birth_date_must_not_be_after_today():
    value = _with_check("11010120260101001")
    assert is_valid_resident_id(value, today=date(2026, 1, 1))
    assert not is_valid_resident_id(value, today=date(2025, 12, 31))


# --- identifiers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source_type", ["", "NI", "NN", RESIDENT_ID_TYPE])
def test_valid_resident_ids_are_typed(source_type):
    assert make_identifier("11010519491231002x", "", source_type) == Identifier("11010519491231002X", "", "NNCHN")


def test_more_specific_types_and_invalid_numbers_are_kept():
    assert make_identifier(BUILT, "urn:oid:2.16.840.1.113883.19.5", "MR") == Identifier(
        BUILT, "urn:oid:2.16.840.1.113883.19.5", "MR"
    )
    assert make_identifier("110101198005170012") == Identifier("110101198005170012")
    assert make_identifier("  ") is None


@pytest.mark.parametrize(
    ("hd", "authority"),
    [
        (("HOSPA", "1.2.840.114350.1.13.99.1", "ISO"), "urn:oid:1.2.840.114350.1.13.99.1"),
        (("HOSPA", "", ""), "HOSPA"),
        (("", "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "UUID"), "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        (("X", "https://hospa.example/mrn", "URI"), "https://hospa.example/mrn"),
        (("HOSPA", "hospa.example", "DNS"), "HOSPA"),  # not a universal id this model writes as a URI
        (("", "hospa.example", "DNS"), "hospa.example"),
    ],
)
def test_authority_prefers_a_universal_id(hd, authority):
    assert authority_uri(*hd) == authority


def test_identifier_lookup_and_pickling():
    demographics = Demographics(
        names=(PersonName(name_text("王", surname=True), name_text("小东")),),
        sex=Sex.MALE,
        birth_date=BirthDate(date(1980, 5, 17)),
        identifiers=(Identifier("MRN-1", "HOSPA", "MR"), Identifier(BUILT, "", RESIDENT_ID_TYPE)),
    )
    assert demographics.identifier("MR") == Identifier("MRN-1", "HOSPA", "MR")
    assert demographics.identifier(RESIDENT_ID_TYPE) == Identifier(BUILT, "", "NNCHN")
    assert demographics.identifier("PPN") is None
    # bulk ingest sends parsed records between processes
    assert pickle.loads(pickle.dumps(demographics)) == demographics
    assert hash(pickle.loads(pickle.dumps(demographics))) == hash(demographics)
