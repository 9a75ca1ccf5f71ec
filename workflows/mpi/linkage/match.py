"""The matcher both modes share: deterministic rules for strong identifiers, blocking, and Fellegi-Sunter with
m/u estimated by EM.

1. **Candidates**: pairs that agree on any blocking pass (:data:`~workflows.mpi.linkage.encode.BLOCKS`) or on a
   strong identifier. A blocking key shared by more than ``max_block_pairs`` pairs (a missing-value default, a very
   common name) is skipped in that pass: the other passes still find its true pairs.
2. **Comparison levels** per field: the similarity of the pair's values — Jaro-Winkler on names, edit similarity
   on digits, token-set similarity on addresses in clear mode; Dice similarity of the keyed Bloom filters in PPRL
   mode — cut at the mode's thresholds into levels (higher: closer; -1: a value is missing, which counts for
   nothing). Names are compared in the source order and swapped (family ↔ given), the better kept.
3. **Fellegi-Sunter**: m (P(level | match)) and u (P(level | non-match)) per field and the match prior are
   estimated by EM over the distinct level patterns (a few thousand at most, whatever the number of pairs), with
   conditional independence between fields; a pair's match probability is the posterior of its pattern.
4. **Rules**: a pair sharing a valid resident ID, an MRN of the same assigning authority or an insurance number is
   a match (probability 1) whatever its other fields say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from workflows.mpi.linkage.encode import FILTERS, Encoded, dice

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: The compared fields, in the columns of a level matrix.
COMPARED = ("family", "given", "birth_date", "sex", "address", "postcode", "resident_id")
#: Similarity cut points per field and mode, highest first (a similarity at or above the i-th gives level n-i).
CUTS: dict[str, dict[str, tuple[float, ...]]] = {
    "clear": {
        "family": (0.999, 0.92, 0.80),
        "given": (0.999, 0.92, 0.80),
        "birth_date": (0.999, 0.87, 0.74),
        "address": (0.999, 0.85, 0.60),
        "postcode": (0.999, 0.74),
    },
    "pprl": {
        "family": (0.999, 0.80, 0.60),
        "given": (0.999, 0.80, 0.60),
        "birth_date": (0.999, 0.85, 0.65),
        "address": (0.999, 0.80, 0.50),
        "postcode": (0.999, 0.70),
    },
}
#: Match / possible-match probability cut points (tuned on the benchmark sets, see docs/mpi.md).
MATCH_THRESHOLD = 0.9
POSSIBLE_THRESHOLD = 0.5
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Links:
    """Candidate pairs (row indices into the left and right lists) with their match probabilities; ``rule`` is
    True where a strong identifier decided."""

    left: IntArray
    right: IntArray
    probability: FloatArray
    rule: npt.NDArray[np.bool_]

    def at_least(self, threshold: float) -> Links:
        keep = self.probability >= threshold
        return Links(self.left[keep], self.right[keep], self.probability[keep], self.rule[keep])


@dataclass(frozen=True)
class Model:
    """Fellegi-Sunter parameters: per field, m and u per level (index = level); the prior P(match)."""

    m: dict[str, FloatArray]
    u: dict[str, FloatArray]
    prior: float
    iterations: int


# --- blocking -------------------------------------------------------------------------------------------------


def _join(lk: IntArray, rk: IntArray, cap: int) -> tuple[IntArray, IntArray]:
    """All (i, j) with lk[i] == rk[j] != 0, leaving out keys shared by more than ``cap`` pairs."""
    order = np.argsort(rk, kind="stable")
    rs = rk[order]
    lo = np.searchsorted(rs, lk, "left")
    cnt = np.searchsorted(rs, lk, "right") - lo
    cnt[lk == 0] = 0
    _, inverse, per_key = np.unique(lk, return_inverse=True, return_counts=True)
    cnt[per_key[inverse] * cnt > cap] = 0
    total = int(cnt.sum())
    li = np.repeat(np.arange(len(lk), dtype=np.int64), cnt)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ri = order[np.repeat(lo, cnt) + offsets]
    return li, ri


def candidates(left: Encoded, right: Encoded | None, max_block_pairs: int = 20_000) -> tuple[IntArray, IntArray]:
    """Candidate pairs, each once; for a dedupe (``right`` None) only i < j."""
    other = left if right is None else right
    width = max(len(other), 1)
    codes = []
    keys = [(left.blocks[:, p], other.blocks[:, p]) for p in range(left.blocks.shape[1])]
    keys += [(left.strong[:, s], other.strong[:, s]) for s in range(left.strong.shape[1])]
    for lk, rk in keys:
        li, ri = _join(lk, rk, max_block_pairs)
        if right is None:
            keep = li < ri
            li, ri = li[keep], ri[keep]
        codes.append(li * width + ri)
    pairs = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    return pairs // width, pairs % width


# --- comparison -----------------------------------------------------------------------------------------------


def _levels(sim: FloatArray, cuts: tuple[float, ...], missing: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
    level = np.zeros(len(sim), np.int8)
    for i, cut in enumerate(reversed(cuts)):
        level[sim >= cut] = i + 1
    level[missing] = -1
    return level


def _pairwise(scorer: Any, a: list[str], b: list[str]) -> FloatArray:
    from rapidfuzz.process import cpdist

    if not a:
        return np.zeros(0, np.float64)
    return np.asarray(cpdist(a, b, scorer=scorer, workers=1), np.float64)


class _Clear:
    def __init__(self, left: Encoded, right: Encoded, li: IntArray, ri: IntArray) -> None:
        self.left, self.right, self.li, self.ri = left, right, li, ri

    def column(self, name: str, side: str) -> list[str]:
        enc, idx = (self.left, self.li) if side == "l" else (self.right, self.ri)
        values = np.asarray(enc.text[name], dtype=object)
        return list(values[idx]) if len(idx) else []

    def missing(self, name: str) -> npt.NDArray[np.bool_]:
        a, b = self.column(name, "l"), self.column(name, "r")
        return np.fromiter((not x or not y for x, y in zip(a, b, strict=True)), np.bool_, len(a))

    def name(self, lpart: str, rpart: str) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        from rapidfuzz.distance import JaroWinkler

        lk, rk = self.column(lpart + "_key", "l"), self.column(rpart + "_key", "r")
        sim = _pairwise(JaroWinkler.normalized_similarity, lk, rk)
        lc, rc = self.column(lpart + "_chars", "l"), self.column(rpart + "_chars", "r")
        han = self.left.han[self.li] & self.right.han[self.ri]
        # Both in characters: the same characters are equal; the same pinyin in other characters is a homophone.
        same_chars = np.fromiter((x == y for x, y in zip(lc, rc, strict=True)), np.bool_, len(lc))
        sim = np.where(han & ~same_chars & (sim >= 0.999), 0.95, sim)
        missing = np.fromiter((not x or not y for x, y in zip(lk, rk, strict=True)), np.bool_, len(lk))
        return sim, missing

    def field(self, name: str) -> FloatArray:
        from rapidfuzz import fuzz
        from rapidfuzz.distance import Levenshtein

        a, b = self.column(name, "l"), self.column(name, "r")
        if name == "address":
            return _pairwise(fuzz.token_set_ratio, a, b) / 100.0
        sim = _pairwise(Levenshtein.normalized_similarity, a, b)
        if name == "birth_date":  # day and month swapped: one of the commonest date errors
            swapped = np.fromiter(
                (len(x) == 8 and x != y and x[:4] + x[6:8] + x[4:6] == y for x, y in zip(a, b, strict=True)),
                np.bool_,
                len(a),
            )
            sim = np.where(swapped, np.maximum(sim, 0.9), sim)
        return sim


class _Filters:
    def __init__(self, left: Encoded, right: Encoded, li: IntArray, ri: IntArray) -> None:
        self.left, self.right, self.li, self.ri = left, right, li, ri

    def sim(self, lname: str, rname: str) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        a, b = self.left.filters[lname][self.li], self.right.filters[rname][self.ri]
        missing = (np.bitwise_count(a).sum(axis=1) == 0) | (np.bitwise_count(b).sum(axis=1) == 0)
        return dice(a, b), missing


def compare(left: Encoded, right: Encoded, li: IntArray, ri: IntArray) -> npt.NDArray[np.int8]:
    """The level matrix (pairs x :data:`COMPARED`) of candidate pairs."""
    if left.mode != right.mode:
        raise ValueError("both lists must be encoded in the same mode")
    cuts = CUTS[left.mode]
    out = np.empty((len(li), len(COMPARED)), np.int8)
    if left.mode == "clear":
        clear = _Clear(left, right, li, ri)
        straight = [clear.name("family", "family"), clear.name("given", "given")]
        swapped = [clear.name("family", "given"), clear.name("given", "family")]
        others = {name: (clear.field(name), clear.missing(name)) for name in ("birth_date", "address", "postcode")}
    else:
        bf = _Filters(left, right, li, ri)
        straight = [bf.sim("family", "family"), bf.sim("given", "given")]
        swapped = [bf.sim("family", "given"), bf.sim("given", "family")]
        others = {name: bf.sim(name, name) for name in FILTERS if name not in ("family", "given")}
    # A swap counts only when it explains the pair clearly better than the source order does.
    use_swap = (swapped[0][0] + swapped[1][0]) > (straight[0][0] + straight[1][0]) + 0.2
    for col, (s, w) in enumerate(zip(straight, swapped, strict=True)):
        sim = np.where(use_swap, w[0], s[0])
        missing = np.where(use_swap, w[1], s[1])
        out[:, col] = _levels(sim, cuts[COMPARED[col]], missing)
    for name, (sim, missing) in others.items():
        out[:, COMPARED.index(name)] = _levels(sim, cuts[name], missing)
    ls, rs = left.sex[li], right.sex[ri]
    out[:, COMPARED.index("sex")] = np.where((ls == 0) | (rs == 0), -1, (ls == rs).astype(np.int8))
    lr, rr = left.strong[li, 0], right.strong[ri, 0]
    out[:, COMPARED.index("resident_id")] = np.where((lr == 0) | (rr == 0), -1, (lr == rr).astype(np.int8))
    return out


# --- Fellegi-Sunter -------------------------------------------------------------------------------------------

_FLOOR = 1e-6


def _n_levels(name: str, mode: str) -> int:
    return len(CUTS[mode][name]) + 1 if name in CUTS[mode] else 2


def fit(levels: npt.NDArray[np.int8], mode: str, *, max_iter: int = 200, tol: float = 1e-7) -> Model:
    """m, u and the prior by EM over the distinct level patterns of ``levels``."""
    if len(levels) == 0:
        raise ValueError("no candidate pairs to estimate the model from")
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    weights = counts.astype(np.float64)
    sizes = [_n_levels(name, mode) for name in COMPARED]
    # One-hot masks per field and level over the patterns, built once.
    masks = [[patterns[:, f] == lv for lv in range(sizes[f])] for f in range(len(COMPARED))]
    m = [np.array([0.02] * (n - 1) + [0.9]) for n in sizes]
    m = [x / x.sum() for x in m]
    # u starts at the levels' frequencies over all candidates (nearly all of which are non-matches).
    u = []
    for f, n in enumerate(sizes):
        seen = np.array([weights[masks[f][lv]].sum() for lv in range(n)]) + 1.0
        u.append(seen / seen.sum())
    prior = 0.1
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        log_m = np.zeros(len(patterns))
        log_u = np.zeros(len(patterns))
        for f in range(len(COMPARED)):
            for lv in range(sizes[f]):
                log_m[masks[f][lv]] += np.log(m[f][lv])
                log_u[masks[f][lv]] += np.log(u[f][lv])
        odds = np.exp(np.clip(np.log(prior) - np.log1p(-prior) + log_m - log_u, -700, 700))
        post = odds / (1.0 + odds)
        pm, pu = post * weights, (1.0 - post) * weights
        new_prior = float(np.clip(pm.sum() / weights.sum(), _FLOOR, 1 - _FLOOR))
        change = abs(new_prior - prior)
        prior = new_prior
        for f in range(len(COMPARED)):
            mm = np.array([pm[masks[f][lv]].sum() for lv in range(sizes[f])])
            uu = np.array([pu[masks[f][lv]].sum() for lv in range(sizes[f])])
            mm = np.maximum(mm / max(mm.sum(), _FLOOR), _FLOOR)
            uu = np.maximum(uu / max(uu.sum(), _FLOOR), _FLOOR)
            change = max(change, float(np.abs(mm / mm.sum() - m[f]).max()), float(np.abs(uu / uu.sum() - u[f]).max()))
            m[f], u[f] = mm / mm.sum(), uu / uu.sum()
        if change < tol:
            break
    return Model(dict(zip(COMPARED, m, strict=True)), dict(zip(COMPARED, u, strict=True)), prior, iteration)


def score(levels: npt.NDArray[np.int8], model: Model) -> FloatArray:
    """P(match | levels) under ``model`` (a missing value contributes nothing)."""
    log_odds = np.full(len(levels), np.log(model.prior) - np.log1p(-model.prior))
    for f, name in enumerate(COMPARED):
        weights = np.log(model.m[name]) - np.log(model.u[name])
        col = levels[:, f].astype(np.int64)
        log_odds += np.where(col >= 0, weights[np.maximum(col, 0)], 0.0)
    return 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))


def link(
    left: Encoded, right: Encoded | None = None, *, progress: Progress | None = None, model: Model | None = None
) -> tuple[Links, Model]:
    """Match ``left`` against ``right`` (or deduplicate ``left``): every candidate pair with its probability,
    and the model used (estimated from these pairs unless one is given)."""
    step = progress or (lambda _stage: None)
    other = left if right is None else right
    step("blocking")
    li, ri = candidates(left, right)
    step("comparing")
    levels = compare(left, other, li, ri)
    step("estimating")
    if model is None:
        model = fit(levels, left.mode) if len(levels) else Model({}, {}, 0.0, 0)
    prob = score(levels, model) if len(levels) else np.zeros(0)
    ls, rs = left.strong[li], other.strong[ri]
    rule = ((ls == rs) & (ls != 0)).any(axis=1)
    prob = np.where(rule, 1.0, prob)
    return Links(li, ri, prob, rule), model
