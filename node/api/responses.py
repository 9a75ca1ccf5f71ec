"""The shared error shape in the OpenAPI document: every route lists the statuses it can return, and each status
lists the codes answered with it, generated from the error registry (medledger.errors).

Routes call :func:`errors` when they are defined; a module loaded later (a workflow) may declare more codes, so
:func:`document_error_codes` fills the descriptions in again when the document is generated (node.api.errors
installs it).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

import node.error_codes  # noqa: F401  (the node's codes are declared before any route asks for them)
from medledger.errors import CODES
from node.api.schemas import EXACT_BOUNDS

#: The OpenAPI extension naming the codes of a response (per response) or of the whole API (at the root).
EXTENSION = "x-error-codes"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorReply(BaseModel):
    error: ErrorDetail


def describe(status: int) -> str:
    """Markdown for one error status: its phrase and every API code declared with it."""
    lines = [f"- `{e.code}`: {e.description}" for e in CODES.with_status(status)]
    head = HTTPStatus(status).phrase
    if status == 401:
        head += " (with `WWW-Authenticate: Bearer`)"
    return (f"{head}. Codes:\n\n" + "\n".join(lines)) if lines else f"{head}."


#: Headers that answers with these statuses always carry.
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {"description": "`Bearer`", "required": True, "schema": {"type": "string"}},
    },
    429: {
        "Retry-After": {
            "description": "seconds until the caller's bucket holds a request again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
    },
}
#: The statuses any operation can answer whatever its route declares: a body over the limit (every operation that
#: takes one; node.api.app.SmallBodyLimit, or the ingest route's own), the rate limit (node.api.ratelimit) and the
#: database being unreachable (node.api.errors: every route that touches it).
BODY_STATUSES = (413,)
ALWAYS_STATUSES = (429,)
DATABASE_STATUSES = (503,)
#: Paths whose routes never touch the database.
NO_DATABASE = frozenset({"/healthz"})
_ERROR_REF = {"$ref": "#/components/schemas/ErrorReply"}
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _response(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": describe(status), EXTENSION: [e.code for e in CODES.with_status(status)]}
    if status in _HEADERS:
        out["headers"] = _HEADERS[status]
    return out


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can return, all with the shared error shape."""
    return {s: {"model": ErrorReply, **_response(s)} for s in (*statuses, 500)}


def document_error_codes(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with every error response's codes as the registry has them now, and the
    root listing every code of the API with its status, including statuses no route declares."""
    for path, path_item in schema.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            _add_implied(responses, body="requestBody" in operation, database=path not in NO_DATABASE)
            for status, response in responses.items():
                if EXTENSION in response:
                    response.update(_response(int(status)))
    _ensure_error_schema(schema)
    _exact_bounds(schema)
    schema[EXTENSION] = {e.code: {"status": e.status, "description": e.description} for e in CODES if e.api}
    return schema


def _add_implied(responses: dict[str, Any], *, body: bool, database: bool) -> None:
    """Document on ``responses`` what the middleware and handlers answer for every route (whichever module mounted
    it), and put the shared error shape in place of FastAPI's own 422 (whose shape the node never answers with)."""
    implied = (*ALWAYS_STATUSES, *(BODY_STATUSES if body else ()), *(DATABASE_STATUSES if database else ()))
    for status in implied:
        responses.setdefault(
            str(status), {"content": {"application/json": {"schema": dict(_ERROR_REF)}}, **_response(status)}
        )
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if default_422.get("$ref", "").endswith("/HTTPValidationError"):
        responses["422"] = {"content": {"application/json": {"schema": dict(_ERROR_REF)}}, **_response(422)}


def _exact_bounds(node: Any) -> None:
    """Integer bounds as exact integers wherever node.api.schemas.exact_bounds gave them (FastAPI made floats)."""
    if isinstance(node, dict):
        exact = node.pop(EXACT_BOUNDS, None)
        if isinstance(exact, list) and len(exact) == 2:
            node["minimum"], node["maximum"] = exact
        for value in node.values():
            _exact_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _exact_bounds(value)


def _ensure_error_schema(schema: dict[str, Any]) -> None:
    """The ErrorReply component the error responses refer to, if no route's ``errors()`` brought it in."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorReply" not in components:
        reply = ErrorReply.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(reply.pop("$defs", {}))
        components["ErrorReply"] = reply


#: The packages whose codes docs/node.md lists; a workflow's codes are in its own chapter of the docs.
NODE_PACKAGES = ("medledger", "node", "indexer")


def markdown_table(packages: tuple[str, ...] = NODE_PACKAGES) -> str:
    """An error-code table for the docs: every API code declared in ``packages``, by status."""
    rows = ["| status | code | meaning |", "|---|---|---|"]
    rows += [
        f"| {e.status} | `{e.code}` | {e.description} |"
        for e in sorted(CODES, key=lambda e: e.status)
        if e.api and e.owner.split(".", 1)[0] in packages
    ]
    return "\n".join(rows)
