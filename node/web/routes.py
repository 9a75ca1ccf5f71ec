"""Routes that serve the portal's files with its security headers."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import PurePosixPath

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from node.api.cors import member_origins
from node.api.deps import services_of
from node.api.errors import ApiError
from portal import STATIC

router = APIRouter(include_in_schema=False)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@lru_cache(maxsize=64)
def _file(relative: str) -> tuple[bytes, str] | None:
    path = STATIC / relative
    if not path.is_file():
        return None
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def content_security_policy(connect: list[str]) -> str:
    """The portal's CSP: scripts, styles and images from this origin only (images also from blob:, for
    records decrypted in the browser); connections to this origin and to ``connect`` (the consortium's nodes,
    whose ciphertexts a patient's browser fetches and verifies itself)."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            "font-src 'self'",
            "connect-src " + " ".join(["'self'", *connect]),
            "worker-src 'self' blob:",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def _serve(request: Request, relative: str) -> Response:
    found = _file(relative)
    if found is None:
        raise ApiError(404, "not_found", "no such portal page")
    body, etag = found
    headers = {
        "ETag": etag,
        # Unhashed names: revalidate every time (a 304 costs a few bytes); the node is on the same network.
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    suffix = PurePosixPath(relative).suffix
    if suffix == ".html":
        others = member_origins(services_of(request).ledger) - {str(request.base_url).rstrip("/")}
        headers["Content-Security-Policy"] = content_security_policy(sorted(others))
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_TYPES.get(suffix, "application/octet-stream"), headers=headers)


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
    if not _NAME.match(name):
        raise ApiError(404, "not_found", "no such portal page")
    return _serve(request, name)


@router.get("/portal/assets/{name}", include_in_schema=False)
def portal_asset(request: Request, name: str) -> Response:
    if not _NAME.match(name):
        raise ApiError(404, "not_found", "no such portal file")
    return _serve(request, f"assets/{name}")
