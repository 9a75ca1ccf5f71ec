"""The clinician workspace in a real browser against two real nodes on Anvil: staff sign-in (form and URL
fragment, a bad token refused with its code), upload records for ingest at Hospital A with a result per file,
then at Hospital B: find the patient, the timeline across custodians, A's lab result refused without consent
(the error and its code shown), read under the patient's grant (the authorization shown) as an HL7 table and a
CT image whose canvas matches pydicom's windowing, and break-glass opened with a reason and flagged loudly.
axe-core finds no serious or critical violation on any view; each view is screenshotted."""

# ruff: noqa: F811  (the imported `network` fixture is, as pytest intends, redefined as each test's argument)

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medledger.vocabulary import Purpose, RecordClass
from tests.portal.conftest import PHONE, axe_violations, screenshot
from tests.sharing.conftest import Institution, Network, network  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]
ORU = (ROOT / "tests" / "node" / "data" / "hl7" / "oru_r01.hl7").read_bytes()
CT = Path(str(get_testdata_file("CT_small.dcm", download=False))).read_bytes()


def open_workspace(page_factory: Any, inst: Institution, view: str = "find", **kwargs: Any) -> Any:
    """A clinician's page at ``inst``, signed in through the URL fragment (as the demo's links do)."""
    page = page_factory(**kwargs)
    page.goto(f"{inst.url}/portal/clinician.html#token={inst.tokens['clinician']}")
    page.wait_for_selector("header .who")
    if view != "find":
        page.evaluate(f"location.hash = '#/{view}'")
    page.wait_for_selector("main h1")
    return page


def script_errors(page: Any) -> list[str]:
    """Console errors but the browser's own line for each refused request (the tests cause those on purpose)."""
    return [e for e in page.console_errors if not e.startswith("Failed to load resource")]


def check_page(page: Any, name: str) -> None:
    assert axe_violations(page) == [], name
    screenshot(page, f"clinician-{name}")


def patient_files(mrn: str) -> dict[str, bytes]:
    """A's feeds for the patient: the lab's ORU message and a CT instance (pydicom's CT_small), relabelled."""
    oru = ORU.replace(b"MRN-4004^^^LABCORP^MR", mrn.encode() + b"^^^HOSP-A^MR")
    ds = pydicom.dcmread(io.BytesIO(CT))
    ds.PatientID, ds.IssuerOfPatientID = mrn, "HOSP-A"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return {"lipids.hl7": oru, "ct.dcm": buf.getvalue()}


def test_sign_in_with_a_token_and_refuse_a_bad_one(network: Network, page_factory: Any) -> None:
    b = network.b
    page = page_factory()
    page.goto(f"{b.url}/portal/clinician.html")
    page.wait_for_url(re.compile(r".*#/signin.*"))
    assert page.inner_text("main h1") == "Staff sign-in"
    # The token field has focus and a label; an empty submit is refused in words.
    assert page.evaluate("document.activeElement.name") == "token"
    page.get_by_role("button", name="Sign in").click()
    assert page.get_attribute("[role=alert]", "data-code") == "token_missing"
    page.get_by_label("Staff token").fill("mlst_not-a-real-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("[role=alert][data-code=unauthenticated]")
    alert = page.inner_text("[role=alert]")
    assert "not valid" in alert and "unauthenticated" in alert and "401" in alert
    assert page.evaluate("sessionStorage.getItem('medledger.clinician.token')") is None
    check_page(page, "signin-refused")

    page.get_by_label("Staff token").fill(b.tokens["clinician"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("header .who")
    assert page.inner_text("main h1") == "Find a patient"
    assert "Hospital B" in page.inner_text("header .who")
    check_page(page, "find")
    # A wrong address is refused before any request.
    page.get_by_label("Patient's ledger address").fill("0x1234")
    page.get_by_role("button", name="Show timeline").click()
    assert page.get_attribute("[role=alert]", "data-code") == "invalid_address"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*#/signin.*"))
    assert page.evaluate("sessionStorage.getItem('medledger.clinician.token')") is None
    assert script_errors(page) == []

    # The demo's link: the token in the fragment signs in and leaves the address bar at once.
    zh = page_factory(locale="zh-CN", viewport=PHONE)
    zh.goto(f"{b.url}/portal/clinician.html#token={b.tokens['clinician']}")
    zh.wait_for_selector("header .who")
    assert b.tokens["clinician"] not in zh.url and zh.url.endswith("#/find")
    assert zh.inner_text("main h1") == "查找患者"
    check_page(zh, "find-zh-CN")


def test_upload_then_read_across_institutions_with_consent_and_break_glass(network: Network, page_factory: Any) -> None:
    a, b = network.a, network.b
    patient, ids = network.patient(records=1)
    addr = patient.wallet.address
    mrn = f"MRN-{network._mrn}-{addr[2:8]}"  # as network.patient() linked it at A

    # --- Hospital A's clinician uploads the lab's message, the CT and two bad files: one result per file.
    up = open_workspace(page_factory, a, "upload")
    assert up.inner_text("main h1") == "Upload records"
    files = patient_files(mrn) | {"cut.dcm": CT[:5000], "notes.txt": b"hello world\n"}
    up.get_by_label("Files (HL7 v2, DICOM, FHIR JSON)").set_input_files(
        [{"name": n, "mimeType": "application/octet-stream", "buffer": data} for n, data in files.items()]
    )
    up.get_by_role("button", name="Upload").click()
    up.locator("main [role=status]", has_text="4 files processed").wait_for()
    rows = {r.get_attribute("data-file"): r for r in up.locator("table.upload-results tbody tr").all()}
    assert set(rows) == set(files)
    assert rows["lipids.hl7"].get_attribute("data-status") == "queued"
    assert rows["ct.dcm"].get_attribute("data-status") == "queued"
    assert (rows["cut.dcm"].get_attribute("data-status"), rows["cut.dcm"].get_attribute("data-code")) == (
        "refused", "dicom_truncated"
    )  # fmt: skip
    assert "cut off" in rows["cut.dcm"].inner_text() and "HTTP 422" in rows["cut.dcm"].inner_text()
    assert rows["notes.txt"].get_attribute("data-code") == "unknown_format"
    assert "Stored, anchoring" in rows["lipids.hl7"].inner_text() and "Lab result" in rows["lipids.hl7"].inner_text()
    assert "1 failed" not in up.inner_text("main [role=status]") and "2 failed" in up.inner_text("main [role=status]")
    check_page(up, "upload-results")
    lab_id = rows["lipids.hl7"].get_attribute("data-record-id")
    ct_id = rows["ct.dcm"].get_attribute("data-record-id")
    network.wait_anchored([lab_id, ct_id])

    # --- Hospital B's clinician finds the patient: A's three records on one timeline.
    page = open_workspace(page_factory, b)
    page.get_by_label("Patient's ledger address").fill(addr)
    page.get_by_role("button", name="Show timeline").click()
    page.wait_for_selector("table.timeline tbody tr")
    items = page.locator("table.timeline tbody tr")
    assert items.count() == 3
    assert {r.get_attribute("data-record") for r in items.all()} == {ids[0], lab_id, ct_id}
    assert set(page.locator("table.timeline tbody td:nth-child(3)").all_inner_texts()) == {"Hospital A"}
    assert "Imaging" in page.inner_text("table.timeline") and "Lab result" in page.inner_text("table.timeline")
    check_page(page, "timeline")

    # No grant yet: A refuses, and the page says so with the code.
    page.locator(f"tr[data-record='{lab_id}'] a").click()
    page.wait_for_selector("[role=alert][data-code=consent_denied]")
    assert "consent_denied" in page.inner_text("[role=alert]") and "403" in page.inner_text("[role=alert]")
    assert page.get_by_role("link", name="Emergency access (break-glass)").count() == 1
    check_page(page, "record-refused")

    # The patient grants B lab results and imaging for treatment: the same view now reads A's record.
    grant = patient.grant(b.address, [RecordClass.LAB, RecordClass.IMAGING], Purpose.TREATMENT, days=1)
    page.get_by_role("button", name="Read with this purpose").click()
    page.wait_for_selector("table.hl7-results")
    assert page.inner_text("#authorization") == f"grant:{grant['grant_id']}"
    assert f"the patient's grant #{grant['grant_id']}" in page.inner_text("section.auth")
    assert a.address in page.inner_text("section.auth")
    first = page.locator("table.hl7-results tbody tr").nth(0).locator("td").all_inner_texts()
    assert first[1:5] == ["185", "mg/dL", "<200", "N (normal)"]
    assert page.locator("section.auth [role=alert]").count() == 0  # not break-glass
    check_page(page, "record-hl7")

    # The CT, windowed as pydicom windows it.
    page.evaluate(f"location.hash = '#/record?p={addr}&id={ct_id}&c=Hospital%20A'")
    page.wait_for_selector("canvas.dicom")
    page.get_by_label("Window center").fill("40")
    page.get_by_label("Window width").fill("400")
    page.wait_for_selector("canvas.dicom[data-width='400'][data-center='40']")
    points = [(10, 20), (64, 64), (40, 100), (100, 40)]
    got = page.evaluate(
        """(points) => { const c = document.querySelector('canvas.dicom').getContext('2d');
                         return points.map(([y, x]) => c.getImageData(x, y, 1, 1).data[0]); }""",
        points,
    )
    ds = pydicom.dcmread(io.BytesIO(CT))
    # CT_small's pixels are signed 16-bit little endian (read without numpy: this test needs none).
    stored = struct.unpack(f"<{ds.Rows * ds.Columns}h", ds.PixelData)
    for (y, x), value in zip(points, got, strict=True):
        c, w = 40 - 0.5, 400 - 1  # PS3.3 C.11.2.1.2.1 (LINEAR)
        v = stored[y * ds.Columns + x] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        want = 0 if v <= c - w / 2 else 255 if v > c + w / 2 else ((v - c) / w + 0.5) * 255
        assert abs(value - want) <= 0.5, (y, x, value, want)
    assert page.inner_text("#authorization") == f"grant:{grant['grant_id']}"
    check_page(page, "record-ct")

    # The same views on a phone, in Chinese.
    phone = open_workspace(page_factory, b, locale="zh-CN", viewport=PHONE)
    phone.evaluate(f"location.hash = '#/patient?p={addr}'")
    phone.wait_for_selector("table.timeline tbody tr")
    assert "检验结果" in phone.inner_text("table.timeline")
    check_page(phone, "timeline-phone-zh-CN")
    phone.evaluate(f"location.hash = '#/record?p={addr}&id={lab_id}'")
    phone.wait_for_selector("table.hl7-results")
    assert "患者的授权" in phone.inner_text("section.auth")
    check_page(phone, "record-hl7-phone-zh-CN")
    phone.evaluate(f"location.hash = '#/record?p={addr}&id={ct_id}'")
    phone.wait_for_selector("canvas.dicom")
    check_page(phone, "record-ct-phone-zh-CN")

    # --- Break-glass on another patient, whom nobody granted anything.
    other, other_ids = network.patient(records=1)
    bg = open_workspace(page_factory, b)
    bg.evaluate(f"location.hash = '#/record?p={other.wallet.address}&id={other_ids[0]}'")
    bg.wait_for_selector("[role=alert][data-code=consent_denied]")
    bg.get_by_role("link", name="Emergency access (break-glass)").click()
    bg.wait_for_selector("#break-glass textarea")
    assert bg.evaluate("document.activeElement.name") == "reason"
    bg.get_by_label("Reason (at least 10 characters)").fill("too short")
    bg.get_by_role("button", name="Open emergency access").click()
    assert bg.get_attribute("#break-glass [role=alert]", "data-code") == "invalid_reason"
    bg.get_by_label("Reason (at least 10 characters)").fill("Unconscious patient in the ED, allergy history needed")
    bg.get_by_role("button", name="Open emergency access").click()
    assert bg.get_attribute("#break-glass [role=alert]", "data-code") == "not_confirmed"
    bg.get_by_label("I confirm this is a medical emergency").check()
    bg.get_by_role("button", name="Open emergency access").click()
    bg.wait_for_selector("#break-glass [data-break-glass]")
    opened = bg.get_attribute("#break-glass [data-break-glass]", "data-break-glass")
    assert "BREAK-GLASS" in bg.inner_text("#break-glass") and "notified" in bg.inner_text("#break-glass")
    check_page(bg, "break-glass-opened")
    bg.locator(f"tr[data-record='{other_ids[0]}'] a").click()
    bg.wait_for_selector("section.auth")
    assert bg.inner_text("#authorization") == f"break_glass:{opened}"
    assert bg.get_by_label("Purpose of use").input_value() == "emergency"
    loud = bg.inner_text("section.auth [role=alert]")
    assert "BREAK-GLASS" in loud and "emergency access" in loud
    assert bg.locator("section.fhir").count() == 1  # A's FHIR Observation, read
    check_page(bg, "record-break-glass")
    # A second window while one is open: refused with its code.
    bg.evaluate(f"location.hash = '#/patient?p={other.wallet.address}'")
    bg.wait_for_selector("#break-glass textarea")
    bg.get_by_label("Reason (at least 10 characters)").fill("Second window while one is open")
    bg.get_by_label("I confirm this is a medical emergency").check()
    bg.get_by_role("button", name="Open emergency access").click()
    bg.wait_for_selector("#break-glass [role=alert][data-code=break_glass_already_open]")
    for p in (up, page, phone, bg):
        assert script_errors(p) == []


@pytest.mark.parametrize("view", ["find", "upload", "signin"])
def test_views_in_chinese_on_a_phone(network: Network, page_factory: Any, view: str) -> None:
    page = open_workspace(page_factory, network.b, view, locale="zh-CN", viewport=PHONE)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.inner_text("main h1") in {"查找患者", "上传记录", "员工登录"}
    check_page(page, f"{view}-phone-zh-CN")
    assert page.console_errors == []


def test_find_a_patient_of_this_node_by_mrn(network: Network, page_factory: Any) -> None:
    a = network.a
    patient, ids = network.patient(records=1)
    addr = patient.wallet.address
    mrn = f"MRN-{network._mrn}-{addr[2:8]}"
    # The route: staff with a clinical or registration role, an MRN required, this node's directory only.
    url = f"{a.url}/v1/patients"
    assert httpx.get(url, params={"mrn": mrn}).json()["error"]["code"] == "unauthenticated"
    auditor = httpx.get(url, params={"mrn": mrn}, headers={"Authorization": f"Bearer {a.tokens['auditor']}"})
    assert (auditor.status_code, auditor.json()["error"]["code"]) == (403, "forbidden")
    staff = {"Authorization": f"Bearer {a.tokens['registrar']}"}
    empty = httpx.get(url, params={"mrn": " "}, headers=staff)
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "patient_mrn_missing")
    assert httpx.get(url, params={"mrn": mrn}, headers=staff).json() == {"items": []}  # the authority is part of it
    found = httpx.get(url, params={"mrn": mrn, "authority": "HOSP-A"}, headers=staff).json()["items"]
    assert [(m["address"], m["linked"], m["assigning_authority"]) for m in found] == [(addr, True, "HOSP-A")]
    elsewhere = httpx.get(f"{network.b.url}/v1/patients", params={"mrn": mrn, "authority": "HOSP-A"},
                          headers={"Authorization": f"Bearer {network.b.tokens['clinician']}"})  # fmt: skip
    assert elsewhere.json() == {"items": []}

    page = open_workspace(page_factory, a)
    page.get_by_role("button", name="Search").click()
    assert page.get_attribute(".mrn-results [role=alert]", "data-code") == "patient_mrn_missing"
    page.get_by_label("Medical record number (MRN)").fill("MRN-nobody")
    page.get_by_role("button", name="Search").click()
    page.locator(".mrn-results", has_text="No patient with this MRN").wait_for()
    page.get_by_label("Medical record number (MRN)").fill(mrn)
    page.get_by_label("Assigning authority").fill("HOSP-A")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector(f".mrn-results li[data-mrn='{mrn}']")
    assert "HOSP-A" in page.inner_text(".mrn-results")
    check_page(page, "find-by-mrn")
    page.get_by_role("link", name="Open timeline").click()
    page.wait_for_selector("table.timeline tbody tr")
    assert page.inner_text("#patient-address") == addr
    assert [r.get_attribute("data-record") for r in page.locator("table.timeline tbody tr").all()] == ids
    assert script_errors(page) == []
