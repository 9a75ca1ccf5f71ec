"""Routes this institution's own staff call: the merged timeline of a patient across custodians, reading a
record wherever it is held (locally, or from its custodian under the patient's consent), break-glass."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from medledger.addresses import checksummed
from medledger.errors import MedLedgerError
from node.api.deps import Staff, services_of, staff_requester
from node.api.params import (
    AddressPath,
    ClassesQuery,
    Cursor,
    Limit,
    PurposeQuery,
    RecordIdPath,
    SinceQuery,
    UntilQuery,
    classes_of,
    purpose_of,
    record_id_of,
)
from node.api.responses import errors
from node.api.schemas import BreakGlassReply, BreakGlassRequest, TimelinePage
from node.api.shaping import timeline_page
from node.auth import StaffRole

router = APIRouter()


@router.get(
    "/v1/patients/{patient}/timeline",
    tags=["clinical"],
    response_model=TimelinePage,
    responses=errors(401, 403, 422, 503),
    summary="One timeline of a patient's records across every custodian (from the ledger)",
)
def patient_timeline(
    request: Request,
    patient: AddressPath,
    who: Staff,
    limit: Limit = 50,
    cursor: Cursor = None,
    record_class: ClassesQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> TimelinePage:
    staff_requester(request, who, StaffRole.CLINICIAN, StaffRole.AUDITOR)
    classes = classes_of(record_class)
    owner = checksummed(patient, "patient")
    return timeline_page(services_of(request), owner, limit, cursor, classes=classes, since=since, until=until)


@router.get(
    "/v1/patients/{patient}/records/{record_id}",
    tags=["clinical"],
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the decrypted record"},
        **errors(401, 403, 404, 409, 410, 422, 502, 503),
    },
    response_class=Response,
    summary="Read a record: locally if held here, else from its custodian under the patient's consent",
    description="The reply's `X-MedLedger-Authorization` says what authorized the read (custodian, grant:ID or "
    "break_glass:ID), `X-MedLedger-Decided-Block` the block whose consent state it was decided on (logged on "
    "chain with the access) and `X-MedLedger-Custodian` who holds the record. Every read is logged on chain.",
)
async def read_record(
    request: Request,
    patient: AddressPath,
    record_id: RecordIdPath,
    who: Staff,
    purpose: PurposeQuery = "treatment",
) -> Response:
    services = services_of(request)
    requester = staff_requester(request, who, StaffRole.CLINICIAN)
    p = purpose_of(purpose)
    rid = record_id_of(record_id)
    owner = checksummed(patient, "patient")
    entry = services.ledger.queries.record(record_id.lower())
    if entry is not None and entry.patient != owner:
        raise MedLedgerError("the record belongs to another patient", code="record_not_found")
    if entry is None or entry.custodian == services.address:
        own = await run_in_threadpool(services.releases.read_own, requester, rid, p)
        if own.record.patient is None or own.record.patient != owner:
            raise MedLedgerError("the record belongs to another patient", code="record_not_found")
        return Response(
            own.content,
            media_type=own.record.media_type,
            headers={
                "X-MedLedger-Authorization": "custodian",
                "X-MedLedger-Decided-Block": str(max(0, own.decision.block_number)),
                "X-MedLedger-Custodian": services.address,
            },
        )
    remote = await run_in_threadpool(services.remote.fetch, entry, p, requester.staff_ref)
    auth = remote.authorization
    return Response(
        remote.content,
        media_type=remote.media_type,
        headers={
            "X-MedLedger-Authorization": f"{auth['kind']}:{auth['id']}",
            "X-MedLedger-Decided-Block": str(auth["block_number"]),
            "X-MedLedger-Custodian": entry.custodian,
        },
    )


@router.post(
    "/v1/patients/{patient}/break-glass",
    tags=["clinical"],
    response_model=BreakGlassReply,
    status_code=201,
    responses=errors(401, 403, 409, 422, 503),
    summary="Open an emergency (break-glass) window on a patient; the patient is notified",
)
def break_glass(request: Request, patient: AddressPath, body: BreakGlassRequest, who: Staff) -> BreakGlassReply:
    requester = staff_requester(request, who, StaffRole.CLINICIAN)
    out = services_of(request).break_glass.open(requester, patient, body.reason, body.duration_seconds)
    return BreakGlassReply(**out)
