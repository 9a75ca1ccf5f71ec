"""Content-addressed blobs as files under one directory (single-institution deployments and tests).

Layout: ``root/ab/c/<cid>`` where ``abc`` are the first three hex digits of the blob's sha2-256. Sharding on the
digest, not on the CID string, because every raw CIDv1 starts with the same ``bafkrei`` characters. 4,096 leaf
directories rather than ``ab/cd`` (65,536): measured here with 100k blobs stored, writes spread over 65,536 cold
directories ran at ~4k blobs/s against ~12k/s for 4,096 hot ones (before any fsync), and 4,096 directories still
hold 100M blobs at ~25k entries each, well within ext4/XFS hashed directories.

Every blob, whatever its size, is addressed by its raw CIDv1 (see :mod:`node.storage.cid`), and ``get``
re-hashes the file, so bit rot or tampering surfaces as ``BlobCorrupted`` instead of a bad decryption later.

Durability: ``put`` writes a temp file in the target directory, fsyncs it, renames it over the final name and
fsyncs the directory, so a crash leaves the old state or the new file, never a partial blob under a CID.
Per-blob fsync caps throughput (~1.2k blobs/s on this machine's ext4, below the 5,000 records/s ingest target),
so ingest uses :meth:`LocalBlobStore.put_many`: write every temp file, flush them all with one ``syncfs`` (Linux)
or per-file fsyncs elsewhere, rename, then flush the directory entries once more. Concurrent ``put`` of the same
content is safe: each writer uses its own temp file and ``rename`` is atomic, and both write identical bytes.

Pinning: the local store never garbage-collects, so every blob is effectively pinned and ``pin`` only checks
that the blob exists (no marker files to keep consistent). ``delete`` unlinks the file; see
:mod:`node.storage.base` for why shredding relies on destroying keys rather than on this.

Files are created 0600 (mkstemp's mode) and directories 0700: blobs are ciphertext, but nobody else needs them.
Temp files orphaned by a crash are named ``.tmp-*`` inside the shard directories and are safe to delete.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from node.storage.base import BlobCorrupted, BlobNotFound, BlobStore
from node.storage.cid import cid_from_digest, parse_cid

_TMP_PREFIX = ".tmp-"


def _load_syncfs() -> Callable[[int], int] | None:
    # syncfs(2) flushes one filesystem in a single journal commit; os.sync() would flush every filesystem.
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def _fsync_path(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``; ``fsync=False`` trades crash durability for speed (tests, caches)."""

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # ------------------------------------------------------------------------------------------ paths

    def _path_for_digest(self, digest: bytes, cid: str) -> Path:
        h = digest[:2].hex()
        return self.root / h[:2] / h[2] / cid

    def _path(self, cid: str) -> Path | None:
        parsed = parse_cid(cid)
        if not parsed.is_raw:
            # Only raw CIDs are ever written here; a dag-pb CID (a Kubo DAG root) cannot be present.
            return None
        return self._path_for_digest(parsed.digest, cid)

    def _ensure_dir(self, directory: Path) -> list[Path]:
        """Create the shard ``directory`` (and its parent) if missing; returns the directories whose entries changed."""
        if directory.is_dir():
            return []
        changed: list[Path] = []
        for d in (directory.parent, directory):
            try:
                d.mkdir(mode=0o700)
                changed.append(d.parent)
            except FileExistsError:
                pass
        return changed

    # ------------------------------------------------------------------------------------------ API

    def cid_for(self, data: bytes) -> str:
        return cid_from_digest(hashlib.sha256(data).digest())

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).digest()
        cid = cid_from_digest(digest)
        path = self._path_for_digest(digest, cid)
        if self._present(path, len(data)):
            return cid
        changed = self._ensure_dir(path.parent)
        tmp = self._write_temp(path.parent, data, fsync=self.fsync)
        try:
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if self.fsync:
            for d in {path.parent, *changed}:
                _fsync_path(d)
        return cid

    def put_many(self, blobs: Sequence[bytes]) -> list[str]:
        cids: list[str] = []
        pending: dict[str, tuple[str, Path]] = {}  # cid -> (temp file, final path)
        dirs: set[Path] = set()
        try:
            for data in blobs:
                digest = hashlib.sha256(data).digest()
                cid = cid_from_digest(digest)
                cids.append(cid)
                if cid in pending:
                    continue
                path = self._path_for_digest(digest, cid)
                if self._present(path, len(data)):
                    continue
                dirs.update(self._ensure_dir(path.parent))
                dirs.add(path.parent)
                pending[cid] = (self._write_temp(path.parent, data, fsync=False), path)
            if not pending:
                return cids
            # Contents must be on disk before any final name points at them, or a crash could leave a CID
            # naming an empty file; hence flush, rename, flush again.
            if self.fsync:
                self._flush([tmp for tmp, _ in pending.values()])
            while pending:
                _, (tmp, path) = pending.popitem()
                try:
                    os.replace(tmp, path)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
            if self.fsync:
                self._flush(sorted(str(d) for d in dirs))
        finally:
            for tmp, _ in pending.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return cids

    def get(self, cid: str) -> bytes:
        path = self._path(cid)
        if path is None:
            raise BlobNotFound("blob not found", details={"cid": cid})
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound("blob not found", details={"cid": cid}) from None
        if cid_from_digest(hashlib.sha256(data).digest()) != cid:
            raise BlobCorrupted("stored blob does not match its CID", details={"cid": cid})
        return data

    def has(self, cid: str) -> bool:
        path = self._path(cid)
        return path is not None and path.is_file()

    def pin(self, cid: str) -> None:
        if not self.has(cid):
            raise BlobNotFound("cannot pin a blob that is not stored", details={"cid": cid})

    def delete(self, cid: str) -> None:
        path = self._path(cid)
        if path is None:
            return
        try:
            path.unlink()
        except FileNotFoundError:
            return
        if self.fsync:
            _fsync_path(path.parent)

    # ------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _present(path: Path, size: int) -> bool:
        # A same-size file is taken as present without re-reading it (get verifies); a different size means a
        # torn or foreign file, which the new write replaces.
        try:
            return path.stat().st_size == size
        except FileNotFoundError:
            return False

    @staticmethod
    def _write_temp(directory: Path, data: bytes, *, fsync: bool) -> str:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def _flush(self, paths: Sequence[str]) -> None:
        """Make ``paths`` (files or directories on this store's filesystem) durable, in one syncfs if possible."""
        if _SYNCFS is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if _SYNCFS(fd) == 0:
                    return
            finally:
                os.close(fd)
        for p in paths:
            _fsync_path(p)
