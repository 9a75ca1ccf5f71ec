"""Routes of the node's ingest module: take in one clinical record (HL7 v2, DICOM, FHIR JSON) and follow it
through encryption, storage and anchoring."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from node.api.deps import Staff, services_of
from node.api.errors import ApiError
from node.api.params import RecordIdPath, record_id_of
from node.api.responses import errors
from node.auth import StaffRole, require_role
from node.ingest import parse

router = APIRouter()


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


@router.post(
    "/v1/ingest",
    tags=["records"],
    response_model=IngestReply,
    status_code=201,
    responses=errors(401, 403, 413, 415, 422, 507),
    summary="Ingest one HL7 v2 message, DICOM file or FHIR JSON resource/bundle (raw request body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            # Not empty (``empty_body``); what the bytes must hold is the parsers' (docs/node.md, Ingest).
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary", "minLength": 1}},
                "application/dicom": {"schema": {"type": "string", "format": "binary", "minLength": 1}},
                "application/fhir+json": {
                    "schema": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {"resourceType": {"type": "string"}},
                    }
                },
                "x-application/hl7-v2+er7": {"schema": {"type": "string", "minLength": 1}},
            },
        }
    },
)
async def ingest(request: Request, who: Staff) -> IngestReply:
    require_role(who, StaffRole.REGISTRAR, StaffRole.CLINICIAN)
    services = services_of(request)
    body = await read_limited(request, services.config.max_payload_bytes)
    # Parsing, encryption and the database are blocking work: keep them off the event loop.
    records = await run_in_threadpool(lambda: parse(body, **services.config.parse_options()))
    results = await run_in_threadpool(services.pipeline.ingest, records)
    return IngestReply(records=[IngestedRecord(**r.as_api()) for r in results])


@router.get(
    "/v1/records/{record_id}",
    tags=["records"],
    response_model=RecordStatus,
    responses=errors(401, 404, 422),
    summary="A record's status",
)
def record_status(request: Request, record_id: RecordIdPath, _: Staff) -> RecordStatus:
    rid = record_id_of(record_id)
    info = services_of(request).pipeline.record_status(rid)
    if info is None:
        raise ApiError(404, "record_not_found", f"no record {record_id}")
    return RecordStatus(**info)


async def read_limited(request: Request, limit: int) -> bytes:
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
