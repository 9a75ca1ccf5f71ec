"""The demo's story, end to end through the portal in a real browser, on two real nodes and the auditor's own
service on Anvil: Hospital A's clinician uploads a patient's lab result (an HL7 v2 ORU) and CT image (pydicom's
CT_small); the patient signs in to her wallet app (an imported keystore) and grants Hospital B, chosen from the
consortium's members; B's clinician reads A's lab result and CT under that grant; the patient sees both reads,
revokes; B is refused (consent_denied); B opens break-glass and reads; the break-glass is flagged to the patient
among the reads and in her notifications; the auditor's report on her is clean. Every step is screenshotted
(``story-NN-…``) and every page reached has no serious or critical axe-core violation. And the grant form while
her home node cannot read the consortium's member list."""

# ruff: noqa: F811  (the imported fixtures are, as pytest intends, redefined as each test's argument)

from __future__ import annotations

from pathlib import Path
from typing import Any

from clients.wallet import save_wallet
from tests.portal.conftest import axe_violations, screenshot
from tests.portal.test_auditor import AuditorService, _run_in_page, auditor  # noqa: F401 (the fixture)
from tests.portal.test_clinician import open_workspace, patient_files, script_errors
from tests.portal.test_patient import PASSWORD, drain_access_log, import_keystore, open_wallet_app
from tests.sharing.conftest import Network, network  # noqa: F401 (the fixture)


def step(page: Any, name: str) -> None:
    """One step of the story as its reader sees it: no script error, no serious or critical axe violation, and a
    screenshot as an artifact (``story-NN-what``)."""
    assert script_errors(page) == [], (name, page.console_errors)
    assert axe_violations(page) == [], name
    screenshot(page, f"story-{name}")


def test_the_demos_story_through_the_portal(
    network: Network, auditor: AuditorService, page_factory: Any, tmp_path: Path
) -> None:
    a, b = network.a, network.b
    patient, _ = network.patient(records=0)
    addr = patient.wallet.address
    mrn = f"MRN-{network._mrn}-{addr[2:8]}"  # as network.patient() linked her at A

    # --- 1. Hospital A records her lab result and CT image (its clinician's upload page).
    upload = open_workspace(page_factory, a, "upload")
    files = patient_files(mrn)
    upload.get_by_label("Files (HL7 v2, DICOM, FHIR JSON)").set_input_files(
        [{"name": n, "mimeType": "application/octet-stream", "buffer": data} for n, data in files.items()]
    )
    upload.get_by_role("button", name="Upload").click()
    upload.locator("main [role=status]", has_text="2 files processed").wait_for()
    rows = {r.get_attribute("data-file"): r for r in upload.locator("table.upload-results tbody tr").all()}
    assert {f: r.get_attribute("data-status") for f, r in rows.items()} == {"lipids.hl7": "queued", "ct.dcm": "queued"}
    lab_id, ct_id = (rows[f].get_attribute("data-record-id") for f in ("lipids.hl7", "ct.dcm"))
    step(upload, "01-a-uploads-lab-and-ct")
    network.wait_anchored([lab_id, ct_id])

    # --- 2. She signs in to her wallet app (served by B, her home node) with her keystore: both records.
    keystore = save_wallet(patient.wallet, tmp_path / "wallet.json", PASSWORD, iterations=2**10)
    wallet = open_wallet_app(page_factory, network)
    step(wallet, "02-patient-signin")
    import_keystore(wallet, keystore)
    wallet.wait_for_selector("main[data-state=complete]")
    timeline = wallet.locator("#timeline li")
    assert {timeline.nth(i).get_attribute("data-record") for i in range(timeline.count())} == {lab_id, ct_id}
    text = wallet.inner_text("#timeline")
    assert "Hospital A" in text and "Lab result" in text and "Imaging" in text
    step(wallet, "03-patient-timeline")

    # --- 3. She grants Hospital B, chosen from the consortium's members, her lab results and imaging.
    wallet.goto(f"{b.url}/portal/patient.html#/grants")
    wallet.wait_for_selector("#active-grants")
    option = wallet.wait_for_selector(f"#grantee optgroup option[value='{b.address}']", state="attached")
    assert option.inner_text() == "Hospital B — Hospital"  # what it is; relaying is a duty, not shown
    members = wallet.locator("#grantee optgroup option").all_inner_texts()
    assert "Regional Audit Office — Auditor" in members and "Hospital A — Hospital" in members, members
    wallet.get_by_label("Institution", exact=True).select_option(b.address)
    assert wallet.is_hidden("#grantee-address")
    wallet.check("#class-lab")
    wallet.check("#class-imaging")
    wallet.select_option("#purpose", label="Treatment")
    wallet.fill("#days", "7")
    wallet.click("#grant-submit")
    wallet.wait_for_selector("#active-grants li")
    card = wallet.locator("#active-grants li").first
    assert "Hospital B" in card.inner_text() and "Lab result" in card.inner_text() and "Imaging" in card.inner_text()
    [grant] = patient.grants()
    assert (grant["grantee"], grant["purpose"]) == (b.address, "treatment")
    assert sorted(grant["classes"]) == ["imaging", "lab"]
    grant_id = grant["grant_id"]
    step(wallet, "04-patient-grants-b")
    network.sync()

    # --- 4. B's clinician finds her and reads A's lab result and CT image under the grant.
    clinician = open_workspace(page_factory, b)
    clinician.get_by_label("Patient's ledger address").fill(addr)
    clinician.get_by_role("button", name="Show timeline").click()
    clinician.wait_for_selector("table.timeline tbody tr")
    assert {r.get_attribute("data-record") for r in clinician.locator("table.timeline tbody tr").all()} == {
        lab_id, ct_id
    }  # fmt: skip
    step(clinician, "05-b-clinician-timeline")
    clinician.locator(f"tr[data-record='{lab_id}'] a").click()
    clinician.wait_for_selector("table.hl7-results")
    assert clinician.inner_text("#authorization") == f"grant:{grant_id}"
    assert clinician.locator("section.auth [role=alert]").count() == 0  # not break-glass
    step(clinician, "06-b-reads-lab-result")
    clinician.evaluate(f"location.hash = '#/record?p={addr}&id={ct_id}&c=Hospital%20A'")
    clinician.wait_for_selector("canvas.dicom")
    assert clinician.inner_text("#authorization") == f"grant:{grant_id}"
    step(clinician, "07-b-reads-ct-image")

    # --- 5. She sees both reads, by Hospital B under her grant.
    drain_access_log(network)
    wallet.goto(f"{b.url}/portal/patient.html#/accesses")
    wallet.wait_for_selector("#accesses li")
    reads = wallet.locator("#accesses li")
    assert reads.count() == 2
    for record in (lab_id, ct_id):
        read = wallet.locator("#accesses li", has=wallet.locator(f"a[href='#/record?id={record}']"))
        assert read.count() == 1, record
        assert "Hospital B" in read.inner_text() and f"Your grant #{grant_id}" in read.inner_text()
        assert read.get_attribute("data-break-glass") == "0"
    assert wallet.locator("#access-summary [role=alert]").count() == 0
    step(wallet, "08-patient-sees-both-reads")

    # --- 6. She revokes the grant.
    wallet.goto(f"{b.url}/portal/patient.html#/grants")
    wallet.wait_for_selector("#active-grants li")
    wallet.locator("#active-grants li").first.get_by_role("button", name="Revoke").click()
    wallet.wait_for_selector("p#active-grants")
    assert [g["revoked"] for g in patient.grants()] == [True]
    step(wallet, "09-patient-revokes")
    network.sync()

    # --- 7. B's clinician is refused, and offered emergency access.
    clinician.evaluate(f"location.hash = '#/patient?p={addr}'")
    clinician.wait_for_selector(f"tr[data-record='{lab_id}'] a")
    clinician.locator(f"tr[data-record='{lab_id}'] a").click()
    clinician.wait_for_selector("[role=alert][data-code=consent_denied]")
    refusal = clinician.inner_text("[role=alert][data-code=consent_denied]")
    assert "consent_denied" in refusal and "403" in refusal
    step(clinician, "10-b-refused")

    # --- 8. B opens break-glass with a reason and reads the lab result: flagged loudly.
    clinician.get_by_role("link", name="Emergency access (break-glass)").click()
    clinician.wait_for_selector("#break-glass textarea")
    reason = "Unconscious patient in the ED, lipid history needed"
    clinician.get_by_label("Reason (at least 10 characters)").fill(reason)
    clinician.get_by_label("I confirm this is a medical emergency").check()
    clinician.get_by_role("button", name="Open emergency access").click()
    clinician.wait_for_selector("#break-glass [data-break-glass]")
    window = clinician.get_attribute("#break-glass [data-break-glass]", "data-break-glass")
    step(clinician, "11-b-opens-break-glass")
    clinician.locator(f"tr[data-record='{lab_id}'] a").click()
    clinician.wait_for_selector("table.hl7-results")
    assert clinician.inner_text("#authorization") == f"break_glass:{window}"
    assert "BREAK-GLASS" in clinician.inner_text("section.auth [role=alert]")
    step(clinician, "12-b-reads-under-break-glass")

    # --- 9. The break-glass is flagged to her: among the reads, and in her notifications (B's and A's).
    drain_access_log(network)
    wallet.goto(f"{b.url}/portal/patient.html#/accesses")
    wallet.wait_for_selector("#accesses li[data-break-glass='1']")
    glass = wallet.locator("#accesses li[data-break-glass='1']")
    assert glass.count() == 1 and wallet.locator("#accesses li").count() == 3
    assert "Emergency access (break-glass)" in glass.inner_text() and f"Break-glass #{window}" in glass.inner_text()
    assert "Hospital B" in glass.inner_text()
    assert "1 emergency (break-glass)" in wallet.inner_text("#access-summary [role=alert]")
    step(wallet, "13-patient-sees-break-glass-read")
    wallet.goto(f"{b.url}/portal/patient.html#/notifications")
    wallet.wait_for_selector("#notifications li")
    wallet.wait_for_selector("#contacts p:not(.notice), #contacts ul")  # loaded, so the layout stays put

    def kinds() -> list[str | None]:
        items = wallet.locator("#notifications li")
        return sorted(items.nth(i).get_attribute("data-kind") for i in range(items.count()))

    assert kinds() == ["break_glass_access", "break_glass_opened"]
    assert "lipid history" in wallet.inner_text("#notifications")
    step(wallet, "14-patient-notified-of-break-glass")

    # --- 10. The auditor's report on her, from the chain alone: clean.
    report = page_factory()
    _run_in_page(report, auditor, addr)
    assert "Clean." in report.inner_text("#audit-result")
    accesses = report.locator("#accesses tbody tr")
    assert accesses.count() == 3
    rows_text = accesses.all_inner_texts()
    assert all("Hospital B" in r and "Hospital A" in r for r in rows_text)
    assert sum("Laboratory result" in r for r in rows_text) == 2 and sum("Imaging" in r for r in rows_text) == 1
    assert all("Authorized" in r for r in rows_text) and report.inner_text("#findings") == "No findings."
    [emergency] = [r for r in rows_text if "BREAK-GLASS" in r]
    assert f"Break-glass #{window}" in emergency and "Emergency" in emergency
    step(report, "15-auditor-report-clean")

    for p in (upload, wallet, clinician, report):
        assert script_errors(p) == [], p.console_errors


def test_the_grant_form_works_while_the_member_list_cannot_be_read(
    network: Network, page_factory: Any, tmp_path: Path
) -> None:
    """Her home node cannot read the ledger's members (503 ``ledger_unavailable``, as tests/node/test_consortium_api.py
    has a real node answer; answered here by the browser's route so the rest of the node keeps working): the form
    says so, and still offers the institutions she knows of and one named by its address."""
    patient, _ = network.patient(records=1)
    keystore = save_wallet(patient.wallet, tmp_path / "wallet.json", PASSWORD, iterations=2**10)
    wallet = open_wallet_app(page_factory, network)
    body = {
        "error": {"code": "ledger_unavailable", "message": "the consortium's members cannot be read", "details": {}}
    }
    wallet.route("**/v1/consortium/members", lambda route: route.fulfill(status=503, json=body))
    import_keystore(wallet, keystore)
    wallet.goto(f"{network.b.url}/portal/patient.html#/grants")
    wallet.wait_for_selector("#members-status .notice")
    status = wallet.inner_text("#members-status")
    assert "cannot be read right now" in status and status.endswith("ledger_unavailable")
    assert wallet.locator("#grantee optgroup").count() == 0
    options = wallet.locator("#grantee option")
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == [network.a.address, ""]
    assert options.first.inner_text().startswith("Hospital A (")  # her custodian, known from the timeline
    wallet.select_option("#grantee", "")
    wallet.fill("#grantee-address", network.b.address)
    wallet.check("#class-lab")
    wallet.click("#grant-submit")
    wallet.wait_for_selector("#active-grants li")
    assert [g["grantee"] for g in patient.grants()] == [network.b.address]
    step(wallet, "grant-form-without-member-list")
