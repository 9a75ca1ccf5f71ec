"""Stored ciphertexts against their on-chain commitments, read from a real local blob store."""

from __future__ import annotations

import json
import secrets
import sqlite3

from typer.testing import CliRunner

from clients.auditor import AuditSettings, CiphertextStatus, NodeCiphertextSource, Scope, run_audit
from clients.auditor.ciphertexts import result_from_response
from clients.auditor.cli import app
from clients.auditor.model import CiphertextVerdict
from medledger.cid import cid_for
from node.storage import LocalBlobStore
from node.storage.local import PACK_NAME

from .conftest import Scenario

runner = CliRunner()


def _store(tmp_path, s: Scenario, *names: str):
    root = tmp_path / "blobs"
    store = LocalBlobStore(root, fsync=False)
    for name in names:
        store.put(s.records[name][1])
    return root, store


def _tamper(root, ciphertext: bytes) -> None:
    """Flip a byte of a packed blob behind the store's back, as a disk fault or an intruder would."""
    with sqlite3.connect(root / PACK_NAME) as db:
        bad = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
        assert db.execute("UPDATE blobs SET data = ? WHERE cid = ?", (bad, cid_for(ciphertext))).rowcount == 1


def _ciphertext_findings(report) -> list[tuple[str, str]]:
    return sorted((f.code, f.record_id) for f in report.findings if f.code.startswith(("ciphertext", "erased")))


def test_store_checks_find_mismatch_missing_and_served_after_erasure(chain, scenario, tmp_path):
    s = scenario
    root, store = _store(tmp_path, s, "lab1", "imaging", "erased")
    store.close()
    _tamper(root, s.records["imaging"][1])
    settings = AuditSettings(
        rpc_url=chain.rpc.url, deployments_dir=s.deployments, stores={chain.hospital_a.address: str(root)}
    )
    report = run_audit(Scope.patient(s.patient.address), settings)
    assert report.ciphertexts_checked
    verdicts = {c.record_id: c.verdict for c in report.ciphertexts}
    ids = {k: v[0] for k, v in s.records.items()}
    assert verdicts == {
        ids["lab1"]: CiphertextVerdict.MATCH,
        ids["imaging"]: CiphertextVerdict.MISMATCH,
        ids["lab2"]: CiphertextVerdict.MISSING,
        ids["erased"]: CiphertextVerdict.SERVED_AFTER_ERASURE,
    }
    assert _ciphertext_findings(report) == sorted(
        [
            ("ciphertext_mismatch", ids["imaging"]),
            ("ciphertext_missing", ids["lab2"]),
            ("erased_ciphertext_served", ids["erased"]),
        ]
    )
    # The access checks are unaffected: still the four planted access violations.
    assert len([f for f in report.violations if f.code.startswith("access")]) == 4

    # Shred the erased record and restore the rest: only the tampered blob remains wrong.
    store = LocalBlobStore(root, fsync=False)
    store.delete(cid_for(s.records["erased"][1]))
    store.put(s.records["lab2"][1])
    store.close()
    report = run_audit(Scope.patient(s.patient.address), settings)
    assert _ciphertext_findings(report) == [("ciphertext_mismatch", ids["imaging"])]
    assert {c.record_id: c.verdict for c in report.ciphertexts}[ids["erased"]] == CiphertextVerdict.ERASED


def test_cli_store_option_and_unreachable_custodian_is_a_warning(chain, scenario, tmp_path):
    s = scenario
    root, store = _store(tmp_path, s, "clean")
    store.close()
    common = ["--rpc", chain.rpc.url, "--deployments", str(s.deployments)]
    out = tmp_path / "r.json"
    r = runner.invoke(
        app,
        [
            "patient",
            s.clean_patient.address,
            *common,
            "--store",
            f"{chain.hospital_a.address}={root}",
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["summary"]["ciphertexts_checked"] and data["summary"]["ciphertexts"] == {"match": 1}
    assert data["ciphertexts"][0]["record_id"] == s.records["clean"][0]

    # A store for another custodian only: Hospital A's ciphertext cannot be checked. A warning, still exit 0.
    r = runner.invoke(
        app, ["patient", s.clean_patient.address, *common, "--store", f"{chain.cdc.address}={root}", "--json-out"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["result"] == "clean" and doc["summary"]["warnings"] == 1
    [w] = doc["findings"]
    assert w["code"] == "custodian_unreachable" and w["severity"] == "warning"
    assert w["details"]["custodian"] == chain.hospital_a.address

    # --no-ciphertexts wins over a store.
    r = runner.invoke(
        app, ["patient", s.clean_patient.address, *common, "--store", f"{chain.cdc.address}={root}", "--no-ciphertexts"]
    )
    assert r.exit_code == 0 and "not checked" in r.stdout


def test_auditor_key_enables_node_checks_and_is_never_printed(chain, scenario, monkeypatch):
    s = scenario
    # Point Hospital A's on-chain endpoint at a closed port: the node path runs, and cannot reach it.
    chain.as_(chain.hospital_a).consortium.update_profile("http://127.0.0.1:9", secrets.token_bytes(32))
    key = chain.auditor.key.hex()
    monkeypatch.setenv("AUDIT_TEST_KEY", key)
    common = ["--rpc", chain.rpc.url, "--deployments", str(s.deployments)]
    r = runner.invoke(app, ["patient", s.clean_patient.address, *common, "--key-env", "AUDIT_TEST_KEY", "--json-out"])
    assert r.exit_code == 0, r.output
    assert key not in r.output and key.removeprefix("0x") not in r.output
    doc = json.loads(r.stdout)
    assert doc["summary"]["ciphertexts_checked"] and doc["summary"]["ciphertexts"] == {"unchecked": 1}
    assert [f["code"] for f in doc["findings"]] == ["custodian_unreachable"]


def test_node_source_maps_replies_and_failures():
    ok = result_from_response(200, b"\x01\x02")
    assert ok.status == CiphertextStatus.FOUND and ok.data == b"\x01\x02"
    gone = result_from_response(410, b'{"error":{"code":"record_erased","message":"erased","details":{}}}')
    assert gone.status == CiphertextStatus.ERASED
    missing = result_from_response(404, b'{"error":{"code":"record_not_found","message":"no such record"}}')
    assert missing.status == CiphertextStatus.MISSING
    lost = result_from_response(500, b'{"error":{"code":"blob_not_found","message":"no blob"}}')
    assert lost.status == CiphertextStatus.MISSING
    bad = result_from_response(500, b'{"error":{"code":"blob_corrupted","message":"hash mismatch"}}')
    assert bad.status == CiphertextStatus.CORRUPT
    # A bare 404 (no such route, wrong base URL) proves nothing about the record.
    assert result_from_response(404, b'{"detail":"Not Found"}').status == CiphertextStatus.ERROR
    denied = result_from_response(403, b'{"error":{"code":"forbidden","message":"not an auditor"}}')
    assert denied.status == CiphertextStatus.ERROR and "forbidden" in denied.message
    assert result_from_response(502, b"<html>").status == CiphertextStatus.ERROR

    src = NodeCiphertextSource(object(), {"0x" + "ab" * 20: "http://node.example/"})
    assert src.url_for("0x" + "AB" * 20, "0x" + "CD" * 32) == f"http://node.example/v1/records/0x{'cd' * 32}/ciphertext"
    assert src.fetch("0x" + "11" * 20, "0x" + "cd" * 32).status == CiphertextStatus.ERROR
    src.close()
