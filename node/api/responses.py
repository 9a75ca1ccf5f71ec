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


def _response(status: int) -> dict[str, Any]:
    return {"description": describe(status), EXTENSION: [e.code for e in CODES.with_status(status)]}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can return, all with the shared error shape."""
    return {s: {"model": ErrorReply, **_response(s)} for s in (*statuses, 500)}


def document_error_codes(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with every error response's codes as the registry has them now, and the
    root listing every code of the API with its status, including statuses no route declares."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in (operation.get("responses") or {}).items() if isinstance(operation, dict) else ():
                if EXTENSION in response:
                    response.update(_response(int(status)))
    schema[EXTENSION] = {e.code: {"status": e.status, "description": e.description} for e in CODES if e.api}
    return schema


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
