"""CORS for the consortium's own origins: a patient's portal, served by her home node, signs in at the
custodian's node, reads her notifications there and fetches ciphertexts to verify and decrypt them in the
browser. Only the origins the consortium's members published (their node URLs, on chain) are answered, only on
the routes a patient's browser calls across nodes, and never with credentials (the API takes bearer tokens, not
cookies). Any other origin gets no CORS headers, so its pages cannot read the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medledger.errors import MedLedgerError
from node.ledger_view import LedgerView

#: The API routes a patient's browser calls on another institution's node.
CROSS_NODE_PREFIXES = ("/v1/auth/siwe", "/v1/me/", "/v1/records/")
_METHODS = b"GET, POST, DELETE"
_HEADERS = b"Authorization, Content-Type"
_EXPOSE = b"X-MedLedger-Authorization, X-MedLedger-Commitment, Content-Length"


def origin_of(url: str) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def member_origins(ledger: Callable[[], LedgerView]) -> set[str]:
    """The origins of the node URLs the consortium's active members published, as the ledger view has them;
    none while the ledger cannot be read or even opened (the chain is down at start): each node then serves only
    its own origin. ``ledger`` is called here, so opening a view that cannot be opened is caught too."""
    try:
        members = ledger().members().values()
    except MedLedgerError:
        return set()
    return {o for m in members if (o := origin_of(m.endpoint)) is not None}


class ConsortiumCors:
    """ASGI middleware: CORS answers for ``origins()`` (called per cross-origin request; cache it there)."""

    def __init__(self, app: ASGIApp, *, origins: Callable[[], set[str]]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CROSS_NODE_PREFIXES):
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is None or origin.decode("latin-1") not in self.origins():
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and any(k == b"access-control-request-method" for k, _ in scope["headers"]):
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-allow-methods", _METHODS),
                        (b"access-control-allow-headers", _HEADERS),
                        (b"access-control-max-age", b"600"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", _EXPOSE),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, with_cors)
