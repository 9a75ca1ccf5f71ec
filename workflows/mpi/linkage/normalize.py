"""From a source's values to the fields the matcher compares, always through :mod:`medledger.demographics`.

A patient list's row (or, later, a feed's record) first becomes a :class:`~medledger.demographics.Demographics`
— the one model every source format maps onto — and then a :class:`Fields`: names as characters and as a Latin
key (pinyin for Han text, letters for Latin text, so ``王小东`` and ``Wang Xiaodong`` share a key), the birth date
as ``YYYYMMDD`` digits, sex, address tokens, postcode and the strong identifiers. Traditional characters are
folded onto simplified ones (``陳`` → ``陈``) before anything else, so the two scripts compare equal.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medledger.demographics import (
    RESIDENT_ID_TYPE,
    Address,
    BirthDate,
    Demographics,
    Identifier,
    PersonName,
    Sex,
    has_han,
    make_identifier,
    normalize_text,
    parse_birth_date,
    person_name,
)

#: The fields a ``--columns`` mapping may name (``address`` may take several columns, joined in order).
FIELD_NAMES = (
    "id",
    "family",
    "given",
    "name",
    "sex",
    "birth_date",
    "address",
    "city",
    "state",
    "postcode",
    "resident_id",
    "mrn",
    "mrn_authority",
    "insurance",
)

# Compound surnames: a full name in one column starting with one of these splits after two characters, not one.
_COMPOUND_SURNAMES = frozenset(
    (
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "单于",
        "澹台",
        "万俟",
        "端木",
        "申屠",
        "太史",
        "闻人",
        "赫连",
        "南宫",
        "独孤",
        "呼延",
        "西门",
        "百里",
        "东郭",
        "公羊",
        "濮阳",
        "淳于",
        "仲孙",
        "拓跋",
        "乐正",
        "漆雕",
        "壤驷",
        "公冶",
        "宗政",
    )
)
_NOT_LETTER = re.compile(r"[^a-z]")
_TOKEN = re.compile(r"\w+")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_DIGITS = re.compile(r"\d")
# Romanizations of ü as passports and registries write it (GB/T 28039: lyu, nyu; common: lv, nv) -> one form.
_UE = (("ü", "u"), ("lyu", "lu"), ("nyu", "nu"), ("lv", "lu"), ("nv", "nu"))
_SEX_WORDS = {
    "m": Sex.MALE,
    "male": Sex.MALE,
    "man": Sex.MALE,
    "1": Sex.MALE,
    "男": Sex.MALE,
    "f": Sex.FEMALE,
    "female": Sex.FEMALE,
    "woman": Sex.FEMALE,
    "w": Sex.FEMALE,
    "2": Sex.FEMALE,
    "女": Sex.FEMALE,
}


@lru_cache(maxsize=1)
def _converter() -> Any:
    try:  # its dictionary loads on first use: only lists with Han text pay for it
        return importlib.import_module("zhconv")
    except ImportError:  # pragma: no cover - a pinned dependency; the fold is skipped only if it is absent
        return None


@lru_cache(maxsize=65536)
def simplified(text: str) -> str:
    """``text`` with traditional Han characters folded onto simplified ones (unchanged without Han text)."""
    if not has_han(text):
        return text
    zhconv = _converter()
    return text if zhconv is None else str(zhconv.convert(text, "zh-cn"))


def latin_key(text: str) -> str:
    """Letters a-z only (spaces, hyphens, apostrophes dropped), ü's romanizations folded to u."""
    for old, new in _UE:
        text = text.replace(old, new)
    return _NOT_LETTER.sub("", text)


@dataclass(frozen=True)
class NamePart:
    """One name part as the matcher compares it: ``chars`` (normalized, simplified, no spaces) and ``key``
    (toneless pinyin for Han text, else the letters)."""

    chars: str = ""
    key: str = ""
    han: bool = False


@dataclass(frozen=True)
class Fields:
    """One record as the matcher compares it. Empty strings are missing values."""

    id: str
    family: NamePart = NamePart()
    given: NamePart = NamePart()
    birth_date: str = ""  # YYYYMMDD digits (fewer when the source gave only a year or month)
    sex: str = ""
    address: tuple[str, ...] = ()
    postcode: str = ""
    resident_id: str = ""  # only a valid GB 11643 number
    mrn: str = ""  # "authority|value", only with an authority
    insurance: str = ""


def split_full_name(text: str) -> tuple[str, str]:
    """(family, given) from a full name in one column: Han names are family-first (a compound surname takes two
    characters); Latin names are taken as given-first (the matcher also tries them swapped)."""
    text = text.strip()
    if not text:
        return "", ""
    compact = "".join(text.split())
    if has_han(compact):
        cut = 2 if simplified(compact[:2]) in _COMPOUND_SURNAMES and len(compact) > 2 else 1
        return compact[:cut], compact[cut:]
    words = text.split()
    return (words[-1], " ".join(words[:-1])) if len(words) > 1 else (words[0], "")


def parse_sex(value: str) -> Sex | None:
    text = value.strip()
    if not text:
        return None
    return _SEX_WORDS.get(text.casefold()) or Sex.from_fhir(text.casefold()) or Sex.from_hl7(text)


def parse_date(value: str) -> BirthDate | None:
    """Birth dates as patient lists write them: the demographic model's forms, plus ``YYYY/MM/DD`` and
    ``YYYY.MM.DD``."""
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{4}[/.]\d{1,2}[/.]\d{1,2}", text):
        y, m, d = re.split(r"[/.]", text)
        text = f"{y}-{int(m):02d}-{int(d):02d}"
    return parse_birth_date(text)


def demographics(row: Mapping[str, str]) -> Demographics:
    """A row of mapped values (keys from :data:`FIELD_NAMES`, address lines joined) as the demographic model."""
    family, given = row.get("family", ""), row.get("given", "")
    if not family.strip() and not given.strip() and row.get("name", "").strip():
        family, given = split_full_name(row["name"])
    name = person_name(simplified(family), [simplified(given)] if given.strip() else [])
    identifiers: list[Identifier] = []
    for value, authority, type_code in (
        # Untyped: the model types it RESIDENT_ID_TYPE only if it is valid (a mistyped number must not link).
        (row.get("resident_id", ""), "", ""),
        (row.get("mrn", ""), row.get("mrn_authority", ""), "MR"),
        (row.get("insurance", ""), "", "SN"),
    ):
        ident = make_identifier(value, authority, type_code)
        if ident is not None:
            identifiers.append(ident)
    address = Address(
        lines=tuple(x for x in (row.get("address", "").strip(),) if x),
        city=row.get("city", "").strip(),
        state=row.get("state", "").strip(),
        postal_code=row.get("postcode", "").strip(),
    )
    return Demographics(
        names=(name,) if name else (),
        sex=parse_sex(row.get("sex", "")),
        birth_date=parse_date(row.get("birth_date", "")),
        identifiers=tuple(identifiers),
        addresses=(address,) if address else (),
    )


def _part(text_normalized: str, pinyin: str) -> NamePart:
    chars = "".join(text_normalized.split())
    if not chars:
        return NamePart()
    han = has_han(chars)
    return NamePart(chars, latin_key(pinyin if han else chars), han)


def _birth_digits(raw: str, parsed: BirthDate | None) -> str:
    if parsed is not None:
        return str(parsed).replace("-", "")
    # An impossible date (a typo: month 13, day 32) still carries most of its digits; keep them for comparison.
    digits = "".join(_DIGITS.findall(raw))
    return digits if len(digits) == 8 else ""


@lru_cache(maxsize=65536)  # a household's members, and both lists' copies of a person, share the address
def address_tokens(text: str) -> tuple[str, ...]:
    """Words of a normalized address; a run of Han characters (Chinese addresses have no spaces) becomes its
    character bigrams."""
    out: list[str] = []
    for word in _TOKEN.findall(normalize_text(simplified(text))):
        pos = 0
        for run in _HAN_RUN.finditer(word):
            if run.start() > pos:
                out.append(word[pos : run.start()])
            han = run.group()
            out.extend(han[i : i + 2] for i in range(max(1, len(han) - 1)))
            pos = run.end()
        if pos < len(word):
            out.append(word[pos:])
    return tuple(out)


def fields_of(record_id: str, demo: Demographics, raw_birth_date: str = "") -> Fields:
    """The comparison fields of one person's demographics (the first name and address count)."""
    name = demo.names[0] if demo.names else PersonName()
    family = _part(name.family.normalized, name.family.pinyin)
    given = _part(name.given.normalized, name.given.pinyin)
    rid = demo.identifier(RESIDENT_ID_TYPE)
    mrn = demo.identifier("MR")
    insurance = demo.identifier("SN")
    addr = demo.addresses[0] if demo.addresses else Address()
    address_text = " ".join((*addr.lines, addr.city, addr.state))
    return Fields(
        id=record_id,
        family=family,
        given=given,
        birth_date=_birth_digits(raw_birth_date, demo.birth_date),
        sex=demo.sex.value if demo.sex in (Sex.MALE, Sex.FEMALE) else "",
        address=address_tokens(address_text),
        postcode="".join(addr.postal_code.split()).casefold(),
        resident_id=rid.value if rid is not None else "",
        mrn=f"{mrn.authority}|{mrn.value}" if mrn is not None and mrn.authority else "",
        insurance=normalize_text(insurance.value) if insurance is not None else "",
    )


def normalize_row(row: Mapping[str, str]) -> Fields:
    """A mapped row (see :func:`demographics`) → its comparison fields."""
    return fields_of(row.get("id", ""), demographics(row), row.get("birth_date", ""))


def normalize_rows(rows: Sequence[Mapping[str, str]]) -> list[Fields]:
    return [normalize_row(r) for r in rows]
