"""Content-addressed blob stores: CIDs, the local file store, URL selection, and Kubo (when available)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from medledger.cid import DAG_PB_CODEC, RAW_CODEC, Cid, b32decode, b32encode, cid_from_digest
from medledger.errors import ConfigError, InputError
from node.storage import (
    BlobCorrupted,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    KuboBlobStore,
    LocalBlobStore,
    cid_for,
    open_store,
    parse_cid,
)
from node.storage.kubo import parse_add_response, redact_url

# Raw CIDv1 (sha2-256, base32) vectors, cross-checked against independent public sources: IPFS tests and tools
# list the first as the empty block, the second as `ipfs add --raw-leaves` of "hello world", and the third as
# the gateway object for "hello world\n".
CID_VECTORS = [
    (b"", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello world", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    (b"hello world\n", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
]
# A dag-pb root from Kubo (a file larger than one chunk); valid, but never stored by the local store.
DAG_PB_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


# ---------------------------------------------------------------------------------------------- CIDs


@pytest.mark.parametrize(("data", "expected"), CID_VECTORS)
def test_cid_vectors(data: bytes, expected: str) -> None:
    assert cid_for(data) == expected
    parsed = parse_cid(expected)
    assert parsed.codec == RAW_CODEC and parsed.is_raw
    assert parsed.digest == hashlib.sha256(data).digest()
    assert parsed.encode() == expected


def test_dag_pb_cid_parses() -> None:
    parsed = parse_cid(DAG_PB_CID)
    assert parsed.codec == DAG_PB_CODEC and not parsed.is_raw
    assert str(parsed) == DAG_PB_CID


@pytest.mark.parametrize("n", range(0, 12))
def test_base32_matches_stdlib(n: int) -> None:
    data = os.urandom(n)
    expected = base64.b32encode(data).decode().lower().rstrip("=")
    assert b32encode(data) == expected
    assert b32decode(expected) == data


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD",  # CIDv0
        "BAFKREIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU",  # upper-case multibase
        "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",  # base58btc multibase
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # truncated
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykuaa",  # extra bytes
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk1",  # not base32
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv",  # non-zero padding bits
        "../../etc/passwd",
        "b" + "a" * 200,
    ],
)
def test_invalid_cids_rejected(bad: str) -> None:
    with pytest.raises(InputError):
        parse_cid(bad)


def test_unsupported_codec_and_hash_rejected() -> None:
    digest = hashlib.sha256(b"x").digest()
    dag_cbor = "b" + b32encode(bytes([1, 0x71, 0x12, 32]) + digest)
    blake = "b" + b32encode(bytes([1, 0x55, 0x1E, 32]) + digest)
    nonminimal = "b" + b32encode(bytes([1, 0xD5, 0x00, 0x12, 32]) + digest)  # 0x55 as a 2-byte varint
    for bad in (dag_cbor, blake, nonminimal):
        with pytest.raises(InputError):
            parse_cid(bad)
    with pytest.raises(InputError):
        cid_from_digest(b"\x00" * 31)
    assert Cid(RAW_CODEC, digest).encode() == cid_for(b"x")


# ---------------------------------------------------------------------------------------------- local store


@pytest.fixture(params=[True, False], ids=["fsync", "nofsync"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBlobStore:
    """Every blob as a file (no pack): the tests using it are about the file layout."""
    return LocalBlobStore(tmp_path / "blobs", fsync=request.param, small_blob_limit=0)


@pytest.fixture(params=[True, False], ids=["fsync", "nofsync"])
def packed(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBlobStore:
    """The default layout: blobs up to 64 KiB in the SQLite pack, larger ones as files."""
    return LocalBlobStore(tmp_path / "blobs", fsync=request.param)


@pytest.fixture(params=[0, 64 * 1024], ids=["files", "packed"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalBlobStore:
    """Behaviour that must not depend on where a blob lives."""
    return LocalBlobStore(tmp_path / "blobs", fsync=False, small_blob_limit=request.param)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_get_has_delete(any_store: LocalBlobStore) -> None:
    store = any_store
    data = os.urandom(4096)
    cid = store.put(data)
    assert cid == cid_for(data) == store.cid_for(data)
    assert store.has(cid)
    assert store.get(cid) == data
    store.pin(cid)
    store.delete(cid)
    assert not store.has(cid)
    with pytest.raises(BlobNotFound) as exc:
        store.get(cid)
    assert exc.value.code == "blob_not_found"
    store.delete(cid)  # idempotent
    with pytest.raises(BlobNotFound):
        store.pin(cid)


def test_layout_and_modes(store: LocalBlobStore) -> None:
    data = b"hello world\n"
    cid = store.put(data)
    digest = hashlib.sha256(data).hexdigest()
    path = store.root / digest[:2] / digest[2] / cid
    assert _files(store.root) == [path]
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_cid_for_does_not_store(store: LocalBlobStore) -> None:
    cid = store.cid_for(b"not stored")
    assert not store.has(cid)
    assert _files(store.root) == []


def test_put_is_idempotent(store: LocalBlobStore) -> None:
    data = b"same content"
    cid = store.put(data)
    mtime = next(iter(_files(store.root))).stat().st_mtime_ns
    assert store.put(data) == cid
    files = _files(store.root)
    assert len(files) == 1
    assert files[0].stat().st_mtime_ns == mtime  # not rewritten


def test_empty_blob(any_store: LocalBlobStore) -> None:
    store = any_store
    cid = store.put(b"")
    assert cid == CID_VECTORS[0][1]
    assert store.get(cid) == b""


def test_flipped_byte_detected_on_read(store: LocalBlobStore) -> None:
    data = os.urandom(1000)
    cid = store.put(data)
    (path,) = _files(store.root)
    raw = bytearray(path.read_bytes())
    raw[500] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(BlobCorrupted) as exc:
        store.get(cid)
    assert exc.value.code == "blob_corrupted"


def test_truncated_file_is_repaired_by_put(store: LocalBlobStore) -> None:
    data = os.urandom(1000)
    cid = store.put(data)
    (path,) = _files(store.root)
    path.write_bytes(data[:10])
    with pytest.raises(BlobCorrupted):
        store.get(cid)
    assert store.put(data) == cid
    assert store.get(cid) == data


def test_invalid_cid_is_input_error(any_store: LocalBlobStore) -> None:
    store = any_store
    for op in (store.get, store.has, store.delete, store.pin):
        with pytest.raises(InputError):
            op("../../etc/passwd")


def test_dag_pb_cid_is_never_local(any_store: LocalBlobStore) -> None:
    store = any_store
    assert not store.has(DAG_PB_CID)
    with pytest.raises(BlobNotFound):
        store.get(DAG_PB_CID)


def test_put_many(store: LocalBlobStore) -> None:
    blobs = [os.urandom(4096) for _ in range(50)]
    existing = store.put(blobs[3])
    batch = [*blobs, blobs[0]]  # duplicate inside the batch
    cids = store.put_many(batch)
    assert cids == [cid_for(b) for b in batch]
    assert cids[3] == existing
    for cid, data in zip(cids, batch, strict=True):
        assert store.get(cid) == data
    assert len(_files(store.root)) == 50  # no duplicates, no temp files left
    assert not [p for p in _files(store.root) if p.name.startswith(".tmp-")]
    assert store.put_many([]) == []


@pytest.mark.parametrize("limit", [0, 64 * 1024], ids=["files", "packed"])
def test_concurrent_puts_of_same_content(tmp_path: Path, limit: int) -> None:
    store = LocalBlobStore(tmp_path / "blobs", small_blob_limit=limit)
    data = os.urandom(64 * 1024)
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(20):
                results.append(store.put(data))
                assert store.get(results[-1]) == data
        except BaseException as exc:  # collected and asserted on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(results) == {cid_for(data)}
    blob_files = [p for p in _files(store.root) if not p.name.startswith("packs.db")]
    assert len(blob_files) == (1 if limit == 0 else 0)


# ---------------------------------------------------------------------------------------------- pack (small blobs)


def _pack_rows(root: Path) -> dict[str, bytes]:
    with contextlib.closing(sqlite3.connect(root / "packs.db")) as db:
        return {cid: bytes(data) for cid, data in db.execute("SELECT cid, data FROM blobs")}


def test_small_blobs_are_packed_large_ones_are_files(packed: LocalBlobStore) -> None:
    small, large = os.urandom(4096), os.urandom(64 * 1024 + 1)
    at_limit = os.urandom(64 * 1024)
    cids = packed.put_many([small, large, at_limit])
    assert cids == [cid_for(small), cid_for(large), cid_for(at_limit)]
    assert packed.put(b"single small") == cid_for(b"single small")
    assert set(_pack_rows(packed.root)) == {cids[0], cids[2], cid_for(b"single small")}
    blob_files = [p for p in _files(packed.root) if not p.name.startswith("packs.db")]
    digest = hashlib.sha256(large).hexdigest()
    assert blob_files == [packed.root / digest[:2] / digest[2] / cids[1]]
    for cid, data in zip(cids, [small, large, at_limit], strict=True):
        assert packed.has(cid) and packed.get(cid) == data
        packed.pin(cid)
    assert stat.S_IMODE((packed.root / "packs.db").stat().st_mode) == 0o600


def test_packed_put_is_idempotent(packed: LocalBlobStore) -> None:
    blobs = [os.urandom(4096) for _ in range(20)]
    first = packed.put(blobs[5])
    cids = packed.put_many([*blobs, blobs[0]])  # already stored, and a duplicate inside the batch
    assert cids == [cid_for(b) for b in [*blobs, blobs[0]]] and cids[5] == first
    assert packed.put_many(blobs) == cids[:20]
    assert _pack_rows(packed.root) == {cid_for(b): b for b in blobs}


def test_corrupted_packed_blob_detected_on_read(packed: LocalBlobStore) -> None:
    data = os.urandom(1000)
    cid = packed.put(data)
    tampered = bytearray(data)
    tampered[500] ^= 0x01
    with contextlib.closing(sqlite3.connect(packed.root / "packs.db")) as db, db:
        db.execute("UPDATE blobs SET data = ? WHERE cid = ?", (bytes(tampered), cid))
    with pytest.raises(BlobCorrupted) as exc:
        packed.get(cid)
    assert exc.value.code == "blob_corrupted"


def test_deleted_packed_blob_is_overwritten_on_disk(packed: LocalBlobStore) -> None:
    """secure_delete + checkpoint: the ciphertext is gone from the database file and its WAL, not just unlinked
    from the B-tree (a deleted row would otherwise sit in a free page until reused)."""
    secret = os.urandom(3000)
    keep = [os.urandom(3000) for _ in range(5)]
    cids = packed.put_many([*keep, secret])
    packed.delete(cids[-1])
    packed.delete(cids[-1])  # idempotent
    assert not packed.has(cids[-1])
    with pytest.raises(BlobNotFound):
        packed.get(cids[-1])
    on_disk = b"".join(p.read_bytes() for p in packed.root.glob("packs.db*"))
    assert secret[:64] not in on_disk and secret[1000:1064] not in on_disk
    assert keep[0][:64] in on_disk  # the check above looks at the right bytes
    assert [packed.get(c) for c in cids[:-1]] == keep


def test_two_stores_on_one_root(tmp_path: Path) -> None:
    """A running node and the CLI each open their own store on the same directory (WAL + busy timeout)."""
    a, b = LocalBlobStore(tmp_path / "blobs"), LocalBlobStore(tmp_path / "blobs")
    errors: list[BaseException] = []

    def writer(store: LocalBlobStore, tag: bytes) -> None:
        try:
            for i in range(30):
                batch = [tag + i.to_bytes(2, "big") + os.urandom(2000) for _ in range(10)]
                for cid, data in zip(store.put_many(batch), batch, strict=True):
                    assert store.get(cid) == data
        except BaseException as exc:  # collected and asserted on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, t)) for s, t in ((a, b"a"), (b, b"b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cid = a.put(b"written by a")
    assert b.get(cid) == b"written by a"
    b.delete(cid)
    assert not a.has(cid)
    assert len(_pack_rows(tmp_path / "blobs")) == 600
    a.close()
    b.close()
    with pytest.raises(RuntimeError):
        a.put(b"after close")


def test_two_stores_creating_a_pack_at_once(tmp_path: Path) -> None:
    """Two stores opening a new root at the same moment both set up the pack (SQLite fails a journal-mode change
    on a busy file at once, without its busy handler: without a retry this lost about every second race)."""

    def first_put(
        store: LocalBlobStore, barrier: threading.Barrier, cids: list[str], errors: list[BaseException]
    ) -> None:
        try:
            barrier.wait()
            cids.extend(store.put_many([os.urandom(100)]))
        except BaseException as exc:  # collected and asserted on the main thread
            errors.append(exc)

    for round_ in range(20):
        root = tmp_path / f"blobs-{round_}"
        stores = [LocalBlobStore(root), LocalBlobStore(root)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        cids: list[str] = []
        threads = [threading.Thread(target=first_put, args=(s, barrier, cids, errors)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, f"round {round_}: {errors[0]!r}"
        assert len(cids) == 2 and all(s.has(cid) for s in stores for cid in cids)
        for s in stores:
            s.close()


def test_reading_a_file_only_store_creates_no_pack(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", small_blob_limit=0)
    cid = store.put(os.urandom(100))
    assert store.has(cid) and not store.has(cid_for(b"other"))
    assert not (tmp_path / "blobs" / "packs.db").exists()
    # A store with another limit on the same root still finds the file, and file-only stores read the pack.
    assert LocalBlobStore(tmp_path / "blobs").get(cid)
    packed_cid = LocalBlobStore(tmp_path / "blobs").put(b"packed")
    assert store.get(packed_cid) == b"packed"


def test_put_many_with_precomputed_digests(packed: LocalBlobStore) -> None:
    small, large = os.urandom(100), os.urandom(100_000)
    digests = [hashlib.sha256(small).digest(), hashlib.sha256(large).digest()]
    assert packed.put_many([small, large], digests=digests) == [cid_for(small), cid_for(large)]
    assert packed.get(cid_for(large)) == large
    # Small blobs are always re-hashed, so a wrong digest cannot mislabel a packed row.
    other = os.urandom(100)
    assert packed.put_many([other], digests=[digests[0]]) == [cid_for(other)]
    with pytest.raises(ValueError):
        packed.put_many([small], digests=[])


def test_reopen_sees_existing_blobs(tmp_path: Path) -> None:
    cid = LocalBlobStore(tmp_path / "b").put(b"persisted")
    assert LocalBlobStore(tmp_path / "b").get(cid) == b"persisted"


# ---------------------------------------------------------------------------------------------- open_store


def test_open_store_local(tmp_path: Path) -> None:
    for url in (f"file://{tmp_path}/a", str(tmp_path / "b"), f"file://localhost{tmp_path}/c"):
        store = open_store(url)
        assert isinstance(store, LocalBlobStore)
        assert isinstance(store, BlobStore)
    assert open_store(f"file://{tmp_path}/a").root == tmp_path / "a"
    assert open_store(str(tmp_path / "b")).root == tmp_path / "b"
    assert open_store(f"file://{tmp_path}/with%20space").root == tmp_path / "with space"


def test_open_store_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("blobs")
    assert isinstance(store, LocalBlobStore)
    assert (tmp_path / "blobs").is_dir()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("https://ipfs.example.org:5001/", "https://ipfs.example.org:5001"),
        ("kubo+http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("kubo+https://ipfs.example.org/api/v0", "https://ipfs.example.org"),
    ],
)
def test_open_store_kubo(url: str, expected: str) -> None:
    store = open_store(url)
    try:
        assert isinstance(store, KuboBlobStore)
        assert store.api_url == expected
    finally:
        store.close()


@pytest.mark.parametrize("url", ["", "   ", "s3://bucket/blobs", "ftp://host/x", "file://otherhost/x", "http://"])
def test_open_store_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_credentials_never_shown() -> None:
    store = open_store("kubo+http://admin:s3cr3t-token@127.0.0.1:5001")
    try:
        assert "s3cr3t-token" not in repr(store) and "s3cr3t-token" not in store.api_url
    finally:
        store.close()
    assert redact_url("https://u:p@h:5001/x") == "https://***@h:5001/x"
    with pytest.raises(ConfigError) as exc:
        open_store("s3://key:secret-key@bucket")
    assert "secret-key" not in str(exc.value.to_dict())


def test_parse_add_response() -> None:
    cid = CID_VECTORS[1][1]
    assert parse_add_response(f'{{"Name":"blob","Hash":"{cid}","Size":"11"}}\n') == cid
    assert parse_add_response(f'{{"Name":"a","Bytes":11}}\n{{"Name":"blob","Hash":"{cid}"}}\n') == cid
    with pytest.raises(InputError):
        parse_add_response('{"Name":"blob","Hash":"garbage"}')
    with pytest.raises(BlobStoreUnavailable):
        parse_add_response('{"Name":"blob"}')
    with pytest.raises(BlobStoreUnavailable):
        parse_add_response("<html>proxy error</html>")


# ---------------------------------------------------------------------------------------------- Kubo


@pytest.fixture
def kubo() -> KuboBlobStore:
    url = os.environ.get("MEDLEDGER_IPFS_API")
    if not url:
        pytest.skip("MEDLEDGER_IPFS_API is not set (no Kubo daemon to test against)")
    return KuboBlobStore(url)


def test_kubo_small_blob_matches_raw_cid(kubo: KuboBlobStore) -> None:
    data = os.urandom(4096)
    cid = kubo.put(data)
    assert cid == cid_for(data) == kubo.cid_for(data)
    assert kubo.has(cid)
    assert kubo.get(cid) == data
    kubo.pin(cid)
    kubo.delete(cid)
    kubo.delete(cid)


def test_kubo_large_blob_is_a_dag(kubo: KuboBlobStore) -> None:
    data = os.urandom(1024 * 1024 + 1)
    cid = kubo.put(data)
    assert cid != cid_for(data)
    assert not parse_cid(cid).is_raw
    assert kubo.cid_for(data) == cid
    assert kubo.get(cid) == data
    kubo.delete(cid)


def test_kubo_missing_blob(kubo: KuboBlobStore) -> None:
    cid = cid_for(os.urandom(32))
    assert not kubo.has(cid)
    with pytest.raises(BlobNotFound):
        kubo.get(cid)
