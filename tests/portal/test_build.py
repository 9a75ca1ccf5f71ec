"""The committed portal build is what the pinned toolchain makes from portal/src (byte for byte), and no page
ships more than its budget of JavaScript and CSS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from portal import STATIC

ROOT = Path(__file__).resolve().parents[2]
#: Bytes of JS + CSS one page may ship (uncompressed). The patient app carries its wallet crypto.
BUDGET = {"patient": 600_000, "default": 200_000}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_committed_build_is_reproducible(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is required (scripts/bootstrap.sh installs the pinned esbuild with npm)"
    out = tmp_path / "static"
    subprocess.run([node, str(ROOT / "portal" / "build.mjs"), "--out", str(out)], check=True, capture_output=True)
    built, committed = _tree(out), _tree(STATIC)
    assert sorted(built) == sorted(committed), "run `npm run build:portal` and commit portal/static"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"out of date (run `npm run build:portal`): {stale}"


def test_each_page_ships_within_its_budget() -> None:
    css = (STATIC / "assets" / "styles.css").stat().st_size
    for html in STATIC.glob("*.html"):
        js = (STATIC / "assets" / f"{html.stem}.js").stat().st_size
        assert js + css <= BUDGET.get(html.stem, BUDGET["default"]), html.stem
