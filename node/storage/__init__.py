"""Off-chain storage of encrypted record payloads: a content-addressed :class:`BlobStore` and its backends.

``open_store(url)`` picks the backend from configuration: ``file:///var/lib/medledger/blobs`` or a plain path for
:class:`LocalBlobStore`, ``http(s)://host:5001`` (or ``kubo+http(s)://``) for :class:`KuboBlobStore`.
"""

from __future__ import annotations

from pathlib import Path

from medledger.blobs import parse_store_url
from medledger.cid import cid_for, parse_cid, validate_cid
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
    kind, where = parse_store_url(url)  # one spelling of store URLs for the node and read-only readers
    return LocalBlobStore(Path(where)) if kind == "local" else KuboBlobStore(where)
