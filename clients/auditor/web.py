"""The auditor's own small web service: the portal's auditor page, and an API that runs audits.

The auditor re-checks the ledger independently of any node, so its page is not served by a node: this service
reads the chain itself (``AuditSettings``: the chain's RPC, the deployments, the stores to read ciphertexts from,
the key that signs ciphertext requests) exactly as ``medledger audit`` does, and serves the portal's files from
:data:`portal.STATIC` with the portal's security headers (``portal.serving``).

API (errors are ``{"error": {code, message, details}}``, like a node's):

- ``POST /v1/audits`` ``{"scope": {"kind": "patient" | "institution", "address": "0x…"}}`` or
  ``{"scope": {"kind": "range", "from_block": n, "to_block": m}}`` → 202 ``{id, status: "running", scope}``.
  Audits run one at a time in a worker thread (they share one re-index database when ``db_url`` is set).
- ``GET /v1/audits/{id}`` → 200 the report (JSON schema ``medledger-audit`` v1, as ``--json`` writes it) when done;
  202 ``{id, status: "running", progress}`` while it runs; the audit's error (its code and status) if it failed.
- ``GET /v1/audits/{id}/auditevents`` → 200 the FHIR R4 Bundle of AuditEvents (as ``--fhir`` writes it); 202
  while running.

Reports are kept in memory, the last :data:`KEEP` of them.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

import clients.auditor.errors
import clients.error_codes
import medledger.error_codes  # noqa: F401  (the statuses of the codes an audit can fail with)
from clients.auditor.audit import AuditSettings, run_audit
from clients.auditor.export import to_fhir_bundle, to_json
from clients.auditor.model import Scope
from medledger import __version__
from medledger.errors import MedLedgerError, error_body, lookup
from portal.serving import reply

log = logging.getLogger("medledger.auditor.web")

#: Finished audits kept in memory (oldest dropped first).
KEEP = 50
#: Loaded for their declarations (the statuses this service answers with).
ERROR_CODES = (clients.auditor.errors, clients.error_codes)


class ScopeRequest(BaseModel):
    kind: Literal["patient", "institution", "range"]
    address: str | None = Field(default=None, description="the patient's or institution's address")
    from_block: int | None = Field(default=None, ge=0)
    to_block: int | None = Field(default=None, ge=0)

    def scope(self) -> Scope:
        if self.kind == "range":
            if self.from_block is None or self.to_block is None:
                raise _invalid("a block range needs from_block and to_block")
            return Scope.block_range(self.from_block, self.to_block)
        if not self.address:
            raise _invalid(f"a {self.kind} audit needs an address")
        return Scope.patient(self.address) if self.kind == "patient" else Scope.institution(self.address)


class AuditRequest(BaseModel):
    scope: ScopeRequest


def _invalid(message: str) -> MedLedgerError:
    return MedLedgerError(message, code="invalid_request")


@dataclass
class Job:
    id: str
    scope: Scope
    started_at: float = field(default_factory=time.time)
    status: Literal["running", "done", "failed"] = "running"
    progress: dict[str, int] = field(default_factory=lambda: {"blocks_done": 0, "blocks_total": 0, "events": 0})
    report: dict[str, Any] | None = None
    bundle: dict[str, Any] | None = None
    error: MedLedgerError | None = None

    def running(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "scope": self.scope.as_dict(), "progress": dict(self.progress)}


class Audits:
    """The service's audits: started one at a time on a worker thread, kept in memory (the last :data:`KEEP`)."""

    def __init__(self, settings: AuditSettings) -> None:
        self.settings = settings
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")

    def start(self, scope: Scope) -> Job:
        job = Job(secrets.token_hex(8), scope)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job)
        return job

    def get(self, audit_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(audit_id)
        if job is None:
            raise MedLedgerError(f"no audit {audit_id!r} on this service", code="audit_not_found")
        return job

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int, events: int) -> None:
            job.progress = {"blocks_done": done, "blocks_total": total, "events": events}

        try:
            report = run_audit(job.scope, self.settings, on_progress=progress)
            job.report, job.bundle = to_json(report), to_fhir_bundle(report)
            job.status = "done"
        except MedLedgerError as exc:
            job.error, job.status = exc, "failed"
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            job.error = MedLedgerError(f"cannot use the re-index database: {first}", code="audit_database_error")
            job.status = "failed"
        except Exception:
            log.exception("audit %s failed", job.id)
            job.error = MedLedgerError("the audit failed unexpectedly (see the service's log)", code="audit_failed")
            job.status = "failed"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


def _status_of(exc: MedLedgerError) -> int:
    if exc.code == "invalid_request":
        return 422
    entry = lookup(exc.code)
    return entry.status if entry is not None else 500


def _failure(exc: MedLedgerError) -> JSONResponse:
    return _error(_status_of(exc), exc.code, exc.message, exc.details)


def _serve(request: Request, name: str, *, assets: bool = False) -> Response:
    # The auditor's page talks to this service only.
    found = reply(name, if_none_match=request.headers.get("if-none-match"), connect=list, assets=assets)
    if found is None:
        return _error(404, "not_found", "no such portal file")
    return Response(found.body, status_code=found.status, media_type=found.media_type, headers=found.headers)


def create_app(settings: AuditSettings) -> FastAPI:
    """The auditor service for ``settings`` (how to reach the chain, the deployments and the custodians)."""
    app = FastAPI(
        title="MedLedger auditor",
        version=__version__,
        description="Independent audits of the ledger, run by the auditor's own service. Errors: "
        "`{error: {code, message, details}}`.",
    )
    audits = Audits(settings)
    app.state.audits = audits
    app.router.on_shutdown.append(audits.close)

    @app.exception_handler(MedLedgerError)
    async def _medledger(_: Request, exc: MedLedgerError) -> JSONResponse:
        return _failure(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _error(422, "invalid_request", "request does not match the API schema", {"problems": problems})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/audits", status_code=202, tags=["audits"], summary="Start an audit of a patient, an institution "
              "or a block range")  # fmt: skip
    def start(body: AuditRequest) -> JSONResponse:
        job = audits.start(body.scope.scope())
        return JSONResponse(job.running(), status_code=202, headers={"Location": f"/v1/audits/{job.id}"})

    @app.get("/v1/audits/{audit_id}", tags=["audits"], summary="The report (when done) or the audit's progress")
    def report(audit_id: str) -> JSONResponse:
        job = audits.get(audit_id)
        if job.status == "failed" and job.error is not None:
            return _failure(job.error)
        if job.report is None:
            return JSONResponse(job.running(), status_code=202)
        return JSONResponse(job.report)

    @app.get("/v1/audits/{audit_id}/auditevents", tags=["audits"], summary="The FHIR R4 Bundle of AuditEvents")
    def auditevents(audit_id: str) -> JSONResponse:
        job = audits.get(audit_id)
        if job.status == "failed" and job.error is not None:
            return _failure(job.error)
        if job.bundle is None:
            return JSONResponse(job.running(), status_code=202)
        return JSONResponse(job.bundle, media_type="application/fhir+json")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/portal/auditor.html", status_code=307)

    @app.get("/portal/", include_in_schema=False)
    def portal_root() -> RedirectResponse:
        return RedirectResponse("/portal/auditor.html", status_code=307)

    @app.get("/portal/{name}", include_in_schema=False)
    def page(request: Request, name: str) -> Response:
        return _serve(request, name)

    @app.get("/portal/assets/{name}", include_in_schema=False)
    def asset(request: Request, name: str) -> Response:
        return _serve(request, name, assets=True)

    return app


def serve(settings: AuditSettings, *, host: str = "127.0.0.1", port: int = 8600) -> None:
    """Run the service until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
