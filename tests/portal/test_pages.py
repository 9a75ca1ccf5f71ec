"""Every portal page in a real browser: served by the node with a strict CSP, nothing fetched from anywhere
else, no script errors, 0 serious/critical axe-core violations in both languages and on a phone-sized screen,
every string translated, and a screenshot of each."""

# ruff: noqa: F811  (the imported `network` fixture is, as pytest intends, redefined as each test's argument)

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.portal.conftest import DESK, PHONE, axe_violations, screenshot
from tests.sharing.conftest import Network, network  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("index", "patient", "clinician", "auditor", "operator")
CATALOGS = ROOT / "portal" / "src" / "i18n"


def _catalog(locale: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for area in sorted((CATALOGS / locale).glob("*.json")):
        entries = json.loads(area.read_text())
        assert not set(entries) & set(merged), f"{area}: keys defined in two catalog files"
        merged |= entries
    return merged


def test_the_catalogs_translate_every_string() -> None:
    en, zh = _catalog("en"), _catalog("zh-CN")
    assert set(en) == set(zh), f"untranslated: {sorted(set(en) ^ set(zh))}"
    assert all(v.strip() for v in [*en.values(), *zh.values()])
    same = [k for k in en if en[k] == zh[k] and not k.startswith("lang.")]
    assert same == [], f"zh-CN copies English for {same}"
    # Every key the sources use exists (a missing one would show its key to a person).
    import re

    used = set()
    for src in (ROOT / "portal" / "src").rglob("*.js"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-zA-Z0-9_.-]+)["']""", src.read_text()))
    assert used - set(en) == set(), f"used but not in the catalogs: {sorted(used - set(en))}"


def test_the_node_serves_the_portal_with_strict_headers(network: Network) -> None:
    base = network.a.url
    network.sync()  # A's ledger view has B's published profile (B published it when it started)
    r = httpx.get(f"{base}/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/portal/"
    r = httpx.get(f"{base}/portal/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    # The consortium's published nodes are the only other origins the pages may connect to.
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    assert f"{urlsplit(network.b.url).scheme}://{urlsplit(network.b.url).netloc}" in connect
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(f"{base}/portal/", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    for bad in (
        "/portal/../node.toml",
        "/portal/%2e%2e%2fnode.toml",
        "/portal/assets/..%2f..%2f__init__.py",
        "/portal/nope.html",
    ):
        assert httpx.get(f"{base}{bad}").status_code == 404, bad
    js = httpx.get(f"{base}/portal/assets/patient.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("page_name", PAGES)
@pytest.mark.parametrize(("locale", "viewport"), [("zh-CN", PHONE), ("en-US", DESK)])
def test_page_loads_cleanly_and_accessibly(
    network: Network, page_factory, page_name: str, locale: str, viewport
) -> None:
    page = page_factory(viewport=viewport, locale=locale)
    url = f"{network.a.url}/portal/{page_name}.html"
    page.goto(url)
    page.wait_for_selector("main h1")
    lang = page.evaluate("document.documentElement.lang")
    assert lang == ("zh-CN" if locale == "zh-CN" else "en")
    assert page.console_errors == []
    origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    assert all(u.startswith(origin) for u in page.requests), [u for u in page.requests if not u.startswith(origin)]
    assert axe_violations(page) == []
    screenshot(page, f"{page_name}-{locale}")


def test_the_language_switch_translates_the_page(network: Network, page_factory) -> None:
    page = page_factory(locale="en-US")
    page.goto(f"{network.a.url}/portal/index.html")
    assert page.inner_text("main h1") == "Choose your workspace"
    page.select_option("#locale", "zh-CN")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert page.inner_text("main h1") == "选择您的工作台"
    page.reload()  # the choice is kept
    assert page.inner_text("main h1") == "选择您的工作台"
    # Keyboard: the skip link comes first and moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_cors_answers_only_the_consortiums_origins_on_the_cross_node_routes(network: Network) -> None:
    a, b = network.a.url, network.b.url
    b_origin = f"{urlsplit(b).scheme}://{urlsplit(b).netloc}"
    pre = {
        "Origin": b_origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    r = httpx.options(f"{a}/v1/auth/siwe/nonce", headers=pre)
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == b_origin
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers
    r = httpx.get(f"{a}/v1/auth/siwe/nonce", headers={"Origin": b_origin})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == b_origin
    assert "x-medledger-commitment" in r.headers["access-control-expose-headers"].lower()
    # Another origin, or a route a browser never calls across nodes: no CORS answer, so the page cannot read it.
    evil = httpx.get(f"{a}/v1/auth/siwe/nonce", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers
    staff = httpx.get(f"{a}/v1/status", headers={"Origin": b_origin})
    assert "access-control-allow-origin" not in staff.headers
