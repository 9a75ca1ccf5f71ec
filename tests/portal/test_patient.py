"""The patient wallet app in a real browser against two real nodes on Anvil (Hospital A holds her records, B is
her home node, which serves the page): import a keystore written by clients.wallet, sign in with Ethereum,
see the timeline, verify and decrypt a record in the browser (the bytes equal what the Python client decrypts),
grant B and see it, B reads, revoke, B is refused, a break-glass read flagged in "who read my records" and in
the notifications, contacts, erasure; a wallet created in the app registering its key; a browser wallet
(EIP-1193) signing in and granting but unable to decrypt. axe-core and a screenshot of every view on a phone."""

# ruff: noqa: F811  (the imported `network` fixture is, as pytest intends, redefined as each test's argument)

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from clients.api import NodeRefused
from clients.wallet import PatientWallet, save_wallet
from node.access_logger import AccessLogger
from node.notifications import SmtpChannel
from tests.portal.conftest import PHONE, axe_violations, screenshot
from tests.sharing.conftest import Network, network, wait_until  # noqa: F401 (the fixture)

PASSWORD = "correct horse battery"
TIMEOUT = 30_000


def check_page(page: Any, name: str) -> None:
    """No script errors, nothing wider than the phone's screen, 0 serious/critical axe violations, and a
    screenshot as an artifact."""
    assert page.console_errors == [], page.console_errors
    # Made for a phone: nothing wider than the screen (no sideways scrolling).
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], name
    assert axe_violations(page) == [], name
    screenshot(page, f"patient-{name}")


def drain_access_log(network: Network) -> None:
    a = network.a.services
    logger = AccessLogger(a.sessions, a.contracts.access_log)
    wait_until(lambda: logger.pending() == 0, what="access log on chain")
    network.sync()


def consortium_only(page: Any, network: Network) -> None:
    allowed = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in (network.a.url, network.b.url)}
    assert {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in page.requests} <= allowed


def open_wallet_app(page_factory: Any, network: Network, *, locale: str = "en-US") -> Any:
    page = page_factory(viewport=PHONE, locale=locale)
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{network.b.url}/portal/patient.html")
    page.wait_for_selector("main h1")
    return page


def import_keystore(page: Any, keystore: Path) -> None:
    page.set_input_files("#import-wallet input[type=file]", str(keystore))
    page.fill("#import-wallet input[type=password]", PASSWORD)
    page.click("#import-wallet button[type=submit]")
    page.wait_for_selector("#timeline li")


def test_the_patient_reads_decrypts_grants_revokes_and_sees_every_read(
    network: Network, page_factory: Any, tmp_path: Path
) -> None:
    patient, ids = network.patient(records=2)
    addr = patient.wallet.address
    keystore = save_wallet(patient.wallet, tmp_path / "wallet.json", PASSWORD, iterations=2**10)
    page = open_wallet_app(page_factory, network)
    check_page(page, "signin")

    # Sign in with the imported keystore (SIWE at B); the timeline comes from B's index of A's anchors.
    import_keystore(page, keystore)
    page.wait_for_selector("main[data-state=complete]")
    rows = page.locator("#timeline li")
    assert rows.count() == 2
    assert {rows.nth(i).get_attribute("data-record") for i in range(2)} == set(ids)
    assert "Hospital A" in rows.first.inner_text() and "Lab result" in rows.first.inner_text()
    assert addr[:6] in page.inner_text("header")
    check_page(page, "timeline")
    # Filters run over the loaded pages: by class and by date.
    page.select_option("main select", "imaging")
    assert page.locator("#timeline li").count() == 0
    page.select_option("main select", "lab")
    assert page.locator("#timeline li").count() == 2
    page.fill("main input[type=date] >> nth=0", "2024-05-02")
    page.dispatch_event("main input[type=date] >> nth=0", "change")
    assert page.locator("#timeline li").count() == 0
    page.fill("main input[type=date] >> nth=0", "")
    page.dispatch_event("main input[type=date] >> nth=0", "change")
    assert page.locator("#timeline li").count() == 2

    # Decrypt in the browser: signs in at A (CORS), fetches, checks the commitment, unwraps, decrypts.
    page.click(f"#timeline li[data-record='{ids[0]}'] a")
    page.click("#decrypt")
    viewer = page.wait_for_selector(".viewer[data-sha256]")
    expected = patient.download(ids[0]).content
    assert viewer.get_attribute("data-sha256") == hashlib.sha256(expected).hexdigest()
    assert viewer.get_attribute("data-bytes") == str(len(expected))
    assert "Observation" in page.inner_text("#record-content")
    check_page(page, "record")
    consortium_only(page, network)

    # Grant Hospital B (not a custodian of hers, so named by address) lab records for treatment.
    page.goto(f"{network.b.url}/portal/patient.html#/grants")
    page.wait_for_selector("#active-grants")  # the grants are loaded, so the layout stays put
    page.select_option("#grantee", "")
    page.fill("#grantee-address", network.b.address)
    page.check("#class-lab")
    page.select_option("#purpose", "1")
    page.fill("#days", "7")
    page.click("#grant-submit")
    page.wait_for_selector("#active-grants li")
    card = page.locator("#active-grants li").first
    assert "Hospital B" in card.inner_text() and "Lab result" in card.inner_text()
    grants = patient.grants()
    assert [(g["grantee"], g["classes"], g["purpose"], g["revoked"]) for g in grants] == [
        (network.b.address, ["lab"], "treatment", False)
    ]
    check_page(page, "grants")

    # B's clinician reads under the grant; she revokes in the app; B is refused.
    clinician = network.b.staff("clinician")
    assert clinician.request("GET", f"/v1/patients/{addr}/records/{ids[0]}?purpose=treatment").status_code == 200
    card.get_by_role("button", name="Revoke").click()
    page.wait_for_selector("p#active-grants")
    assert [g["revoked"] for g in patient.grants()] == [True]
    network.sync()
    with pytest.raises(NodeRefused):
        clinician.request("GET", f"/v1/patients/{addr}/records/{ids[0]}?purpose=treatment")

    # Break-glass at B: flagged loudly among the reads, and in her notifications at B and at A.
    opened = clinician.post(
        f"/v1/patients/{addr}/break-glass",
        {"reason": "Unconscious patient in the ED, allergy history needed", "duration_seconds": 600},
    )
    assert clinician.request("GET", f"/v1/patients/{addr}/records/{ids[1]}?purpose=emergency").status_code == 200
    drain_access_log(network)
    page.goto(f"{network.b.url}/portal/patient.html#/accesses")
    page.wait_for_selector("#accesses li")
    glass = page.locator("#accesses li[data-break-glass='1']")
    assert glass.count() == 1
    assert f"Break-glass #{opened['break_glass_id']}" in glass.inner_text()
    assert "Emergency access (break-glass)" in glass.inner_text() and "Hospital B" in glass.inner_text()
    assert "1 emergency (break-glass)" in page.inner_text("#access-summary [role=alert]")
    kinds = [page.locator("#accesses li").nth(i).inner_text() for i in range(page.locator("#accesses li").count())]
    assert any("Your grant" in k for k in kinds) and any("You" in k for k in kinds)  # B's read and her own
    check_page(page, "accesses")

    # B delivers e-mail (to a closed port: only the contact list matters here).
    b_channels = network.b.services.notifications.channels
    previous = b_channels.get("email")
    b_channels["email"] = SmtpChannel("smtp+plain://127.0.0.1:9", "noreply@b.example")
    page.goto(f"{network.b.url}/portal/patient.html#/notifications")
    page.wait_for_selector("#notifications li")
    page.wait_for_selector("#contacts p:not(.notice), #contacts ul")  # loaded, so the layout stays put
    got = sorted(
        page.locator("#notifications li").nth(i).get_attribute("data-kind")
        for i in range(page.locator("#notifications li").count())
    )
    assert got == ["break_glass_access", "break_glass_opened"]
    assert "Unconscious patient" in page.inner_text("#notifications")
    page.select_option("#contact-channel", "email")
    page.fill("#contact-destination", "patient@example.org")
    page.click("#contacts ~ form button[type=submit]")
    page.wait_for_selector("#contacts li")
    assert [c["destination"] for c in patient.contacts(network.b.url)] == ["patient@example.org"]
    patient.remove_contact(patient.contacts(network.b.url)[0]["id"], network.b.url)
    if previous is None:
        del b_channels["email"]
    else:
        b_channels["email"] = previous
    check_page(page, "notifications")

    # Her wallet: export the keystore (it decrypts to her key); the X25519 key is registered.
    page.goto(f"{network.b.url}/portal/patient.html#/wallet")
    page.wait_for_selector("#key-state:has-text('Registered')")
    with page.expect_download() as dl:
        page.click("#export-wallet")
    exported = json.loads(Path(dl.value.path()).read_text())
    assert Account.decrypt(exported, PASSWORD) == bytes(patient.wallet.account.key)
    check_page(page, "wallet")

    # Erasure of the second record, signed in the browser, sent to A.
    page.goto(f"{network.b.url}/portal/patient.html#/record?id={ids[1]}")
    page.click("details summary")
    page.click("#erase")
    page.wait_for_selector("details [role=alert]")  # not confirmed: refused
    page.check("#erase-sure")
    page.click("#erase")
    page.wait_for_selector("details .notice.ok")
    with pytest.raises(NodeRefused) as gone:
        patient.download(ids[1])
    assert gone.value.status == 410
    consortium_only(page, network)
    assert page.console_errors == []


def test_a_wallet_created_in_the_app_registers_its_key(network: Network, page_factory: Any) -> None:
    page = open_wallet_app(page_factory, network, locale="zh-CN")
    page.fill("#create-wallet input >> nth=0", PASSWORD)
    page.fill("#create-wallet input >> nth=1", PASSWORD)
    page.click("#create-wallet button[type=submit]")
    page.wait_for_selector("#timeline-status:has-text('暂无病历')", timeout=120_000)
    check_page(page, "timeline-empty-zh-CN")
    page.goto(f"{network.b.url}/portal/patient.html#/wallet")
    page.wait_for_selector("#key-state:has-text('尚未登记')")
    address = page.inner_text("#wallet-address")
    with page.expect_download() as dl:
        page.click("#export-wallet")
    wallet = PatientWallet.from_key(Account.decrypt(json.loads(Path(dl.value.path()).read_text()), PASSWORD))
    assert wallet.address == address
    page.click("#register-key")
    page.wait_for_selector("#key-state:has-text('已在账本上登记')")
    network.sync()
    # The key the browser derived is the one clients/wallet.py derives from the same private key.
    assert network.b.services.ledger.patient_key(wallet.address) == wallet.encryption_public_key
    check_page(page, "wallet-zh-CN")
    # The keystore stays in this browser (IndexedDB): a reload offers to unlock it.
    page.reload()
    page.wait_for_selector(f"form.unlock[data-address='{address}']")


def test_a_browser_wallet_signs_in_and_grants_but_cannot_decrypt(network: Network, page_factory: Any) -> None:
    """An EIP-1193 provider (as MetaMask injects) whose signatures are made by eth_account in the test."""
    patient, ids = network.patient(records=1)
    account = patient.wallet.account
    calls: list[str] = []
    chain = [1]

    def provider(method: str, params_json: str) -> Any:
        calls.append(method)
        params = json.loads(params_json)
        if method == "eth_requestAccounts":
            return [account.address.lower()]
        if method == "eth_chainId":  # on the wrong chain at first: the app asks the wallet to switch
            return hex(chain[0])
        if method == "wallet_switchEthereumChain":
            chain[0] = int(params[0]["chainId"], 16)
            return None
        if method == "personal_sign":
            return "0x" + bytes(account.sign_message(encode_defunct(hexstr=params[0])).signature).hex()
        if method == "eth_signTypedData_v4":
            assert params[0] == account.address
            return "0x" + bytes(account.sign_typed_data(full_message=json.loads(params[1])).signature).hex()
        raise AssertionError(method)

    page = page_factory(viewport=PHONE, locale="zh-CN")
    page.set_default_timeout(TIMEOUT)
    page.expose_function("__testEthereum", provider)
    page.add_init_script(
        "window.ethereum = { request: ({ method, params }) =>"
        " window.__testEthereum(method, JSON.stringify(params || [])) };"
    )
    page.goto(f"{network.b.url}/portal/patient.html")
    page.click("#connect-browser-wallet")
    page.wait_for_selector("#timeline li")
    assert page.locator("#timeline li").get_attribute("data-record") == ids[0]
    page.click("#timeline li a")
    page.wait_for_selector("#record-content .notice.warn")
    assert page.locator("#decrypt").count() == 0
    check_page(page, "record-browser-wallet-zh-CN")

    page.goto(f"{network.b.url}/portal/patient.html#/grants")
    page.wait_for_selector("#active-grants")
    page.select_option("#grantee", network.a.address)  # a custodian of hers: offered by name
    page.check("#class-lab")
    page.check("#class-imaging")
    page.select_option("#purpose", "2")
    page.click("#grant-submit")
    page.wait_for_selector("#active-grants li")
    [g] = patient.grants()
    assert (g["grantee"], g["classes"], g["purpose"]) == (network.a.address, ["lab", "imaging"], "referral")
    assert calls.count("eth_signTypedData_v4") == 1 and "personal_sign" in calls
    assert "wallet_switchEthereumChain" in calls and chain[0] == network.dev.manifest.chain_id
    page.goto(f"{network.b.url}/portal/patient.html#/wallet")
    page.wait_for_selector("#enc-h")
    assert page.locator("#register-key").count() == 0
    check_page(page, "wallet-browser-zh-CN")


def test_a_substituted_ciphertext_is_refused_before_decryption(
    network: Network, page_factory: Any, tmp_path: Path
) -> None:
    """The custodian (here: whatever is between it and the browser) hands over another ciphertext: the
    browser's SHA-256 does not match the chain's commitment (from the home node), so nothing is decrypted."""
    patient, _ = network.patient(records=1)
    keystore = save_wallet(patient.wallet, tmp_path / "wallet.json", PASSWORD, iterations=2**10)
    page = open_wallet_app(page_factory, network)

    def substitute(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        ciphertext = bytearray(base64.b64decode(body["ciphertext"]))
        ciphertext[-1] ^= 1
        body["ciphertext"] = base64.b64encode(bytes(ciphertext)).decode()
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/records/*/release", substitute)
    import_keystore(page, keystore)
    page.click("#timeline li a")
    page.click("#decrypt")
    alert = page.wait_for_selector("#record-content [role=alert]")
    assert "verification_failed" in alert.inner_text()
    assert "does not match the ledger" in alert.inner_text()
    assert page.locator(".viewer[data-sha256]").count() == 0
