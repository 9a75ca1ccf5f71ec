"""Routes that serve the portal's files with its security headers (the rules in ``portal.serving``, shared with
the auditor's service)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from node.api.cors import member_origins
from node.api.deps import services_of
from node.api.errors import ApiError
from portal.serving import SAFE_NAME, SECURITY_HEADERS, content_security_policy, media_type, static_file

router = APIRouter(include_in_schema=False)


def _serve(request: Request, relative: str) -> Response:
    found = static_file(relative)
    if found is None:
        raise ApiError(404, "not_found", "no such portal page")
    body, etag = found
    headers = {"ETag": etag, **SECURITY_HEADERS}
    if relative.endswith(".html"):
        # The pages may connect to this node and the consortium's other published nodes (none while the chain
        # cannot be read: the page still loads, and says what it cannot do).
        others = member_origins(lambda: services_of(request).ledger) - {str(request.base_url).rstrip("/")}
        headers["Content-Security-Policy"] = content_security_policy(sorted(others))
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type(relative), headers=headers)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@router.get("/portal", include_in_schema=False)
def portal_slash() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)


@router.get("/portal/", include_in_schema=False)
def portal_index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/portal/{name}", include_in_schema=False)
def portal_page(request: Request, name: str) -> Response:
    if not SAFE_NAME.match(name):
        raise ApiError(404, "not_found", "no such portal page")
    return _serve(request, name)


@router.get("/portal/assets/{name}", include_in_schema=False)
def portal_asset(request: Request, name: str) -> Response:
    if not SAFE_NAME.match(name):
        raise ApiError(404, "not_found", "no such portal file")
    return _serve(request, f"assets/{name}")
