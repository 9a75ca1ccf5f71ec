"""Break-glass (flagged everywhere, patient notified), erasure by crypto-shredding (410 afterwards, marker on
chain) and the independent audit of all of it from the chain alone, fetching ciphertexts from the nodes."""

from __future__ import annotations

import os

import pytest

from clients.api import NodeRefused
from clients.auditor.audit import AuditSettings, run_audit
from clients.auditor.model import CiphertextVerdict, Scope
from medledger.vocabulary import RecordStatus
from node.access_logger import AccessLogger
from node.db.models import Erasure
from tests.sharing.conftest import Network, wait_until


def drain_access_log(network: Network) -> None:
    a = network.a.services
    logger = AccessLogger(a.sessions, a.contracts.access_log)
    wait_until(lambda: logger.pending() == 0, what="access log on chain")
    network.sync()


def test_break_glass_read_is_flagged_and_notified(network: Network) -> None:
    patient, ids = network.patient(records=1)
    clinician = network.b.staff("clinician")
    addr = patient.wallet.address
    with pytest.raises(NodeRefused):
        clinician.request("GET", f"/v1/patients/{addr}/records/{ids[0]}?purpose=emergency")
    with pytest.raises(NodeRefused) as short:
        clinician.post(f"/v1/patients/{addr}/break-glass", {"reason": "short", "duration_seconds": 600})
    assert short.value.code == "invalid_request"
    opened = clinician.post(
        f"/v1/patients/{addr}/break-glass",
        {"reason": "Unconscious patient in the ED, allergy history needed", "duration_seconds": 600},
    )
    r = clinician.request("GET", f"/v1/patients/{addr}/records/{ids[0]}?purpose=emergency")
    assert r.headers["x-medledger-authorization"] == f"break_glass:{opened['break_glass_id']}"
    with pytest.raises(NodeRefused) as twice:
        clinician.post(
            f"/v1/patients/{addr}/break-glass", {"reason": "Second window while one is open", "duration_seconds": 600}
        )
    assert (twice.value.status, twice.value.code) == (409, "break_glass_already_open")

    drain_access_log(network)
    access = patient.accesses()[0]
    assert access["break_glass"] is True and access["auth_id"] == opened["break_glass_id"]
    at_b = patient.notifications(network.b.url)
    assert [n["kind"] for n in at_b] == ["break_glass_opened"]
    assert at_b[0]["payload"]["reason"].startswith("Unconscious")
    at_a = patient.notifications(network.a.url)
    assert [n["kind"] for n in at_a] == ["break_glass_access"]
    assert at_a[0]["payload"]["record_id"] == ids[0]


def test_erasure_then_410_everywhere_and_clean_audit(network: Network) -> None:
    patient, ids = network.patient(records=2)
    patient.grant(network.b.address, [1, 3], 1)  # demographics + lab, treatment
    clinician = network.b.staff("clinician")
    addr = patient.wallet.address
    assert clinician.request("GET", f"/v1/patients/{addr}/records/{ids[0]}").status_code == 200

    out = patient.erase(ids[0])
    assert out["status"] == "confirmed" and out["tx_hash"]
    a = network.a.services
    assert a.contracts.records.get_record(bytes.fromhex(ids[0][2:])).status == RecordStatus.ERASED
    with a.sessions() as s:
        assert s.get(Erasure, bytes.fromhex(ids[0][2:])) is not None
    with pytest.raises(NodeRefused) as gone:
        patient.download(ids[0])
    assert (gone.value.status, gone.value.code) == (410, "record_erased")
    assert gone.value.details["tx_hash"] == out["tx_hash"]
    with pytest.raises(NodeRefused) as gone_b:
        clinician.request("GET", f"/v1/patients/{addr}/records/{ids[0]}")
    assert (gone_b.value.status, gone_b.value.code) == (410, "record_erased")
    with pytest.raises(NodeRefused) as again:
        patient.erase(ids[0])
    assert again.value.code == "record_erased"
    assert patient.download(ids[1]).content  # the other record is untouched

    drain_access_log(network)
    auditor = network.dev.founders["Regional Audit Office"]
    os.environ["MEDLEDGER_TEST_AUDITOR_KEY"] = bytes(auditor.key).hex()
    try:
        report = run_audit(
            Scope.patient(addr),
            AuditSettings(
                rpc_url=network.rpc.url,
                deployments_dir=network.deployments,
                ciphertexts=True,
                key_env="MEDLEDGER_TEST_AUDITOR_KEY",
            ),
        )
    finally:
        del os.environ["MEDLEDGER_TEST_AUDITOR_KEY"]
    assert report.violations == [], report.violations
    assert len(report.accesses) == 2  # B's read and the patient's own download
    verdicts = {c.record_id.lower(): c.verdict for c in report.ciphertexts}
    assert verdicts == {ids[0].lower(): CiphertextVerdict.ERASED, ids[1].lower(): CiphertextVerdict.MATCH}
