"""What the routes share to read their inputs: hex and record-id parsing, purposes, page sizes, and the signed
request headers the OpenAPI document names. Each raises an :class:`InputError` with the code the API documents."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path, Query

from medledger.errors import InputError
from medledger.vocabulary import Purpose, RecordClass
from node.api.deps import SIGNED_REQUEST_HEADERS
from node.api.schemas import ADDRESS_FORMAT, ADDRESS_PATTERN, RECORD_ID_PATTERN, U256, exact_bounds

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")

#: The page size of every listing route.
Limit = Annotated[int, Query(ge=1, le=1000)]

# The grammars below are in the OpenAPI document but checked by the routes themselves (``checksummed``,
# :func:`record_id_of`), not by FastAPI: a bad value then gets its precise code (``invalid_address``,
# ``invalid_record_id``) rather than the generic ``invalid_request``.
_ADDRESS = {"pattern": ADDRESS_PATTERN, "format": ADDRESS_FORMAT}
_ADDRESS_TEXT = "0x and 40 hex digits, in one case or EIP-55 checksummed (`invalid_address` otherwise)"

#: A ledger address in the path.
AddressPath = Annotated[str, Path(description=_ADDRESS_TEXT, json_schema_extra=_ADDRESS)]
#: A record id (0x and 64 hex digits) in the path.
RecordIdPath = Annotated[
    str,
    Path(
        description="0x and 64 hex digits (`invalid_record_id` otherwise)",
        json_schema_extra={"pattern": RECORD_ID_PATTERN},
    ),
]
#: An optional address filter of a listing: empty filters nothing. The indexer takes either case, unchecked.
AddressFilter = Annotated[
    str | None,
    Query(
        description="0x and 40 hex digits; empty: no filter", json_schema_extra={"pattern": r"^(0x[0-9a-fA-F]{40})?$"}
    ),
]
#: An optional record-id filter of a listing: empty filters nothing.
RecordIdFilter = Annotated[
    str | None,
    Query(
        description="0x and 64 hex digits; empty: no filter", json_schema_extra={"pattern": r"^(0x[0-9a-fA-F]{64})?$"}
    ),
]
#: A row id of the node's database in the path: BIGINT, so larger ids cannot exist (and SQLite cannot even compare
#: with them).
RowIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, json_schema_extra=exact_bounds(1, 2**63 - 1))]
#: A consent grant's id (a uint256 on chain).
GrantIdPath = Annotated[int, Path(ge=0, le=U256, json_schema_extra=exact_bounds(0, U256))]
#: A purpose of use by name (``invalid_purpose`` otherwise; case and ``-`` for ``_`` are forgiven).
PurposeQuery = Annotated[
    str,
    Query(
        max_length=32,
        description="why the record is read",
        json_schema_extra={"enum": [p.name.lower() for p in Purpose]},
    ),
]
#: A page cursor: opaque (base64url), the ``next_cursor`` of the page before; anything else is refused
#: ``indexer_bad_query``.
Cursor = Annotated[
    str | None,
    Query(description="the previous page's `next_cursor` (opaque)", json_schema_extra={"pattern": r"^[A-Za-z0-9_-]+$"}),
]

#: Timeline filters: record classes by name (repeatable: ``?class=lab&class=imaging``) and a clinical-time window.
ClassesQuery = Annotated[
    list[str] | None,
    Query(
        alias="class",
        description="only records of these classes (repeat the parameter for several)",
        max_length=len(RecordClass),
        json_schema_extra={"items": {"type": "string", "enum": [c.name.lower() for c in RecordClass]}},
    ),
]
SinceQuery = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="only records with clinical time at or after this Unix time")
]
UntilQuery = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="only records with clinical time at or before this Unix time")
]


def classes_of(names: list[str] | None) -> list[int] | None:
    """The class codes of ``?class=`` names; ``invalid_record_class`` naming the known ones otherwise."""
    if not names:
        return None
    try:
        return sorted({int(RecordClass.parse(n)) for n in names})
    except InputError as exc:
        raise InputError(exc.message, code="invalid_record_class") from None


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
