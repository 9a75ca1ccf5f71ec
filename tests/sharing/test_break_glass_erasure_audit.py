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
from node.notifications import SmtpChannel
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


def test_break_glass_is_also_sent_to_the_patients_email_without_the_reason(network: Network, smtp) -> None:
    """The patient adds an e-mail contact at B over the API; B's notification worker e-mails the opening (a real
    SMTP server), saying what happened and where to look, not why (the reason may be PHI)."""
    box, port = smtp
    services = network.b.services
    previous = services.notifications.channels.get("email")
    services.notifications.channels["email"] = SmtpChannel(f"smtp+plain://127.0.0.1:{port}", "noreply@b.example")
    try:
        patient, _ = network.patient(records=1)
        with pytest.raises(NodeRefused) as bad:
            patient.add_contact("email", "not an address", network.b.url)
        assert (bad.value.status, bad.value.code) == (422, "notification_invalid")
        contact = patient.add_contact("email", "patient@example.org", network.b.url)
        assert patient.add_contact("email", "patient@example.org", network.b.url)["id"] == contact["id"]
        assert [c["destination"] for c in patient.contacts(network.b.url)] == ["patient@example.org"]
        assert patient.contacts(network.a.url) == []  # contacts are per node

        reason = "Unconscious patient in the ED, anticoagulant history needed"
        network.b.staff("clinician").post(
            f"/v1/patients/{patient.wallet.address}/break-glass", {"reason": reason, "duration_seconds": 600}
        )
        wait_until(lambda: len(box.messages) == 1, what="the break-glass e-mail")
        [mail] = box.messages
        assert mail.rcpt_tos == ["patient@example.org"]
        assert b"Emergency access to your records was opened" in mail.content
        assert reason.encode() not in mail.content and b"anticoagulant" not in mail.content

        patient.remove_contact(contact["id"], network.b.url)
        assert patient.contacts(network.b.url) == []
        with pytest.raises(NodeRefused) as gone:
            patient.remove_contact(contact["id"], network.b.url)
        assert (gone.value.status, gone.value.code) == (404, "contact_not_found")
    finally:
        if previous is None:
            services.notifications.channels.pop("email", None)
        else:
            services.notifications.channels["email"] = previous


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
