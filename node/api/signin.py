"""Sign-in with Ethereum (EIP-4361): a patient's wallet signs a message and gets a short-lived patient token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from node.api.deps import services_of
from node.api.params import hex_bytes
from node.api.responses import errors
from node.api.schemas import SiweLogin, SiweNonceReply, SiweToken

router = APIRouter()


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
