"""A few seconds of coverage-guided fuzzing (atheris, fixed seed) on every target, each in its own process.

The long run is ``bench/fuzz.py --minutes N``; this keeps the targets, seeds and runner working and catches
what a short search already finds. Findings still open (tests/fuzz/known.py) are left to their reproducers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fuzz.known import KNOWN
from tests.fuzz.targets import REPO, TARGETS

SECONDS = 2.0
#: Two at a time: the fuzzers are CPU-bound and start-up (imports, instrumentation) dominates a short run.
PARALLEL = 2


def _run(name: str, out: Path) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "tests.fuzz.run_atheris", name, "--seconds", str(SECONDS), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess[bytes]]]:
    out = tmp_path_factory.mktemp("atheris")
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(_run, name, out / name) for name in TARGETS}
        return {name: (out / name, future.result()) for name, future in futures.items()}


@pytest.mark.parametrize("name", list(TARGETS))
def test_short_fuzz_run_finds_nothing_new(runs, name: str):
    out, proc = runs[name]
    log = proc.stderr.decode(errors="replace")[-3000:]
    assert proc.returncode == 0, log
    stats = json.loads((out / f"{name}-stats.json").read_text())
    assert stats["final"] and stats["executions"] > 50, stats
    killers = [p.name for p in out.iterdir() if p.name.startswith(f"{name}-") and "-stats" not in p.name
               and p.suffix not in (".bin", ".jsonl")]  # fmt: skip
    assert not killers, log
    findings_file = out / f"{name}-findings.jsonl"
    findings = [json.loads(line) for line in findings_file.read_text().splitlines()] if findings_file.exists() else []
    new = [f for f in findings if f["signature"] not in KNOWN]
    assert not new, "\n\n".join(f"{f['message']}\n{f['summary']}" for f in new)
