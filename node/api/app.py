"""The node's HTTP API (FastAPI). Staff of the institution authenticate with bearer tokens (see node.auth).

Routes stay thin: authenticate, validate, call a service, shape the reply. OpenAPI docs are served at
``/docs``; the error shape is in node.api.errors.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from medledger import __version__
from node.api import clinical, sharing
from node.api.deps import Staff
from node.api.errors import ApiError, error_body, install
from node.api.responses import errors
from node.auth import StaffRole, require_role
from node.ingest import parse
from node.service import NodeServices

#: Bodies of every route but ingest are small JSON documents; anything bigger is refused before parsing.
MAX_JSON_BODY = 64 * 1024


class RecordError(BaseModel):
    code: str
    message: str


class IngestedRecord(BaseModel):
    record_id: str = Field(description="0x-prefixed 32-byte record id")
    status: str = Field(
        description="queued, pending_link (patient not yet linked), duplicate (already stored: nothing written) "
        "or failed (see error; nothing written for this record)"
    )
    record_class: str
    type_code: str
    cid: str | None = None
    error: RecordError | None = Field(default=None, description="why the record failed (status failed only)")


class IngestReply(BaseModel):
    records: list[IngestedRecord]


class RecordStatus(BaseModel):
    record_id: str
    status: str
    record_class: str
    type_code: str
    cid: str | None
    commitment: str | None
    tx_hash: str | None
    block_number: int | None


class NodeStatus(BaseModel):
    name: str
    address: str
    version: str
    records_by_status: dict[str, int]


class Health(BaseModel):
    status: str


def create_app(services: NodeServices) -> FastAPI:
    app = FastAPI(
        title=f"MedLedger node — {services.config.name}",
        version=__version__,
        description="Institution node API: ingest clinical records (HL7 v2, DICOM, FHIR JSON) and follow them "
        "through encryption, storage and anchoring. Errors: `{error: {code, message, details}}`.",
    )
    install(app)
    max_bytes = services.config.max_payload_bytes

    app.add_middleware(SmallBodyLimit, limit=MAX_JSON_BODY, exempt=("/v1/ingest",))
    app.include_router(sharing.router)
    app.include_router(clinical.router)

    app.state.services = services

    @app.get("/healthz", tags=["ops"], response_model=Health, summary="Liveness (no authentication)")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/v1/status",
        tags=["ops"],
        response_model=NodeStatus,
        responses=errors(401),
        summary="Node identity and record counts",
    )
    def status(_: Staff) -> NodeStatus:
        return NodeStatus(
            name=services.config.name,
            address=services.address,
            version=__version__,
            records_by_status=services.pipeline.status_counts(),
        )

    @app.post(
        "/v1/ingest",
        tags=["records"],
        response_model=IngestReply,
        status_code=201,
        responses=errors(401, 403, 413, 415, 422),
        summary="Ingest one HL7 v2 message, DICOM file or FHIR JSON resource/bundle (raw request body)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/dicom": {"schema": {"type": "string", "format": "binary"}},
                    "application/fhir+json": {"schema": {"type": "object"}},
                    "x-application/hl7-v2+er7": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def ingest(request: Request, who: Staff) -> IngestReply:
        require_role(who, StaffRole.REGISTRAR, StaffRole.CLINICIAN)
        body = await _read_limited(request, max_bytes)
        # Parsing, encryption and the database are blocking work: keep them off the event loop.
        records = await run_in_threadpool(lambda: parse(body, **services.config.parse_options()))
        results = await run_in_threadpool(services.pipeline.ingest, records)
        return IngestReply(records=[IngestedRecord(**r.as_api()) for r in results])

    @app.get(
        "/v1/records/{record_id}",
        tags=["records"],
        response_model=RecordStatus,
        responses=errors(401, 404, 422),
        summary="A record's status",
    )
    def record_status(record_id: str, _: Staff) -> RecordStatus:
        try:
            rid = bytes.fromhex(record_id.removeprefix("0x"))
        except ValueError:
            rid = b""
        if len(rid) != 32:
            raise ApiError(422, "invalid_record_id", "record id must be 32 bytes of hex")
        info = services.pipeline.record_status(rid)
        if info is None:
            raise ApiError(404, "record_not_found", f"no record {record_id}")
        return RecordStatus(**info)

    return app


class SmallBodyLimit:
    """Refuse (413) declared bodies over ``limit`` on every path but ``exempt``, before anything reads them.
    Plain ASGI rather than ``@app.middleware``: that wrapper costs a task and a stream copy per request."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt: tuple[str, ...]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.exempt:
            for name, value in scope["headers"]:
                if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                    body = error_body("payload_too_large", f"request bodies here are limited to {self.limit} bytes")
                    await JSONResponse(body, 413)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _read_limited(request: Request, limit: int) -> bytes:
    """Read the body, refusing early (413) once it exceeds ``limit`` instead of buffering all of it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise ApiError(422, "empty_body", "the request body is empty")
    return body


__all__ = ["create_app", "error_body"]
