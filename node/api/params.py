"""What the routes share to read their inputs: hex and record-id parsing, purposes, page sizes, and the signed
request headers the OpenAPI document names. Each raises an :class:`InputError` with the code the API documents."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Query

from medledger.errors import InputError
from medledger.vocabulary import Purpose
from node.api.deps import SIGNED_REQUEST_HEADERS

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")

#: The page size of every listing route.
Limit = Annotated[int, Query(ge=1, le=1000)]

#: ``openapi_extra`` of a route that takes signed institution requests: FastAPI cannot see headers the route
#: reads itself (authentication happens in the route body), so they are named here.
SIGNED_REQUEST: dict[str, Any] = {
    "parameters": [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"}} for h in SIGNED_REQUEST_HEADERS
    ]
}


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
    """A purpose given by name (a query parameter)."""
    try:
        return Purpose.parse(value)
    except InputError as exc:
        raise InputError(exc.message, code="invalid_purpose") from None


def purpose_code(value: int) -> Purpose:
    """A purpose given by its on-chain code (a signed grant's field)."""
    try:
        return Purpose(value)
    except ValueError:
        raise InputError(f"unknown purpose code {value}", code="invalid_grant") from None
