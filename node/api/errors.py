"""How errors look on the wire: every failure is ``{"error": {"code", "message", "details"}}`` with a 4xx/5xx.

Clients branch on ``code`` (stable), people read ``message``. Unknown exceptions become a bare 500 with code
``internal_error`` and no detail: internals and PHI never leak into a response.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medledger.chain.rpc import RpcUnavailable
from medledger.errors import ConfigError, InputError, MedLedgerError

log = logging.getLogger("medledger.node.api")

#: Status per error code where the class default is not right.
_STATUS_BY_CODE = {
    "payload_too_large": 413,
    "unauthenticated": 401,
    "token_expired": 401,
    "siwe_nonce_invalid": 401,
    "invalid_signature": 401,
    "signature_expired": 401,
    "wrong_chain": 401,
    "forbidden": 403,
    "consent_denied": 403,
    "not_a_member": 403,
    "role_required": 403,
    "not_grant_patient": 403,
    "not_record_patient": 403,
    "not_emergency_member": 403,
    "not_found": 404,
    "record_not_found": 404,
    "patient_not_found": 404,
    "unknown_grant": 404,
    "patient_key_missing": 409,
    "record_not_anchored": 409,
    "requester_key_missing": 409,
    "nonce_mismatch": 409,
    "grant_already_revoked": 409,
    "break_glass_already_open": 409,
    "record_busy": 409,
    "record_erased": 410,
    "unsupported_media_type": 415,
    "unknown_format": 415,
    "invalid_grant": 422,
    "invalid_address": 422,
    "invalid_encryption_key": 422,
    "deadline_too_far": 422,
    "custodian_unreachable": 502,
    "custodian_error": 502,
    "ciphertext_mismatch": 502,
    "blob_corrupted": 500,
    "blob_not_found": 500,
    "nonce_store_full": 503,
    "ledger_unavailable": 503,
    "access_log_unavailable": 503,
    "relayer_not_authorized": 503,
    "break_glass_refused": 409,
}

#: Authentication-library codes (medledger.auth): sign-in (``siwe_*``) and signed requests (``sig_*``).
_UNAUTHENTICATED_PREFIXES = ("siwe_", "sig_")


class ApiError(MedLedgerError):
    """An error raised by the API layer itself (auth, lookups)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.status = status


def status_for(exc: MedLedgerError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 500:
        return status  # an error relayed from another node keeps that node's status
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    if exc.code.startswith(_UNAUTHENTICATED_PREFIXES):
        return 401
    if isinstance(exc, InputError):
        return 422
    if isinstance(exc, RpcUnavailable):
        return 503
    if isinstance(exc, ConfigError):
        return 500
    return 400


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the shape above."""

    @app.exception_handler(MedLedgerError)
    async def _medledger(_: Request, exc: MedLedgerError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse(
            error_body("invalid_request", "request does not match the API schema", {"problems": problems}), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")  # the traceback goes to the operator's log, not to the caller
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
