"""Per-identity request rate limits of the node's HTTP API: in-memory token buckets, as plain ASGI middleware.

Who is counted, from the request's headers alone (no database, no signature check here):

- ``Authorization: Bearer mlst_…``: that staff token (keyed by a hash: no secret is kept);
- ``Authorization: Bearer mlpt_…``: the patient the token names;
- another ``Authorization`` header: that credential (it will be refused);
- ``Signature-Input`` (a signed institution request): the signer (``keyid``);
- none of these: the client address.

A claimed identity is only *claimed*: anyone can put a victim's address in a forged patient token or signature.
So a credentialed request is let through while the claimed bucket (and the client address's bucket of refused
credentials) holds a request, and is charged when its answer starts: to the identity if the credentials were
accepted, to the client address if they were refused (401). A forger then spends only their own address's budget,
never the victim's, and a flood of made-up tokens is bounded per address like anonymous requests. Requests without
credentials are charged to the client address up front.

Buckets refill continuously at ``rate`` per second up to ``burst``; a refused request answers ``429 rate_limited``
with ``Retry-After`` (whole seconds until the bucket holds a request again). Concurrent requests of one identity
may overdraw its bucket by the number in flight; the debt is paid back before the next one passes. The middleware
runs on the server's event loop, one request at a time between awaits, so the buckets need no lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medledger.errors import error_body
from node.config import RateLimitSettings

_KEYID = re.compile(rb';keyid="(0x[0-9A-Fa-f]{40})"')
_STAFF_PREFIX = b"bearer mlst_"
_PATIENT_PREFIX = b"bearer mlpt_"


@dataclass(frozen=True, slots=True)
class Policy:
    rate: float  # requests per second, sustained
    burst: int  # requests at once


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class Buckets:
    """Token buckets by key, at most ``max_keys`` of them (least recently used forgotten first)."""

    def __init__(self, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def _bucket(self, key: tuple[str, str], policy: Policy) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(policy.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(float(policy.burst), bucket.tokens + (now - bucket.stamp) * policy.rate)
            bucket.stamp = now
            self._buckets.move_to_end(key)
        return bucket

    def wait(self, key: tuple[str, str], policy: Policy) -> float:
        """Seconds until ``key``'s bucket holds a request (0: it does now); takes nothing, and makes no bucket for
        a key not seen yet (so identities that are only ever claimed, never charged, take no room)."""
        if key not in self._buckets:
            return 0.0
        bucket = self._bucket(key, policy)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / policy.rate

    def charge(self, key: tuple[str, str], policy: Policy) -> None:
        """Take one request from ``key``'s bucket, into debt if need be (at most one burst of it)."""
        bucket = self._bucket(key, policy)
        bucket.tokens = max(bucket.tokens - 1, -float(policy.burst))

    def take(self, key: tuple[str, str], policy: Policy) -> float:
        """Take one request if the bucket holds one; else the seconds to wait (nothing taken)."""
        waiting = self.wait(key, policy)
        if waiting == 0:
            self.charge(key, policy)
        return waiting

    def __len__(self) -> int:
        return len(self._buckets)


def claimed_identity(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """``(kind, key)`` of the identity a request claims (see the module's docstring), None without credentials."""
    authorization = signature_input = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"signature-input":
            signature_input = value
    if authorization is not None:
        lowered = authorization[:12].lower()
        if lowered == _PATIENT_PREFIX:
            address = _token_address(authorization[12:])
            if address is not None:
                return "patient", address
        kind = "staff" if lowered == _STAFF_PREFIX else "credential"
        return kind, hashlib.blake2b(authorization, digest_size=16).hexdigest()
    if signature_input is not None:
        found = _KEYID.search(signature_input)
        signer = (
            found.group(1).decode().lower() if found else hashlib.blake2b(signature_input, digest_size=16).hexdigest()
        )
        return "institution", signer
    return None


def _token_address(body: bytes) -> str | None:
    """The address a patient token's payload names (unverified: see the module's docstring)."""
    payload = body.partition(b".")[0].strip()
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        address = claims["a"]
    except (ValueError, KeyError, TypeError):
        return None
    return address.lower() if isinstance(address, str) and len(address) == 42 else None


#: How a refused request names the bucket that refused it.
_NAMES = {
    "staff": "staff token",
    "patient": "patient",
    "credential": "credential",
    "institution": "institution",
    "address": "client address",
    "refused": "client address (refused credentials)",
}


class RateLimit:
    """ASGI middleware: the limits of ``settings`` on every HTTP request but those to ``settings.exempt_paths``."""

    def __init__(
        self, app: ASGIApp, *, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.enabled = settings.enabled
        self.exempt = frozenset(settings.exempt_paths)
        self.people = Policy(settings.requests_per_s, settings.burst)
        self.institutions = Policy(settings.institution_requests_per_s, settings.institution_burst)
        self.buckets = Buckets(settings.max_tracked, clock)

    def policy(self, kind: str) -> Policy:
        return self.institutions if kind == "institution" else self.people

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        identity = claimed_identity(scope["headers"])
        if identity is None:
            waiting = self.buckets.take(("address", address), self.people)
            if waiting:
                await _refuse(scope, receive, send, "address", waiting)
                return
            await self.app(scope, receive, send)
            return

        refused_key = ("refused", address)
        for key, policy in ((refused_key, self.people), (identity, self.policy(identity[0]))):
            waiting = self.buckets.wait(key, policy)
            if waiting:
                await _refuse(scope, receive, send, key[0], waiting)
                return
        buckets, own = self.buckets, self.policy(identity[0])

        async def charging(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 401:
                    buckets.charge(refused_key, self.people)
                else:
                    buckets.charge(identity, own)
            await send(message)

        await self.app(scope, receive, charging)


async def _refuse(scope: Scope, receive: Receive, send: Send, kind: str, waiting: float) -> None:
    seconds = max(1, math.ceil(waiting))
    body = error_body(
        "rate_limited",
        f"too many requests from this {_NAMES[kind]}: retry in {seconds} s",
        {"retry_after": seconds, "limited": kind},
    )
    await JSONResponse(body, 429, headers={"Retry-After": str(seconds)})(scope, receive, send)
