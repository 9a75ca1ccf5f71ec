"""Schemathesis over the live OpenAPI document of a served node (real Anvil, real HTTP on loopback): every operation,
anonymous, with a staff token and with a patient's SIWE token, every check schemathesis has (examples, coverage,
fuzzing and stateful phases, a fixed seed and a bounded number of examples per operation).

The spec must stay true: no server error (5xx), no response that its documented schema does not describe, no
status, header or content type the document does not name, 405 with ``Allow`` for an undeclared method, a
schema-invalid request never accepted. A schema-valid request may still be refused, but only for what a schema
cannot say (``SEMANTIC``: a cursor the node did not issue, a deadline too far ahead, content that is not a clinical
record, ...): refusing it for an address, record id, purpose or signature that matches the document would mean the
document lies. The figures of each run are printed (``-s``) and checked.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.patient import PatientClient
from clients.wallet import PatientWallet
from medledger.chain.anvil import AnvilProcess
from medledger.chain.deploy import manifest_path
from medledger.chain.devchain import DevConsortium
from medledger.chain.rpc import JsonRpcClient
from node.auth import StaffRole, create_staff
from node.config import NodeConfig, RateLimitSettings
from node.db.models import Record, RecordState
from node.embedded import EmbeddedNode, provision_node
from node.ingest.errors import ALL_CODES as INGEST_CODES
from tests.node.conftest import fhir_record
from tests.sharing.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "test-node-password"
SEED = 20261204
#: Examples per operation and phase: ~1,300 cases per identity, about 10 s each on a 2-core machine.
MAX_EXAMPLES = 20
IDENTITIES = ("anonymous", "staff", "patient")

#: Codes with which a schema-valid request may be refused: what the request means, not its shape.
SEMANTIC = {
    "indexer_bad_query": "a page cursor the node did not issue (cursors are opaque)",
    "deadline_too_far": "a signature deadline more than the relay allows ahead of now",
    "invalid_grant": "grant terms that contradict each other (valid_until before valid_from, no known class)",
    "invalid_reason": "a break-glass reason of blanks",
    "notification_invalid": "a contact destination that is not an address of its channel (e-mail, E.164, https)",
    "channel_unavailable": "a contact channel this node has not configured ([notifications] in node.toml)",
    "empty_body": "an ingest body of nothing",
    **{code: "content that is not a clinical record the node ingests" for code in INGEST_CODES},
}


@dataclass
class Served:
    url: str
    headers: dict[str, list[str]]


@pytest.fixture(scope="module")
def served(
    anvil: AnvilProcess, dev_consortium: DevConsortium, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Hospital A served over loopback; an admin's staff token; a patient signed in with SIWE whose key is
    registered and who has one anchored record here (so the patient's lists are not empty)."""
    rpc = JsonRpcClient(anvil.url)
    snapshot = rpc.call("evm_snapshot")
    root = tmp_path_factory.mktemp("schemathesis")
    deployments = root / "deployments"
    dev_consortium.manifest.save(manifest_path(dev_consortium.manifest.chain_id, deployments))
    key = bytes(dev_consortium.founders["Hospital A"].key)
    provision_node(
        root / "a", "Hospital A", password=PASSWORD, rpc_url=anvil.url, deployments_dir=str(deployments),
        private_key=key, scrypt_n=2**12,
    )  # fmt: skip
    # The rate limits stay in the path but out of the way: this is about the document (test_rate_limit.py is
    # about the limits, and every operation documents their 429).
    config = NodeConfig.load(root / "a")
    config.rate_limit = RateLimitSettings(requests_per_s=100_000, burst=100_000)
    config.save()
    node = EmbeddedNode(root / "a", PASSWORD).start()
    patient: PatientClient | None = None
    try:
        services = node.services
        assert services is not None
        with services.sessions.begin() as s:
            staff_token = create_staff(s, "fuzzing admin", StaffRole.ADMIN)[1]
        wallet = PatientWallet.create()
        patient = PatientClient(wallet, node.url)
        patient.register_key()
        services.directory.link("MRN-ST-1", "HOSP-A", wallet.address, wallet.encryption_public_key)
        [result] = services.pipeline.ingest([fhir_record(1, mrn="MRN-ST-1", source="ehr-st")])
        rid = bytes.fromhex(result.as_api()["record_id"][2:])

        def anchored() -> bool:
            with services.sessions() as s:
                row = s.get(Record, rid)
            return row is not None and row.status == RecordState.CONFIRMED

        wait_until(anchored, what="the patient's record anchored")
        services.ledger.sync()
        patient_token = patient.session().token
        assert patient_token is not None
        yield Served(
            node.url,
            {
                "anonymous": [],
                "staff": ["-H", f"Authorization: Bearer {staff_token}"],
                "patient": ["-H", f"Authorization: Bearer {patient_token}"],
            },
        )
    finally:
        if patient is not None:
            patient.close()
        node.stop()
        rpc.call("evm_revert", [snapshot])
        rpc.close()


@dataclass
class Finding:
    check: str
    operation: str
    status: int | None
    code: str | None


def _run(served: Served, identity: str, out: Path) -> tuple[dict[str, Any], list[Finding], Counter[int]]:
    """One ``st run`` over the node's document: its JSON report, every failed check of its NDJSON events and the
    statuses of every response."""
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{served.url}/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--report", "json,ndjson", "--report-dir", str(out / "reports"), "--request-timeout", "30",
        *served.headers[identity],
    ]  # fmt: skip
    # Run from the test's directory: schemathesis keeps a cache in its working directory, not wanted in the tree.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "SCHEMATHESIS_HOOKS": "tests.node.schemathesis_hooks", "NO_COLOR": "1"}
    done = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=300)
    reports = {p.suffix: p for p in (out / "reports").iterdir()}
    assert ".json" in reports and ".ndjson" in reports, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(reports[".json"].read_text())
    findings: list[Finding] = []
    statuses: Counter[int] = Counter()
    for line in reports[".ndjson"].read_text().splitlines():
        event = json.loads(line).get("ScenarioFinished")
        if not event:
            continue
        recorder = event["recorder"]
        statuses.update(
            i["response"]["status_code"] for i in recorder.get("interactions", {}).values() if i.get("response")
        )
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] == "success":
                    continue
                response = (recorder.get("interactions", {}).get(case_id) or {}).get("response") or {}
                findings.append(
                    Finding(check["name"], recorder.get("label", "?"), response.get("status_code"), _code(response))
                )
    return report, findings, statuses


def _code(response: dict[str, Any]) -> str | None:
    content = (response.get("content") or {}).get("$base64")
    try:
        return str(json.loads(base64.b64decode(content))["error"]["code"]) if content else None
    except (ValueError, KeyError, TypeError):
        return None


@pytest.mark.parametrize("identity", IDENTITIES)
def test_the_spec_holds_under_schemathesis(served: Served, identity: str, tmp_path: Path) -> None:
    report, findings, statuses = _run(served, identity, tmp_path)
    cases = report["test_cases"]
    refused = Counter(f.code for f in findings if f.check == "positive_data_acceptance")
    print(
        f"\nschemathesis {identity}: {report['operations']['tested']} operations, {cases['generated']} cases, "
        f"{report['running_time']:.1f} s; responses by status: {dict(sorted(statuses.items()))}; "
        f"failed checks: {dict(Counter(f.check for f in findings)) or 0}; "
        f"schema-valid requests refused, by code: {dict(refused) or 0}"
    )
    assert report["operations"]["tested"] == report["operations"]["total"] >= 29
    assert report["errors"] == [], report["errors"]
    assert cases["generated"] > 500 and statuses[429] == 0  # the limits are tested on their own
    spec_lies = [f for f in findings if f.check != "positive_data_acceptance" or f.code not in SEMANTIC]
    assert spec_lies == [], "\n".join(f"{f.check}: {f.operation} -> {f.status} {f.code}" for f in spec_lies)


def test_405_names_every_method_of_the_resource(served: Served) -> None:
    """A path with one route per method (GET and POST of the contacts) answers 405 with all of them in ``Allow``."""
    r = httpx.request("PUT", f"{served.url}/v1/me/notification-contacts")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = httpx.request("DELETE", f"{served.url}/healthz")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_the_document_states_the_grammars_the_node_enforces(served: Served) -> None:
    spec = httpx.get(f"{served.url}/openapi.json").json()

    def param(path: str, method: str, name: str) -> dict[str, Any]:
        return next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name)

    assert param("/v1/consent/context/{patient}", "get", "patient")["schema"]["pattern"] == "^0x[0-9a-fA-F]{40}$"
    assert param("/v1/consent/context/{patient}", "get", "patient")["schema"]["format"] == "eth-address"
    for path in ("/v1/records/{record_id}", "/v1/records/{record_id}/release", "/v1/records/{record_id}/ciphertext"):
        assert param(path, "get", "record_id")["schema"]["pattern"] == "^0x[0-9a-fA-F]{64}$"
    assert "treatment" in param("/v1/records/{record_id}/release", "get", "purpose")["schema"]["enum"]
    assert param("/v1/patients", "get", "mrn")["required"] is True
    deadline = spec["components"]["schemas"]["GrantRequest"]["properties"]["deadline"]
    assert (deadline["minimum"], deadline["maximum"]) == (0, 2**256 - 1)  # exact, not the float 2**256
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "429" in op["responses"], (path, method)
            assert op["responses"]["429"]["headers"]["Retry-After"]["required"] is True
            if "requestBody" in op:
                assert "413" in op["responses"], (path, method)
