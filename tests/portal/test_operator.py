"""The node operator's page in a real browser on two real nodes on Anvil: staff sign-in (a #token= link or the
form; kept for the tab only), the chain head and index lag, the node's queues with real numbers (a record ingested
while its patient is unknown waits for the link; a read by Hospital B is logged on A's chain), the consortium's
members with their roles, the staff accounts (admins only), refreshing itself and not while the tab is hidden."""

# ruff: noqa: F811  (the imported `network` fixture is, as pytest intends, redefined as each test's argument)

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from node.access_logger import AccessLogger
from node.api.app import create_app
from node.auth import StaffRole, create_staff
from node.service import NodeServices
from tests.node.test_cli import PASSWORD, make_node
from tests.portal.conftest import PHONE, axe_violations, screenshot
from tests.sharing.conftest import Network, network, wait_until  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]
HL7 = ROOT / "tests" / "node" / "data" / "hl7" / "oru_r01.hl7"


def _open(page: Any, network: Network, token: str, every: int = 1) -> None:
    page.goto(f"{network.a.url}/portal/operator.html#token={token}")
    page.wait_for_selector("#health")
    # The token left the address bar at once (and so the history and any screenshot of it).
    assert "token" not in page.url
    if every:
        page.goto(f"{network.a.url}/portal/operator.html#/dashboard?every={every}")
        page.wait_for_selector("#health")


def _count(page: Any, queue: str, status: str) -> int:
    text = page.inner_text(f"tr[data-queue={queue}] [data-status={status}]")
    return int(re.sub(r"[^0-9]", "", text.split()[-1]))


def _pending(page: Any, queue: str) -> int:
    return int(re.sub(r"[^0-9]", "", page.inner_text(f"tr[data-queue={queue}] td.pending")))


def test_the_operator_sees_real_queue_numbers_members_and_staff(network: Network, page_factory) -> None:
    page = page_factory(locale="en-US")
    _open(page, network, network.a.tokens["admin"])
    assert page.inner_text("main h1") == "Node operations"
    assert "All checks pass." in page.inner_text("#health") or "needs a look" in page.inner_text("#health")
    assert page.inner_text("tr[data-check=chain]").endswith("—") and "OK" in page.inner_text("tr[data-check=chain]")
    head = int(re.sub(r"[^0-9]", "", page.inner_text("#chain-head")))
    assert abs(head - network.rpc.block_number()) <= 2
    assert page.inner_text("#index-lag") in ("0 blocks", "1 block", "2 blocks")

    # A record whose patient this node does not know yet: it waits for the link, and the page shows it.
    before = _count(page, "anchor", "pending_link")
    r = httpx.post(
        f"{network.a.url}/v1/ingest",
        content=HL7.read_bytes(),
        headers={"Authorization": f"Bearer {network.a.tokens['registrar']}"},
    )
    assert r.status_code == 201 and r.json()["records"][0]["status"] == "pending_link"
    page.wait_for_function(
        "n => document.querySelector('tr[data-queue=anchor] [data-status=pending_link]').textContent.endsWith(n)",
        arg=str(before + 1),
        timeout=10_000,
    )

    # Records anchored for a patient, then read by Hospital B: A's anchor and access-log figures move.
    confirmed = _count(page, "anchor", "confirmed")
    logged = _count(page, "access_log", "confirmed")
    patient, ids = network.patient(records=2)
    patient.grant(network.b.address, [1, 3], 1)
    clinician = network.b.staff("clinician")
    assert clinician.request("GET", f"/v1/patients/{patient.wallet.address}/records/{ids[0]}").status_code == 200
    a = network.a.services
    wait_until(lambda: AccessLogger(a.sessions, a.contracts.access_log).pending() == 0, what="the read logged")
    wait_until(lambda: _count(page, "anchor", "confirmed") == confirmed + 2, what="the page's anchor count")
    wait_until(lambda: _count(page, "access_log", "confirmed") == logged + 1, what="the page's access-log count")
    assert _pending(page, "anchor") == 0

    members = page.inner_text("#members")
    for name in ("Hospital A", "Hospital B", "Regional Audit Office"):
        assert name in members
    row_a = page.locator("#members tr", has_text="Hospital A").inner_text()
    assert "this node" in row_a and "Hospital" in row_a and network.a.address in row_a
    assert "Auditor" in page.locator("#members tr", has_text="Regional Audit Office").inner_text()

    staff = page.inner_text("#staff")
    assert "admin at Hospital A" in staff and "Administrator" in staff and "clinician at Hospital A" in staff
    assert "mlst_" not in page.content()

    assert page.console_errors == []
    assert all(u.startswith(network.a.url) for u in page.requests), page.requests
    assert axe_violations(page) == []
    screenshot(page, "operator-dashboard-en-US")


def test_sign_in_with_the_form_and_roles_below_admin(network: Network, page_factory) -> None:
    page = page_factory(viewport=PHONE, locale="zh-CN")
    page.goto(f"{network.a.url}/portal/operator.html")
    page.wait_for_selector("#staff-token")
    assert page.inner_text("main h1") == "节点运维"
    assert axe_violations(page) == []
    screenshot(page, "operator-signin-zh-CN")

    page.fill("#staff-token", "mlst_not-a-token")
    page.click("form button[type=submit]")
    page.wait_for_selector("[role=alert]")
    assert page.locator("#staff-token").is_visible()
    assert page.evaluate("sessionStorage.length") == 0

    page.fill("#staff-token", network.a.tokens["clinician"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#health")
    # A clinician sees the node's health and members, not the staff accounts.
    assert "只有管理员" in page.inner_text("#staff")
    assert "医院" in page.inner_text("#members")
    page.reload()  # the token is kept for the tab
    page.wait_for_selector("#health")
    # The browser logs the refused token's 401 and the staff list's 403; nothing else went wrong.
    assert all("401 (Unauthorized)" in e or "403 (Forbidden)" in e for e in page.console_errors), page.console_errors
    assert axe_violations(page) == []
    screenshot(page, "operator-dashboard-zh-CN")
    page.click("#signout")
    page.wait_for_selector("#staff-token")
    assert page.evaluate("sessionStorage.length") == 0


def _wait(page: Any, cond: Any, timeout: float, what: str) -> None:
    """Wait for ``cond`` while letting Playwright deliver the page's events (a plain sleep would not)."""
    for _ in range(int(timeout * 10)):
        if cond():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def test_it_refreshes_itself_but_not_while_hidden_or_paused(network: Network, page_factory) -> None:
    page = page_factory(locale="en-US")
    _open(page, network, network.a.tokens["admin"])

    def overview_calls() -> int:
        return sum(1 for u in page.requests if u.endswith("/v1/ops/overview"))

    start = overview_calls()
    _wait(page, lambda: overview_calls() >= start + 2, timeout=10, what="two refreshes")

    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    hidden_at = overview_calls()
    page.wait_for_timeout(2500)
    assert overview_calls() == hidden_at
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    _wait(page, lambda: overview_calls() > hidden_at, timeout=5, what="a refresh on coming back")

    # The operator can stop the page moving (and keyboard focus stays on the button).
    page.focus("#pause")
    page.keyboard.press("Enter")
    assert page.get_attribute("#pause", "aria-pressed") == "true"
    paused_at = overview_calls()
    page.wait_for_timeout(2500)
    assert overview_calls() == paused_at
    assert "paused" in page.inner_text("#updated")
    page.keyboard.press("Enter")
    _wait(page, lambda: overview_calls() > paused_at, timeout=5, what="a refresh on resuming")
    assert page.evaluate("document.activeElement.id") == "pause"
    assert page.console_errors == []


@contextmanager
def _node_without_chain(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A node whose chain is down (nothing listens on its RPC URL), serving its API and portal from here."""
    services = NodeServices.open(make_node(tmp_path, name="Offline Clinic"), password=PASSWORD)
    with services.sessions.begin() as s:
        token = create_staff(s, "night admin", StaffRole.ADMIN)[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="offline-node", daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="the offline node")
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.close()


def test_a_node_whose_chain_is_down_says_what_it_cannot_do(page_factory, tmp_path: Path) -> None:
    with _node_without_chain(tmp_path) as (url, token):
        # The operator API answers while the chain is down (tests/node/test_ops_api.py); the page loads too, its
        # CSP naming no other node.
        r = httpx.get(f"{url}/portal/operator.html")
        assert r.status_code == 200 and "connect-src 'self';" in r.headers["content-security-policy"]
        page = page_factory(locale="zh-CN")
        page.goto(f"{url}/portal/operator.html#token={token}")
        page.wait_for_selector("#health")
        assert "无法完成部分工作" in page.inner_text("#health")
        chain = page.inner_text("tr[data-check=chain]")
        assert "故障" in chain and "无法连接区块链" in chain and "chain_unavailable" in chain
        assert "无法连接区块链" in page.inner_text("main")  # the chain section says so too
        assert page.inner_text("#chain-head") == "—"
        # The queues are the node's own: still counted while the chain is down.
        assert page.locator("tr[data-queue=anchor]").count() == 1
        assert "无法显示联盟成员" in page.inner_text("#members")
        assert "night admin" in page.inner_text("#staff")
        assert axe_violations(page) == []
        screenshot(page, "operator-chain-down-zh-CN")
