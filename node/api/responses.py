"""The shared error shape in the OpenAPI document: every route lists the statuses it can return."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorReply(BaseModel):
    error: ErrorDetail


_ERROR_TEXT = {
    401: "not authenticated: `unauthenticated`, `token_expired`, `siwe_*` (sign-in), `sig_*` (signed request: "
    "missing, malformed, stale, expired, replayed, bad signature) or a relayed signature that does not verify "
    "(`invalid_signature`, `signature_expired`, `wrong_chain`)",
    403: "not allowed: `forbidden`, `consent_denied`, `not_a_member`, `role_required`, `not_grant_patient`, "
    "`not_record_patient`, `not_emergency_member`",
    404: "`record_not_found`, `unknown_grant`, `not_found`",
    409: "state conflict: `record_not_anchored`, `requester_key_missing`, `nonce_mismatch`, "
    "`grant_already_revoked`, `break_glass_already_open`, `record_busy`, `patient_key_missing`",
    410: "`record_erased`: destroyed at the patient's request; details carry the erasure marker's transaction",
    413: "`payload_too_large`: the body exceeds the limit",
    415: "`unknown_format`: the body is not HL7 v2, DICOM or FHIR JSON",
    422: "the input is invalid: `invalid_request` (schema), `invalid_address`, `invalid_grant`, "
    "`invalid_record_id`, `invalid_purpose`, `deadline_too_far`, `empty_body` or an ingest error code",
    502: "another institution's node failed: `custodian_unreachable`, `custodian_error`, `ciphertext_mismatch`",
    503: "`ledger_unavailable` (consent cannot be checked), `access_log_unavailable`, `chain_unavailable`",
    500: "`internal_error`: an unexpected failure (details are in the node's log only); `blob_corrupted` / "
    "`blob_not_found`: the stored ciphertext failed its integrity check (nothing was released)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can return, all with the shared error shape."""
    return {s: {"model": ErrorReply, "description": _ERROR_TEXT[s]} for s in (*statuses, 500)}
