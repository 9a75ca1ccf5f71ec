"""JSON and FHIR exports: schema fields, and every AuditEvent valid against the FHIR R4(B) model."""

from __future__ import annotations

import json

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from clients.auditor.cli import app
from clients.auditor.export import ACT_REASON, AUDIT_EVENT_TYPE, ethereum_uri

runner = CliRunner()


def test_fhir_bundle_validates_and_maps_each_access(chain, scenario, tmp_path):
    s = scenario
    path = tmp_path / "bundle.json"
    r = runner.invoke(
        app,
        [
            "patient",
            s.patient.address,
            "--rpc",
            chain.rpc.url,
            "--deployments",
            str(s.deployments),
            "--fhir",
            str(path),
        ],
    )
    assert r.exit_code == 1, r.output
    raw = json.loads(path.read_text())
    bundle = Bundle.model_validate(raw)
    assert bundle.type == "collection" and len(bundle.entry) == 8
    events = [AuditEvent.model_validate(e["resource"]) for e in raw["entry"]]
    assert len({e.id for e in events}) == 8

    chain_id = chain.manifest.chain_id
    for ev in events:
        assert (ev.type.system, ev.type.code) == (AUDIT_EVENT_TYPE, "rest")
        assert ev.subtype[0].code == "read" and ev.action == "R" and ev.recorded.tzinfo is not None
        assert ev.entity[0].role.code == "1"
        assert ev.entity[0].what.identifier.value == ethereum_uri(s.patient.address, chain_id)
        assert ev.agent[0].requestor and ev.agent[1].type.coding[0].code == "CST"
        assert ev.agent[1].who.display == "Hospital A"
        assert ev.source.observer.identifier.value == ethereum_uri(chain.manifest.address("AccessLog"), chain_id)

    failed = [e for e in events if e.outcome == "8"]
    assert len(failed) == 4
    assert any("revoked" in (e.outcomeDesc or "") for e in failed)
    btg = [e for e in events if any(c.coding[0].code == "BTG" for c in e.purposeOfEvent)]
    assert len(btg) == 1 and btg[0].outcome == "0"
    assert {c.coding[0].code for c in btg[0].purposeOfEvent} == {"ETREAT", "BTG"}
    assert all(c.coding[0].system == ACT_REASON for e in events for c in e.purposeOfEvent)
    research = [e for e in events if e.purposeOfEvent[0].coding[0].code == "HRESCH"]
    assert len(research) == 1 and research[0].outcome == "8"
    records = {e.entity[1].what.identifier.value for e in events}
    assert records <= {rid for rid, _ in s.records.values()}


def test_json_export_is_stable_for_the_same_chain(chain, scenario, tmp_path):
    s = scenario
    common = ["--rpc", chain.rpc.url, "--deployments", str(s.deployments)]
    one, two = tmp_path / "1.json", tmp_path / "2.json"
    runner.invoke(app, ["institution", chain.hospital_b.address, *common, "--json", str(one)])
    runner.invoke(app, ["institution", chain.hospital_b.address, *common, "--json", str(two)])
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    a.pop("generated_at"), b.pop("generated_at")
    assert a == b
    assert set(a) == {
        "schema",
        "version",
        "generated_at",
        "result",
        "chain",
        "scope",
        "summary",
        "accesses",
        "grants",
        "break_glass_windows",
        "erasures",
        "ciphertexts",
        "findings",
    } - {"generated_at"}
    assert a["break_glass_windows"][0]["accesses"] == 1 and a["break_glass_windows"][0]["accessor_name"] == "Hospital B"
    assert a["grants"][0]["revoked_block"] is not None and a["grants"][0]["classes"] == ["lab"]
