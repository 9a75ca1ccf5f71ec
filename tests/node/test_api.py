"""The node's HTTP API through FastAPI's TestClient over real services (keystore, SQLite, blob store).

Every response a test receives is also checked against the OpenAPI document for its route and status, so the
published spec cannot drift from what the API does (including the error shape).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from node.api.app import create_app
from node.auth import StaffRole, create_staff, revoke_staff
from node.ingest.errors import ALL_CODES
from node.service import NodeServices
from tests.node.test_cli import BAD, DATA, PASSWORD, ct_small, make_node

MAX_BYTES = 64 * 1024  # CT_small.dcm (39 kB) fits; the oversize test sends more


@dataclass
class Api:
    client: TestClient
    services: NodeServices
    tokens: dict[str, str]
    spec: dict[str, Any]
    seen: list[tuple[str, str, httpx.Response]] = field(default_factory=list)

    def request(self, method: str, path: str, *, role: str | None = "registrar", **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.seen.append((method, path, response))
        return response

    def ingest(self, body: bytes, **kwargs: Any) -> httpx.Response:
        return self.request("POST", "/v1/ingest", content=body, **kwargs)

    def counts(self) -> dict[str, int]:
        return self.services.pipeline.status_counts()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    data_dir = make_node(tmp_path, max_payload_bytes=MAX_BYTES)
    services = NodeServices.open(data_dir, password=PASSWORD)
    tokens: dict[str, str] = {}
    with services.sessions.begin() as session:
        for role in StaffRole:
            tokens[role.value] = create_staff(session, f"{role.value} staff", role)[1]
        gone, tokens["revoked"] = create_staff(session, "gone", StaffRole.ADMIN)
    with services.sessions.begin() as session:
        revoke_staff(session, gone.id)
    app = create_app(services)
    with TestClient(app, raise_server_exceptions=False) as client:
        result = Api(client, services, tokens, app.openapi())
        yield result
        # Every response of the test conforms to the published spec for its route and status.
        for method, path, response in result.seen:
            check_against_spec(result.spec, method, path, response)
    services.close()


# ---------------------------------------------------------------------------------------------- auth


def test_requests_without_valid_token_are_401(api: Api) -> None:
    r = api.request("GET", "/v1/status", role=None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    r = api.request("GET", "/v1/status", role=None, headers={"Authorization": "Bearer mlst_nottherightone"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = api.request("GET", "/v1/status", role=None, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    r = api.request("POST", "/v1/ingest", role="revoked", content=b"MSH|")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert api.tokens["revoked"] not in r.text


def test_role_checks(api: Api) -> None:
    oru = (DATA / "hl7" / "oru_r01.hl7").read_bytes()
    r = api.ingest(oru, role="auditor")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.counts()["pending_link"] == 0
    assert api.request("GET", "/v1/status", role="auditor").status_code == 200
    for role in ("clinician", "admin"):
        assert api.ingest(oru, role=role).status_code == 201


# ---------------------------------------------------------------------------------------------- ingest

FORMATS = {
    "hl7": (DATA / "hl7" / "oru_r01.hl7", 1, "application/octet-stream"),
    "dicom": (ct_small(), 1, "application/dicom"),
    "fhir": (DATA / "fhir" / "r5_bundle_transaction.json", 10, "application/fhir+json"),
    "fhir_r4b": (DATA / "fhir" / "r4b_bundle_collection.json", 4, "application/json"),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_ingest_each_format(api: Api, fmt: str) -> None:
    path, n, media_type = FORMATS[fmt]
    body = path.read_bytes()
    r = api.ingest(body, headers={"Content-Type": media_type})
    assert r.status_code == 201, r.text
    records = r.json()["records"]
    assert len(records) == n
    assert {rec["status"] for rec in records} == {"pending_link"}
    assert all(rec["record_id"].startswith("0x") and len(rec["record_id"]) == 66 and rec["cid"] for rec in records)
    assert api.counts()["pending_link"] == n

    got = api.request("GET", f"/v1/records/{records[0]['record_id']}", role="auditor")
    assert got.status_code == 200
    assert got.json()["status"] == "pending_link" and got.json()["record_id"] == records[0]["record_id"]
    assert got.json()["commitment"].startswith("0x") and got.json()["tx_hash"] is None

    again = api.ingest(body)
    assert again.status_code == 201
    assert [rec["status"] for rec in again.json()["records"]] == ["duplicate"] * n
    assert [rec["record_id"] for rec in again.json()["records"]] == [rec["record_id"] for rec in records]
    assert api.counts()["pending_link"] == n

    status = api.request("GET", "/v1/status", role="clinician").json()
    assert status["records_by_status"]["pending_link"] == n and status["name"] == "Test Hospital"


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_4xx_with_the_parser_code_and_writes_nothing(api: Api, name: str) -> None:
    code, make = BAD[name]
    blobs = api.services.config.blob_store_url
    before, blobs_before = api.counts(), sorted(p.name for p in Path(blobs).rglob("*"))
    r = api.ingest(make())
    assert r.status_code == (415 if code == "unknown_format" else 422), r.text
    error = r.json()["error"]
    assert error["code"] == code and code in ALL_CODES
    assert "\n" not in error["message"] and error["message"]
    assert isinstance(error["details"], dict)
    assert api.counts() == before
    assert sorted(p.name for p in Path(blobs).rglob("*")) == blobs_before


def test_empty_and_oversize_bodies(api: Api) -> None:
    before = api.counts()
    r = api.ingest(b"")
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_body"
    r = api.ingest(b"MSH|" + b"x" * MAX_BYTES)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for _ in range(MAX_BYTES // 1024 + 2):
            yield b"x" * 1024

    r = api.ingest(chunks())  # type: ignore[arg-type]
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert api.counts() == before


# ---------------------------------------------------------------------------------------------- reads


def test_record_lookup_errors(api: Api) -> None:
    r = api.request("GET", "/v1/records/0x" + "ab" * 32)
    assert r.status_code == 404 and r.json()["error"]["code"] == "record_not_found"
    for bad in ("0x1234", "zz" * 32, "0x" + "ab" * 33):
        r = api.request("GET", f"/v1/records/{bad}")
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_record_id"
    r = api.request("GET", "/v1/records/" + "ab" * 32, role=None)
    assert r.status_code == 401


def test_healthz_and_unknown_routes(api: Api) -> None:
    r = api.request("GET", "/healthz", role=None)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = api.client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.client.delete("/v1/ingest")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------------------------------------- spec


def test_openapi_lists_every_route_with_its_methods_and_errors(api: Api) -> None:
    paths = api.spec["paths"]
    routes = {
        (route.path, method.lower())
        for route in _all_routes(api.client.app.routes)  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.include_in_schema
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert routes == {(p, m) for p, ops in paths.items() for m in ops}
    expected = {
        ("/healthz", "get"): {"200", "429"},
        ("/v1/status", "get"): {"200", "401", "429", "500", "503"},
        ("/v1/ingest", "post"): {"201", "401", "403", "413", "415", "422", "429", "500", "503", "507"},
        ("/v1/records/{record_id}", "get"): {"200", "401", "404", "422", "429", "500", "503"},
    }
    assert {key: set(paths[key[0]][key[1]]["responses"]) for key in expected} == expected
    for path, ops in paths.items():
        for op in ops.values():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorReply", (path, status)
    assert set(paths["/v1/ingest"]["post"]["requestBody"]["content"]) >= {"application/octet-stream"}


# ---------------------------------------------------------------------------------------------- helpers


def _all_routes(routes: list[Any]) -> list[Any]:
    """Routes of the app and of its included routers (FastAPI mounts those lazily, without a prefix here)."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out += _all_routes(inner.routes) if inner is not None else [r]
    return out


def check_against_spec(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """``response`` is documented for its route and status, and its JSON body validates against that schema."""
    template, op = _operation(spec, method, path)
    if op is None:  # an unknown route or method: the generic error shape
        assert response.status_code in (404, 405)
        _validate(spec, {"$ref": "#/components/schemas/ErrorReply"}, response.json(), "$")
        return
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {template} returned undocumented {response.status_code}"
    schema = documented["content"]["application/json"]["schema"]
    _validate(spec, schema, response.json(), "$")


def _operation(spec: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any] | None]:
    path = path.split("?")[0]
    for template, ops in spec["paths"].items():
        parts, actual = template.strip("/").split("/"), path.strip("/").split("/")
        if len(parts) == len(actual) and all(p.startswith("{") or p == a for p, a in zip(parts, actual, strict=True)):
            return template, ops.get(method.lower())
    return path, None


def _validate(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """A small JSON-Schema check (what FastAPI emits: $ref, type, properties, required, items, anyOf,
    additionalProperties); jsonschema is not a dependency of the project."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        _validate(spec, spec["components"]["schemas"][name], value, where)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _validate(spec, option, value, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: matches no anyOf option: {errors}")
    kind = schema.get("type")
    types: dict[str, type | tuple[type, ...]] = {
        "object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool,
        "null": type(None),
    }  # fmt: skip
    if kind is not None:
        assert isinstance(value, types[kind]), f"{where}: expected {kind}, got {value!r}"
        if kind in ("integer", "number"):
            assert not isinstance(value, bool), f"{where}: expected {kind}, got a boolean"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, item in value.items():
            if key in props:
                _validate(spec, props[key], item, f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _validate(spec, schema["additionalProperties"], item, f"{where}.{key}")
            else:
                assert schema.get("additionalProperties", True) is not False, f"{where}: unexpected key {key!r}"
                assert not props or kind != "object" or key in props, f"{where}: undocumented key {key!r}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _validate(spec, schema["items"], item, f"{where}[{i}]")
