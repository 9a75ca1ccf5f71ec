"""Read-only access to a node's content-addressed blob store, by CID, for readers that are not the node.

The node writes encrypted payloads through ``node.storage`` (its local store or Kubo). An on-site auditor with
read access to that store checks the ciphertexts against their on-chain commitments without asking the node;
it must not write (opening ``node.storage.LocalBlobStore`` creates directories and the pack's table) and, as a
client, must not depend on the node package. So this module reads the same two homes with no write path:

- :class:`LocalBlobReader`: a local store directory. Small blobs are rows of the SQLite pack
  ``root/packs.db`` (``blobs(cid TEXT PRIMARY KEY, data BLOB)``), opened read-only; large ones are files
  ``root/ab/c/<cid>``, ``abc`` being the first three hex digits of the blob's sha2-256. This layout is the
  local store's on-disk format (``node/storage/local.py`` documents why); ``tests/test_blobs.py`` reads blobs
  the node's store wrote in both homes, so a change to either side fails there.
- :class:`KuboBlobReader`: a Kubo daemon's RPC API (``/api/v0/cat``, offline: only blocks it holds).

Both re-hash what they read against the CID and raise the store errors below, which ``node.storage`` shares,
so a node's ``BlobStore`` can stand in wherever a :class:`BlobReader` is expected.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx

from medledger.cid import parse_cid
from medledger.errors import ConfigError, MedLedgerError
from medledger.redact import redact_url

#: The local store's pack file, relative to its root.
PACK_NAME = "packs.db"
#: How long a read waits for a node's pack transaction to finish (a batch commit takes milliseconds).
_BUSY_TIMEOUT_S = 30.0
#: Substrings of Kubo's error messages that mean "no such block here" rather than a failure.
KUBO_NOT_FOUND_MARKERS = ("not found", "no link named", "block was not found locally")
_KUBO_SCHEMES = ("http", "https", "kubo+http", "kubo+https")


class BlobNotFound(MedLedgerError):
    """No blob with this CID in the store."""

    code = "blob_not_found"


class BlobCorrupted(MedLedgerError):
    """The stored bytes do not hash to their CID (disk corruption or tampering)."""

    code = "blob_corrupted"


class BlobStoreUnavailable(MedLedgerError):
    """The backing service (e.g. the Kubo daemon) cannot be reached or answered with an error."""

    code = "blob_store_unavailable"


class BlobReader(Protocol):
    """Reads blobs by CID, verified (``BlobNotFound`` / ``BlobCorrupted`` / ``BlobStoreUnavailable``;
    ``InputError`` for a malformed CID). Safe to call from several threads."""

    def get(self, cid: str) -> bytes: ...

    def close(self) -> None: ...


def _verified(cid: str, digest: bytes, data: bytes) -> bytes:
    if hashlib.sha256(data).digest() != digest:
        raise BlobCorrupted("stored blob does not match its CID", details={"cid": cid})
    return data


class LocalBlobReader:
    """Reads a local store directory ``root`` written by the node; ``ConfigError`` if it is not a directory.

    No blob, table or directory is created or changed: the pack is opened read-only (``mode=ro``), and only if
    it exists. (SQLite may create the pack's ``-wal``/``-shm`` side files, as for any reader of a WAL database.)
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError("no blob store directory there", details={"path": str(self.root)})
        self._pack_path = self.root / PACK_NAME
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"LocalBlobReader({str(self.root)!r})"

    def _pack_get(self, cid: str) -> bytes | None:
        with self._lock:
            if self._conn is None:
                if not self._pack_path.exists():
                    return None  # a store that only ever held large blobs has no pack
                uri = f"file:{quote(str(self._pack_path))}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
            try:
                row = self._conn.execute("SELECT data FROM blobs WHERE cid = ?", (cid,)).fetchone()
            except sqlite3.Error as exc:
                raise BlobStoreUnavailable(
                    f"cannot read the blob pack: {exc}", details={"path": str(self._pack_path)}
                ) from None
        return None if row is None else bytes(row[0])

    def get(self, cid: str) -> bytes:
        parsed = parse_cid(cid)
        if not parsed.is_raw:
            # The local store writes raw CIDs only; a dag-pb CID (a Kubo DAG root) cannot be in it.
            raise BlobNotFound("blob not found", details={"cid": cid})
        data = self._pack_get(cid)
        if data is None:
            h = parsed.digest[:2].hex()
            try:
                data = (self.root / h[:2] / h[2] / cid).read_bytes()
            except FileNotFoundError:
                raise BlobNotFound("blob not found", details={"cid": cid}) from None
            except OSError as exc:
                raise BlobStoreUnavailable(f"cannot read the blob file: {exc.strerror}", details={"cid": cid}) from None
        return _verified(cid, parsed.digest, data)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class KuboBlobReader:
    """Reads blobs from a Kubo daemon's RPC API, e.g. ``http://127.0.0.1:5001`` (credentials in the URL are
    sent as basic auth and kept out of messages).

    Raw CIDs are re-hashed here, so a misbehaving daemon cannot substitute content; a dag-pb CID's root
    cannot be recomputed without UnixFS, so its bytes are as Kubo verified them.
    """

    def __init__(self, api_url: str, *, timeout: float = 60.0, client: httpx.Client | None = None) -> None:
        base = api_url.rstrip("/").removesuffix("/api/v0")
        if not base.startswith(("http://", "https://")):
            raise ConfigError("Kubo API URL must be http(s)://host:port", details={"url": redact_url(api_url)})
        self.api_url = redact_url(base)
        self._client = client or httpx.Client(base_url=f"{base}/api/v0", timeout=timeout)
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"KuboBlobReader({self.api_url!r})"

    def get(self, cid: str) -> bytes:
        parsed = parse_cid(cid)
        try:
            # offline: a missing CID fails at once instead of Kubo searching the public DHT for it.
            response = self._client.post("/cat", params={"arg": cid, "offline": "true"})
        except httpx.HTTPError as exc:
            raise BlobStoreUnavailable(
                f"Kubo API unreachable: {type(exc).__name__}", details={"url": self.api_url}
            ) from None
        if response.status_code != 200:
            message = kubo_message(response)
            if any(m in message.lower() for m in KUBO_NOT_FOUND_MARKERS):
                raise BlobNotFound("blob not found", details={"cid": cid})
            raise BlobStoreUnavailable(
                "Kubo API call failed", details={"status": response.status_code, "kubo_message": message}
            )
        data = response.content
        return _verified(cid, parsed.digest, data) if parsed.is_raw else data

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def kubo_message(response: httpx.Response) -> str:
    """The ``Message`` of a Kubo RPC error reply (or the start of its text), for errors and not-found checks."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("Message", ""))[:200] if isinstance(body, dict) else ""


def parse_store_url(url: str) -> tuple[Literal["local", "kubo"], str]:
    """Where a store URL points, as the node's ``[storage]`` setting spells it: ``("local", directory)`` for
    ``file:///path`` or a plain path, ``("kubo", API URL)`` for ``http(s)://host:5001`` or ``kubo+http(s)://``
    (prefix dropped); ``ConfigError`` for anything else. The node's ``open_store`` and :func:`open_reader` share it.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("blob store URL is empty")
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("file:// blob store URLs must be local (file:///path)", details={"url": redact_url(url)})
        if not parts.path:
            raise ConfigError("file:// blob store URL has no path", details={"url": redact_url(url)})
        return "local", unquote(parts.path)
    if scheme in _KUBO_SCHEMES:
        if not parts.hostname:
            raise ConfigError("Kubo API URL has no host", details={"url": redact_url(url)})
        return "kubo", url[len("kubo+") :] if scheme.startswith("kubo+") else url
    # A bare path ("./blobs", "/var/lib/x"); a one-letter scheme would be a Windows drive ("C:\\blobs").
    if scheme == "" or (len(scheme) == 1 and parts.path.startswith(("\\", "/"))):
        return "local", url
    raise ConfigError(
        "unsupported blob store URL (use file:///path, a path, or http(s)://kubo:5001)",
        details={"url": redact_url(url)},
    )


def open_reader(url: str) -> BlobReader:
    """A read-only reader for the store at ``url`` (see :func:`parse_store_url`)."""
    kind, where = parse_store_url(url)
    return LocalBlobReader(Path(where)) if kind == "local" else KuboBlobReader(where)
