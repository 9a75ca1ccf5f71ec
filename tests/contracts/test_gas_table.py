"""docs/contracts.md's gas table is what the contracts cost now (gas is deterministic on a fresh chain)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gas_table_in_docs_is_current():
    result = subprocess.run(
        [sys.executable, "scripts/gas_report.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
