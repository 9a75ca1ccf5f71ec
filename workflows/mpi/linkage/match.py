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
        "family": (0.999, 0.75, 0.60, 0.45),
        "given": (0.999, 0.75, 0.60, 0.45),
        "birth_date": (0.999, 0.85, 0.70),
        "address": (0.999, 0.80, 0.60, 0.40),
        "postcode": (0.999, 0.70),
    },
}
#: Match / possible-match probability cut points (tuned on the benchmark sets, see docs/mpi.md).
MATCH_THRESHOLD = 0.99
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


#: Pairs compared at once: the gathered filters of a chunk stay in the hundreds of MB, not the GB.
CHUNK = 500_000


def compare(left: Encoded, right: Encoded, li: IntArray, ri: IntArray) -> npt.NDArray[np.int8]:
    """The level matrix (pairs x :data:`COMPARED`) of candidate pairs."""
    if left.mode != right.mode:
        raise ValueError("both lists must be encoded in the same mode")
    if len(li) > CHUNK:
        parts = [_compare(left, right, li[i : i + CHUNK], ri[i : i + CHUNK]) for i in range(0, len(li), CHUNK)]
        return np.concatenate(parts)
    return _compare(left, right, li, ri)


def _compare(left: Encoded, right: Encoded, li: IntArray, ri: IntArray) -> npt.NDArray[np.int8]:
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
# m never goes below this: a level no match reached in training (sex disagreeing) is rare among matches, not
# impossible, and one such field must not veto a pair that agrees on everything else.
_M_FLOOR = 1e-3
#: Fields whose evidence together is capped (natural log of the likelihood ratio): a household shares its address
#: and postcode, so agreeing on them is not independent evidence, and must not outweigh a disagreeing birth date
#: and given name (two siblings at one address are not one person).
CAPPED: tuple[tuple[tuple[str, ...], float], ...] = ((("family", "address", "postcode"), 6.0),)


def _llr(levels: npt.NDArray[np.int8], m: list[FloatArray], u: list[FloatArray]) -> FloatArray:
    """Per row, the log likelihood ratio log P(levels | match) / P(levels | non-match), missing values neutral,
    :data:`CAPPED` groups capped."""
    total = np.zeros(len(levels))
    group = {COMPARED.index(n): g for g, (names, _) in enumerate(CAPPED) for n in names}
    grouped = np.zeros((len(CAPPED), len(levels)))
    for f in range(len(COMPARED)):
        weights = np.log(m[f]) - np.log(u[f])
        col = levels[:, f].astype(np.int64)
        w = np.where(col >= 0, weights[np.maximum(col, 0)], 0.0)
        if f in group:
            grouped[group[f]] += w
        else:
            total += w
    for g, (_, cap) in enumerate(CAPPED):
        total += np.minimum(grouped[g], cap)
    return total


def _n_levels(name: str, mode: str) -> int:
    return len(CUTS[mode][name]) + 1 if name in CUTS[mode] else 2


def _em(
    levels: npt.NDArray[np.int8],
    sizes: list[int],
    m: list[FloatArray],
    u: list[FloatArray],
    prior: float,
    update_m: frozenset[int],
    *,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> tuple[list[FloatArray], float, int]:
    """EM over the distinct level patterns: m of the fields in ``update_m`` and the prior are re-estimated, u
    stays as given (it comes from random pairs, which are non-matches but for a negligible few)."""
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    weights = counts.astype(np.float64)
    masks = [[patterns[:, f] == lv for lv in range(sizes[f])] for f in range(len(sizes))]
    m = [x.copy() for x in m]
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        llr = _llr(patterns, m, u)
        odds = np.exp(np.clip(np.log(prior) - np.log1p(-prior) + llr, -700, 700))
        pm = odds / (1.0 + odds) * weights
        new_prior = float(np.clip(pm.sum() / weights.sum(), _FLOOR, 1 - _FLOOR))
        change = abs(new_prior - prior)
        prior = new_prior
        for f in update_m:
            mm = np.array([pm[masks[f][lv]].sum() for lv in range(sizes[f])])
            if mm.sum() <= 0:
                continue
            mm = np.maximum(mm / mm.sum(), _M_FLOOR)
            mm /= mm.sum()
            change = max(change, float(np.abs(mm - m[f]).max()))
            m[f] = mm
        if change < tol:
            break
    return m, prior, iteration


def _random_pairs(n_left: int, n_right: int, dedupe: bool, size: int, seed: int) -> tuple[IntArray, IntArray]:
    rng = np.random.default_rng(seed)
    li = rng.integers(0, n_left, size, dtype=np.int64)
    ri = rng.integers(0, n_right, size, dtype=np.int64)
    if dedupe:
        keep = li != ri
        li, ri = li[keep], ri[keep]
    return li, ri


def _frequencies(levels: npt.NDArray[np.int8], sizes: list[int]) -> list[FloatArray]:
    out = []
    for f, n in enumerate(sizes):
        seen = np.bincount(levels[:, f][levels[:, f] >= 0].astype(np.int64), minlength=n)[:n].astype(np.float64)
        seen += 1.0  # add-one: a level no random pair reached is rare, not impossible
        out.append(seen / seen.sum())
    return out


#: Training sessions (as Splink trains): EM on the candidates that agree exactly on some fields estimates m of the
#: other fields. Among pairs that share a birth date, households (which share address and family name, not birth
#: dates) no longer look like the matches; the birth date's m then comes from pairs with the same family and given
#: name, with the first session's m fixed. Selecting pairs on some fields does not bias the others' m as long as
#: errors in different fields are independent, which Fellegi-Sunter assumes anyway.
TRAINING = (("birth_date",), ("family", "given"))


def fit(
    left: Encoded,
    right: Encoded,
    li: IntArray,
    ri: IntArray,
    levels: npt.NDArray[np.int8],
    *,
    dedupe: bool = False,
    random_pairs: int = 200_000,
    seed: int = 0,
) -> Model:
    """Estimate the model: u from random pairs; m by EM in the :data:`TRAINING` sessions, each field's m taken
    from a session that did not block on it; then the prior by EM over all candidates."""
    if len(levels) == 0:
        raise ValueError("no candidate pairs to estimate the model from")
    mode = left.mode
    sizes = [_n_levels(name, mode) for name in COMPARED]
    rl, rr = _random_pairs(len(left), len(right), dedupe, random_pairs, seed)
    u = _frequencies(compare(left, right, rl, rr), sizes) if len(rl) else _frequencies(levels, sizes)
    m = [np.array([0.05] * (n - 1) + [0.9]) for n in sizes]
    m = [x / x.sum() for x in m]
    taken: set[int] = set()
    iterations = 0
    for blocked in TRAINING:
        rows = np.ones(len(levels), np.bool_)
        for name in blocked:
            f = COMPARED.index(name)
            rows &= levels[:, f] == sizes[f] - 1
        if rows.sum() < 50:
            continue
        # Only fields no earlier session estimated: the earlier ones' m stay fixed and anchor what "match" means
        # (left free, a session blocked on names would learn households: same address, other birth dates).
        free = frozenset(f for f, name in enumerate(COMPARED) if name not in blocked) - taken
        if not free:
            continue
        # The selected fields agree on every pair of the session, so they say nothing there: left out (as missing).
        session = levels[rows].copy()
        session[:, [COMPARED.index(n) for n in blocked]] = -1
        m, _, its = _em(session, sizes, m, u, 0.3, free)
        iterations += its
        taken |= free
    if not taken:  # too few pairs for any session: plain EM over all candidates
        m, _, iterations = _em(levels, sizes, m, u, 0.1, frozenset(range(len(sizes))))
    _, prior, its = _em(levels, sizes, m, u, 0.1, frozenset())
    return Model(dict(zip(COMPARED, m, strict=True)), dict(zip(COMPARED, u, strict=True)), prior, iterations + its)


#: Bound on a term-frequency adjustment (natural log): a name's rarity sharpens the evidence, never dominates it.
TF_BOUND = 3.0


def name_frequencies(left: Encoded, right: Encoded | None) -> tuple[FloatArray, FloatArray]:
    """Each record's (family, given) name frequency over both lists (0 where the name is missing)."""
    tags = left.names if right is None else np.concatenate([left.names, right.names])
    out = np.zeros(tags.shape, np.float64)
    for c in range(tags.shape[1]):
        col = tags[:, c]
        present = col != 0
        _, inverse, counts = np.unique(col[present], return_inverse=True, return_counts=True)
        out[present, c] = counts[inverse] / max(int(present.sum()), 1)
    return (out, out) if right is None else (out[: len(left)], out[len(left) :])


def score(levels: npt.NDArray[np.int8], model: Model, frequencies: npt.NDArray[np.float64] | None = None) -> FloatArray:
    """P(match | levels) under ``model`` (a missing value contributes nothing). ``frequencies`` (pairs x 2): how
    common each pair's family and given name is; exact agreement on a common name (张, Jennifer) then counts for
    less than on a rare one, as u of the exact level becomes the name's frequency (term-frequency adjustment)."""
    m = [model.m[name] for name in COMPARED]
    u = [model.u[name] for name in COMPARED]
    log_odds = np.log(model.prior) - np.log1p(-model.prior) + _llr(levels, m, u)
    if frequencies is not None:
        for c, name in enumerate(("family", "given")):
            f = COMPARED.index(name)
            top = len(m[f]) - 1
            exact = (levels[:, f] == top) & (frequencies[:, c] > 0)
            adjust = np.log(u[f][top]) - np.log(np.maximum(frequencies[:, c], _FLOOR))
            log_odds += np.where(exact, np.clip(adjust, -TF_BOUND, TF_BOUND), 0.0)
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
        model = fit(left, other, li, ri, levels, dedupe=right is None) if len(levels) else Model({}, {}, 0.0, 0)
    lf, rf = name_frequencies(left, right)
    # The rarer side: a swapped pair's names are compared across the fields, and either side's count is an estimate.
    frequencies = np.maximum(lf[li], rf[ri])
    prob = score(levels, model, frequencies) if len(levels) else np.zeros(0)
    ls, rs = left.strong[li], other.strong[ri]
    rule = ((ls == rs) & (ls != 0)).any(axis=1)
    prob = np.where(rule, 1.0, prob)
    return Links(li, ri, prob, rule), model
