"""The privacy-preserving encoding: keyed Bloom filters of the quasi-identifiers and keyed HMACs of the rest.

The consortium's linkage key (held by the members, never by the index operator) keys everything:

- **Bloom filters** (Schnell, Bachteler and Reiher): each field's tokens — name bigrams of the Latin key and of
  the characters, birth-date digits by position and its year/month/day, address-token bigrams, postcode digits —
  set ``k`` bits of a filter. A token's bit positions are ``k`` 32-bit words of HMAC-SHA512 under a key derived
  for that field (keyed random hashing, not double hashing, whose regular bit patterns are attackable). The
  matcher compares field-level filters by Dice similarity; :func:`clk` folds all fields into one record-level
  cryptographic long-term key for export and for tests of its properties.
- **HMAC-SHA256** of exact values: resident ID, MRN with its authority, insurance number, sex, and the blocking
  keys, so equality can be tested without the value.

Clear mode builds the same table with the values in clear (names compared by Jaro-Winkler) and its blocking keys
hashed under a fixed public key: the matcher is the same.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from workflows.mpi.errors import KeyInvalid
from workflows.mpi.linkage.normalize import Fields, NamePart

Mode = Literal["pprl", "clear"]
MIN_KEY_BYTES = 16
#: Filter length (bits) and hash count per field; lengths are multiples of 64 (filters are uint64 words).
FILTERS: dict[str, tuple[int, int]] = {
    "family": (512, 20),
    "given": (512, 20),
    "birth_date": (512, 10),
    "address": (1024, 10),
    "postcode": (256, 10),
}
_FILTER_KEY = {"family": "name", "given": "name"}
CLK_BITS = 1024
#: Blocking passes, each a function of the fields giving a key string ("" = the record has no key in that pass).
#: A pair becomes a candidate if it agrees on any pass; each pass tolerates errors the others do not.
BLOCKS: dict[str, Callable[[Fields], str]] = {
    "birth_date": lambda f: f.birth_date if len(f.birth_date) == 8 else "",
    "family_year": lambda f: f"{f.family.key[:3]}|{f.birth_date[:4]}" if f.family.key and f.birth_date else "",
    # Sorted, so a swapped family/given order lands in the same block.
    "names": lambda f: "|".join(sorted((f.family.key[:2], f.given.key[:2]))) if f.family.key and f.given.key else "",
    "postcode_given": lambda f: f"{f.postcode}|{f.given.key[:1]}" if f.postcode and f.given.key else "",
    "month_day_given": lambda f: f"{f.birth_date[4:8]}|{f.given.key[:2]}" if len(f.birth_date) == 8 else "",
    "address_family": lambda f: f"{'|'.join(f.address[:3])}|{f.family.key[:1]}" if f.address else "",
}
#: Exact identifiers a deterministic rule links on.
STRONG = ("resident_id", "mrn", "insurance")
_CLEAR_KEY = b"medledger-mpi clear-mode blocking (not a secret)"


class LinkageKey:
    """The consortium's secret, with a sub-key derived per purpose (so no two uses share a key)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise KeyInvalid(f"the linkage key must be at least {MIN_KEY_BYTES} bytes (got {len(secret)})")
        self._secret = secret
        self._subkeys: dict[str, bytes] = {}

    @classmethod
    def from_hex(cls, text: str) -> LinkageKey:
        try:
            return cls(bytes.fromhex(text.strip()))
        except ValueError:
            raise KeyInvalid("the linkage key must be hex (at least 32 hex digits)") from None

    def subkey(self, purpose: str) -> bytes:
        if purpose not in self._subkeys:
            self._subkeys[purpose] = hmac.digest(self._secret, b"medledger-mpi/v1/" + purpose.encode(), "sha256")
        return self._subkeys[purpose]

    def tag(self, purpose: str, value: str) -> int:
        """A non-zero signed 64-bit HMAC tag of ``value`` (0 is kept for "missing")."""
        digest = hmac.digest(self.subkey(purpose), value.encode(), "sha256")
        return int.from_bytes(digest[:8], "little", signed=True) or 1

    def positions(self, purpose: str, token: str, k: int, bits: int) -> list[int]:
        digest = hmac.digest(self.subkey(purpose), token.encode(), "sha512")
        return [int.from_bytes(digest[4 * i : 4 * i + 4], "little") % bits for i in range(k)]


# --- tokens per field -----------------------------------------------------------------------------------------


def _bigrams(text: str) -> list[str]:
    padded = f"_{text}_"
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


def name_tokens(part: NamePart) -> list[str]:
    if not part.key and not part.chars:
        return []
    out = ["p" + g for g in _bigrams(part.key)] if part.key else []
    if part.han:  # the characters too, so a homophone (same pinyin, other character) is close but not equal
        out += ["c" + ch for ch in part.chars] + ["c" + g for g in _bigrams(part.chars)]
    return out


def digit_tokens(digits: str) -> list[str]:
    return [f"{i}{d}" for i, d in enumerate(digits)]


def birth_tokens(digits: str) -> list[str]:
    if not digits:
        return []
    out = [*digit_tokens(digits), "y" + digits[:4]]
    if len(digits) == 8:
        out += ["m" + digits[4:6], "d" + digits[6:8], "s" + "".join(sorted((digits[4:6], digits[6:8])))]
    return out


def address_filter_tokens(tokens: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in tokens:
        out.append("w" + t)
        if t.isascii() and len(t) > 2 and not t.isdigit():
            out += ["g" + g for g in _bigrams(t)]
    return out


def field_tokens(f: Fields) -> dict[str, list[str]]:
    return {
        "family": name_tokens(f.family),
        "given": name_tokens(f.given),
        "birth_date": birth_tokens(f.birth_date),
        "address": address_filter_tokens(f.address),
        "postcode": digit_tokens(f.postcode),
    }


# --- the encoded table ----------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """A list of records as the matcher sees them, in either mode.

    ``blocks`` (n x passes) and ``strong`` (n x identifiers) and ``sex`` (n) are 64-bit tags, 0 when missing. In
    PPRL mode ``filters`` holds each field's Bloom filters (n x words, uint64) and ``text`` is empty; in clear
    mode ``text`` holds the fields' strings and ``filters`` is empty.
    """

    mode: Mode
    ids: list[str]
    blocks: npt.NDArray[np.int64]
    strong: npt.NDArray[np.int64]
    sex: npt.NDArray[np.int64]
    filters: dict[str, npt.NDArray[np.uint64]] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    han: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    #: (n x 2) tags of the family and given name keys, for term-frequency adjustment.
    names: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))

    def __len__(self) -> int:
        return len(self.ids)


def _tags(key: LinkageKey, purpose: str, values: Sequence[str]) -> npt.NDArray[np.int64]:
    cache: dict[str, int] = {"": 0}
    out = np.empty(len(values), np.int64)
    for i, v in enumerate(values):
        t = cache.get(v)
        if t is None:
            t = cache[v] = key.tag(purpose, v)
        out[i] = t
    return out


def bloom_filters(
    key: LinkageKey, purpose: str, tokens: Sequence[Sequence[str]], bits: int, k: int
) -> npt.NDArray[np.uint64]:
    """One Bloom filter per record (rows of uint64 words). Tokens recur across a list (bigrams of a small
    alphabet), so each distinct token is hashed once and the bits are set in one vectorized step."""
    vocab: dict[str, int] = {}
    flat: list[int] = []
    counts = np.empty(len(tokens), np.int64)
    for i, toks in enumerate(tokens):
        counts[i] = len(toks)
        for t in toks:
            j = vocab.get(t)
            if j is None:
                j = vocab[t] = len(vocab)
            flat.append(j)
    table = np.array([key.positions(purpose, t, k, bits) for t in vocab], np.int64).reshape(len(vocab), k)
    dense = np.zeros((len(tokens), bits), np.bool_)
    if flat:
        rows = np.repeat(np.arange(len(tokens)), counts)
        cols = table[np.asarray(flat, np.int64)]
        dense[rows[:, None], cols] = True
    packed = np.packbits(dense, axis=1, bitorder="little")
    return packed.view(np.uint64).reshape(len(tokens), bits // 64)


def clk(key: LinkageKey, f: Fields) -> npt.NDArray[np.uint64]:
    """The record-level CLK of one record: every field's tokens in one ``CLK_BITS`` filter (field-tagged, so the
    same bigram in two fields sets different bits)."""
    tokens = [f"{name}:{t}" for name, toks in field_tokens(f).items() for t in toks]
    if f.sex:
        tokens.append("sex:" + f.sex)
    return bloom_filters(key, "clk", [tokens], CLK_BITS, 10)[0]


def dice(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Dice similarity of Bloom filters, row by row (0 where both are empty)."""
    inter = np.bitwise_count(a & b).sum(axis=-1, dtype=np.int64)
    total = np.bitwise_count(a).sum(axis=-1, dtype=np.int64) + np.bitwise_count(b).sum(axis=-1, dtype=np.int64)
    return np.divide(2.0 * inter, total, out=np.zeros(np.shape(total), np.float64), where=total > 0)


def _strong_values(f: Fields) -> list[str]:
    return [f.resident_id, f.mrn, f.insurance]


def encode(records: Sequence[Fields], mode: Mode, key: LinkageKey | None = None) -> Encoded:
    """Encode normalized records for the matcher. PPRL mode needs the consortium's key; clear mode ignores it."""
    if mode == "pprl" and key is None:
        raise KeyInvalid("privacy-preserving mode needs the consortium's linkage key")
    tag_key = key if mode == "pprl" and key is not None else LinkageKey(_CLEAR_KEY)
    ids = [r.id for r in records]
    blocks = np.stack([_tags(tag_key, "block:" + name, [fn(r) for r in records]) for name, fn in BLOCKS.items()], 1)
    strong = np.stack(
        [_tags(tag_key, "id:" + name, [_strong_values(r)[i] for r in records]) for i, name in enumerate(STRONG)], 1
    )
    sex = _tags(tag_key, "sex", [r.sex for r in records])
    # Tags of the exact name keys: how common a name is (term frequency) without the name.
    names = np.stack(
        [
            _tags(tag_key, "tf:name", [r.family.key for r in records]),
            _tags(tag_key, "tf:name", [r.given.key for r in records]),
        ],
        1,
    ).reshape(len(records), 2)
    han = np.fromiter((r.family.han or r.given.han for r in records), np.bool_, len(records))
    if mode == "pprl":
        assert key is not None
        tokens = [field_tokens(r) for r in records]
        # Family and given names share one hash key, so a swapped order can be recognized across the fields.
        filters = {
            name: bloom_filters(key, "bf:" + _FILTER_KEY.get(name, name), [t[name] for t in tokens], bits, k)
            for name, (bits, k) in FILTERS.items()
        }
        return Encoded(
            mode, ids, blocks, strong.reshape(len(records), len(STRONG)), sex, filters=filters, han=han, names=names
        )
    text = {
        "family_key": [r.family.key for r in records],
        "family_chars": [r.family.chars for r in records],
        "given_key": [r.given.key for r in records],
        "given_chars": [r.given.chars for r in records],
        "birth_date": [r.birth_date for r in records],
        "address": [" ".join(r.address) for r in records],
        "postcode": [r.postcode for r in records],
    }
    return Encoded(mode, ids, blocks, strong.reshape(len(records), len(STRONG)), sex, text=text, han=han, names=names)
