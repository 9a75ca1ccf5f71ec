"""OpenZeppelin ``StandardMerkleTree`` in Python, byte-compatible with ``@openzeppelin/merkle-tree`` 1.0.x.

Digests of high-volume data (wearable readings, self-test reports) are built here and anchored on chain by
``RecordRegistry.anchorDigest``; anyone holding a leaf and its proof can then check it with
``RecordRegistry.verifyDigestLeaf`` (OpenZeppelin ``MerkleProof``) or with the JS library. That only works if
this module reproduces the JS library bit for bit, so it mirrors ``dist/standard.js``, ``merkletree.js`` and
``core.js`` of that package:

* leaf = ``keccak256(bytes.concat(keccak256(abi.encode(values))))``; the double hash keeps a 64-byte leaf
  preimage from being passed off as an internal node (second-preimage attack);
* node = ``keccak256(sort(a, b))``, the commutative pair hash ``MerkleProof.processProof`` expects, so proofs
  carry no left/right flags;
* leaves sorted by hash (the JS default ``sortLeaves: true``; a stable sort, so duplicates keep input order),
  stored reversed at the end of a flat array of ``2n - 1`` nodes whose node ``i`` has children ``2i+1``,
  ``2i+2``;
* ``dump()`` / ``load()`` use the JS ``"standard-v1"`` JSON format, so a tree can move between the two.

Values are normalised on the way in: integers may be given as ``int`` or as decimal/``0x`` strings and byte
types as ``bytes`` or ``0x`` strings (the forms JSON and the JS library use). In ``dump()`` integers are
written as decimal strings, because a JSON number cannot carry a ``uint256`` exactly through JavaScript.
Multiproofs are not implemented.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Self, cast

from eth_abi import encode, is_encodable_type
from eth_abi.exceptions import EncodingError, ParseError
from eth_abi.grammar import ABIType, BasicType, TupleType, parse
from eth_abi.registry import registry

from medledger.errors import InputError
from medledger.keccak import keccak256

FORMAT = "standard-v1"


def standard_node_hash(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative pair hash: keccak256 of the two 32-byte nodes, smaller first."""
    # Equal-length bytes compare lexicographically exactly as the JS library compares them as big integers.
    return keccak256(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes | str]) -> bytes:
    """The root implied by ``leaf`` and ``proof``, as ``MerkleProof.processProof`` computes it on chain."""
    node = _node(leaf, "leaf")
    for i, sibling in enumerate(proof):
        node = standard_node_hash(node, _node(sibling, f"proof[{i}]"))
    return node


class IndexedValue(NamedTuple):
    """A leaf value (normalised) and its position in the tree array."""

    value: tuple[Any, ...]
    tree_index: int


class StandardMerkleTree:
    """A Merkle tree over ABI-encoded tuples, laid out exactly as ``@openzeppelin/merkle-tree`` lays it out.

    Build with :meth:`of` or :meth:`load`; the constructor takes already-checked parts.
    """

    __slots__ = ("_encoder", "_leaf_encoding", "_lookup", "_normalise", "_tree", "_values")

    def __init__(self, tree: list[bytes], values: list[IndexedValue], leaf_encoding: Sequence[str]) -> None:
        self._leaf_encoding = tuple(leaf_encoding)
        self._normalise, self._encoder = _compile(self._leaf_encoding)
        self._tree = tree
        self._values = values
        # Later duplicates win, as with the JS library's Object.fromEntries, so value lookups prove the same
        # occurrence in both implementations.
        self._lookup = {tree[v.tree_index]: i for i, v in enumerate(values)}

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def of(cls, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str]) -> Self:
        """Build the tree over ``values``, each a sequence of values of the Solidity types ``leaf_encoding``.

        Raises :class:`InputError` if ``values`` is empty or a value does not match the encoding.
        """
        encoding = _check_encoding(leaf_encoding)
        normalise, encoder = _compile(encoding)
        if len(values) == 0:
            raise InputError("a Merkle tree needs at least one value", code="merkle_empty")
        normalised = [normalise(v, i) for i, v in enumerate(values)]
        hashes = [_leaf_hash(encoder, v, i) for i, v in enumerate(normalised)]
        order = sorted(range(len(hashes)), key=hashes.__getitem__)
        n = len(hashes)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * size
        tree[n - 1 :] = [hashes[j] for j in reversed(order)]
        # standard_node_hash inlined: this loop is the n - 1 internal nodes
        for i in range(n - 2, -1, -1):
            a = tree[2 * i + 1]
            b = tree[2 * i + 2]
            tree[i] = keccak256(a + b if a <= b else b + a)
        tree_index = [0] * n
        for leaf_index, value_index in enumerate(order):
            tree_index[value_index] = size - 1 - leaf_index
        indexed = [IndexedValue(v, t) for v, t in zip(normalised, tree_index, strict=True)]
        return cls(tree, indexed, encoding)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Self:
        """Rebuild a tree from a ``"standard-v1"`` dump (this module's or the JS library's) and check it.

        Raises :class:`InputError` for an unknown format, malformed fields, or a tree whose nodes or leaves
        do not match its values.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise InputError(f"unknown Merkle tree format {got!r}", code="merkle_format")
        if "leafEncoding" not in data:
            raise InputError("Merkle tree dump has no leafEncoding", code="merkle_format")
        encoding = _check_encoding(data["leafEncoding"])
        normalise, encoder = _compile(encoding)
        raw_tree, raw_values = data.get("tree"), data.get("values")
        if not isinstance(raw_tree, list) or not isinstance(raw_values, list):
            raise InputError("Merkle tree dump needs 'tree' and 'values' lists", code="merkle_format")
        tree = [_node(h, f"tree[{i}]") for i, h in enumerate(raw_tree)]
        if not tree or any(_invalid_node(tree, i) for i in range(len(tree))):
            raise InputError("Merkle tree is invalid", code="merkle_invalid")
        values: list[IndexedValue] = []
        for i, entry in enumerate(raw_values):
            if not isinstance(entry, dict) or "value" not in entry or "treeIndex" not in entry:
                raise InputError(f"values[{i}] needs 'value' and 'treeIndex'", code="merkle_format")
            t = entry["treeIndex"]
            if type(t) is not int or not _is_leaf(len(tree), t):
                raise InputError(f"values[{i}].treeIndex {t!r} is not a leaf of the tree", code="merkle_invalid")
            value = normalise(entry["value"], i)
            if _leaf_hash(encoder, value, i) != tree[t]:
                raise InputError(f"values[{i}] does not match tree[{t}]", code="merkle_invalid")
            values.append(IndexedValue(value, t))
        return cls(tree, values, encoding)

    # -- inspection -----------------------------------------------------------------------------------------

    @property
    def root(self) -> bytes:
        """The 32-byte root, as anchored on chain."""
        return self._tree[0]

    @property
    def tree(self) -> list[bytes]:
        """All ``2n - 1`` nodes in the JS library's array layout (a copy)."""
        return list(self._tree)

    @property
    def values(self) -> list[IndexedValue]:
        """The values in input order with their tree indices (a copy)."""
        return list(self._values)

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        return self._leaf_encoding

    def __len__(self) -> int:
        return len(self._values)

    def leaf_hash(self, value: Sequence[Any]) -> bytes:
        """The leaf hash of ``value`` under this tree's encoding (what ``verifyDigestLeaf`` takes as ``leaf``)."""
        return _leaf_hash(self._encoder, self._normalise(value, None), None)

    # -- proofs ---------------------------------------------------------------------------------------------

    def get_proof(self, index_or_value: int | Sequence[Any]) -> list[bytes]:
        """Sibling hashes from the leaf up to the root.

        An ``int`` is a position in :attr:`values` (as in JS); anything else is a value, looked up by its leaf
        hash. Raises :class:`InputError` for an out-of-range index or a value that is not in the tree.
        """
        if isinstance(index_or_value, int) and not isinstance(index_or_value, bool):
            if not 0 <= index_or_value < len(self._values):
                raise InputError(f"value index {index_or_value} is out of bounds", code="merkle_index")
            index = self._values[index_or_value].tree_index
        else:
            # A bool lands here too: it is no position, and normalising it as a value rejects it precisely.
            value_index = self._lookup.get(_leaf_hash(self._encoder, self._normalise(index_or_value, None), None))
            if value_index is None:
                raise InputError("leaf is not in the tree", code="merkle_not_in_tree")
            index = self._values[value_index].tree_index
        tree = self._tree
        proof: list[bytes] = []
        while index > 0:
            # Sibling of an odd (left) index is the next node, of an even (right) index the previous one.
            proof.append(tree[index + 1 if index % 2 else index - 1])
            index = (index - 1) // 2
        return proof

    def verify(self, value: Sequence[Any], proof: Sequence[bytes | str]) -> bool:
        """Whether ``proof`` proves ``value`` against this tree's root, by processing it as the chain does.

        Does not consult the stored leaves, so it answers exactly what ``verifyDigestLeaf`` would. Raises
        :class:`InputError` if ``value`` does not match the encoding or a proof element is not 32 bytes.
        """
        return process_proof(self.leaf_hash(value), proof) == self._tree[0]

    @staticmethod
    def verify_with_root(
        root: bytes | str, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[bytes | str]
    ) -> bool:
        """JS ``StandardMerkleTree.verify(root, leafEncoding, leaf, proof)``: check a proof without a tree."""
        normalise, encoder = _compile(_check_encoding(leaf_encoding))
        leaf = _leaf_hash(encoder, normalise(value, None), None)
        return process_proof(leaf, proof) == _node(root, "root")

    # -- serialisation --------------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The JS ``dump()`` object: ``json.dumps(tree.dump(), separators=(",", ":"), ensure_ascii=False)``
        equals ``JSON.stringify(jsTree.dump())`` for a JS tree built from the same (JSON-form) values."""
        return {
            "format": FORMAT,
            "leafEncoding": list(self._leaf_encoding),
            "tree": ["0x" + h.hex() for h in self._tree],
            "values": [{"value": _jsonable(v.value), "treeIndex": v.tree_index} for v in self._values],
        }

    def __repr__(self) -> str:
        return f"StandardMerkleTree(root=0x{self.root.hex()}, leaves={len(self)}, encoding={self._leaf_encoding})"


# -- helpers -------------------------------------------------------------------------------------------------

_Normaliser = Callable[[Any], Any]


def _node(value: object, what: str) -> bytes:
    if isinstance(value, str):
        try:
            value = _hex_bytes(value)
        except ValueError as exc:
            raise InputError(f"{what}: {exc}", code="merkle_node") from exc
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != 32:
        raise InputError(f"{what} must be 32 bytes", code="merkle_node")
    return bytes(value)


def _is_leaf(size: int, i: int) -> bool:
    return 0 <= i < size and 2 * i + 1 >= size


def _invalid_node(tree: list[bytes], i: int) -> bool:
    left, right = 2 * i + 1, 2 * i + 2
    if right >= len(tree):
        # A node with exactly one child cannot occur in a complete layout of 2n - 1 nodes.
        return left < len(tree)
    return tree[i] != standard_node_hash(tree[left], tree[right])


def _leaf_hash(encoder: Callable[[Any], bytes], value: tuple[Any, ...], index: int | None) -> bytes:
    try:
        encoded = encoder(value)
    except (EncodingError, ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{_where(index)} does not match the leaf encoding: {exc}", code="merkle_value") from exc
    return keccak256(keccak256(encoded))


def _where(index: int | None) -> str:
    return "value" if index is None else f"values[{index}]"


def _check_encoding(leaf_encoding: object) -> tuple[str, ...]:
    if isinstance(leaf_encoding, str) or not isinstance(leaf_encoding, Sequence) or len(leaf_encoding) == 0:
        raise InputError("leaf encoding must be a non-empty list of Solidity types", code="merkle_encoding")
    for t in leaf_encoding:
        if not isinstance(t, str) or not is_encodable_type(t):
            raise InputError(f"{t!r} is not a Solidity ABI type", code="merkle_encoding")
    return tuple(leaf_encoding)


def _compile(
    encoding: tuple[str, ...],
) -> tuple[Callable[[Any, int | None], tuple[Any, ...]], Callable[[tuple[Any, ...]], bytes]]:
    """A value normaliser and an ABI encoder for ``encoding``, both built once per tree."""
    try:
        parts = [_normaliser(parse(t)) for t in encoding]
    except ParseError as exc:
        raise InputError(f"invalid leaf encoding {list(encoding)}: {exc}", code="merkle_encoding") from exc
    arity = len(parts)

    def normalise(value: Any, index: int | None) -> tuple[Any, ...]:
        if type(value) not in (tuple, list) and (
            isinstance(value, str | bytes | bytearray | dict) or not isinstance(value, Sequence)
        ):
            raise InputError(f"{_where(index)} must be a list of {arity} values", code="merkle_value")
        if len(value) != arity:
            raise InputError(
                f"{_where(index)} has {len(value)} fields but the leaf encoding has {arity}", code="merkle_value"
            )
        try:
            return tuple([v if f is None else f(v) for f, v in zip(parts, value)])  # noqa: B905 (length checked)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{_where(index)} does not match the leaf encoding: {exc}", code="merkle_value") from exc

    # eth_abi types get_encoder as returning an encoder callable or an encoder class; it returns a callable
    # encoder instance (is_dynamic is an attribute of some encoders only, hence getattr, as eth_abi does).
    fields = [cast(Callable[[Any], bytes], registry.get_encoder(t)) for t in encoding]
    if any(getattr(f, "is_dynamic", False) for f in fields):

        def encoder(value: tuple[Any, ...]) -> bytes:
            return encode(encoding, value)

    else:
        # A tuple of static types encodes as the plain concatenation of its fields (no offsets), and eth_abi's
        # tuple encoder validates every field twice before encoding it: this halves the cost per leaf.
        def encoder(value: tuple[Any, ...]) -> bytes:
            return b"".join([f(v) for f, v in zip(fields, value)])  # noqa: B905 (length checked)

    return normalise, encoder


def _normaliser(t: ABIType) -> _Normaliser | None:
    """Map the forms JSON and the JS library allow (numeric strings, hex strings) to what eth_abi encodes;
    ``None`` where eth_abi takes the value as it comes."""
    if t.is_array:
        item = _normaliser(t.item_type) or _identity

        def array(v: Any) -> tuple[Any, ...]:
            if isinstance(v, str | bytes | bytearray) or not isinstance(v, Sequence):
                raise TypeError(f"expected a list for {t.to_type_str()}, got {type(v).__name__}")
            return tuple([item(x) for x in v])

        return array
    if isinstance(t, TupleType):
        return _tuple_normaliser(t)
    assert isinstance(t, BasicType)
    if t.base in ("uint", "int"):
        return _integer
    if t.base == "bytes":
        return _bytes
    if t.base == "address":
        return _address
    if t.base in ("fixed", "ufixed", "function"):
        raise InputError(f"leaf type {t.to_type_str()} is not supported", code="merkle_encoding")
    return None  # bool and string: eth_abi's own checks match the JS encoder's


def _tuple_normaliser(t: TupleType) -> _Normaliser:
    parts = [_normaliser(c) or _identity for c in t.components]

    def tuple_(v: Any) -> tuple[Any, ...]:
        if isinstance(v, str | bytes | bytearray) or not isinstance(v, Sequence) or len(v) != len(parts):
            raise TypeError(f"expected {len(parts)} fields for {t.to_type_str()}")
        return tuple([f(x) for f, x in zip(parts, v, strict=True)])

    return tuple_


def _identity(v: Any) -> Any:
    return v


def _integer(v: Any) -> Any:
    if type(v) is int:
        return v
    if isinstance(v, str):
        s = v.strip()
        negative = s.startswith("-")
        digits = s[1:] if negative else s
        # Like JS BigInt(): 0x-prefixed hex or decimal (leading zeros allowed), nothing else.
        n = int(digits[2:], 16) if digits[:2] in ("0x", "0X") else int(digits, 10)
        return -n if negative else n
    return v  # ints, and anything else for eth_abi to reject (it rejects bool too)


def _bytes(v: Any) -> Any:
    if isinstance(v, str):
        return _hex_bytes(v)
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    return v


def _address(v: Any) -> Any:
    # Keep strings as given (checksum case included) so dump() writes back what came in, as JS does.
    if isinstance(v, bytes | bytearray | memoryview):
        return "0x" + bytes(v).hex()
    return v


def _hex_bytes(s: str) -> bytes:
    if not s.startswith(("0x", "0X")):
        raise ValueError(f"expected a 0x-prefixed hex string, got {s[:80]!r}")
    try:
        return bytes.fromhex(s[2:])
    except ValueError:
        raise ValueError(f"not valid hex: {s[:80]!r}") from None


def _jsonable(v: Any) -> Any:
    if isinstance(v, bool | str) or v is None:
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return str(v)
