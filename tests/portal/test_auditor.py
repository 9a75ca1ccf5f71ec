"""The auditor's page in a real browser, served by the auditor's own service (clients.auditor.web) running here
against the same Anvil as two real nodes: a patient grants Hospital B, B's clinician reads her record, the
auditor audits her from the chain alone (ciphertexts fetched from the nodes, signed with the audit office's key),
the report is clean, and both downloads (JSON, FHIR AuditEvent bundle) are what the service's API returns."""

# ruff: noqa: F811  (the imported `network` fixture is, as pytest intends, redefined as each test's argument)

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from clients.auditor.audit import AuditSettings
from clients.auditor.web import create_app
from node.access_logger import AccessLogger
from node.storage import open_store
from tests.portal.conftest import PHONE, axe_violations, screenshot
from tests.sharing.conftest import Network, network, wait_until  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "MEDLEDGER_TEST_PORTAL_AUDITOR_KEY"


@dataclass
class AuditorService:
    url: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _service(settings: AuditSettings) -> Iterator[AuditorService]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="auditor-service", daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="the auditor service")
    try:
        yield AuditorService(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def auditor(network: Network) -> Iterator[AuditorService]:
    """The auditor's service as it is meant to run: it asks the custodians for their ciphertexts, signing as the
    regional audit office."""
    os.environ[KEY_ENV] = bytes(network.dev.founders["Regional Audit Office"].key).hex()
    settings = AuditSettings(
        rpc_url=network.rpc.url, deployments_dir=network.deployments, ciphertexts=True, key_env=KEY_ENV
    )
    try:
        with _service(settings) as service:
            yield service
    finally:
        del os.environ[KEY_ENV]


@pytest.fixture(scope="module")
def read_patient(network: Network) -> tuple[str, list[str]]:
    """A patient whose lab result Hospital B's clinician read under her grant, the read logged on chain."""
    patient, ids = network.patient(records=2)
    patient.grant(network.b.address, [1, 3], 1)
    clinician = network.b.staff("clinician")
    assert clinician.request("GET", f"/v1/patients/{patient.wallet.address}/records/{ids[0]}").status_code == 200
    a = network.a.services
    logger = AccessLogger(a.sessions, a.contracts.access_log)
    wait_until(lambda: logger.pending() == 0, what="access log on chain")
    network.sync()
    return patient.wallet.address, ids


def _audit(auditor: AuditorService, scope: dict[str, object]) -> tuple[str, dict[str, object]]:
    r = httpx.post(f"{auditor.url}/v1/audits", json={"scope": scope})
    assert r.status_code == 202, r.text
    audit_id = r.json()["id"]
    assert r.json()["status"] == "running" and r.headers["location"] == f"/v1/audits/{audit_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = httpx.get(f"{auditor.url}/v1/audits/{audit_id}")
        if got.status_code == 200:
            return audit_id, got.json()
        assert got.status_code == 202 and got.json()["status"] == "running", got.text
        time.sleep(0.2)
    raise AssertionError("the audit did not finish")


def test_the_service_api_runs_audits_and_refuses_bad_requests(
    network: Network, auditor: AuditorService, read_patient: tuple[str, list[str]]
) -> None:
    address, ids = read_patient
    audit_id, report = _audit(auditor, {"kind": "patient", "address": address})
    assert report["schema"] == "medledger-audit" and report["result"] == "clean"
    assert report["scope"]["kind"] == "patient" and report["scope"]["address"] == address
    assert [a["record_id"].lower() for a in report["accesses"]] == [ids[0].lower()]
    assert report["summary"]["ciphertexts_checked"] is True and report["summary"]["ciphertexts"] == {"match": 2}
    bundle = httpx.get(f"{auditor.url}/v1/audits/{audit_id}/auditevents")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("application/fhir+json")
    assert bundle.json()["resourceType"] == "Bundle"
    assert [e["resource"]["resourceType"] for e in bundle.json()["entry"]] == ["AuditEvent"]

    _, institution = _audit(auditor, {"kind": "institution", "address": network.b.address})
    assert institution["result"] == "clean" and len(institution["accesses"]) >= 1
    head = network.rpc.block_number()
    _, whole = _audit(auditor, {"kind": "range", "from_block": 0, "to_block": head})
    assert whole["result"] == "clean" and len(whole["accesses"]) >= 1

    for body, code in (
        ({"scope": {"kind": "patient", "address": "0x1234"}}, "invalid_address"),
        ({"scope": {"kind": "patient"}}, "invalid_request"),
        ({"scope": {"kind": "range", "from_block": 9, "to_block": 3}}, "invalid_input"),
        ({"scope": {"kind": "everything"}}, "invalid_request"),
        ({}, "invalid_request"),
    ):
        r = httpx.post(f"{auditor.url}/v1/audits", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (422, code), (body, r.text)
    # A range beyond the head is refused when the audit runs: the report is the error, with its status.
    r = httpx.post(f"{auditor.url}/v1/audits", json={"scope": {"kind": "range", "from_block": 0, "to_block": 10**9}})
    beyond = r.json()["id"]
    wait_until(lambda: httpx.get(f"{auditor.url}/v1/audits/{beyond}").status_code != 202, what="the failed audit")
    failed = httpx.get(f"{auditor.url}/v1/audits/{beyond}")
    assert (failed.status_code, failed.json()["error"]["code"]) == (422, "invalid_input")
    missing = httpx.get(f"{auditor.url}/v1/audits/nope/auditevents")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "audit_not_found")


def test_the_service_serves_the_page_with_the_portals_headers(auditor: AuditorService) -> None:
    r = httpx.get(f"{auditor.url}/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/portal/auditor.html"
    page = httpx.get(f"{auditor.url}/portal/auditor.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    again = httpx.get(f"{auditor.url}/portal/auditor.html", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    js = httpx.get(f"{auditor.url}/portal/assets/auditor.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for bad in ("/portal/../pyproject.toml", "/portal/%2e%2e%2fweb.py", "/portal/assets/..%2f..%2f__init__.py"):
        assert httpx.get(f"{auditor.url}{bad}").status_code == 404, bad


def _run_in_page(page, auditor: AuditorService, address: str) -> None:
    page.goto(f"{auditor.url}/portal/auditor.html#/audit?kind=patient&address={address}")
    page.wait_for_selector("main h1")
    assert page.input_value("#audit-address") == address
    page.click("#audit-run")
    page.wait_for_selector("#audit-result", timeout=60_000)
    # The report's heading takes the focus, so a screen reader hears the result.
    assert page.evaluate("document.activeElement.id") == "report-title"


def test_the_auditor_runs_an_audit_in_the_browser_and_downloads_it(
    network: Network, auditor: AuditorService, read_patient: tuple[str, list[str]], page_factory, tmp_path: Path
) -> None:
    address, ids = read_patient
    page = page_factory(locale="en-US")
    _run_in_page(page, auditor, address)
    assert "Clean." in page.inner_text("#audit-result")
    rows = page.locator("#accesses tbody tr")
    assert rows.count() == 1
    row = rows.nth(0).inner_text()
    assert "Hospital B" in row and "Hospital A" in row and "Laboratory result" in row and "Treatment" in row
    assert "Authorized" in row
    assert page.inner_text("#findings") == "No findings."
    assert page.console_errors == []
    origin = f"{urlsplit(auditor.url).scheme}://{urlsplit(auditor.url).netloc}"
    assert all(u.startswith((origin, "blob:")) for u in page.requests), page.requests
    assert axe_violations(page) == []
    screenshot(page, "auditor-report-en-US")

    with page.expect_download() as json_download:
        page.click("#download-json")
    saved = tmp_path / "report.json"
    json_download.value.save_as(saved)
    assert json_download.value.suggested_filename.endswith(".json")
    report = json.loads(saved.read_text())
    assert report["schema"] == "medledger-audit" and report["result"] == "clean"
    assert [a["record_id"].lower() for a in report["accesses"]] == [ids[0].lower()]

    with page.expect_download() as fhir_download:
        page.click("#download-fhir")
    saved = tmp_path / "bundle.json"
    fhir_download.value.save_as(saved)
    bundle = json.loads(saved.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    [event] = [e["resource"] for e in bundle["entry"]]
    assert event["resourceType"] == "AuditEvent" and event["outcome"] == "0"
    assert any(ids[0].lower() == (e["what"]["identifier"]["value"]).lower() for e in event["entity"] if "what" in e)


def test_the_auditor_page_in_chinese_on_a_phone_and_its_input_checks(
    auditor: AuditorService, read_patient: tuple[str, list[str]], page_factory
) -> None:
    address, _ = read_patient
    page = page_factory(viewport=PHONE, locale="zh-CN")
    page.goto(f"{auditor.url}/portal/auditor.html")
    page.wait_for_selector("main h1")
    assert page.inner_text("main h1") == "独立审计"
    # A mistyped address is caught before anything is sent, and announced.
    page.fill("#audit-address", "0x1234")
    page.click("#audit-run")
    assert "账本地址" in page.inner_text("[role=alert]")
    # Keyboard: the scope radios switch the fields (a block range shows its two blocks).
    page.check("input[value=range]")
    assert page.is_visible("#audit-from") and not page.is_visible("#audit-address")
    page.check("input[value=patient]")
    page.fill("#audit-address", address)
    page.keyboard.press("Enter")
    page.wait_for_selector("#audit-result", timeout=60_000)
    assert "合规" in page.inner_text("#audit-result")
    assert "检验结果" in page.inner_text("#report")
    assert page.console_errors == []
    assert axe_violations(page) == []
    screenshot(page, "auditor-report-zh-CN")


def test_violations_and_warnings_are_clearly_marked(
    network: Network, read_patient: tuple[str, list[str]], page_factory, tmp_path: Path
) -> None:
    """An auditor told to read Hospital A's ciphertexts from a store that does not hold them (a custodian that lost
    its data) finds a violation per record; the page says so first, and marks each one."""
    address, _ = read_patient
    open_store(str(tmp_path / "empty-store")).close()
    settings = AuditSettings(
        rpc_url=network.rpc.url,
        deployments_dir=network.deployments,
        ciphertexts=True,
        stores={network.a.address: str(tmp_path / "empty-store")},
    )
    with _service(settings) as service:
        page = page_factory(locale="en-US")
        _run_in_page(page, service, address)
        banner = page.locator("#audit-result")
        assert banner.get_attribute("role") == "alert" and "Violations found: 2." in banner.inner_text()
        rows = page.locator("#findings tbody tr")
        assert rows.count() == 2
        for i in range(2):
            text = rows.nth(i).inner_text()
            assert "Violation" in text and "Custodian does not hold the ciphertext" in text
            assert "ciphertext_missing" in text
        assert page.console_errors == []
        assert axe_violations(page) == []
        screenshot(page, "auditor-violations-en-US")


def test_medledger_audit_serve_runs_the_service(network: Network, read_patient: tuple[str, list[str]]) -> None:
    """The command as an operator starts it: a subprocess serving the page and the API on its port."""
    address, _ = read_patient
    port = _free_port()
    env = {**os.environ, "COLUMNS": "120"}
    env.pop(KEY_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "assembly.cli", "audit", "serve", "--port", str(port),
         "--rpc", network.rpc.url, "--deployments", str(network.deployments), "--no-ciphertexts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                return httpx.get(f"{url}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30, what="medledger audit serve")
        assert httpx.get(f"{url}/portal/auditor.html").status_code == 200
        service = AuditorService(url)
        _, report = _audit(service, {"kind": "patient", "address": address})
        assert report["result"] == "clean" and report["summary"]["ciphertexts_checked"] is False
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert b"auditor: http://127.0.0.1:" in (proc.stderr.read() if proc.stderr else b"")


def test_the_page_served_by_a_node_says_where_audits_run(
    network: Network, read_patient: tuple[str, list[str]], page_factory
) -> None:
    address, _ = read_patient
    page = page_factory(locale="en-US")
    page.goto(f"{network.a.url}/portal/auditor.html#/audit?kind=patient&address={address}")
    page.wait_for_selector("main h1")
    page.click("#audit-run")
    page.wait_for_selector("[role=alert]")
    assert "medledger audit serve" in page.inner_text("[role=alert]")
    assert page.evaluate("document.activeElement.getAttribute('role')") == "alert"
