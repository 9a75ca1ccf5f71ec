"""Routes that serve the portal's files with its security headers (the rules in ``portal.serving``, shared with
the auditor's service)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from node.api.cors import member_origins
from node.api.deps import services_of
from node.api.errors import ApiError
from portal.serving import reply

router = APIRouter(include_in_schema=False)


def _serve(request: Request, name: str, *, assets: bool = False) -> Response:
    def others() -> set[str]:
        # The pages may connect to this node and the consortium's other published nodes (none while the chain
        # cannot be read: the page still loads, and says what it cannot do).
        return member_origins(lambda: services_of(request).ledger) - {str(request.base_url).rstrip("/")}

    found = reply(name, if_none_match=request.headers.get("if-none-match"), connect=others, assets=assets)
    if found is None:
        raise ApiError(404, "not_found", "no such portal file")
    return Response(found.body, status_code=found.status, media_type=found.media_type, headers=found.headers)


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
    return _serve(request, name)


@router.get("/portal/assets/{name}", include_in_schema=False)
def portal_asset(request: Request, name: str) -> Response:
    return _serve(request, name, assets=True)
