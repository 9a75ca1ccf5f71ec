"""Blob store on a Kubo (go-ipfs) node over its RPC API (``/api/v0``), with httpx.

Blobs are added with ``cid-version=1``, ``raw-leaves=true``, ``pin=true`` and an explicit chunker, so the CID
does not depend on the node's ``Import`` configuration. A blob that fits in one chunk (256 KiB) is a single raw
block and its CID equals :func:`medledger.cid.cid_for`; a bigger blob becomes a UnixFS DAG with a dag-pb root
CID, and this store records whatever CID Kubo returns.

Integrity on ``get``: for a raw CID the bytes are re-hashed here, so a misbehaving daemon cannot substitute
content. For a dag-pb CID this client cannot recompute the root without re-implementing UnixFS; Kubo verifies
blocks fetched from peers, but not blocks read from its own datastore unless ``Datastore.HashOnRead`` is true
(recommended for MedLedger nodes). The node additionally checks ``keccak256(ciphertext)`` against the on-chain
commitment before decrypting, which covers both cases end to end.

Reads and presence checks run with ``offline=true``: the node only serves blobs it holds, and a missing CID
must fail fast instead of Kubo searching the public DHT for it.

``delete`` unpins; the blocks stay in Kubo's repository until ``ipfs repo gc`` (see :mod:`node.storage.base`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from medledger.blobs import KUBO_NOT_FOUND_MARKERS, kubo_message
from medledger.cid import parse_cid, validate_cid
from medledger.errors import ConfigError
from medledger.redact import redact_url
from node.storage.base import BlobCorrupted, BlobNotFound, BlobStore, BlobStoreUnavailable

#: Kubo's default chunk size, pinned explicitly so CIDs do not change with the daemon's configuration.
DEFAULT_CHUNKER = "size-262144"


def parse_add_response(text: str) -> str:
    """The CID from ``/api/v0/add``'s newline-delimited JSON (the last object carrying a ``Hash``)."""
    cid: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise BlobStoreUnavailable("Kubo add returned a malformed response") from None
        if isinstance(obj, dict) and isinstance(obj.get("Hash"), str):
            cid = obj["Hash"]
    if cid is None:
        raise BlobStoreUnavailable("Kubo add returned no CID")
    return validate_cid(cid)


class KuboBlobStore(BlobStore):
    """Blob store backed by a Kubo daemon's RPC API, e.g. ``http://127.0.0.1:5001``."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 60.0,
        chunker: str = DEFAULT_CHUNKER,
        client: httpx.Client | None = None,
    ) -> None:
        base = api_url.rstrip("/")
        if base.endswith("/api/v0"):
            base = base[: -len("/api/v0")]
        if not base.startswith(("http://", "https://")):
            raise ConfigError("Kubo API URL must be http(s)://host:port", details={"url": redact_url(api_url)})
        #: Display form only: credentials in the URL (Kubo API.Authorizations basic auth) are kept out of it.
        self.api_url = redact_url(base)
        self.chunker = chunker
        self._client = client or httpx.Client(base_url=f"{base}/api/v0", timeout=timeout)
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"KuboBlobStore({self.api_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------------------------------------ RPC

    def _post(self, command: str, params: dict[str, Any], *, cid: str | None = None, **kw: Any) -> httpx.Response:
        try:
            response = self._client.post(f"/{command}", params=params, **kw)
        except httpx.HTTPError as exc:
            raise BlobStoreUnavailable(
                f"Kubo API unreachable: {type(exc).__name__}", details={"url": self.api_url, "command": command}
            ) from None
        if response.status_code == 200:
            return response
        message = kubo_message(response)
        if cid is not None and any(m in message.lower() for m in KUBO_NOT_FOUND_MARKERS):
            raise BlobNotFound("blob not found", details={"cid": cid})
        raise BlobStoreUnavailable(
            "Kubo API call failed",
            details={"command": command, "status": response.status_code, "kubo_message": message},
        )

    def _add(self, data: bytes, *, only_hash: bool) -> str:
        params = {
            "cid-version": "1",
            "raw-leaves": "true",
            "chunker": self.chunker,
            "hash": "sha2-256",
            "pin": "false" if only_hash else "true",
            "only-hash": "true" if only_hash else "false",
            "quieter": "true",
        }
        response = self._post("add", params, files={"file": ("blob", data, "application/octet-stream")})
        return parse_add_response(response.text)

    # ------------------------------------------------------------------------------------------ API

    def cid_for(self, data: bytes) -> str:
        return self._add(data, only_hash=True)

    def put(self, data: bytes) -> str:
        cid = self._add(data, only_hash=False)
        parsed = parse_cid(cid)
        if parsed.is_raw and hashlib.sha256(data).digest() != parsed.digest:
            raise BlobStoreUnavailable("Kubo returned a CID that does not match the data", details={"cid": cid})
        return cid

    def get(self, cid: str) -> bytes:
        parsed = parse_cid(cid)
        data = self._post("cat", {"arg": cid, "offline": "true"}, cid=cid).content
        if parsed.is_raw and hashlib.sha256(data).digest() != parsed.digest:
            raise BlobCorrupted("blob from Kubo does not match its CID", details={"cid": cid})
        return data

    def has(self, cid: str) -> bool:
        parse_cid(cid)
        try:
            self._post("block/stat", {"arg": cid, "offline": "true"}, cid=cid)
        except BlobNotFound:
            return False
        return True

    def pin(self, cid: str) -> None:
        parse_cid(cid)
        self._post("pin/add", {"arg": cid, "recursive": "true", "offline": "true"}, cid=cid)

    def delete(self, cid: str) -> None:
        parse_cid(cid)
        try:
            self._post("pin/rm", {"arg": cid, "recursive": "true"}, cid=cid)
        except BlobStoreUnavailable as exc:
            # Unpinning something not pinned is the idempotent case, not a failure.
            if "not pinned" not in str(exc.details.get("kubo_message", "")).lower():
                raise
