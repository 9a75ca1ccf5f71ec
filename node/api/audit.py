"""Staff auditors' view of the access log: logged accesses by patient, accessor or record."""

from __future__ import annotations

from fastapi import APIRouter, Request

from node.api.deps import Staff, services_of
from node.api.params import AddressFilter, Cursor, Limit, RecordIdFilter
from node.api.responses import errors
from node.api.schemas import AccessPage
from node.api.shaping import access_page
from node.auth import StaffRole, require_role

router = APIRouter()


@router.get(
    "/v1/audit/accesses",
    tags=["audit"],
    response_model=AccessPage,
    responses=errors(401, 403, 422, 503),
    summary="Logged accesses by patient, accessor or record (staff auditors)",
)
def audit_accesses(
    request: Request,
    who: Staff,
    patient: AddressFilter = None,
    accessor: AddressFilter = None,
    record_id: RecordIdFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AccessPage:
    require_role(who, StaffRole.AUDITOR)
    # An empty filter (``?patient=``) filters nothing, as if it were not given.
    return access_page(
        services_of(request),
        limit,
        cursor,
        patient=patient or None,
        accessor=accessor or None,
        record_id=record_id or None,
    )
