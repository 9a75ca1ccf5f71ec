"""Routes other institutions and patients call: sign-in, relayed consent, record release, erasure and the
patient's own views. Thin: authenticate, validate, call a service, shape the reply."""

from __future__ import annotations

import base64
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from medledger.addresses import checksummed
from medledger.chain.types import GrantTerms
from medledger.errors import InputError
from medledger.vocabulary import Purpose, Role
from node.api.deps import (
    SIGNED_REQUEST_HEADERS,
    Patient,
    Staff,
    patient_or_institution,
    services_of,
    signed_institution,
)
from node.api.responses import errors
from node.auth import StaffRole, require_role
from node.db.models import Notification
from node.identity import Requester, RequesterKind
from node.service import NodeServices

router = APIRouter()

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
MAX_JSON_BYTES = 64 * 1024


def hex_bytes(value: str, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str) or not _HEX.match(value) or len(value) % 2:
        raise InputError(f"{what} must be 0x-prefixed hex", code="invalid_request")
    raw = bytes.fromhex(value[2:])
    if length is not None and len(raw) != length:
        raise InputError(f"{what} must be {length} bytes", code="invalid_request")
    return raw


def record_id_of(value: str) -> bytes:
    try:
        return hex_bytes(value, "record id", 32)
    except InputError:
        raise InputError("record id must be 32 bytes of 0x-prefixed hex", code="invalid_record_id") from None


def purpose_of(value: str) -> Purpose:
    try:
        return Purpose.parse(value)
    except InputError as exc:
        raise InputError(exc.message, code="invalid_purpose") from None


# ---------------------------------------------------------------------------------------------- models

Address = Annotated[str, Field(min_length=42, max_length=42, description="0x-prefixed 20-byte address")]
Signature = Annotated[str, Field(min_length=132, max_length=132, description="0x-prefixed 65-byte r‖s‖v")]


class SiweNonceReply(BaseModel):
    nonce: str
    domain: str = Field(description="the SIWE `domain` the message must name (this node's host[:port])")
    uri: str = Field(description="the SIWE `URI` the message must name (this node's public URL)")
    chain_id: int
    expires_at: int


class SiweLogin(BaseModel):
    message: str = Field(max_length=4096, description="the EIP-4361 message, exactly as signed")
    signature: Signature


class SiweToken(BaseModel):
    token: str
    address: str
    expires_at: int


class SigningContext(BaseModel):
    chain_id: int
    types: dict[str, list[dict[str, str]]] = Field(
        description="the EIP-712 types: EIP712Domain, Grant and Revoke (consent domain), RegisterPatientKey "
        "(consortium domain), EraseRecord (erasure domain); pass the primary type's entry to ethers' signTypedData"
    )
    consent_domain: dict[str, Any]
    consortium_domain: dict[str, Any]
    consent_nonce: int
    consortium_nonce: int
    erasure_domain: dict[str, Any]


class GrantRequest(BaseModel):
    patient: Address
    grantee: Address
    classes: int = Field(ge=1, lt=2**256, description="class bitmask: bit c covers record class c")
    purpose: int = Field(ge=1, le=255, description="purpose code (1 treatment … 7 payment)")
    valid_from: int = Field(ge=0, lt=2**64)
    valid_until: int = Field(ge=0, lt=2**64)
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)
    signature: Signature
    chain_id: int | None = Field(default=None, description="the chain the wallet signed for (checked if given)")


class RevokeRequest(BaseModel):
    patient: Address
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)
    signature: Signature
    chain_id: int | None = None


class RegisterKeyRequest(BaseModel):
    patient: Address
    encryption_key: str = Field(min_length=66, max_length=66, description="0x-prefixed 32-byte X25519 key")
    nonce: int = Field(ge=0, lt=2**256)
    deadline: int = Field(ge=0, lt=2**256)
    signature: Signature
    chain_id: int | None = None


class Relayed(BaseModel):
    tx_hash: str
    block_number: int
    grant_id: int | None = None


class EraseRequest(BaseModel):
    patient: Address
    deadline: int = Field(ge=0, lt=2**256)
    signature: Signature


class ErasureReply(BaseModel):
    record_id: str
    status: str = Field(description="pending (shredded here, marker not yet on chain) or confirmed")
    request_hash: str
    tx_hash: str | None
    block_number: int | None


class ReleasedRecordMeta(BaseModel):
    record_id: str
    patient: str | None
    record_class: str
    type_code: str
    media_type: str
    cid: str
    commitment: str
    tx_hash: str | None
    block_number: int | None


class Authorization(BaseModel):
    kind: str = Field(description="grant, break_glass, patient or custodian")
    id: int
    block_number: int = Field(description="block at which the consent state the decision used was confirmed")


class ReleaseReply(BaseModel):
    record: ReleasedRecordMeta
    custodian: str
    ciphertext: str = Field(description="base64 record ciphertext; SHA-256 of it is the on-chain commitment")
    wrapped_key: str = Field(description="base64 record key, ECIES/X25519-wrapped to the requester's key")
    authorization: Authorization


class TimelineItem(BaseModel):
    record_id: str
    custodian: str
    custodian_name: str | None
    custodian_endpoint: str | None = Field(description="the custodian node's URL (from its member profile)")
    record_class: str
    event_time: int
    commitment: str
    status: str
    block_number: int
    tx_hash: str


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None


class AccessItem(BaseModel):
    record_id: str
    accessor: str
    accessor_name: str | None
    custodian: str
    purpose: str
    authorization: str = Field(description="grant, break_glass, patient or custodian")
    auth_id: int
    break_glass: bool
    staff_ref: str
    decided_block: int = Field(description="the block whose consent state authorized the access (0: unknown)")
    block_number: int
    block_time: int
    tx_hash: str


class AccessPage(BaseModel):
    items: list[AccessItem]
    next_cursor: str | None


class GrantItem(BaseModel):
    grant_id: int
    grantee: str
    grantee_name: str | None
    classes: list[str]
    purpose: str
    valid_from: int
    valid_until: int
    block_number: int
    revoked: bool


class NotificationItem(BaseModel):
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: str


# ---------------------------------------------------------------------------------------------- shaping


def timeline_page(services: NodeServices, patient: str, limit: int, cursor: str | None) -> TimelinePage:
    members = services.ledger.members()
    page = services.ledger.queries.timeline(patient, limit=limit, cursor=cursor)
    return TimelinePage(
        items=[
            TimelineItem(
                record_id=e.record_id,
                custodian=e.custodian,
                custodian_name=(m.name if (m := members.get(e.custodian.lower())) else None),
                custodian_endpoint=m.endpoint if m else None,
                record_class=e.record_class_name,
                event_time=e.event_time,
                commitment=e.commitment,
                status=e.status.name.lower(),
                block_number=e.block_number,
                tx_hash=e.tx_hash,
            )
            for e in page.items
        ],
        next_cursor=page.next_cursor,
    )


_KIND_NAMES = {1: "grant", 2: "break_glass", 3: "patient", 4: "custodian"}


def access_page(services: NodeServices, limit: int, cursor: str | None, **filters: str) -> AccessPage:
    members = services.ledger.members()
    page = services.ledger.queries.accesses(limit=limit, cursor=cursor, **filters)
    return AccessPage(
        items=[
            AccessItem(
                record_id=a.record_id,
                accessor=a.accessor,
                accessor_name=(m.name if (m := members.get(a.accessor.lower())) else None),
                custodian=a.custodian,
                purpose=Purpose.label(a.purpose),
                authorization=_KIND_NAMES.get(a.auth_kind, str(a.auth_kind)),
                auth_id=a.auth_id,
                break_glass=a.auth_kind == 2,
                staff_ref=a.staff_ref,
                decided_block=a.decided_block,
                block_number=a.block_number,
                block_time=a.block_time,
                tx_hash=a.tx_hash,
            )
            for a in page.items
        ],
        next_cursor=page.next_cursor,
    )


Limit = Annotated[int, Query(ge=1, le=1000)]


# ---------------------------------------------------------------------------------------------- sign-in


@router.get("/v1/auth/siwe/nonce", tags=["patients"], response_model=SiweNonceReply, summary="Start a sign-in")
def siwe_nonce(request: Request) -> SiweNonceReply:
    services = services_of(request)
    nonce, expires = services.identities.siwe_nonce()
    ids = services.identities
    return SiweNonceReply(
        nonce=nonce, domain=ids.authority, uri=ids.public_url, chain_id=ids.chain_id, expires_at=expires
    )


@router.post(
    "/v1/auth/siwe",
    tags=["patients"],
    response_model=SiweToken,
    responses=errors(401, 422),
    summary="Sign in with Ethereum (EIP-4361): a signed message for a short-lived patient token",
)
def siwe_login(request: Request, body: SiweLogin) -> SiweToken:
    token, message, expires = services_of(request).identities.siwe_login(
        body.message, hex_bytes(body.signature, "signature", 65)
    )
    return SiweToken(token=token, address=message.address, expires_at=expires)


# ---------------------------------------------------------------------------------------------- consent relay


@router.get(
    "/v1/consent/context/{patient}",
    tags=["consent"],
    response_model=SigningContext,
    responses=errors(422, 503),
    summary="What a wallet signs against: EIP-712 domains and the patient's current nonces",
)
def signing_context(request: Request, patient: str) -> SigningContext:
    services = services_of(request)
    ctx = services.relay.context(patient)
    return SigningContext(**ctx, erasure_domain=services.erasures.domain)


@router.post(
    "/v1/consents",
    tags=["consent"],
    response_model=Relayed,
    status_code=201,
    responses=errors(401, 409, 422, 503),
    summary="Relay a patient's EIP-712 signed grant (the node pays the gas)",
)
def relay_grant(request: Request, body: GrantRequest) -> Relayed:
    services = services_of(request)
    terms = GrantTerms(
        checksummed(body.grantee, "grantee"), body.classes, _purpose_code(body.purpose), body.valid_from,
        body.valid_until,
    )  # fmt: skip
    out = services.relay.grant(
        body.patient, terms, body.nonce, body.deadline, hex_bytes(body.signature, "signature", 65),
        chain_id=body.chain_id,
    )  # fmt: skip
    return Relayed(**out.as_api())


@router.post(
    "/v1/consents/{grant_id}/revoke",
    tags=["consent"],
    response_model=Relayed,
    responses=errors(401, 403, 404, 409, 422, 503),
    summary="Relay a patient's EIP-712 signed revocation; enforced from the block that contains it",
)
def relay_revoke(request: Request, grant_id: int, body: RevokeRequest) -> Relayed:
    out = services_of(request).relay.revoke(
        body.patient, grant_id, body.nonce, body.deadline, hex_bytes(body.signature, "signature", 65),
        chain_id=body.chain_id,
    )  # fmt: skip
    return Relayed(**out.as_api())


@router.post(
    "/v1/patients/keys",
    tags=["consent"],
    response_model=Relayed,
    responses=errors(401, 409, 422, 503),
    summary="Relay a patient's signed registration of their X25519 encryption key",
)
def relay_register_key(request: Request, body: RegisterKeyRequest) -> Relayed:
    out = services_of(request).relay.register_key(
        body.patient, hex_bytes(body.encryption_key, "encryption_key", 32), body.nonce, body.deadline,
        hex_bytes(body.signature, "signature", 65), chain_id=body.chain_id,
    )  # fmt: skip
    return Relayed(**out.as_api())


def _purpose_code(value: int) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        raise InputError(f"unknown purpose code {value}", code="invalid_grant") from None


# ---------------------------------------------------------------------------------------------- records

_SIGNED = {
    "parameters": [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"}} for h in SIGNED_REQUEST_HEADERS
    ]
}


@router.get(
    "/v1/records/{record_id}/release",
    tags=["records"],
    response_model=ReleaseReply,
    responses=errors(401, 403, 404, 409, 410, 422, 503),
    summary="Release a record to its patient or to an authorized institution (consent checked, access logged)",
    description="Authenticate as the patient (Bearer mlpt_ token) or as an institution (signed request, "
    "RFC 9421 profile). The access is journaled durably before the key is wrapped to the requester's "
    "registered X25519 key. Verify SHA-256(ciphertext) against the on-chain commitment before decrypting.",
    openapi_extra=_SIGNED,
)
async def release(
    request: Request,
    record_id: str,
    purpose: Annotated[str, Query(max_length=32)] = "treatment",
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
    # The hot path of the API: the reply (documented as ReleaseReply, and tested against it) is written as JSON
    # directly; validating it through the model cost more than the release's own work.
    reply = {
        "record": out.record.meta(),
        "custodian": out.custodian,
        "ciphertext": base64.b64encode(out.ciphertext).decode(),
        "wrapped_key": base64.b64encode(out.wrapped_key).decode(),
        "authorization": {
            "kind": _KIND_NAMES[int(out.decision.kind)],
            "id": out.decision.auth_id,
            "block_number": out.decision.block_number,
        },
    }
    return Response(json.dumps(reply, separators=(",", ":")).encode(), media_type="application/json")


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
    openapi_extra=_SIGNED,
)
async def ciphertext(request: Request, record_id: str) -> Response:
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
def erase(request: Request, record_id: str, body: EraseRequest) -> ErasureReply:
    services = services_of(request)
    rid = record_id_of(record_id)
    out = services.erasures.request(
        rid, checksummed(body.patient, "patient"), body.deadline, hex_bytes(body.signature, "signature", 65)
    )
    return ErasureReply(**out)


# ---------------------------------------------------------------------------------------------- the patient


@router.get(
    "/v1/me/timeline",
    tags=["patients"],
    response_model=TimelinePage,
    responses=errors(401, 422, 503),
    summary="My records across all custodians, newest first",
)
def my_timeline(request: Request, me: Patient, limit: Limit = 50, cursor: str | None = None) -> TimelinePage:
    return timeline_page(services_of(request), me.address, limit, cursor)


@router.get(
    "/v1/me/accesses",
    tags=["patients"],
    response_model=AccessPage,
    responses=errors(401, 422, 503),
    summary="Every logged access to my records: who, when, under which grant or break-glass",
)
def my_accesses(request: Request, me: Patient, limit: Limit = 50, cursor: str | None = None) -> AccessPage:
    return access_page(services_of(request), limit, cursor, patient=me.address)


@router.get(
    "/v1/me/grants",
    tags=["patients"],
    response_model=list[GrantItem],
    responses=errors(401, 503),
    summary="My grants, current and past",
)
def my_grants(request: Request, me: Patient) -> list[GrantItem]:
    services = services_of(request)
    members = services.ledger.members()
    return [
        GrantItem(
            grant_id=g.grant_id,
            grantee=g.grantee,
            grantee_name=(m.name if (m := members.get(g.grantee.lower())) else None),
            classes=g.class_names,
            purpose=Purpose.label(g.purpose),
            valid_from=g.valid_from,
            valid_until=g.valid_until,
            block_number=g.block_number,
            revoked=g.revoked_block is not None,
        )
        for g in services.ledger.queries.grant_history(me.address)
    ]


@router.get(
    "/v1/me/notifications",
    tags=["patients"],
    response_model=list[NotificationItem],
    responses=errors(401, 422),
    summary="Notifications from this node's outbox (break-glass openings and accesses)",
)
def my_notifications(request: Request, me: Patient, after: Annotated[int, Query(ge=0)] = 0) -> list[NotificationItem]:
    services = services_of(request)
    with services.sessions() as s:
        rows = s.scalars(
            select(Notification)
            .where(Notification.recipient == me.address, Notification.id > after)
            .order_by(Notification.id)
            .limit(500)
        ).all()
    return [
        NotificationItem(id=n.id, kind=n.kind, payload=n.payload, created_at=n.created_at.isoformat()) for n in rows
    ]


# ---------------------------------------------------------------------------------------------- audit (staff)


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
    patient: str | None = None,
    accessor: str | None = None,
    record_id: str | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> AccessPage:
    require_role(who, StaffRole.AUDITOR)
    filters = {k: v for k, v in (("patient", patient), ("accessor", accessor), ("record_id", record_id)) if v}
    return access_page(services_of(request), limit, cursor, **filters)
