"""How the portal's files are served, for whoever serves them (the auditor's service; the node's ``portal`` module
has the same rules): the Content-Security-Policy, the security headers, media types, the names a request may ask
for, and the files with their ETags. Standard library only: this package imports nothing of the project."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

STATIC = Path(__file__).resolve().parent / "static"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
#: A file name a request may ask for: no separators, no dot first, so no path can leave ``static/``.
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

SECURITY_HEADERS = {
    # Unhashed names: revalidate every time (a 304 costs a few bytes).
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def content_security_policy(connect: list[str]) -> str:
    """Scripts, styles and images from this origin only (images also from blob:, for records decrypted in the
    browser); connections to this origin and to ``connect``."""
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


@lru_cache(maxsize=64)
def static_file(relative: str) -> tuple[bytes, str] | None:
    """The bytes and ETag of ``static/<relative>`` (``relative`` built from :data:`SAFE_NAME` parts), or None."""
    path = STATIC / relative
    if not path.is_file():
        return None
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def media_type(relative: str) -> str:
    return MEDIA_TYPES.get(PurePosixPath(relative).suffix, "application/octet-stream")


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer for one portal file: 200 with its bytes, or 304 (``body`` empty) when the client's
    ``If-None-Match`` names its ETag; ``headers`` carry the ETag, the security headers and, for pages, the CSP."""

    status: int
    body: bytes
    headers: dict[str, str]
    media_type: str | None


def reply(
    name: str, *, if_none_match: str | None, connect: Callable[[], Iterable[str]], assets: bool = False
) -> Reply | None:
    """The reply for ``static/<name>`` (``static/assets/<name>`` with ``assets``), or None when there is no such
    file or ``name`` is not one a request may ask for. ``connect`` gives the other origins a page may connect to;
    it is asked only for pages."""
    if not SAFE_NAME.match(name):
        return None
    relative = f"assets/{name}" if assets else name
    found = static_file(relative)
    if found is None:
        return None
    body, etag = found
    headers = {"ETag": etag, **SECURITY_HEADERS}
    if relative.endswith(".html"):
        headers["Content-Security-Policy"] = content_security_policy(sorted(connect()))
    if if_none_match == etag:
        return Reply(304, b"", headers, None)
    return Reply(200, body, headers, media_type(relative))
