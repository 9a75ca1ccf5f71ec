"""The consortium's directory (node.api.consortium): the active members for any signed-in caller, a patient's
token as well as a staff token; unknown (503) while the ledger cannot be read. On a node without a chain and on
two real nodes on Anvil; every response is checked against the OpenAPI document."""

# ruff: noqa: F811  (the imported fixtures are, as pytest intends, redefined as each test's argument)

from __future__ import annotations

from typing import Any

import httpx

from clients.wallet import PatientWallet
from node.api import audit, clinical, consent, directory_routes, me, records, signin
from tests.node.test_api import Api, api, check_against_spec  # noqa: F401 (the fixture)
from tests.sharing.conftest import Network, network  # noqa: F401 (the fixture)

PATH = "/v1/consortium/members"


def _patient_token(get: Any, post: Any) -> str:
    """Sign in with Ethereum as a new patient, as the wallet app does."""
    wallet = PatientWallet.create()
    ctx = get("/v1/auth/siwe/nonce").json()
    text, sig = wallet.siwe(domain=ctx["domain"], uri=ctx["uri"], chain_id=ctx["chain_id"], nonce=ctx["nonce"])
    r = post("/v1/auth/siwe", json={"message": text, "signature": "0x" + sig.hex()})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def test_without_a_ledger_the_members_are_unknown_and_callers_must_sign_in(api: Api) -> None:
    for role in ("clinician", "registrar", "admin", "auditor"):
        r = api.request("GET", PATH, role=role)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "ledger_unavailable"), role
    # A patient's token is checked by the node's identity service, which needs the chain (its id) like sign-in
    # does: 503 here too. The running nodes below take real patient tokens.
    r = api.request("GET", PATH, role=None, headers={"Authorization": "Bearer mlpt_forged.payload"})
    assert (r.status_code, r.json()["error"]["code"]) == (503, "chain_unavailable")
    for headers in (
        {},
        {"Authorization": "Bearer mlst_not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ):
        r = api.request("GET", PATH, role=None, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthenticated"), headers
        assert r.headers["www-authenticate"] == "Bearer"
    assert api.request("GET", PATH, role="revoked").status_code == 401


def test_the_directory_is_documented_for_both_kinds_of_token(api: Api) -> None:
    op = api.spec["paths"][PATH]["get"]
    assert {"200", "401", "500", "503"} <= set(op["responses"])
    assert {name for alternative in op["security"] for name in alternative} == {"StaffToken", "PatientToken"}
    assert api.spec["components"]["schemas"]["ConsortiumMember"]["required"] == ["address", "name", "roles", "endpoint"]
    # Appended last to the sharing module: its earlier routes keep their places in the document.
    paths = list(api.spec["paths"])
    routers = (signin, consent, records, me, audit, clinical, directory_routes)
    earlier = {r.path for m in routers for r in m.router.routes}
    assert max(paths.index(p) for p in earlier) < paths.index(PATH)


def test_a_patient_and_staff_read_the_members_on_a_running_node(network: Network) -> None:
    a, b = network.a, network.b
    spec = httpx.get(f"{b.url}/openapi.json").json()

    def get(path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.get(f"{b.url}{path}", headers=headers)
        check_against_spec(spec, "GET", path, r)
        return r

    token = _patient_token(get, lambda p, **kw: httpx.post(f"{b.url}{p}", **kw))
    as_patient = get(PATH, token)
    assert as_patient.status_code == 200
    members = as_patient.json()["members"]
    by_name = {m["name"]: m for m in members}
    assert {"Hospital A", "Hospital B", "Regional Audit Office"} <= set(by_name)
    assert by_name["Hospital A"] == {
        "address": a.address, "name": "Hospital A", "roles": by_name["Hospital A"]["roles"], "endpoint": a.url,
    }  # fmt: skip
    assert by_name["Hospital B"]["endpoint"] == b.url and "hospital" in by_name["Hospital B"]["roles"]
    assert "auditor" in by_name["Regional Audit Office"]["roles"]
    assert [m["name"].casefold() for m in members] == sorted(m["name"].casefold() for m in members)
    # Staff of any role see the same directory; it matches the operator's view (without its node-local fields).
    for role in ("clinician", "auditor"):
        assert get(PATH, b.tokens[role]).json() == as_patient.json()
    ops = httpx.get(f"{b.url}/v1/ops/members", headers={"Authorization": f"Bearer {b.tokens['admin']}"}).json()
    assert sorted((m["address"], m["name"], m["roles"], m["endpoint"]) for m in ops["members"]) == sorted(
        (m["address"], m["name"], m["roles"], m["endpoint"]) for m in members
    )
    # A patient token is this node's: another node's does not sign in here.
    assert get(PATH).status_code == 401
    assert get(PATH, "mlpt_forged.payload").status_code == 401
    other = _patient_token(lambda p: httpx.get(f"{a.url}{p}"), lambda p, **kw: httpx.post(f"{a.url}{p}", **kw))
    assert (get(PATH, other).status_code, get(PATH, other).json()["error"]["code"]) == (401, "unauthenticated")
