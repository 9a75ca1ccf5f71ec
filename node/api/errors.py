"""How errors look on the wire: every failure is ``{"error": {"code", "message", "details"}}`` with a 4xx/5xx.

Clients branch on ``code`` (stable), people read ``message``. The status is the one the code is declared with in
the error registry (medledger.errors; the node's codes are in node.error_codes). Unknown exceptions, and errors
whose code nobody declared, become a bare 500 with code ``internal_error`` and no detail: internals and PHI never
leak into a response.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from medledger.errors import MedLedgerError, error_body, lookup
from node.api.responses import document_error_codes

log = logging.getLogger("medledger.node.api")

#: SQLITE_BUSY and SQLITE_LOCKED: another writer held the database longer than the busy timeout.
_SQLITE_TRANSIENT = frozenset({5, 6})


class ApiError(MedLedgerError):
    """An error raised by the API layer itself (auth, lookups)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.status = status


def status_for(exc: MedLedgerError) -> int | None:
    """The status ``exc`` answers with: the one its code is declared with (medledger.errors.define); None if its
    code is declared nowhere, a programming error the handler answers as ``internal_error``."""
    if isinstance(exc, ApiError):
        return exc.status if lookup(exc.code) is not None else None
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 500:
        return status  # an error relayed from another node keeps that node's status (and code, known here or not)
    entry = lookup(exc.code)
    return entry.status if entry is not None else None


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the shape above, and list every error code in the app's
    OpenAPI document (generated on first use, once every module has declared its codes)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_error_codes(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(MedLedgerError)
    async def _medledger(_: Request, exc: MedLedgerError) -> JSONResponse:
        status = status_for(exc)
        if status is None:
            log.error("error code %r (%s) is not declared in the error registry", exc.code, type(exc).__name__)
            return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse(
            error_body("invalid_request", "request does not match the API schema", {"problems": problems}), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's only 400: a JSON body it could not even decode (not UTF-8). To the client that is the same
            # as a body that is not JSON, which FastAPI answers 422: one answer for both.
            problems = [{"loc": ["body"], "msg": str(exc.detail)}]
            body = error_body("invalid_request", "request does not match the API schema", {"problems": problems})
            return JSONResponse(body, 422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app, request, headers.get("Allow", ""))
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(DisconnectionError)
    @app.exception_handler(PoolTimeout)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        if not database_unreachable(exc):
            log.exception("unhandled database error")
            return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
        # A restart or failover of the database: transient, and the pool reconnects (pre-ping) on the next request.
        log.warning("database unavailable: %s", type(exc).__name__)
        body = error_body("database_unavailable", "the node's database is unavailable; retry shortly")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")  # the traceback goes to the operator's log, not to the caller
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)


def allowed_methods(app: FastAPI, request: Request, matched: str) -> str:
    """The ``Allow`` header of a 405 (RFC 9110): every method of the resource. Starlette names only those of the
    one route it matched, while a path may have a route per method (GET and POST of the notification contacts):
    the OpenAPI document has them all (hidden routes, the portal's, have one route per path)."""
    methods = {m.strip().upper() for m in matched.split(",") if m.strip()}
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template is not None:
        methods |= {m.upper() for m in app.openapi().get("paths", {}).get(template, {})}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return ", ".join(sorted(methods))


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (down, restarting, connection dropped, lock wait
    ran out), not that a statement was wrong: both are OperationalError in the DB-API, so the driver decides."""
    if isinstance(exc, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        # SQLite's OperationalError also names a missing table or a syntax error: only busy and locked pass.
        return (getattr(orig, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_TRANSIENT
    return isinstance(exc, (OperationalError, InterfaceError))
