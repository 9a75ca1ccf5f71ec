"""The node's HTTP API (FastAPI). Staff of the institution authenticate with bearer tokens (see node.auth).

Routes stay thin: authenticate, validate, call a service, shape the reply. OpenAPI docs are served at
``/docs``; the error shape is in node.api.errors.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medledger import __version__
from medledger.errors import error_body
from node.api import ops
from node.api.cors import ConsortiumCors, member_origins
from node.api.deps import Staff
from node.api.errors import install
from node.api.ratelimit import RateLimit
from node.api.responses import errors
from node.auth import StaffIdentity, StaffRole, require_role
from node.service import NodeServices

#: Bodies of every route but ingest are small JSON documents; anything bigger is refused before parsing. (Ingest
#: takes up to ``max_payload_bytes``, enforced while it streams the body in: node.api.ingest.read_limited.)
MAX_JSON_BODY = 64 * 1024


class NodeStatus(BaseModel):
    name: str
    address: str
    version: str
    records_by_status: dict[str, int]


class Health(BaseModel):
    status: str


def create_app(services: NodeServices) -> FastAPI:
    app = FastAPI(
        title=f"MedLedger node — {services.config.name}",
        version=__version__,
        description="Institution node API: ingest clinical records (HL7 v2, DICOM, FHIR JSON) and follow them "
        "through encryption, storage and anchoring. Errors: `{error: {code, message, details}}`.",
    )
    install(app)
    # Outermost last: CORS (so that a browser can read a 429), then the rate limits (a flood of oversized bodies
    # is limited too), then the body limit.
    app.add_middleware(SmallBodyLimit, limit=MAX_JSON_BODY, exempt=("/v1/ingest",))
    app.add_middleware(RateLimit, settings=services.config.rate_limit)
    # The ledger view is built on first use: a node whose chain is down still answers its own origin.
    app.add_middleware(ConsortiumCors, origins=lambda: member_origins(lambda: services.ledger))
    for ctx in services.contexts.values():
        for mounted in ctx.module.routers(ctx):
            dependencies = [Depends(staff_with_role(*mounted.roles))] if mounted.roles else None
            app.include_router(
                mounted.router, prefix=mounted.prefix, tags=list(mounted.tags) or None, dependencies=dependencies
            )

    app.state.services = services

    @app.get("/healthz", tags=["ops"], response_model=Health, summary="Liveness (no authentication)")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/v1/status",
        tags=["ops"],
        response_model=NodeStatus,
        responses=errors(401),
        summary="Node identity and record counts",
    )
    def status(_: Staff) -> NodeStatus:
        return NodeStatus(
            name=services.config.name,
            address=services.address,
            version=__version__,
            records_by_status=services.pipeline.status_counts(),
        )

    app.include_router(ops.router)

    return app


def staff_with_role(*roles: StaffRole) -> Callable[[StaffIdentity], StaffIdentity]:
    """A router-wide dependency: the caller is staff with one of ``roles`` (401/403 before the route runs)."""

    def check(who: Staff) -> StaffIdentity:
        require_role(who, *roles)
        return who

    return check


class SmallBodyLimit:
    """Refuse (413) bodies over ``limit`` on every path but ``exempt``, before anything reads them: a declared
    ``Content-Length`` is checked as is; a chunked body (no length) is read here up to the limit and handed on, so
    nothing behind this buffers more. Plain ASGI rather than ``@app.middleware``: that wrapper costs a task and a
    stream copy per request."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt: tuple[str, ...]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await self._refuse(scope, receive, send)
                    return
                await self.app(scope, receive, send)  # the server delivers no more than the declared length
                return
            if name == b"transfer-encoding":
                chunked = True
        if not chunked:  # neither header: HTTP/1.1 has no body then
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def buffered() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, buffered, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body("payload_too_large", f"request bodies here are limited to {self.limit} bytes")
        await JSONResponse(body, 413)(scope, receive, send)


__all__ = ["create_app"]
