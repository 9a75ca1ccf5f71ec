"""The committed artifacts are exactly what the pinned solc makes from the committed sources."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from medledger.chain.abi import load_artifact
from medledger.vocabulary import Purpose, Role

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "medledger" / "chain" / "artifacts"


def test_artifacts_are_byte_identical_to_a_fresh_compile(tmp_path):
    subprocess.run(["node", "scripts/compile.mjs", "--out", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    committed = sorted(p.name for p in ARTIFACTS.glob("*.json"))
    rebuilt = sorted(p.name for p in tmp_path.glob("*.json"))
    assert committed == rebuilt == ["AccessLog.json", "ConsentRegistry.json", "Consortium.json", "RecordRegistry.json"]
    for name in committed:
        assert (ARTIFACTS / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"{name} is stale: run npm run compile"
        )


def test_artifacts_were_built_by_the_pinned_solc():
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/solc"]["version"]
    for name in ("Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog"):
        assert load_artifact(name).compiler_version.startswith(pinned + "+commit.")


def test_python_vocabulary_matches_solidity():
    roles_sol = (ROOT / "contracts" / "utils" / "Roles.sol").read_text()
    declared = dict(re.findall(r"uint32 internal constant (\w+) = 1 << (\d+);", roles_sol))
    assert {r.name: r.value for r in Role} == {k: 1 << int(v) for k, v in declared.items()}
    consent_sol = (ROOT / "contracts" / "ConsentRegistry.sol").read_text()
    max_purpose = int(re.search(r"MAX_PURPOSE = (\d+);", consent_sol).group(1))
    assert max(Purpose) == max_purpose
