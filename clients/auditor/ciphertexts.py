"""Where the auditor gets a record's stored ciphertext from, to compare it with the on-chain commitment.

:class:`CiphertextSource` is the one method the checks need. Two implementations:

- :class:`NodeCiphertextSource` asks the custodian's node over HTTP, signed as the auditor institution:
  ``GET {endpoint}/v1/records/{record_id}/ciphertext`` where ``endpoint`` is the custodian's on-chain profile
  URL. Replies: 200 with the raw ciphertext bytes; 410 ``{"error": {"code": "record_erased", ...}}``; 404
  ``{"error": {"code": "record_not_found", ...}}``; an error body with code ``blob_not_found`` (any status) is
  missing too, ``blob_corrupted`` corrupt; anything else is an error (the custodian could not be
  checked, which the audit reports as a warning, not as a violation).
- :class:`StoreCiphertextSource` reads a node's content-addressed blob store directly (an on-site auditor with
  read access to the store), through the read-only readers of :mod:`medledger.blobs`. The blob's name is the
  raw CIDv1 of the commitment, so the lookup itself needs nothing from the node's database.

A source never raises for a per-record problem: it answers with a :class:`CiphertextResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import httpx

from medledger.addresses import Address
from medledger.blobs import BlobCorrupted, BlobNotFound, BlobReader, BlobStoreUnavailable
from medledger.cid import cid_from_digest
from medledger.redact import redact_url


class CiphertextStatus(StrEnum):
    FOUND = "found"  # ``data`` holds the bytes the custodian serves
    ERASED = "erased"  # the custodian says the record was erased (HTTP 410)
    MISSING = "missing"  # the custodian has no such record or blob (HTTP 404)
    CORRUPT = "corrupt"  # the source itself saw that the stored bytes do not match their content address
    ERROR = "error"  # the custodian could not be asked or gave no usable answer


@dataclass(frozen=True)
class CiphertextResult:
    status: CiphertextStatus
    data: bytes | None = None
    #: Why, for anything but FOUND (no secrets: messages never contain keys or ciphertext).
    message: str = ""

    @classmethod
    def found(cls, data: bytes) -> CiphertextResult:
        return cls(CiphertextStatus.FOUND, data)


class CiphertextSource(Protocol):
    """Gives the ciphertext ``custodian`` stores for ``record_id`` (0x + 64 hex)."""

    def fetch(self, custodian: str, record_id: str) -> CiphertextResult: ...


# ---------------------------------------------------------------------------------------------- over HTTP

CIPHERTEXT_PATH = "/v1/records/{record_id}/ciphertext"


def _error_code(content: bytes) -> tuple[str | None, str]:
    """The ``error.code`` and ``error.message`` of a node's JSON error body, if it has that shape."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None, ""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None, ""
    code, message = err.get("code"), err.get("message")
    return (code if isinstance(code, str) else None), (message if isinstance(message, str) else "")


def result_from_response(status_code: int, content: bytes) -> CiphertextResult:
    """Map a node's reply to the ciphertext endpoint onto a result.

    A 404 counts as *missing* only with the ``record_not_found`` error code: a bare 404 (a node without the
    endpoint, a wrong base URL) says nothing about the record, so it is an error, not evidence.
    """
    if status_code == 200:
        return CiphertextResult.found(content)
    code, message = _error_code(content)
    if status_code == 410:
        return CiphertextResult(CiphertextStatus.ERASED, message=message or "record erased")
    if status_code == 404 and code == "record_not_found":
        return CiphertextResult(CiphertextStatus.MISSING, message=message or "record not found")
    # The node's own store errors, whatever status they are mapped to: the node admits the blob is gone or bad.
    if code == "blob_not_found":
        return CiphertextResult(CiphertextStatus.MISSING, message=message or "ciphertext blob not found")
    if code == "blob_corrupted":
        return CiphertextResult(CiphertextStatus.CORRUPT, message=message or "ciphertext blob corrupted")
    what = f"{code}: {message}" if code else "no MedLedger error body"
    return CiphertextResult(CiphertextStatus.ERROR, message=f"HTTP {status_code} ({what})")


class NodeCiphertextSource:
    """Fetches ciphertexts from the custodians' nodes, each request signed as the auditor institution.

    Args:
        account: The auditor institution's ledger account (an eth-account ``LocalAccount``); its key signs
            requests and is never sent or logged.
        endpoints: Custodian address → node base URL, e.g. from the members' on-chain profiles
            (:meth:`from_members`).
        client: An ``httpx.Client`` to use (default: one of this source's own, closed by :meth:`close`).
        timeout: Seconds per request.
    """

    def __init__(
        self,
        account: Any,
        endpoints: Mapping[str, str],
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._account = account
        self._endpoints = {Address(k, "custodian"): v.rstrip("/") for k, v in endpoints.items() if v}
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._owns_client = client is None
        # One failed connection per custodian is enough: the rest of its records would fail the same way.
        self._down: dict[Address, str] = {}

    @classmethod
    def from_members(cls, account: Any, members: Any, **kwargs: Any) -> NodeCiphertextSource:
        """Endpoints from :meth:`IndexQueries.members` views (their on-chain ``endpoint`` profile field)."""
        return cls(account, {m.account: m.endpoint for m in members}, **kwargs)

    def url_for(self, custodian: str, record_id: str) -> str | None:
        base = self._endpoints.get(Address(custodian, "custodian"))
        return base + CIPHERTEXT_PATH.format(record_id=record_id.lower()) if base else None

    def fetch(self, custodian: str, record_id: str) -> CiphertextResult:
        who = Address(custodian, "custodian")
        url = self.url_for(who, record_id)
        if url is None:
            return CiphertextResult(CiphertextStatus.ERROR, message="custodian publishes no node endpoint")
        if who in self._down:
            return CiphertextResult(CiphertextStatus.ERROR, message=self._down[who])
        try:
            # Imported here: request signing belongs to the auth package, which the rest of the auditor
            # (store-based checks, reports) does not need.
            from medledger.auth.httpsig import sign_request
        except ImportError:
            return CiphertextResult(CiphertextStatus.ERROR, message="request signing (medledger.auth) unavailable")
        try:
            headers = sign_request(self._account, "GET", url, b"")
            reply = self._client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            message = f"cannot reach {redact_url(url)}: {type(exc).__name__}"
            self._down[who] = message
            return CiphertextResult(CiphertextStatus.ERROR, message=message)
        return result_from_response(reply.status_code, reply.content)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


# ---------------------------------------------------------------------------------------------- from a store


class StoreCiphertextSource:
    """Reads ciphertexts straight from custodians' blob stores, by CID.

    Args:
        stores: Custodian address → a reader of its store (``medledger.blobs.open_reader(path)``;
            a node's own ``BlobStore`` reads the same way).
        commitment_of: Record id → its on-chain commitment (0x hex), e.g. from the audit's re-index; the
            record's blob is named by the raw CIDv1 of that digest.
        fallback: Asked for custodians without a store here (e.g. a :class:`NodeCiphertextSource`).
    """

    def __init__(
        self,
        stores: Mapping[str, BlobReader],
        commitment_of: Callable[[str], str | None],
        *,
        fallback: CiphertextSource | None = None,
    ) -> None:
        self._stores = {Address(k, "custodian"): v for k, v in stores.items()}
        self._commitment_of = commitment_of
        self._fallback = fallback

    def fetch(self, custodian: str, record_id: str) -> CiphertextResult:
        store = self._stores.get(Address(custodian, "custodian"))
        if store is None:
            if self._fallback is not None:
                return self._fallback.fetch(custodian, record_id)
            return CiphertextResult(CiphertextStatus.ERROR, message="no store given for this custodian")
        commitment = self._commitment_of(record_id)
        if commitment is None:
            return CiphertextResult(CiphertextStatus.ERROR, message="record is not anchored")
        cid = cid_from_digest(bytes.fromhex(commitment.removeprefix("0x")))
        try:
            return CiphertextResult.found(store.get(cid))
        except BlobNotFound:
            return CiphertextResult(CiphertextStatus.MISSING, message=f"no blob {cid} in the store")
        except BlobCorrupted:
            return CiphertextResult(CiphertextStatus.CORRUPT, message=f"blob {cid} does not hash to its CID")
        except BlobStoreUnavailable as exc:
            return CiphertextResult(CiphertextStatus.ERROR, message=exc.message)
