"""The portal in a real browser: Playwright driving Debian's Chromium (its own browser download is not used).

Without Chromium the browser tests skip with that reason; CI (``.ci/run``) installs it and sets
``MEDLEDGER_REQUIRE_BROWSER=1``, which turns the skip into a failure. Screenshots of every page go to
``build/artifacts/portal/`` (or ``$MEDLEDGER_ARTIFACTS/portal``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: A phone-sized screen (the patient's wallet app is used on phones first) and a desk screen.
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    return os.environ.get("MEDLEDGER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def artifacts_dir() -> Path:
    base = (
        Path(os.environ["MEDLEDGER_ARTIFACTS"])
        if os.environ.get("MEDLEDGER_ARTIFACTS")
        else ROOT / "build" / "artifacts"
    )
    out = base / "portal"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("MEDLEDGER_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "Chromium is required (MEDLEDGER_REQUIRE_BROWSER=1) but not installed (apt-get install chromium)"
            )
        pytest.skip("Chromium is not installed (apt-get install chromium); the portal's browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Any]:
    """New pages in fresh contexts (own storage), each recording requests and console errors."""
    contexts: list[Any] = []

    def make(*, viewport: dict[str, int] = DESK, locale: str = "en-US") -> Any:
        context = browser.new_context(viewport=viewport, locale=locale, bypass_csp=False)
        contexts.append(context)
        page = context.new_page()
        page.requests = []  # type: ignore[attr-defined]
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("request", lambda r: page.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        return page

    yield make
    for c in contexts:
        c.close()


def axe_violations(page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core's violations of ``impacts`` on the page as it is now. axe is evaluated as a function body in
    the page (CDP evaluation is not subject to the page's CSP, a script tag would be)."""
    page.evaluate(AXE.read_text() + "\n;window.__axe = axe;")
    result = page.evaluate("async () => { const r = await window.__axe.run(document); return r.violations; }")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5], "help": v["help"]}
        for v in result
        if v["impact"] in impacts
    ]


def screenshot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
