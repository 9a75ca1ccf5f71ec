"""The request and reply documents of the node's sharing API (pydantic models). Their class names are the
OpenAPI document's schema names, which clients and the spec tests rely on: rename none of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

#: The extension carrying exact integer bounds (see :func:`exact_bounds`).
EXACT_BOUNDS = "x-exact-bounds"

#: A ledger address: 0x and 40 hex digits, in one case or EIP-55 checksummed. A regex cannot say the checksum, so
#: the OpenAPI document also names the format (``eth-address``): a mixed-case address with a wrong checksum is
#: refused ``invalid_address``, by the route's own check (the schema documents the pattern, it does not enforce it,
#: so that code stays precise).
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ADDRESS_FORMAT = "eth-address"
#: A record id: 0x and 64 hex digits.
RECORD_ID_PATTERN = r"^0x[0-9a-fA-F]{64}$"


def exact_bounds(low: int, high: int) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` giving an integer field's bounds exactly. FastAPI's OpenAPI models hold bounds as floats,
    and 2**256 - 1 as a float is 2**256 (which a client, or a fuzzer, then takes for a valid value): the exact pair
    rides along in an extension that node.api.responses writes back as integers when the document is made."""

    def write(schema: dict[str, Any]) -> None:
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            schema.pop(key, None)
        schema["minimum"], schema["maximum"] = low, high
        schema[EXACT_BOUNDS] = [low, high]

    return write


U64 = 2**64 - 1
U256 = 2**256 - 1

Address = Annotated[
    str,
    Field(
        min_length=42,
        max_length=42,
        description="0x-prefixed 20-byte address, in one case or EIP-55 checksummed",
        json_schema_extra={"pattern": ADDRESS_PATTERN, "format": ADDRESS_FORMAT},
    ),
]
Signature = Annotated[
    str, Field(min_length=132, max_length=132, pattern=r"^0x[0-9a-fA-F]{130}$", description="0x-prefixed 65-byte r‖s‖v")
]


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
    classes: int = Field(
        ge=1,
        lt=2**256,
        description="class bitmask: bit c covers record class c",
        json_schema_extra=exact_bounds(1, U256),
    )
    purpose: int = Field(ge=1, le=255, description="purpose code (1 treatment … 7 payment)")
    valid_from: int = Field(ge=0, lt=2**64, json_schema_extra=exact_bounds(0, U64))
    valid_until: int = Field(ge=0, lt=2**64, json_schema_extra=exact_bounds(0, U64))
    nonce: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
    deadline: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
    signature: Signature
    chain_id: int | None = Field(default=None, description="the chain the wallet signed for (checked if given)")


class RevokeRequest(BaseModel):
    patient: Address
    nonce: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
    deadline: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
    signature: Signature
    chain_id: int | None = None


class RegisterKeyRequest(BaseModel):
    patient: Address
    encryption_key: str = Field(
        min_length=66, max_length=66, pattern=r"^0x[0-9a-fA-F]{64}$", description="0x-prefixed 32-byte X25519 key"
    )
    nonce: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
    deadline: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
    signature: Signature
    chain_id: int | None = None


class Relayed(BaseModel):
    tx_hash: str
    block_number: int
    grant_id: int | None = None


class EraseRequest(BaseModel):
    patient: Address
    deadline: int = Field(ge=0, lt=2**256, json_schema_extra=exact_bounds(0, U256))
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


class ContactRequest(BaseModel):
    channel: Literal["email", "sms", "voice", "push"] = Field(description="how to reach me besides the inbox")
    destination: str = Field(
        min_length=3, max_length=320, description="an e-mail address, an E.164 phone number or a push endpoint"
    )


class ContactItem(BaseModel):
    id: int
    channel: str
    destination: str
    created_at: str


class BreakGlassRequest(BaseModel):
    reason: str = Field(min_length=10, max_length=1000, description="why (kept on this node; its hash on chain)")
    duration_seconds: int = Field(default=3600, ge=60, le=86400)


class BreakGlassReply(BaseModel):
    break_glass_id: int
    patient: str
    accessor: str
    expires_at: int
    tx_hash: str
    block_number: int
