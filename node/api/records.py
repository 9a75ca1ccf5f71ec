"""Routes on a record this node holds, for those outside it: release to the patient or an authorized
institution, the raw ciphertext for auditors, erasure on the patient's signed request."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from medledger.addresses import checksummed
from medledger.vocabulary import Role
from node.api.deps import patient_or_institution, services_of, signed_institution
from node.api.params import SIGNED_REQUEST, PurposeQuery, RecordIdPath, hex_bytes, purpose_of, record_id_of
from node.api.responses import errors
from node.api.schemas import EraseRequest, ErasureReply, ReleaseReply
from node.api.shaping import release_reply
from node.identity import Requester, RequesterKind

router = APIRouter()


@router.get(
    "/v1/records/{record_id}/release",
    tags=["records"],
    response_model=ReleaseReply,
    responses=errors(401, 403, 404, 409, 410, 422, 503),
    summary="Release a record to its patient or to an authorized institution (consent checked, access logged)",
    description="Authenticate as the patient (Bearer mlpt_ token) or as an institution (signed request, "
    "RFC 9421 profile). The access is journaled durably before the key is wrapped to the requester's "
    "registered X25519 key. Verify SHA-256(ciphertext) against the on-chain commitment before decrypting.",
    openapi_extra=SIGNED_REQUEST,
)
async def release(
    request: Request,
    record_id: RecordIdPath,
    purpose: PurposeQuery = "treatment",
    staff_ref: Annotated[str | None, Query(max_length=66, description="requesting staff's 32-byte reference")] = None,
) -> Response:
    # Authenticated in the body rather than as a FastAPI dependency: on this hot path the dependency machinery
    # cost as much as verifying the signature. The OpenAPI document names both schemes either way.
    requester = await patient_or_institution(request)
    services = services_of(request)
    rid = record_id_of(record_id)
    p = purpose_of(purpose)
    if staff_ref is not None and requester.kind is RequesterKind.INSTITUTION:
        requester = Requester(requester.kind, requester.address, hex_bytes(staff_ref, "staff_ref", 32))
    out = await services.releases.release_async(requester, rid, p)
    # Written as JSON directly (documented as ReleaseReply, and tested against it): see shaping.release_reply.
    body = json.dumps(release_reply(out), separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


@router.get(
    "/v1/records/{record_id}/ciphertext",
    tags=["audit"],
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the stored ciphertext"},
        **errors(401, 403, 404, 410, 422, 503),
    },
    response_class=Response,
    summary="The stored ciphertext, for auditors checking it against the on-chain commitment",
    description="Signed request from an AUDITOR member. No key leaves the node, so nothing is logged.",
    openapi_extra=SIGNED_REQUEST,
)
async def ciphertext(request: Request, record_id: RecordIdPath) -> Response:
    services = services_of(request)
    rid = record_id_of(record_id)
    await signed_institution(request, Role.AUDITOR)
    held, data = await run_in_threadpool(services.releases.ciphertext, rid)
    return Response(
        data, media_type="application/octet-stream", headers={"X-MedLedger-Commitment": "0x" + held.commitment.hex()}
    )


@router.post(
    "/v1/records/{record_id}/erase",
    tags=["records"],
    response_model=ErasureReply,
    responses=errors(401, 403, 404, 409, 410, 422, 503),
    summary="Erase a record (crypto-shredding) on the patient's EIP-712 signed request",
)
def erase(request: Request, record_id: RecordIdPath, body: EraseRequest) -> ErasureReply:
    services = services_of(request)
    rid = record_id_of(record_id)
    out = services.erasures.request(
        rid, checksummed(body.patient, "patient"), body.deadline, hex_bytes(body.signature, "signature", 65)
    )
    return ErasureReply(**out)
