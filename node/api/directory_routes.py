"""Finding a patient of this institution by medical record number: staff at the desk or bedside know the MRN,
not the ledger address the clinical routes take. Only this node's own directory is searched (another
institution's MRNs are its own business); the answer is the address to open the patient's timeline with, or
none yet if the patient has not been linked to a ledger address."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from medledger.errors import InputError
from node.api.deps import Staff, services_of
from node.api.responses import errors
from node.auth import StaffRole, require_role

router = APIRouter()


class PatientMatch(BaseModel):
    mrn: str
    assigning_authority: str
    address: str | None = Field(description="the patient's ledger address; null while the patient is not linked")
    linked: bool
    family_name: str
    given_name: str
    birth_date: str
    sex: str


class PatientMatches(BaseModel):
    items: list[PatientMatch]


@router.get(
    "/v1/patients",
    tags=["clinical"],
    response_model=PatientMatches,
    responses=errors(401, 403, 422),
    summary="Find a patient of this node by MRN (and its assigning authority)",
    description="Exact match on this node's patient directory; an empty list if the MRN is unknown here.",
    # The MRN is required, but absent or blank it is refused with its own code (patient_mrn_missing), which a
    # FastAPI-required parameter would turn into invalid_request: so the route reads it optionally and the
    # document says what it requires.
    openapi_extra={
        "parameters": [
            {
                "name": "mrn",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "maxLength": 64, "pattern": r"\S"},
                "description": "the medical record number (`patient_mrn_missing` if absent or blank)",
            }
        ]
    },
)
async def find_patient(
    request: Request,
    who: Staff,
    mrn: Annotated[str, Query(max_length=64, include_in_schema=False)] = "",
    authority: Annotated[str, Query(max_length=64)] = "",
) -> PatientMatches:
    require_role(who, StaffRole.CLINICIAN, StaffRole.REGISTRAR)
    if not mrn.strip():
        raise InputError("a patient needs an MRN", code="patient_mrn_missing")
    directory = services_of(request).directory
    entry = await run_in_threadpool(directory.get, mrn.strip(), authority.strip())
    if entry is None:
        return PatientMatches(items=[])
    return PatientMatches(
        items=[
            PatientMatch(
                mrn=entry.mrn,
                assigning_authority=entry.assigning_authority,
                address=entry.address,
                linked=entry.linked,
                family_name=entry.family_name,
                given_name=entry.given_name,
                birth_date=entry.birth_date,
                sex=entry.sex,
            )
        ]
    )
