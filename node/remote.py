"""Reading a record held by another institution: a signed request to its custodian node, then verification
against the chain before decryption.

The custodian enforces consent and logs the access; this side trusts nothing it receives: the ciphertext
must hash to the commitment this node's own index read from the chain, the wrapped key must open with this
institution's X25519 key, and the record must authenticate under AES-GCM with its record id and custodian as
associated data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount

from indexer.queries import TimelineEntry
from medledger.auth.httpsig import sign_request
from medledger.crypto import DecryptionError, decrypt_record, unwrap_with_x25519
from medledger.errors import MedLedgerError
from medledger.vocabulary import Purpose
from node.ledger_view import LedgerView


class CustodianError(MedLedgerError):
    """The custodian could not be reached or answered with something unusable (502)."""

    code = "custodian_unreachable"


class RemoteRefused(MedLedgerError):
    """The custodian refused; ``code`` and ``details`` are the custodian's own (e.g. consent_denied, 403)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, code=code, details=details)
        self.status = status


@dataclass(frozen=True)
class RemoteRecord:
    entry: TimelineEntry
    content: bytes
    media_type: str
    authorization: dict[str, Any]


class RemoteRecords:
    """Fetches records from custodian nodes as the institution ``account``."""

    def __init__(
        self, account: LocalAccount, encryption_key: X25519PrivateKey, view: LedgerView, *, timeout: float = 10.0
    ) -> None:
        self.account = account
        self.encryption_key = encryption_key
        self.view = view
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def fetch(self, entry: TimelineEntry, purpose: Purpose, staff_ref: bytes) -> RemoteRecord:
        member = self.view.member(entry.custodian)
        if member is None or not member.endpoint:
            raise CustodianError(
                f"custodian {entry.custodian} is not a current member with an endpoint",
                details={"custodian": entry.custodian},
            )
        query = urlencode({"purpose": purpose.name.lower(), "staff_ref": "0x" + staff_ref.hex()})
        url = f"{member.endpoint.rstrip('/')}/v1/records/{entry.record_id}/release?{query}"
        headers = sign_request(self.account, "GET", url, b"")
        try:
            resp = self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise CustodianError(
                f"custodian {member.name} at {member.endpoint} is unreachable: {type(exc).__name__}",
                details={"custodian": entry.custodian},
            ) from None
        body = _json(resp)
        if resp.status_code != 200:
            err = body.get("error") if isinstance(body, dict) else None
            if isinstance(err, dict) and 400 <= resp.status_code < 500:
                raise RemoteRefused(
                    resp.status_code,
                    str(err.get("code", "custodian_refused")),
                    f"{member.name}: {err.get('message', '')}",
                    {**(err.get("details") or {}), "custodian": entry.custodian},
                )
            raise CustodianError(
                f"custodian {member.name} answered {resp.status_code}",
                code="custodian_error",
                details={"custodian": entry.custodian, "status": resp.status_code},
            )
        try:
            ciphertext = base64.b64decode(body["ciphertext"], validate=True)
            wrapped = base64.b64decode(body["wrapped_key"], validate=True)
            media_type = str(body["record"]["media_type"])
            authorization = dict(body["authorization"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise CustodianError("custodian's reply is malformed", code="custodian_error") from None
        expected = bytes.fromhex(entry.commitment.removeprefix("0x"))
        if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), expected):
            raise CustodianError(
                "the ciphertext from the custodian does not match its on-chain commitment",
                code="ciphertext_mismatch",
                details={"custodian": entry.custodian, "record_id": entry.record_id},
            )
        rid = bytes.fromhex(entry.record_id.removeprefix("0x"))
        try:
            key = unwrap_with_x25519(wrapped, self.encryption_key)
            content = decrypt_record(ciphertext, key=key, record_id=rid, custodian=entry.custodian)
        except DecryptionError as exc:
            raise CustodianError(
                f"the record from the custodian does not decrypt: {exc.message}", code="ciphertext_mismatch"
            ) from None
        return RemoteRecord(entry, content, media_type, authorization)


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None
