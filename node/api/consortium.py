"""The consortium's directory: its active members with their roles and published node URLs, for any signed-in
caller, a patient choosing whom to grant included. Everything here is public ledger data; it needs a token only
so the node answers its own users, not the whole network. The staff-only view with admission blocks and this
node's own mark is ``GET /v1/ops/members`` (node.api.ops)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from node.api.deps import current_patient, current_staff, patient_bearer, services_of, staff_bearer
from node.api.responses import errors
from node.identity import PATIENT_TOKEN_PREFIX
from node.operations import current_members

router = APIRouter(tags=["consortium"])


class ConsortiumMember(BaseModel):
    """An active member: its ledger address, registered name, role names and the node URL it published."""

    address: str
    name: str
    roles: list[str]
    endpoint: str


class ConsortiumDirectory(BaseModel):
    members: list[ConsortiumMember]


def signed_in(
    request: Request,
    # Both schemes read the same header; declaring both lists them in the OpenAPI document as alternatives.
    staff: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
    patient: Annotated[HTTPAuthorizationCredentials | None, Depends(patient_bearer)],
) -> None:
    """A patient token or a staff token of this node (401 ``unauthenticated`` otherwise)."""
    credentials = patient or staff
    if credentials is not None and credentials.credentials.startswith(PATIENT_TOKEN_PREFIX):
        current_patient(request, credentials)
    else:
        current_staff(request, credentials)


@router.get(
    "/v1/consortium/members",
    response_model=ConsortiumDirectory,
    responses=errors(401, 503),
    summary="The consortium's active members: name, address, roles and node URL (patient or staff)",
    dependencies=[Depends(signed_in)],
)
def consortium_members(request: Request) -> ConsortiumDirectory:
    members = current_members(services_of(request))
    return ConsortiumDirectory(
        members=[
            ConsortiumMember(address=m.account, name=m.name, roles=m.role_names, endpoint=m.endpoint)
            for m in sorted(members.values(), key=lambda m: (m.name.casefold(), m.account))
        ]
    )
