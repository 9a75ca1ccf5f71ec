"""Read-only blob readers (medledger.blobs) against stores the node's own backends wrote."""

from __future__ import annotations

import os
import socket
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medledger.blobs import (
    PACK_NAME,
    BlobCorrupted,
    BlobNotFound,
    BlobStoreUnavailable,
    KuboBlobReader,
    LocalBlobReader,
    open_reader,
)
from medledger.cid import cid_for
from medledger.errors import ConfigError, InputError
from node import storage
from node.storage import KuboBlobStore, LocalBlobStore

# A dag-pb root from Kubo (a file larger than one chunk); valid, but never in a local store.
DAG_PB_CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def _tree(root: Path) -> list[tuple[str, int, int]]:
    """Every path under ``root`` with its size and modification time: what a read must leave alone. SQLite's
    WAL side files are left out: any reader of a WAL database may create them (they hold no blob)."""
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if not p.name.endswith(("-wal", "-shm"))
    )


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A store the node wrote in both homes: small blobs in the pack, large ones (and the empty blob) as files."""
    root = tmp_path / "blobs"
    blobs = [os.urandom(100), os.urandom(4096), os.urandom(200_000), os.urandom(70_000)]
    with_pack = LocalBlobStore(root, fsync=False)
    cids = with_pack.put_many(blobs)
    with_pack.close()
    files_only = LocalBlobStore(root, fsync=False, small_blob_limit=0)
    cids.append(files_only.put(b"written as a file"))
    files_only.close()
    return root, dict(zip(cids, [*blobs, b"written as a file"], strict=True))


def test_local_reader_reads_what_the_node_wrote_in_both_homes(written: tuple[Path, dict[str, bytes]]) -> None:
    root, blobs = written
    files = {p.name for p in root.rglob("b*") if p.is_file()}
    assert files and len(files) < len(blobs)  # both homes are really in use
    before = _tree(root)
    reader = open_reader(str(root))
    assert isinstance(reader, LocalBlobReader)
    with ThreadPoolExecutor(max_workers=8) as pool:  # the auditor fetches 8 at a time
        got = list(pool.map(reader.get, list(blobs) * 4))
    assert got == list(blobs.values()) * 4
    reader.close()
    assert _tree(root) == before


def test_local_reader_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root, fsync=False, small_blob_limit=0)
    cid = store.put(b"large enough to be a file here")
    store.close()
    before = _tree(root)
    reader = LocalBlobReader(root)
    assert reader.get(cid) == b"large enough to be a file here"
    with pytest.raises(BlobNotFound):
        reader.get(cid_for(b"never stored"))
    reader.close()
    assert _tree(root) == before and not (root / PACK_NAME).exists()
    with pytest.raises(ConfigError, match="no blob store directory there"):
        LocalBlobReader(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_local_reader_missing_malformed_and_dag_pb(written: tuple[Path, dict[str, bytes]]) -> None:
    root, _ = written
    reader = LocalBlobReader(root)
    with pytest.raises(BlobNotFound) as missing:
        reader.get(cid_for(b"never stored"))
    assert missing.value.code == "blob_not_found"
    with pytest.raises(BlobNotFound):
        reader.get(DAG_PB_CID)
    with pytest.raises(InputError):
        reader.get("Qm" + "a" * 44)
    reader.close()


def test_local_reader_detects_tampering_in_pack_and_files(written: tuple[Path, dict[str, bytes]]) -> None:
    root, blobs = written
    small = next(c for c, d in blobs.items() if len(d) == 100)
    large = next(c for c, d in blobs.items() if len(d) == 200_000)
    with sqlite3.connect(root / PACK_NAME) as db:
        assert db.execute("UPDATE blobs SET data = ? WHERE cid = ?", (b"x" * 100, small)).rowcount == 1
    [path] = [p for p in root.rglob(large)]
    path.write_bytes(b"y" + path.read_bytes()[1:])
    reader = LocalBlobReader(root)
    for cid in (small, large):
        with pytest.raises(BlobCorrupted) as bad:
            reader.get(cid)
        assert bad.value.code == "blob_corrupted"
    reader.close()


def test_errors_are_the_node_stores_own() -> None:
    # One set of classes: code catching them works for a node BlobStore and a reader alike.
    assert storage.BlobNotFound is BlobNotFound
    assert storage.BlobCorrupted is BlobCorrupted
    assert storage.BlobStoreUnavailable is BlobStoreUnavailable


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("./blobs", LocalBlobReader),
        ("file://{root}", LocalBlobReader),
        ("{root}", LocalBlobReader),
        ("http://127.0.0.1:5001", KuboBlobReader),
        ("kubo+https://ipfs.example.org/api/v0", KuboBlobReader),
    ],
)
def test_open_reader_picks_the_backend(url: str, kind: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "blobs").mkdir()
    monkeypatch.chdir(tmp_path)
    reader = open_reader(url.format(root=tmp_path / "blobs"))
    assert isinstance(reader, kind)
    reader.close()


@pytest.mark.parametrize("url", ["", "  ", "s3://bucket/x", "file://otherhost/x", "http:///nohost"])
def test_open_reader_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        open_reader(url)


def test_kubo_reader_keeps_credentials_out_of_messages() -> None:
    reader = open_reader("kubo+http://admin:s3cr3t-token@127.0.0.1:5001")
    assert "s3cr3t" not in repr(reader)
    reader.close()


def test_kubo_reader_unreachable_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reader = KuboBlobReader(f"http://127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(BlobStoreUnavailable) as err:
        reader.get(cid_for(b"x"))
    assert err.value.code == "blob_store_unavailable"
    reader.close()


def test_kubo_reader_reads_what_the_node_wrote() -> None:
    url = os.environ.get("MEDLEDGER_IPFS_API")
    if not url:
        pytest.skip("MEDLEDGER_IPFS_API is not set (no Kubo daemon to test against)")
    store = KuboBlobStore(url)
    data = os.urandom(4096)
    cid = store.put(data)
    reader = KuboBlobReader(url)
    try:
        assert reader.get(cid) == data
        with pytest.raises(BlobNotFound):
            reader.get(cid_for(os.urandom(32)))
    finally:
        store.delete(cid)
        store.close()
        reader.close()
