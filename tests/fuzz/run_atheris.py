"""Run one fuzz target under atheris (libFuzzer, coverage-guided) for a fixed time; one process per target.

usage: python -m tests.fuzz.run_atheris TARGET --seconds S --out DIR [--seed N]

The target's property violations (:class:`tests.fuzz.targets.Finding`) are recorded, not raised: each distinct
one (by its signature) is written to ``DIR/<target>-<k>.bin`` with its summary in ``DIR/<target>-findings.jsonl``,
and fuzzing goes on, so one bug does not hide the next. ``DIR/<target>-stats.json`` is rewritten every second
and at the end: executions, seconds, findings, and the documented codes seen. An input that runs past
libFuzzer's ``-timeout`` (a real hang) kills the process; libFuzzer then leaves ``<target>-timeout-*`` in DIR.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import atheris

# Coverage comes from the code under test and, for the parsers, the library that reads the format (where most
# of the branches on hostile bytes are). Only those are instrumented: instrumenting every import costs ~10 s
# of start-up and slows each execution. fhir.resources is left out (pydantic's validators are compiled).
INSTRUMENT = {
    "hl7": ["node.ingest", "hl7apy"],
    "dicom": ["node.ingest", "pydicom"],
    "fhir": ["node.ingest"],
    "ingest_file": ["node.ingest"],
    "httpsig": ["medledger.auth"],
    "siwe": ["medledger.auth"],
    "eip712": ["node.relay", "medledger.chain.typed_data", "medledger.auth", "medledger.addresses"],
}
_name = next((a for a in sys.argv[1:] if a in INSTRUMENT), None)
# pydicom's data dictionaries are a megabyte of literals with no branches: instrumenting them costs seconds.
_EXCLUDE = ["pydicom._dicom_dict", "pydicom._private_dict", "pydicom._uid_dict", "pydicom.sr", "pydicom.fileset"]
with atheris.instrument_imports(include=INSTRUMENT.get(_name or "", ["node.ingest"]), exclude=_EXCLUDE):
    from tests.fuzz import targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # parse() logs each library failure it turns into ingest_unparseable, with a traceback: at thousands of
    # inputs a second that is most of the run's time. The stats count them instead (``fallbacks``).
    logging.disable(logging.WARNING)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    name: str = args.target
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-corpus-{name}-"))
    for i, seed in enumerate(targets.seeds(name)):
        (corpus / f"seed-{i:03d}").write_bytes(seed)

    seen: dict[str, int] = {}
    state = {"executions": 0, "last_flush": time.monotonic()}
    start = time.monotonic()
    deadline = start + args.seconds

    def flush(final: bool = False) -> None:
        elapsed = time.monotonic() - start
        stats = {
            "target": name,
            "executions": state["executions"],
            "seconds": round(elapsed, 2),
            "findings": len(seen),
            "codes": targets.STATS.codes,
            "fallbacks": targets.STATS.fallbacks,
            "final": final,
        }
        tmp = out / f"{name}-stats.json.tmp"
        tmp.write_text(json.dumps(stats, sort_keys=True))
        tmp.replace(out / f"{name}-stats.json")

    def one_input(data: bytes) -> None:
        state["executions"] += 1
        try:
            targets.run_one(name, data)
        except targets.Finding as finding:
            if finding.signature not in seen:
                seen[finding.signature] = k = len(seen) + 1
                (out / f"{name}-{k}.bin").write_bytes(data)
                with (out / f"{name}-findings.jsonl").open("a") as fh:
                    record = {"file": f"{name}-{k}.bin", "kind": finding.kind, "signature": finding.signature,
                              "message": str(finding), "summary": finding.summary}  # fmt: skip
                    fh.write(json.dumps(record) + "\n")
        now = time.monotonic()
        if now - state["last_flush"] > 1.0:
            state["last_flush"] = now
            flush()
        if now >= deadline:
            flush(final=True)
            sys.stdout.flush()
            shutil.rmtree(corpus, ignore_errors=True)
            shutil.rmtree(targets._TMP, ignore_errors=True)
            os._exit(0)  # libFuzzer has no "stop now" call, and its exit skips Python's own shutdown anyway

    libfuzzer_args = [
        sys.argv[0],
        f"-seed={args.seed}",
        f"-max_len={targets.MAX_LEN}",
        # A hard stop for a hang in C code that never returns to Python; the target interrupts a Python loop
        # after HANG_CPU_SECONDS of CPU, which on a loaded machine can take several times that in wall time.
        f"-timeout={int(targets.HANG_CPU_SECONDS * 8)}",
        f"-max_total_time={int(args.seconds) + 30}",
        "-rss_limit_mb=3072",
        f"-artifact_prefix={out}/{name}-",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(libfuzzer_args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
