"""The consent relay: what a patient's wallet signs against, and the node relaying the patient's EIP-712 signed
grants, revocations and key registrations to the chain (paying the gas)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from medledger.addresses import checksummed
from medledger.chain.types import GrantTerms
from node.api.deps import services_of
from node.api.params import AddressPath, GrantIdPath, hex_bytes, purpose_code
from node.api.responses import errors
from node.api.schemas import GrantRequest, RegisterKeyRequest, Relayed, RevokeRequest, SigningContext

router = APIRouter()


@router.get(
    "/v1/consent/context/{patient}",
    tags=["consent"],
    response_model=SigningContext,
    responses=errors(422, 503),
    summary="What a wallet signs against: EIP-712 domains and the patient's current nonces",
)
def signing_context(request: Request, patient: AddressPath) -> SigningContext:
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
        checksummed(body.grantee, "grantee"), body.classes, purpose_code(body.purpose), body.valid_from,
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
def relay_revoke(request: Request, grant_id: GrantIdPath, body: RevokeRequest) -> Relayed:
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
