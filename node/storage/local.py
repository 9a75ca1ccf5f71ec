"""Content-addressed blobs under one directory: small ones packed in SQLite, large ones as files.

Small blobs (≤ ``small_blob_limit``, 64 KiB by default: typical FHIR/HL7 ciphertexts) live in one SQLite "pack"
database, ``root/packs.db`` (table ``blobs(cid TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID``), the way Kubo
keeps small blocks in a key-value datastore and git packs small objects. A file per 4 KiB blob costs a create,
a rename, a directory entry and an inode each (~170 µs/blob here, fsync rounds included); a pack commits a
whole ingest batch as one append to the WAL (~70 µs/blob) and reads back with one B-tree lookup.

Large blobs (DICOM, PDFs) stay files: ``root/ab/c/<cid>`` where ``abc`` are the first three hex digits of the
blob's sha2-256. Sharding on the digest, not on the CID string, because every raw CIDv1 starts with the same
``bafkrei`` characters. 4,096 leaf directories rather than ``ab/cd`` (65,536): measured here with 100k blobs
stored, writes spread over 65,536 cold directories ran at ~4k blobs/s against ~12k/s for 4,096 hot ones
(before any fsync), and 4,096 directories still hold 100M blobs at ~25k entries each.

Every blob, whatever its size or home, is addressed by its raw CIDv1 (see :mod:`medledger.cid`), and ``get``
re-hashes what it read, so bit rot or tampering surfaces as ``BlobCorrupted`` instead of a bad decryption later.

Durability: when ``put``/``put_many`` returns, the blobs are on disk. The node commits the outbox rows that
reference these CIDs only afterwards, so a crash can leave unreferenced blobs but never a record whose
ciphertext is missing. The pack runs in WAL mode with ``synchronous=FULL`` (the WAL is fsynced at every
commit; NORMAL would only protect against corruption, not against losing the last commits on power loss), and
``put_many`` stores a batch in one ``BEGIN IMMEDIATE … COMMIT``. Files: ``put`` writes a temp file in the
target directory, fsyncs it, renames it over the final name and fsyncs the directory; ``put_many`` writes every
temp file, flushes them all with one ``syncfs`` (Linux) or per-file fsyncs elsewhere, renames, then flushes
the directory entries once more. A crash leaves the old state or the whole blob, never a partial blob under a
CID. ``fsync=False`` (tests, caches) drops the flushes and runs the pack at ``synchronous=NORMAL``.

Concurrency: one SQLite connection per store behind a lock (thread-safe), and WAL + a busy timeout let
several processes (a running node and the CLI) open stores on the same root. Concurrent ``put`` of the same
content is safe in both homes: ``INSERT OR IGNORE`` for the pack, private temp files + atomic ``rename`` of
identical bytes for files.

Deletion and shredding: ``delete`` removes the blob from both homes. The pack runs with ``secure_delete=ON``,
so SQLite zeroes the freed cells and pages instead of leaving the ciphertext in free space, and ``delete``
checkpoints the WAL (copying the zeroed pages into the database file and truncating the log, which held the
original insert). What SSDs, filesystems and backups keep is out of reach of any store: see
:mod:`node.storage.base` for why shredding relies on destroying keys; this is the storage-hygiene half.

Pinning: the local store never garbage-collects, so every blob is effectively pinned and ``pin`` only checks
that the blob exists. Files and the pack are created 0600 (SQLite gives its -wal/-shm files the database's
mode) and directories 0700: blobs are ciphertext, but nobody else needs them. Temp files orphaned by a crash
are named ``.tmp-*`` inside the shard directories and are safe to delete.

A full file system (ENOSPC, EDQUOT, SQLite's SQLITE_FULL) is ``StorageFull`` (``insufficient_storage``, 507),
not a bare OSError: the caller is told to retry later rather than that the node is broken. A ``put_many`` that
fails that way has placed none of its packed blobs; its large files, written before the pack, may be in place,
and the caller deletes them (the pipeline does): an unlink frees space on a full disk, while deleting pack rows
would need room in the WAL.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import itertools
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from medledger.blobs import PACK_NAME  # the on-disk layout is shared with medledger.blobs' read-only reader
from medledger.cid import cid_from_digest, parse_cid
from medledger.db import enable_wal
from medledger.errors import MedLedgerError
from node.storage.base import BlobCorrupted, BlobNotFound, BlobStore

_TMP_PREFIX = ".tmp-"
#: How long a writer waits for another process's pack transaction (a batch commit takes milliseconds).
_BUSY_TIMEOUT_S = 30.0
_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (cid TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID"


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

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: SQLite's primary result code for a full disk; the low byte of any extended code built on it.
_SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)


class StorageFull(MedLedgerError):
    """The blob store's file system has no room left; nothing of the failed write is stored under its CID (507)."""

    code = "insufficient_storage"


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the quota) is full rather than that something is broken."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_FULL
    return False


@contextlib.contextmanager
def _full_is_storage_full() -> Iterator[None]:
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if is_storage_full(exc):
            raise StorageFull("the blob store's file system is full") from exc
        raise


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    """One pack write transaction. IMMEDIATE takes the write lock up front (waiting on the busy timeout for
    another process) instead of failing with SQLITE_BUSY when an implicit read transaction tries to write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _init_pack(conn: sqlite3.Connection) -> None:
    """Put a pack file in WAL mode and create its table; another store doing the same (a node and the CLI
    opening a new root at once) is waited for, not failed on."""
    enable_wal(conn, _BUSY_TIMEOUT_S)
    with _write(conn):
        conn.execute(_SCHEMA)


def _fsync_path(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore(BlobStore):
    """Blobs under ``root``: ≤ ``small_blob_limit`` bytes in the SQLite pack, larger ones as files.

    ``fsync=False`` trades crash durability for speed (tests, caches); ``small_blob_limit=0`` stores every blob
    as a file (the pack is still read if it exists, so blobs packed earlier stay reachable).
    """

    def __init__(self, root: Path | str, *, fsync: bool = True, small_blob_limit: int = 64 * 1024) -> None:
        if small_blob_limit < 0:
            raise ValueError("small_blob_limit must be >= 0")
        self.root = Path(root)
        self.fsync = fsync
        self.small_blob_limit = small_blob_limit
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Plain strings in the hot paths: pathlib's joins cost more than the 4 KiB writes they name.
        self._root = str(self.root)
        self._pack_path = os.path.join(self._root, PACK_NAME)
        self._known_dirs: set[str] = set()
        self._tmp_counter = itertools.count()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"LocalBlobStore({self._root!r})"

    # ------------------------------------------------------------------------------------------ pack

    def _pack(self, *, create: bool) -> sqlite3.Connection | None:
        """The pack connection (caller holds ``_lock``); None if there is no pack and ``create`` is false.

        Opened lazily so that a store that only ever holds large blobs never creates ``packs.db``, and read
        paths of such a store cost one stat rather than a database.
        """
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise RuntimeError("blob store is closed")
        if not create and not os.path.exists(self._pack_path):
            return None
        # Create the file ourselves so it is 0600 from the start (sqlite3 would use 0644 minus umask).
        os.close(os.open(self._pack_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600))
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in put_many), not the module's
        # implicit deferred ones, which could deadlock two writers upgrading from read locks.
        conn = sqlite3.connect(self._pack_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            conn.execute("PRAGMA secure_delete=ON")
            _init_pack(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _pack_insert(self, rows: list[tuple[str, bytes]]) -> None:
        with self._lock:
            conn = self._pack(create=True)
            assert conn is not None
            with _write(conn):  # OR IGNORE makes re-puts and racing puts no-ops
                conn.executemany("INSERT OR IGNORE INTO blobs (cid, data) VALUES (?, ?)", rows)

    def _pack_get(self, cid: str) -> bytes | None:
        with self._lock:
            conn = self._pack(create=False)
            if conn is None:
                return None
            row = conn.execute("SELECT data FROM blobs WHERE cid = ?", (cid,)).fetchone()
        return None if row is None else bytes(row[0])

    def _pack_has(self, cid: str) -> bool:
        with self._lock:
            conn = self._pack(create=False)
            return conn is not None and conn.execute("SELECT 1 FROM blobs WHERE cid = ?", (cid,)).fetchone() is not None

    def _pack_delete(self, cid: str) -> None:
        with self._lock:
            conn = self._pack(create=False)
            if conn is None:
                return
            if conn.execute("DELETE FROM blobs WHERE cid = ?", (cid,)).rowcount:
                # The zeroed pages reach the database file, and the WAL frames holding the original insert are
                # discarded, only at a checkpoint; TRUNCATE waits (busy_timeout) for readers of other processes.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # ------------------------------------------------------------------------------------------ paths

    def _dir_for_digest(self, digest: bytes) -> str:
        h = digest[:2].hex()
        return f"{self._root}/{h[:2]}/{h[2]}"

    def _file(self, cid: str) -> str | None:
        parsed = parse_cid(cid)
        if not parsed.is_raw:
            # Only raw CIDs are ever written here; a dag-pb CID (a Kubo DAG root) cannot be present.
            return None
        return f"{self._dir_for_digest(parsed.digest)}/{cid}"

    def _ensure_dir(self, directory: str) -> list[str]:
        """Create the shard ``directory`` (and its parent) if missing; returns the directories whose entries changed."""
        # Shard directories are never removed by the store, so one that existed once can be trusted: this
        # saves a stat (or a mkdir) per blob.
        if directory in self._known_dirs:
            return []
        if os.path.isdir(directory):
            self._known_dirs.add(directory)
            return []
        changed: list[str] = []
        for d in (os.path.dirname(directory), directory):
            try:
                os.mkdir(d, 0o700)
                changed.append(os.path.dirname(d))
            except FileExistsError:
                pass
        self._known_dirs.add(directory)
        return changed

    def _is_small(self, data: bytes) -> bool:
        return self.small_blob_limit > 0 and len(data) <= self.small_blob_limit

    # ------------------------------------------------------------------------------------------ API

    def cid_for(self, data: bytes) -> str:
        return cid_from_digest(hashlib.sha256(data).digest())

    def put(self, data: bytes) -> str:
        with _full_is_storage_full():
            return self._put(data)

    def _put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).digest()
        cid = cid_from_digest(digest)
        if self._is_small(data):
            self._pack_insert([(cid, data)])
            return cid
        directory = self._dir_for_digest(digest)
        path = f"{directory}/{cid}"
        if self._present(path, len(data)):
            return cid
        changed = self._ensure_dir(directory)
        _rename_into_place(self._write_temp(directory, data, fsync=self.fsync), path)
        if self.fsync:
            for d in {directory, *changed}:
                _fsync_path(d)
        return cid

    def put_many(self, blobs: Sequence[bytes], *, digests: Sequence[bytes] | None = None) -> list[str]:
        if digests is not None and len(digests) != len(blobs):
            raise ValueError("digests must match blobs one to one")
        cids: list[str] = []
        packed: dict[str, bytes] = {}
        large: dict[str, tuple[str, bytes]] = {}  # cid -> (shard directory, data)
        sha256 = hashlib.sha256
        limit = self.small_blob_limit
        for i, data in enumerate(blobs):
            small = limit > 0 and len(data) <= limit
            # A caller's digest is only trusted for large blobs, where hashing again costs real time (~20 ms
            # per 32 MiB); a wrong one there is caught by get (BlobCorrupted) and replaced by the next put_many
            # of the right content. Small blobs are re-hashed (µs): INSERT OR IGNORE would keep a mislabelled
            # row forever.
            trusted = digests is not None and not small
            digest = bytes(digests[i]) if trusted and digests is not None else sha256(data).digest()
            cid = cid_from_digest(digest)
            cids.append(cid)
            if small:
                packed[cid] = data
            elif cid not in large:
                large[cid] = (self._dir_for_digest(digest), data)
        with _full_is_storage_full():
            # Files first: if the disk fills, what is left to undo is files (an unlink needs no space), never pack
            # rows, whose DELETE needs room in the WAL.
            if large:
                self._put_files(large)
            if packed:
                self._pack_insert(list(packed.items()))
        return cids

    def _put_files(self, large: dict[str, tuple[str, bytes]]) -> None:
        # No existence check per blob: renaming a fresh temp file over an existing file of the same content is
        # harmless in a content-addressed store, and cheaper than a stat per blob for the common (new) case.
        pending: list[tuple[str, str]] = []  # (temp file, final path)
        dirs: set[str] = set()
        try:
            for cid, (directory, data) in large.items():
                dirs.update(self._ensure_dir(directory))
                dirs.add(directory)
                pending.append((self._write_temp(directory, data, fsync=False), f"{directory}/{cid}"))
            # Contents must be on disk before any final name points at them, or a crash could leave a CID
            # naming an empty file; hence flush, rename, flush again.
            if self.fsync:
                self._flush([tmp for tmp, _ in pending])
            while pending:
                _rename_into_place(*pending.pop())
            if self.fsync:
                self._flush(sorted(dirs))
        finally:
            for tmp, _ in pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def get(self, cid: str) -> bytes:
        path = self._file(cid)
        if path is None:
            raise BlobNotFound("blob not found", details={"cid": cid})
        data = self._pack_get(cid)
        if data is None:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise BlobNotFound("blob not found", details={"cid": cid}) from None
        if cid_from_digest(hashlib.sha256(data).digest()) != cid:
            raise BlobCorrupted("stored blob does not match its CID", details={"cid": cid})
        return data

    def has(self, cid: str) -> bool:
        path = self._file(cid)
        return path is not None and (self._pack_has(cid) or os.path.isfile(path))

    def pin(self, cid: str) -> None:
        if not self.has(cid):
            raise BlobNotFound("cannot pin a blob that is not stored", details={"cid": cid})

    def delete(self, cid: str) -> None:
        path = self._file(cid)
        if path is None:
            return
        # Both homes: a blob can be in either (the limit may have changed between runs), rarely in both.
        self._pack_delete(cid)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        if self.fsync:
            _fsync_path(os.path.dirname(path))

    # ------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _present(path: str, size: int) -> bool:
        # A same-size file is taken as present without re-reading it (get verifies); a different size means a
        # torn or foreign file, which the new write replaces.
        try:
            return os.stat(path).st_size == size
        except FileNotFoundError:
            return False

    def _write_temp(self, directory: str, data: bytes, *, fsync: bool) -> str:
        # A unique name from pid + counter and one O_EXCL open: mkstemp's random-name retry loop and file
        # object cost more than the write itself for small blobs.
        tmp = f"{directory}/{_TMP_PREFIX}{os.getpid()}.{next(self._tmp_counter)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            # Left by a crashed process that had our pid: no live writer can own this name, so replace it.
            os.unlink(tmp)
            fd = os.open(tmp, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
            os.close(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def _flush(self, paths: Sequence[str]) -> None:
        """Make ``paths`` (files or directories on this store's filesystem) durable, in one syncfs if possible."""
        if _SYNCFS is not None:
            fd = os.open(self._root, os.O_RDONLY)
            try:
                if _SYNCFS(fd) == 0:
                    return
            finally:
                os.close(fd)
        for p in paths:
            _fsync_path(p)


def _rename_into_place(tmp: str, path: str) -> None:
    """Atomically move a written temp file to its final name; never leave the temp file behind on failure."""
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
