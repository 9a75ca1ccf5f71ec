"""Off-chain storage of encrypted record payloads: a content-addressed :class:`BlobStore` and its backends.

``open_store(url)`` picks the backend from configuration: ``file:///var/lib/medledger/blobs`` or a plain path for
:class:`LocalBlobStore`, ``http(s)://host:5001`` (or ``kubo+http(s)://``) for :class:`KuboBlobStore`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from medledger.cid import cid_for, parse_cid, validate_cid
from medledger.errors import ConfigError
from medledger.redact import redact_url
from node.storage.base import BlobCorrupted, BlobNotFound, BlobStore, BlobStoreUnavailable
from node.storage.kubo import KuboBlobStore
from node.storage.local import LocalBlobStore

__all__ = [
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreUnavailable",
    "KuboBlobStore",
    "LocalBlobStore",
    "cid_for",
    "open_store",
    "parse_cid",
    "validate_cid",
]


def open_store(url: str) -> BlobStore:
    """The blob store configured by ``url``; ``ConfigError`` for anything unrecognised."""
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
        return LocalBlobStore(Path(unquote(parts.path)))
    if scheme in ("http", "https", "kubo+http", "kubo+https"):
        if not parts.hostname:
            raise ConfigError("Kubo API URL has no host", details={"url": redact_url(url)})
        return KuboBlobStore(url[len("kubo+") :] if scheme.startswith("kubo+") else url)
    # A bare path ("./blobs", "/var/lib/x"); a one-letter scheme would be a Windows drive ("C:\\blobs").
    if scheme == "" or (len(scheme) == 1 and parts.path.startswith(("\\", "/"))):
        return LocalBlobStore(Path(url))
    raise ConfigError(
        "unsupported blob store URL (use file:///path, a path, or http(s)://kubo:5001)",
        details={"url": redact_url(url)},
    )
