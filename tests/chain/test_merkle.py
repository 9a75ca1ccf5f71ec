"""StandardMerkleTree must match @openzeppelin/merkle-tree byte for byte and OpenZeppelin MerkleProof on chain.

The compatibility tests run the real JS library (node_modules) once per module over every case and compare roots,
tree arrays, proofs and dump() JSON with the Python implementation.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from medledger.chain.merkle import StandardMerkleTree, process_proof, standard_node_hash
from medledger.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def _address(rng: random.Random, checksummed: bool) -> str:
    raw = "0x" + rng.randbytes(20).hex()
    return to_checksum_address(raw) if checksummed else raw


def _address_uint(n: int, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    out: list[tuple[Any, ...]] = []
    for i in range(n):
        amount = rng.choice([0, 1, 2**53 + 1, 2**256 - 1, rng.getrandbits(256), rng.getrandbits(64)])
        out.append((_address(rng, checksummed=i % 2 == 0), amount))
    return out


def _bytes32_uint64_string(n: int, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    texts = ["", "a", "héllo ✓ 血压", "x" * 100, "spo2=97;hr=61"]
    return [(rng.randbytes(32), rng.choice([0, 2**64 - 1, rng.getrandbits(64)]), rng.choice(texts)) for _ in range(n)]


def _dynamic_nested(n: int, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    return [
        (
            rng.randbytes(rng.choice([0, 1, 31, 33, 70])),
            rng.random() < 0.5,
            rng.choice([-(2**255), -5, 0, 2**255 - 1]),
            tuple(rng.getrandbits(256) for _ in range(rng.randrange(4))),
            (rng.randbytes(32), rng.randbytes(32)),
            (_address(rng, checksummed=False), rng.randrange(256)),
        )
        for _ in range(n)
    ]


ADDRESS_UINT = ["address", "uint256"]
BYTES32_UINT64_STRING = ["bytes32", "uint64", "string"]
DYNAMIC_NESTED = ["bytes", "bool", "int256", "uint256[]", "bytes32[2]", "(address,uint8)"]

_with_duplicates = _address_uint(4, seed=5)
CASES: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {
    "1-leaf": (ADDRESS_UINT, _address_uint(1, seed=1)),
    "2-leaves": (ADDRESS_UINT, _address_uint(2, seed=2)),
    "7-leaves-string": (BYTES32_UINT64_STRING, _bytes32_uint64_string(7, seed=7)),
    "100-leaves": (ADDRESS_UINT, _address_uint(100, seed=100)),
    "33-leaves-string": (BYTES32_UINT64_STRING, _bytes32_uint64_string(33, seed=33)),
    # Equal leaves: the stable sort and the last-wins value lookup must agree with JS.
    "duplicates": (ADDRESS_UINT, [*_with_duplicates, _with_duplicates[1], _with_duplicates[3], _with_duplicates[1]]),
    "dynamic-nested": (DYNAMIC_NESTED, _dynamic_nested(13, seed=13)),
}

# Runs the JS library over every case: builds its own tree from the JSON-form values, loads the Python dump
# and verifies the Python proofs; also builds one tree from JS-native values (numbers) for the reverse way.
_NODE_SCRIPT = r"""
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', d => { input += d; });
process.stdin.on('end', () => {
  const cases = JSON.parse(input);
  const out = { cases: {} };
  for (const [name, c] of Object.entries(cases)) {
    const t = StandardMerkleTree.of(c.values, c.encoding);
    const loaded = StandardMerkleTree.load(c.pyDump);
    out.cases[name] = {
      root: t.root,
      tree: t.tree,
      dumpJson: JSON.stringify(t.dump()),
      proofsByIndex: c.values.map((_, i) => t.getProof(i)),
      proofsByValue: c.values.map(v => t.getProof(v)),
      loadedRoot: loaded.root,
      loadedVerifies: c.pyProofs.map((p, i) => loaded.verify(c.values[i], p)),
      staticVerifies: c.pyProofs.map((p, i) => StandardMerkleTree.verify(c.pyDump.tree[0], c.encoding, c.values[i], p)),
      tamperedVerifies: c.pyProofs.map((p, i) => loaded.verify(c.values[(i + 1) % c.values.length], p)),
    };
  }
  const native = StandardMerkleTree.of(
    [
      ['0x1111111111111111111111111111111111111111', 5],
      ['0x2222222222222222222222222222222222222222', 2500000000],
      ['0xAbCdEf0123456789aBcDeF0123456789AbCdEf01', (2n ** 256n - 1n).toString()],
    ],
    ['address', 'uint256'],
  );
  out.native = { dump: native.dump(), proofs: [0, 1, 2].map(i => native.getProof(i)) };
  process.stdout.write(JSON.stringify(out));
});
"""


def _hex(items: list[bytes]) -> list[str]:
    return ["0x" + b.hex() for b in items]


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="module")
def py_trees() -> dict[str, StandardMerkleTree]:
    return {name: StandardMerkleTree.of(values, encoding) for name, (encoding, values) in CASES.items()}


@pytest.fixture(scope="module")
def js(py_trees: dict[str, StandardMerkleTree]) -> dict[str, Any]:
    payload = {}
    for name, tree in py_trees.items():
        dump = tree.dump()
        payload[name] = {
            "encoding": list(tree.leaf_encoding),
            # The JSON forms (decimal strings, 0x hex) are what the JS library is fed, as a JSON file would.
            "values": [v["value"] for v in dump["values"]],
            "pyDump": dump,
            "pyProofs": [_hex(tree.get_proof(i)) for i in range(len(tree))],
        }
    proc = subprocess.run(
        ["node", "-e", _NODE_SCRIPT],
        input=json.dumps(payload, ensure_ascii=False),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_tree_root_and_proofs_match_js(name, py_trees, js):
    py, expected = py_trees[name], js["cases"][name]
    assert "0x" + py.root.hex() == expected["root"]
    assert _hex(py.tree) == expected["tree"]
    assert len(py.tree) == 2 * len(py) - 1
    assert [_hex(py.get_proof(i)) for i in range(len(py))] == expected["proofsByIndex"]
    assert [_hex(py.get_proof(v.value)) for v in py.values] == expected["proofsByValue"]


@pytest.mark.parametrize("name", list(CASES))
def test_dump_is_identical_to_js_dump(name, py_trees, js):
    assert _compact(py_trees[name].dump()) == js["cases"][name]["dumpJson"]


@pytest.mark.parametrize("name", list(CASES))
def test_js_loads_python_dump_and_accepts_python_proofs(name, py_trees, js):
    py, result = py_trees[name], js["cases"][name]
    assert result["loadedRoot"] == "0x" + py.root.hex()
    assert all(result["loadedVerifies"])
    assert all(result["staticVerifies"])
    # A proof for one leaf must not prove another (unless both leaves are equal values).
    values = [v.value for v in py.values]
    for i, ok in enumerate(result["tamperedVerifies"]):
        assert ok == (values[(i + 1) % len(values)] == values[i])


@pytest.mark.parametrize("name", list(CASES))
def test_python_verifies_and_reloads_its_own_trees(name, py_trees):
    py = py_trees[name]
    encoding = list(py.leaf_encoding)
    for i, entry in enumerate(py.values):
        proof = py.get_proof(i)
        assert py.verify(entry.value, proof)
        assert StandardMerkleTree.verify_with_root(py.root, encoding, entry.value, _hex(proof))
        assert process_proof(py.leaf_hash(entry.value), proof) == py.root
    loaded = StandardMerkleTree.load(json.loads(_compact(py.dump())))
    assert loaded.tree == py.tree
    assert loaded.values == py.values
    assert loaded.dump() == py.dump()


def test_python_loads_js_dump_of_native_js_values(js):
    native = js["native"]
    tree = StandardMerkleTree.load(native["dump"])
    assert _hex(tree.tree) == native["dump"]["tree"]
    assert [_hex(tree.get_proof(i)) for i in range(3)] == native["proofs"]
    assert [v.value for v in tree.values] == [
        ("0x1111111111111111111111111111111111111111", 5),
        ("0x2222222222222222222222222222222222222222", 2500000000),
        ("0xAbCdEf0123456789aBcDeF0123456789AbCdEf01", 2**256 - 1),
    ]
    # JSON numbers come back as decimal strings; the tree itself is unchanged.
    dumped = tree.dump()
    assert dumped["tree"] == native["dump"]["tree"]
    assert [v["value"][1] for v in dumped["values"]] == ["5", "2500000000", str(2**256 - 1)]


def test_leaf_and_node_hashes_follow_the_solidity_definitions():
    tree = StandardMerkleTree.of(_address_uint(3, seed=9), ADDRESS_UINT)
    for entry in tree.values:
        assert tree.leaf_hash(entry.value) == keccak(keccak(encode(ADDRESS_UINT, entry.value)))
    a, b = tree.tree[1], tree.tree[2]
    assert tree.root == standard_node_hash(a, b) == standard_node_hash(b, a) == keccak(min(a, b) + max(a, b))
    mixed = StandardMerkleTree.of(_dynamic_nested(3, seed=3), DYNAMIC_NESTED)
    for entry in mixed.values:
        assert mixed.leaf_hash(entry.value) == keccak(keccak(encode(DYNAMIC_NESTED, entry.value)))


def test_json_forms_and_native_forms_build_the_same_tree():
    values = _bytes32_uint64_string(9, seed=4)
    native = StandardMerkleTree.of(values, BYTES32_UINT64_STRING)
    as_json = StandardMerkleTree.of([v["value"] for v in native.dump()["values"]], BYTES32_UINT64_STRING)
    hex_ints = StandardMerkleTree.of([(b, hex(n), s) for b, n, s in values], BYTES32_UINT64_STRING)
    assert native.tree == as_json.tree == hex_ints.tree
    assert native.values == as_json.values == hex_ints.values


# -- negative cases ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree100(py_trees):
    return py_trees["100-leaves"]


def test_wrong_proof_fails(tree100):
    value = tree100.values[0].value
    proof = tree100.get_proof(0)
    assert tree100.verify(value, proof)
    assert not tree100.verify(value, tree100.get_proof(1))
    assert not tree100.verify(value, proof[:-1])
    assert not tree100.verify(value, [*proof, proof[0]])
    assert not tree100.verify(value, [])
    flipped = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    assert not tree100.verify(value, [flipped, *proof[1:]])
    other_root = StandardMerkleTree.of(_address_uint(100, seed=101), ADDRESS_UINT).root
    assert not StandardMerkleTree.verify_with_root(other_root, ADDRESS_UINT, value, proof)


def test_tampered_value_fails(tree100):
    address, amount = tree100.values[3].value
    proof = tree100.get_proof(3)
    tampered_amount = (address, (amount + 1) % 2**256)
    other = "0x" + "00" * 19 + "01"
    assert not tree100.verify(tampered_amount, proof)
    assert not tree100.verify((other, amount), proof)
    with pytest.raises(InputError, match="not in the tree"):
        tree100.get_proof(tampered_amount)


def test_empty_input_raises():
    with pytest.raises(InputError, match="at least one value"):
        StandardMerkleTree.of([], ADDRESS_UINT)
    with pytest.raises(InputError, match="leaf encoding"):
        StandardMerkleTree.of([("0x" + "11" * 20, 1)], [])


@pytest.mark.parametrize(
    "value",
    [
        ("0x" + "11" * 20,),
        ("0x" + "11" * 20, 1, 2),
        (),
        "0x1111111111111111111111111111111111111111",
        5,
    ],
)
def test_value_of_wrong_arity_raises(value):
    good = ("0x" + "22" * 20, 7)
    with pytest.raises(InputError) as info:
        StandardMerkleTree.of([good, value], ADDRESS_UINT)
    assert "values[1]" in info.value.message
    tree = StandardMerkleTree.of([good], ADDRESS_UINT)
    with pytest.raises(InputError):
        tree.verify(value, [])
    with pytest.raises(InputError):
        tree.leaf_hash(value)


@pytest.mark.parametrize(
    ("encoding", "value"),
    [
        (ADDRESS_UINT, ("0x" + "11" * 20, -1)),
        (ADDRESS_UINT, ("0x" + "11" * 20, 2**256)),
        (ADDRESS_UINT, ("0x" + "11" * 19, 1)),
        (ADDRESS_UINT, ("0x" + "11" * 20, True)),
        (ADDRESS_UINT, ("0x" + "11" * 20, "12abc")),
        (ADDRESS_UINT, (None, 1)),
        (BYTES32_UINT64_STRING, (b"\x01" * 33, 1, "x")),
        (BYTES32_UINT64_STRING, ("0xzz", 1, "x")),
        (BYTES32_UINT64_STRING, ("11" * 32, 1, "x")),
        (BYTES32_UINT64_STRING, (b"\x01" * 32, 2**64, "x")),
        (BYTES32_UINT64_STRING, (b"\x01" * 32, 1, b"x")),
        (DYNAMIC_NESTED, (b"", True, 0, 5, (b"", b""), ("0x" + "11" * 20, 1))),
        (DYNAMIC_NESTED, (b"", True, 0, (), (b"",), ("0x" + "11" * 20, 1))),
        (DYNAMIC_NESTED, (b"", True, 0, (), (b"", b""), ("0x" + "11" * 20, 256))),
    ],
)
def test_value_not_matching_encoding_raises(encoding, value):
    with pytest.raises(InputError):
        StandardMerkleTree.of([value], encoding)


def test_bad_encoding_and_bad_proof_elements_raise(tree100):
    for encoding in (["uint7"], ["nonsense"], "address", ["fixed128x18"]):
        with pytest.raises(InputError):
            StandardMerkleTree.of([(1,)], encoding)
    value = tree100.values[0].value
    with pytest.raises(InputError):
        tree100.verify(value, [b"\x00" * 31])
    with pytest.raises(InputError):
        tree100.verify(value, ["0x1234"])
    for index in (-1, 100):
        with pytest.raises(InputError, match="out of bounds"):
            tree100.get_proof(index)


def test_load_rejects_tampered_dumps(tree100):
    good = tree100.dump()

    def broken(**changes: Any) -> dict[str, Any]:
        data = json.loads(json.dumps(good))
        data.update(changes)
        return data

    bad_node = [*good["tree"]]
    bad_node[5] = "0x" + "00" * 32
    swapped = json.loads(json.dumps(good["values"]))
    swapped[0]["treeIndex"], swapped[1]["treeIndex"] = swapped[1]["treeIndex"], swapped[0]["treeIndex"]
    changed_value = json.loads(json.dumps(good["values"]))
    changed_value[0]["value"][1] = str(int(changed_value[0]["value"][1]) ^ 1)
    for data in (
        broken(format="standard-v2"),
        {k: v for k, v in good.items() if k != "leafEncoding"},
        broken(tree=bad_node),
        broken(tree=good["tree"][:-1]),
        broken(tree=[]),
        broken(values=swapped),
        broken(values=changed_value),
        broken(values=[{"value": good["values"][0]["value"], "treeIndex": 0}]),
        broken(leafEncoding=["address", "uint128"]),
    ):
        with pytest.raises(InputError):
            StandardMerkleTree.load(data)


# -- on chain ------------------------------------------------------------------------------------------------


def test_anchored_digest_verifies_python_proofs_on_chain(chain):
    records = chain.as_(chain.hospital_a).records
    rng = random.Random(2026)
    encoding = ["address", "uint256", "bytes32"]
    values = [(_address(rng, checksummed=True), rng.getrandbits(256), rng.randbytes(32)) for _ in range(50)]
    tree = StandardMerkleTree.of(values, encoding)

    kind = keccak(text="wearable.vitals.v1")
    assert records.anchor_digest(tree.root, len(tree), kind) >= 1
    digest = records.get_digest(tree.root)
    assert (digest.custodian, digest.count, digest.kind) == (chain.hospital_a.address, 50, kind)

    for i, value in enumerate(values):
        assert records.verify_digest_leaf(tree.root, tree.get_proof(i), tree.leaf_hash(value)), i

    address, amount, blob = values[0]
    proof0 = tree.get_proof(0)
    tampered = tree.leaf_hash((address, amount ^ 1, blob))
    assert not records.verify_digest_leaf(tree.root, proof0, tampered)
    assert not records.verify_digest_leaf(tree.root, tree.get_proof(1), tree.leaf_hash(values[0]))
    assert not records.verify_digest_leaf(tree.root, proof0[:-1], tree.leaf_hash(values[0]))

    # A proof that is valid for its own tree proves nothing while that root is not anchored.
    unanchored = StandardMerkleTree.of(values[:49], encoding)
    assert unanchored.verify(values[0], unanchored.get_proof(0))
    assert not records.verify_digest_leaf(unanchored.root, unanchored.get_proof(0), unanchored.leaf_hash(values[0]))
