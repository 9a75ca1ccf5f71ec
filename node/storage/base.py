"""The blob-store interface the node writes encrypted record payloads to.

Blobs are ciphertexts (``medledger.crypto.encrypt_record`` output), addressed by content (a CID). A store never
sees plaintext or keys, so a compromised or replicated store leaks nothing without the institution's KEK.

Deletion and crypto-shredding: :meth:`BlobStore.delete` removes the stored copy, but a content-addressed store
cannot promise the bytes are gone everywhere (Kubo keeps unpinned blocks until ``repo gc``, other IPFS peers may
have cached them, SSDs and copy-on-write filesystems keep old sectors, backups exist). Erasure of a record is
therefore done by the node *destroying the record's wrapped keys* (custodian and patient copies) as well;
``delete`` here is the storage-hygiene half of that, not the security guarantee.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

# The store errors live in the common package, shared with its read-only readers (the auditor's).
from medledger.blobs import BlobCorrupted, BlobNotFound, BlobStoreUnavailable

__all__ = ["BlobCorrupted", "BlobNotFound", "BlobStore", "BlobStoreUnavailable"]


class BlobStore(ABC):
    """Content-addressed storage of immutable blobs.

    Implementations must make ``put`` idempotent (same bytes → same CID, no duplicate) and safe to call
    concurrently with the same content, verify integrity on ``get``, and raise the errors above rather than
    backend-specific ones. Invalid CID strings raise ``InputError``.
    """

    @abstractmethod
    def cid_for(self, data: bytes) -> str:
        """The CID ``put(data)`` would return, computed without storing anything."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its CID; a no-op when already present."""

    def put_many(self, blobs: Sequence[bytes], *, digests: Sequence[bytes] | None = None) -> list[str]:
        """Store several blobs, returning their CIDs in order; durable when it returns.

        Stores should override this to pay for durability (fsync, network round trips) once per batch instead
        of once per blob; ingest calls it with a batch of records before anchoring their commitments.

        ``digests``, if given, are the blobs' SHA-256 digests as the caller already computed them (ingest's
        commitments are exactly that), so a store addressing by raw CID need not hash large blobs again. A store
        may use or ignore them; this default ignores them (``put`` hashes, or the backend names the blob).
        """
        if digests is not None and len(digests) != len(blobs):
            raise ValueError("digests must match blobs one to one")
        return [self.put(b) for b in blobs]

    @abstractmethod
    def get(self, cid: str) -> bytes:
        """The blob's bytes, verified against ``cid`` (``BlobNotFound`` / ``BlobCorrupted``)."""

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the store holds the blob (without reading or verifying it)."""

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Protect the blob from garbage collection (``BlobNotFound`` if absent)."""

    @abstractmethod
    def delete(self, cid: str) -> None:
        """Remove the blob (unpin it, for stores with GC); idempotent. See the module docstring on shredding."""

    def close(self) -> None:  # noqa: B027 - optional hook; most stores hold nothing to release
        """Release connections or handles."""
