"""``medledger demo --exit``: the whole regional story on its own Anvil and three real nodes, every step's
marker and the facts that matter (the denial code, the flagged break-glass read, a clean audit)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from assembly.cli import app
from assembly.demo import TOTAL


def test_demo_tells_the_whole_story_and_stops(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--exit", "--dir", str(root), "--any-port"])
    out = result.stdout
    assert result.exit_code == 0, result.output

    lines = out.splitlines()
    steps = {int(m.group(1)): line for line in lines if (m := re.match(rf"\[(\d+)/{TOTAL}\] ", line))}
    assert sorted(steps) == list(range(1, TOTAL + 1)), out
    assert "Hospital A" in steps[1] and "Hospital B" in steps[1] and "Regional CDC" in steps[1]
    assert "anchored on chain" in steps[3] and "authorization custodian" in steps[3]
    assert re.search(r"grant \d+", steps[4])
    assert re.search(r"authorization grant:\d+", steps[5])
    assert "2 reads by Hospital B" in steps[6]
    assert "revokes grant" in steps[7]
    assert "403 consent_denied" in steps[8]
    assert re.search(r"authorization break_glass:\d+", steps[9]) and "BREAK-GLASS" in steps[9]
    assert "break_glass_opened" in steps[10]
    assert "0 violations" in steps[11] and "audit clean" in steps[11] and "1 BREAK-GLASS flagged" in steps[11]
    assert "stopping (--exit)" in steps[12]

    # Each node's URL and its OpenAPI docs are printed; with --exit they are stopped afterwards.
    urls = re.findall(r"(http://127\.0\.0\.1:\d+)/docs", out)
    assert len(urls) == 3
    for url in urls:
        try:
            httpx.get(f"{url}/healthz", timeout=1.0)
        except httpx.HTTPError:
            continue
        raise AssertionError(f"{url} still serving after --exit")

    # Each role's portal page with a ready sign-in: staff links carry their token in the fragment; the auditor's
    # page is on its own service (stopped with the rest).
    portal = {m.group(1): m.group(2) for m in re.finditer(r"^  (patient|clinician|operator|auditor) +(\S+)", out, re.M)}
    assert set(portal) == {"patient", "clinician", "operator", "auditor"}, out
    assert portal["clinician"].split("#")[0].endswith("/portal/clinician.html")
    assert re.search(r"#token=mlst_\S+&patient=0x[0-9a-fA-F]{40}$", portal["clinician"])
    assert re.search(r"#token=mlst_\S+$", portal["operator"])
    assert portal["auditor"].endswith("/portal/auditor.html") and "eva-wallet.json" in out

    # --dir keeps the demo's data: deployments, one directory per node, the patient's wallet.
    assert (root / "deployments").is_dir() and (root / "eva-wallet.json").is_file()
    assert {p.name for p in root.iterdir()} >= {"hospital-a", "hospital-b", "regional-cdc"}


def test_demo_refuses_a_used_directory(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    result = CliRunner().invoke(app, ["demo", "--exit", "--dir", str(tmp_path), "--any-port"])
    assert result.exit_code == 2
    assert "error [demo_dir_not_empty]" in result.stderr
