"""The operator's routes (node.api.ops): the node's health with its queues, the consortium's members, the staff
accounts. Without a chain (the node says so and keeps counting its queues) and on two real nodes on Anvil
(real numbers: records anchored, accesses logged). Every response is checked against the OpenAPI document."""

# ruff: noqa: F811  (the imported fixtures are, as pytest intends, redefined as each test's argument)

from __future__ import annotations

from typing import Any

import httpx

from tests.node.test_api import FORMATS, Api, api, check_against_spec  # noqa: F401 (the fixture)
from tests.sharing.conftest import Network, network, wait_until  # noqa: F401 (the fixture)


def test_overview_without_a_chain_says_so_and_still_counts_the_queues(api: Api) -> None:
    r = api.request("GET", "/v1/ops/overview", role="auditor")
    assert r.status_code == 200
    body = r.json()
    assert body["node"]["name"] == api.services.config.name and body["node"]["address"] == api.services.address
    chain = body["chain"]
    assert chain["rpc_reachable"] is False and chain["head_block"] is None and chain["ledger_fresh"] is False
    assert chain["error"]["code"]
    assert body["health"] == "failing"
    assert {c["name"]: c["level"] for c in body["checks"]}["chain"] == "failing"
    assert set(body["queues"]) == {"anchor", "anchor_batches", "access_log", "chain_writes", "notifications"}
    assert body["queues"]["anchor"]["counts"] == {
        "pending_link": 0, "queued": 0, "submitted": 0, "confirmed": 0, "erased": 0,
    }  # fmt: skip
    assert body["queues"]["notifications"]["counts"] == {"queued": 0, "sent": 0, "failed": 0}

    path, n, media_type = FORMATS["hl7"]
    assert api.ingest(path.read_bytes(), headers={"Content-Type": media_type}).status_code == 201
    after = api.request("GET", "/v1/ops/overview", role="admin").json()
    anchor = after["queues"]["anchor"]
    assert anchor["counts"]["pending_link"] == n and anchor["pending"] == 0  # waits for its patient, not the chain

    # The members come from the ledger: unknown while it cannot be read.
    r = api.request("GET", "/v1/ops/members", role="clinician")
    assert (r.status_code, r.json()["error"]["code"]) == (503, "ledger_unavailable")


def test_the_staff_list_is_for_admins_and_never_shows_tokens(api: Api) -> None:
    r = api.request("GET", "/v1/staff", role="admin")
    assert r.status_code == 200
    staff = r.json()["staff"]
    by_name = {s["name"]: s for s in staff}
    assert {"admin staff", "clinician staff", "registrar staff", "auditor staff", "gone"} == set(by_name)
    assert by_name["gone"]["active"] is False and by_name["gone"]["revoked_at"] is not None
    assert by_name["clinician staff"] == {**by_name["clinician staff"], "role": "clinician", "active": True}
    assert all("token" not in key for s in staff for key in s) and "mlst_" not in r.text
    for role in ("clinician", "registrar", "auditor"):
        r = api.request("GET", "/v1/staff", role=role)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    for path in ("/v1/staff", "/v1/ops/overview", "/v1/ops/members"):
        assert api.request("GET", path, role=None).status_code == 401
        assert api.request("GET", path, role="revoked").status_code == 401


def _get(network: Network, spec: dict[str, Any], path: str, token: str) -> httpx.Response:
    r = httpx.get(f"{network.a.url}{path}", headers={"Authorization": f"Bearer {token}"})
    check_against_spec(spec, "GET", path, r)
    return r


def test_overview_and_members_on_a_running_node(network: Network) -> None:
    spec = httpx.get(f"{network.a.url}/openapi.json").json()
    token = network.a.tokens["admin"]
    before = _get(network, spec, "/v1/ops/overview", token).json()

    patient, ids = network.patient(records=2)
    patient.grant(network.b.address, [1, 3], 1)
    clinician = network.b.staff("clinician")
    assert clinician.request("GET", f"/v1/patients/{patient.wallet.address}/records/{ids[0]}").status_code == 200

    def logged() -> bool:
        counts = _get(network, spec, "/v1/ops/overview", token).json()["queues"]["access_log"]["counts"]
        return counts["confirmed"] > before["queues"]["access_log"]["counts"]["confirmed"]

    wait_until(logged, what="the read logged on chain")
    body = _get(network, spec, "/v1/ops/overview", token).json()
    chain = body["chain"]
    assert chain["rpc_reachable"] and chain["ledger_fresh"] and chain["member"] is True
    assert "hospital" in chain["roles"]
    assert chain["chain_id"] == network.rpc.chain_id()
    assert chain["head_block"] >= chain["indexed_block"] > 0 and chain["index_lag"] <= 10
    anchor = body["queues"]["anchor"]
    assert anchor["counts"]["confirmed"] == before["queues"]["anchor"]["counts"]["confirmed"] + 2
    assert body["queues"]["anchor_batches"]["counts"]["confirmed"] >= 1
    assert body["health"] in ("ok", "warning"), body["checks"]
    assert {c["name"]: c["level"] for c in body["checks"]}["chain"] == "ok"

    members = _get(network, spec, "/v1/ops/members", network.a.tokens["clinician"]).json()["members"]
    by_name = {m["name"]: m for m in members}
    assert by_name["Hospital A"]["this_node"] is True and by_name["Hospital B"]["this_node"] is False
    assert by_name["Hospital A"]["address"] == network.a.address
    assert "hospital" in by_name["Hospital B"]["roles"]
    assert "auditor" in by_name["Regional Audit Office"]["roles"]
    assert by_name["Hospital B"]["endpoint"] == network.b.url
