"""Authentication dependencies of the node API: staff bearer tokens, patient tokens and signed institution
requests all resolve to a :class:`node.identity.Requester`.

Module level on purpose: with postponed annotations FastAPI resolves a parameter's annotation in the
module's globals, so a dependency alias defined inside a function would silently become a required query
parameter instead of authentication.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from medledger.vocabulary import Role
from node.auth import StaffIdentity, StaffRole, authenticate, require_role
from node.identity import PATIENT_TOKEN_PREFIX, IdentityError, Requester
from node.service import NodeServices

staff_bearer = HTTPBearer(
    auto_error=False,  # our own 401 with the shared error shape instead of FastAPI's 403
    scheme_name="StaffToken",
    bearerFormat="mlst_ token from `medledger node staff add`",
    description="Staff bearer token; roles: clinician, registrar, admin, auditor.",
)
patient_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PatientToken",
    bearerFormat="mlpt_ token from POST /v1/auth/siwe",
    description="Patient token from Sign-In with Ethereum (15 minutes).",
)

#: Signed institution requests carry these (medledger.auth.httpsig); OpenAPI documents them per route.
SIGNED_REQUEST_HEADERS = ("content-digest", "signature-input", "signature")


def services_of(request: Request) -> NodeServices:
    services: NodeServices = request.app.state.services
    return services


def current_staff(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)]
) -> StaffIdentity:
    """The authenticated staff member (401 ``unauthenticated`` otherwise)."""
    services = services_of(request)
    header = f"Bearer {credentials.credentials}" if credentials is not None else None
    with services.sessions() as session:
        return authenticate(session, header)


def current_patient(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(patient_bearer)]
) -> Requester:
    """The signed-in patient (401 otherwise)."""
    if credentials is None or not credentials.credentials.startswith(PATIENT_TOKEN_PREFIX):
        raise IdentityError("missing patient token: sign in with POST /v1/auth/siwe")
    return services_of(request).identities.patient(credentials.credentials)


Staff = Annotated[StaffIdentity, Depends(current_staff)]
Patient = Annotated[Requester, Depends(current_patient)]


def staff_requester(request: Request, who: StaffIdentity, *roles: StaffRole) -> Requester:
    require_role(who, *roles)
    services = services_of(request)
    return services.identities.staff(who, services.address)


async def signed_institution(request: Request, roles: Role | None = None) -> Requester:
    """Verify a signed institution request (body included) and the signer's membership and roles."""
    services = services_of(request)
    body = await request.body()
    scope = request.scope
    requester, _ = services.identities.institution(
        request.method,
        scope.get("raw_path") or scope["path"].encode(),
        scope.get("query_string", b""),
        request.headers,
        body,
        roles=roles,
    )
    return requester


async def patient_or_institution(request: Request) -> Requester:
    """A patient token (``Authorization: Bearer mlpt_…``) or a signed institution request."""
    auth = request.headers.get("authorization", "")
    if auth.startswith("Bearer " + PATIENT_TOKEN_PREFIX):
        return services_of(request).identities.patient(auth[len("Bearer ") :].strip())
    if "signature-input" in request.headers:
        return await signed_institution(request)
    raise IdentityError("send a patient token or sign the request as an institution (RFC 9421 profile)")
