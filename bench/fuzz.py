"""Coverage-guided fuzzing (atheris) of the ingest parsers and the signature verifiers, one target after another.

usage: python bench/fuzz.py [--minutes 10] [--targets hl7,dicom,...] [--out build/fuzz] [--seed 1]

``--minutes`` is the whole run's fuzzing time, split evenly over the targets (start-up and minimizing come on
top). Each target runs in its own process (tests/fuzz/run_atheris.py), seeded with real inputs (the tests' HL7
and FHIR files, pydicom's test files, validly signed requests and SIWE messages). The property of every
target is in tests/fuzz/targets.py: any input gets a result or the documented error with a declared code,
within the per-input time limit, and no verifier accepts what its key did not sign.

A crash is a distinct property violation (by signature) or an input that killed the process (libFuzzer
timeout or out-of-memory). Each is minimized and written to ``OUT/crashes/<target>-<n>.bin`` with its
traceback summary in ``OUT/crashes/findings.jsonl``; those still open are listed in tests/fuzz/known.py and
counted here like any other. Prints one line per target, then as its last line JSON:
``{"bench": "fuzz", "executions": ..., "executions_per_s": ..., "crashes": ...}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz.known import KNOWN  # noqa: E402
from tests.fuzz.targets import TARGETS, minimize  # noqa: E402

#: libFuzzer's own artifacts: inputs that hung, ran out of memory or crashed the interpreter.
_ARTIFACTS = ("timeout-", "oom-", "crash-", "leak-")


def run_target(name: str, seconds: float, out: Path, seed: int) -> dict[str, object]:
    """Fuzz ``name`` for ``seconds``; restarts after a process-killing input until the time is used."""
    executions, fuzz_seconds, findings, killed = 0, 0.0, [], []
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        left = deadline - time.monotonic()
        if left < 1 or attempt >= 4:
            break
        work = out / f"{name}.{attempt}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cmd = [sys.executable, "-m", "tests.fuzz.run_atheris", name, "--seconds", f"{left:.1f}", "--out", str(work)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with (work / "libfuzzer.log").open("wb") as log:
            proc = subprocess.run(
                [*cmd, "--seed", str(seed + attempt)], cwd=REPO, env=env, stdout=log, stderr=log, timeout=left + 300
            )
        stats_file = work / f"{name}-stats.json"
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {"executions": 0}
        executions += int(stats["executions"])
        fuzz_seconds += float(stats.get("seconds", 0.0))
        findings_file = work / f"{name}-findings.jsonl"
        if findings_file.exists():
            for line in findings_file.read_text().splitlines():
                record = json.loads(line)
                record["path"] = str(work / record["file"])
                findings.append(record)
        artifacts = [p for p in work.iterdir() if p.name.startswith(tuple(f"{name}-{a}" for a in _ARTIFACTS))]
        killed += [str(p) for p in artifacts]
        attempt += 1
        if proc.returncode == 0 and stats.get("final"):
            break
    return {
        "executions": executions,
        "seconds": fuzz_seconds,
        "findings": findings,
        "killed": killed,
        "fallbacks": stats.get("fallbacks", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", type=Path, default=REPO / "build" / "fuzz")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # Minimizing re-runs inputs here; parse() would log a traceback for each library failure it refuses.
    logging.disable(logging.WARNING)
    names = [n for n in args.targets.split(",") if n]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {sorted(TARGETS)}")
    per_target = args.minutes * 60 / len(names)
    out: Path = args.out
    crashes_dir = out / "crashes"
    shutil.rmtree(crashes_dir, ignore_errors=True)
    crashes_dir.mkdir(parents=True)

    total_exec, total_seconds, crashes = 0, 0.0, 0
    report = []
    for name in names:
        result = run_target(name, per_target, out, args.seed)
        fuzz_seconds = float(result["seconds"])  # type: ignore[arg-type]
        executions = int(result["executions"])  # type: ignore[call-overload]
        unique: dict[str, dict[str, object]] = {}
        for record in result["findings"]:  # type: ignore[attr-defined]
            unique.setdefault(record["signature"], record)
        n = 0
        for signature, record in unique.items():
            n += 1
            data = Path(str(record["path"])).read_bytes()
            small = minimize(name, data, signature, seconds=20)
            (crashes_dir / f"{name}-{n}.bin").write_bytes(small)
            with (crashes_dir / "findings.jsonl").open("a") as fh:
                fh.write(json.dumps({**record, "file": f"{name}-{n}.bin", "known": signature in KNOWN}) + "\n")
        for path in result["killed"]:  # type: ignore[attr-defined]
            n += 1
            shutil.copy(path, crashes_dir / f"{name}-{n}.bin")
        found = len(unique) + len(result["killed"])  # type: ignore[arg-type]
        crashes += found
        total_exec += executions
        total_seconds += fuzz_seconds
        known = sum(1 for s in unique if s in KNOWN)
        fallbacks = result["fallbacks"] or {}
        rate = executions / max(float(result["seconds"]), 1e-9)  # type: ignore[arg-type]
        line = f"{name:12s} {executions:9d} executions  {rate:8.0f}/s  crashes {found}"
        if known:
            line += f" ({known} known: tests/fuzz/known.py)"
        print(line + (f"  parser fallbacks {fallbacks}" if fallbacks else ""), flush=True)
        for signature, record in unique.items():
            print(f"    {signature}: {str(record['message'])[:160]}", flush=True)
        report.append({"target": name, "executions": executions, "crashes": found})

    if crashes:
        print(f"reproducers: {crashes_dir}", flush=True)
    rate = round(total_exec / total_seconds) if total_seconds else 0
    print(json.dumps({"bench": "fuzz", "executions": total_exec, "executions_per_s": rate, "crashes": crashes}))


if __name__ == "__main__":
    main()
