"""The API's rate limits (node.api.ratelimit) and body-size limits (node.api.app.SmallBodyLimit, the ingest route's
own): per identity, 429 ``rate_limited`` with ``Retry-After``, forged identities charged to the forger, every
endpoint's body bounded whether its length is declared or the body is chunked.

The buckets are driven with a fake clock through the middleware's ASGI interface (so a test can be any client
address); the node's own app is then tested through FastAPI's TestClient over real services, and the body limits
through a real uvicorn server on loopback (chunked bodies are the server's framing).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from medledger.errors import ConfigError
from node.api.app import MAX_JSON_BODY, create_app
from node.api.ratelimit import Buckets, Policy, RateLimit, claimed_identity
from node.auth import StaffRole, create_staff
from node.config import NodeConfig, RateLimitSettings
from node.embedded import free_port
from node.service import NodeServices
from tests.node.test_api import check_against_spec
from tests.node.test_cli import PASSWORD, make_node

VICTIM = "0x" + "ab" * 20
SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def patient_token(address: str, mac: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"a": address, "e": 2**40}).encode()).rstrip(b"=").decode()
    return f"mlpt_{payload}.{mac}"


# ---------------------------------------------------------------------------------------------- buckets


def test_a_bucket_gives_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets, policy, key = Buckets(10, clock), Policy(rate=2.0, burst=3), ("address", "10.0.0.1")
    assert [buckets.take(key, policy) for _ in range(3)] == [0, 0, 0]
    assert buckets.take(key, policy) == pytest.approx(0.5)  # one request comes back in 1/rate s
    clock.now += 0.5
    assert buckets.take(key, policy) == 0
    clock.now += 100  # never above the burst, however long it rests
    assert [buckets.take(key, policy) for _ in range(4)][-1] > 0


def test_charges_after_the_fact_run_into_debt_and_are_paid_back() -> None:
    clock = Clock()
    buckets, policy, key = Buckets(10, clock), Policy(rate=1.0, burst=2), ("staff", "x")
    for _ in range(5):  # five requests in flight at once all passed the check; each is charged when it answers
        buckets.charge(key, policy)
    assert buckets.wait(key, policy) == pytest.approx(3.0)  # -2 (debt is capped at one burst) back to 1
    clock.now += 3
    assert buckets.wait(key, policy) == 0


def test_least_recently_used_buckets_are_forgotten_beyond_the_cap() -> None:
    buckets, policy = Buckets(3, Clock()), Policy(rate=1.0, burst=1)
    for i in range(5):
        buckets.take(("address", str(i)), policy)
    assert len(buckets) == 3
    assert buckets.take(("address", "0"), policy) == 0  # forgotten: full again
    assert buckets.take(("address", "4"), policy) > 0  # remembered: still empty


def test_the_claimed_identity_comes_from_the_headers() -> None:
    staff = [(b"authorization", b"Bearer mlst_secret")]
    kind, key = claimed_identity(staff) or ("", "")
    assert kind == "staff" and "secret" not in key  # a hash: no token is kept
    checksummed_victim = "0x" + VICTIM[2:].upper()
    patient = [(b"authorization", b"Bearer " + patient_token(checksummed_victim, "m").encode())]
    assert claimed_identity(patient) == ("patient", VICTIM)  # the address, in one spelling
    signed = f'sig1=("@method");created=1;expires=2;nonce="n";keyid="{SIGNER}";alg="eth-personal-sign"'
    assert claimed_identity([(b"signature-input", signed.encode())]) == ("institution", SIGNER.lower())
    assert claimed_identity([(b"authorization", b"Basic dXNlcjpwYXNz")])[0] == "credential"  # type: ignore[index]
    assert claimed_identity([(b"authorization", b"Bearer mlpt_not-base64!")])[0] == "credential"  # type: ignore[index]
    assert claimed_identity([(b"accept", b"*/*")]) is None


# ---------------------------------------------------------------------------------------------- the middleware


def _authenticating_app(valid: set[str]) -> Any:
    """Stands for the node: 200 for a credential in ``valid`` or no credential at all, else 401."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        auth = dict(scope["headers"]).get(b"authorization")
        status = 200 if auth is None or auth.decode() in valid else 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def _call(mw: RateLimit, *, client: str = "10.0.0.1", auth: str | None = None, path: str = "/v1/x") -> tuple[int, dict]:
    headers = [(b"authorization", auth.encode())] if auth else []
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "client": (client, 5000)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(mw(scope, receive, send))  # type: ignore[arg-type]
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


def _limiter(valid: set[str], clock: Clock, **settings: Any) -> RateLimit:
    base = {"requests_per_s": 1.0, "burst": 3, "institution_requests_per_s": 10.0, "institution_burst": 30}
    return RateLimit(_authenticating_app(valid), settings=RateLimitSettings(**(base | settings)), clock=clock)


def test_each_identity_has_its_own_bucket() -> None:
    clock = Clock()
    a, b = "Bearer mlst_a", "Bearer mlst_b"
    mw = _limiter({a, b}, clock)
    assert [_call(mw, auth=a)[0] for _ in range(4)] == [200, 200, 200, 429]
    status, headers = _call(mw, auth=a)
    assert status == 429 and headers["retry-after"] == "1"
    assert _call(mw, auth=b)[0] == 200  # another staff token, same address
    assert [_call(mw)[0] for _ in range(4)] == [200, 200, 200, 429]  # no credentials: the address's own bucket
    assert _call(mw, client="10.0.0.2")[0] == 200
    clock.now += 1
    assert _call(mw, auth=a)[0] == 200


def test_retry_after_is_the_whole_seconds_until_a_request_is_back() -> None:
    clock = Clock()
    mw = _limiter(set(), clock, requests_per_s=0.25, burst=1)
    assert _call(mw)[0] == 200
    status, headers = _call(mw)
    assert status == 429 and headers["retry-after"] == "4"
    clock.now += 2.5
    assert _call(mw)[1]["retry-after"] == "2"  # 1.5 s, rounded up


def test_forged_identities_are_charged_to_the_forger_never_to_the_victim() -> None:
    clock = Clock()
    real = "Bearer " + patient_token(VICTIM, "good-mac")
    forged = "Bearer " + patient_token(VICTIM, "forged-mac")  # names the victim, refused (401) by the node
    mw = _limiter({real}, clock)
    assert [_call(mw, client="6.6.6.6", auth=forged)[0] for _ in range(5)] == [401, 401, 401, 429, 429]
    assert [_call(mw, client="10.0.0.1", auth=real)[0] for _ in range(3)] == [200, 200, 200]  # untouched
    # Refused credentials are bounded per address whatever they claim: made-up staff tokens too.
    assert _call(mw, client="6.6.6.6", auth="Bearer mlst_guess")[0] == 429
    # ... and an address that keeps failing waits even with good credentials, until its bucket refills.
    assert _call(mw, client="6.6.6.6", auth=real)[0] == 429
    clock.now += 2
    assert _call(mw, client="6.6.6.6", auth=real)[0] == 200


def test_signed_institutions_get_their_own_larger_budget() -> None:
    mw = _limiter(set(), Clock())
    signed = f'sig1=();created=1;expires=2;nonce="n";keyid="{SIGNER}";alg="eth-personal-sign"'.encode()

    def call() -> int:
        scope = {"type": "http", "method": "GET", "path": "/v1/records/x/release", "client": ("10.0.0.9", 1)}
        scope["headers"] = [(b"signature-input", signed)]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(mw(scope, receive, send))  # type: ignore[arg-type]
        return int(sent[0]["status"])

    assert [call() for _ in range(31)].count(429) == 1  # institution_burst = 30


def test_exempt_paths_and_a_disabled_limiter_are_never_limited() -> None:
    clock = Clock()
    mw = _limiter(set(), clock)
    assert {_call(mw, path="/healthz")[0] for _ in range(20)} == {200}
    off = _limiter(set(), clock, enabled=False)
    assert {_call(off)[0] for _ in range(20)} == {200}


def test_settings_round_trip_and_are_checked(tmp_path: Path) -> None:
    config = NodeConfig(name="Q", data_dir=tmp_path, rate_limit=RateLimitSettings(requests_per_s=5.5, burst=9))
    config.save()
    assert "[rate_limit]" in (tmp_path / "node.toml").read_text()
    assert NodeConfig.load(tmp_path).rate_limit == config.rate_limit
    (tmp_path / "node.toml").write_text('name = "X"\n[rate_limit]\nburst = 0\n')
    with pytest.raises(ConfigError, match="rate_limit"):
        NodeConfig.load(tmp_path)
    (tmp_path / "node.toml").write_text('name = "X"\n[rate_limit]\nrequests_per_sec = 5\n')
    with pytest.raises(ConfigError, match="requests_per_sec"):
        NodeConfig.load(tmp_path)


def test_the_defaults_leave_room_for_the_benchmarks() -> None:
    """bench/access.py: 16 clients of one institution at up to ~930 releases/s for ~10 s; people, portals less."""
    d = RateLimitSettings()
    assert d.enabled and d.institution_requests_per_s >= 5 * 930 and d.institution_burst >= 10_000
    assert d.requests_per_s >= 100 and d.burst >= 500 and "/healthz" in d.exempt_paths


# ---------------------------------------------------------------------------------------------- the node's app


def _open(tmp_path: Path, **limits: Any) -> NodeServices:
    data_dir = make_node(tmp_path, max_payload_bytes=256 * 1024)
    config = NodeConfig.load(data_dir)
    config.rate_limit = RateLimitSettings(**limits)
    config.save()
    return NodeServices.open(data_dir, password=PASSWORD)


def test_the_node_answers_429_rate_limited_with_retry_after_as_documented(tmp_path: Path) -> None:
    services = _open(tmp_path, requests_per_s=0.01, burst=2)
    with services.sessions.begin() as s:
        token = create_staff(s, "desk", StaffRole.REGISTRAR)[1]
    app = create_app(services)
    spec = app.openapi()
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            auth = {"Authorization": f"Bearer {token}"}
            answers = [client.get("/v1/status", headers=auth) for _ in range(3)]
            assert [r.status_code for r in answers] == [200, 200, 429]
            limited = answers[-1]
            assert limited.json()["error"]["code"] == "rate_limited"
            assert limited.json()["error"]["details"] == {"retry_after": 100, "limited": "staff"}
            assert limited.headers["retry-after"] == "100"
            for r in answers:
                check_against_spec(spec, "GET", "/v1/status", r)
            assert client.get("/healthz").status_code == 200  # exempt
            assert [client.get("/v1/auth/siwe/nonce").status_code for _ in range(3)][-1] == 429  # the address
            assert client.get("/openapi.json").status_code == 429  # every path, the document's too
    finally:
        services.close()


# ---------------------------------------------------------------------------------------------- body limits


@dataclass
class Served:
    url: str
    services: NodeServices
    token: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The node's app on a real uvicorn server (no chain: the limits answer before any route needs one)."""
    services = _open(tmp_path)
    with services.sessions.begin() as s:
        token = create_staff(s, "desk", StaffRole.REGISTRAR)[1]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", services, token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.close()


def _code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_every_endpoint_refuses_a_body_over_its_limit(served: Served) -> None:
    url, services = served.url, served.services
    spec = httpx.get(f"{url}/openapi.json").json()
    big = b"{" + b" " * MAX_JSON_BODY + b"}"
    checked = 0
    for template, ops in spec["paths"].items():
        path = template.replace("{record_id}", "0x" + "ab" * 32).replace("{patient}", VICTIM)
        path = path.replace("{grant_id}", "1").replace("{contact_id}", "1")
        for method in ops:
            limit = services.config.max_payload_bytes if template == "/v1/ingest" else MAX_JSON_BODY
            body = big if limit == MAX_JSON_BODY else b"MSH|" + b"x" * limit
            # Ingest authenticates before it reads (an anonymous upload is refused unread); the others refuse first.
            headers = {"content-type": "application/json", "authorization": f"Bearer {served.token}"}
            r = httpx.request(method.upper(), url + path, content=body, headers=headers)
            assert _code(r) == (413, "payload_too_large"), (method, template, r.status_code)
            checked += 1
    assert checked >= 29


def test_a_chunked_body_is_bounded_too(served: Served) -> None:
    url = served.url

    def chunks(total: int) -> Iterator[bytes]:  # no Content-Length: the server sees Transfer-Encoding: chunked
        yield b'{"patient": "'
        for _ in range(total // 1024):
            yield b"x" * 1024
        yield b'"}'

    headers = {"content-type": "application/json"}
    r = httpx.post(f"{url}/v1/consents", content=chunks(MAX_JSON_BODY + 1024), headers=headers)
    assert _code(r) == (413, "payload_too_large")
    # Under the limit the body reaches the route whole (and is judged on its content).
    r = httpx.post(f"{url}/v1/consents", content=chunks(2048), headers=headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert any(p["loc"][:2] == ["body", "patient"] for p in r.json()["error"]["details"]["problems"])
