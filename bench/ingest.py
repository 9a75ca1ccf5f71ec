"""Node ingest throughput: FHIR records/s end to end, DICOM MB/s, raw AES-256-GCM, and anchoring on Anvil.

usage: python bench/ingest.py [--fhir 10000] [--dicom-files 8] [--dicom-mb 32] [--db URL]

- fhir: ~4 KiB Observations (tests/node/data/fhir/r5_observation_lab_4k.json varied per record) through
  parse (the node's default "fast" FHIR validation) → encrypt → store (local CID store, fsync per batch) →
  transactional outbox, in batches of 1,000, patients already linked (so each record is also wrapped for
  its patient).
- dicom: CT_small.dcm from pydicom's test data with its pixel data enlarged to --dicom-mb MiB per file,
  parse_file → encrypt → store → outbox, one file at a time.
- aes_gcm_mbps: raw AES-256-GCM over 1 MiB buffers in this process (the physical reference).
- anchored_rps: the node's Anchorer confirming every queued FHIR record on a fresh Anvil (batches of 500).

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medledger.chain.anvil import AnvilProcess, AnvilSettings
from medledger.chain.devchain import contracts_for, deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.crypto import new_key, x25519_from_seed, x25519_public_key
from node.anchorer import Anchorer
from node.bulk import BulkIngest
from node.db import open_node_db
from node.directory import PatientDirectory
from node.ingest import parse_file
from node.keystore import LocalKek
from node.pipeline import IngestPipeline
from node.storage import LocalBlobStore

ROOT = Path(__file__).resolve().parents[1]
FHIR_TEMPLATE = json.loads((ROOT / "tests/node/data/fhir/r5_observation_lab_4k.json").read_text())
FHIR_AUTHORITY = "urn:medledger:fhir-logical-id"
PATIENTS = 200


def aes_gcm_mbps(seconds: float = 1.0) -> float:
    aead, buf, nonce = AESGCM(new_key()), os.urandom(1 << 20), os.urandom(12)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        aead.encrypt(nonce, buf, None)
        n += 1
    return n / (time.perf_counter() - t0)


def fhir_payloads(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        doc = dict(FHIR_TEMPLATE)
        doc["id"] = f"bench-{i}"
        doc["subject"] = {"reference": f"Patient/bench-patient-{i % PATIENTS}"}
        doc["effectiveDateTime"] = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T08:{i % 60:02d}:00Z"
        out.append(json.dumps(doc).encode())
    return out


def big_dicom_files(directory: Path, count: int, mib: int) -> list[Path]:
    """Real CT headers with enlarged pixel data: Rows * Columns * frames * 2 bytes = ``mib`` MiB."""
    ds = dcmread(get_testdata_file("CT_small.dcm", download=False))
    side = 1024
    frames = max(1, (mib << 20) // (side * side * 2))
    ds.Rows = ds.Columns = side
    ds.NumberOfFrames = frames
    ds.PixelData = os.urandom(side * side * 2 * frames)
    paths = []
    for i in range(count):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = directory / f"ct-{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fhir", type=int, default=10_000, help="FHIR records to ingest")
    ap.add_argument("--dicom-files", type=int, default=8)
    ap.add_argument("--dicom-mb", type=int, default=32, help="size of each DICOM file in MiB")
    ap.add_argument("--db", default="", help="node database URL (default: SQLite in a temp dir)")
    ap.add_argument("--batch", type=int, default=500, help="records per parse task and database transaction")
    args = ap.parse_args()

    aes = aes_gcm_mbps()
    print(f"raw AES-256-GCM: {aes:,.0f} MB/s", flush=True)

    settings = AnvilSettings.load(port=0)
    with tempfile.TemporaryDirectory() as tmp_dir, AnvilProcess(settings) as anvil:
        tmp = Path(tmp_dir)
        rpc = JsonRpcClient(anvil.url)
        dev = deploy_dev(rpc, settings, directory=tmp / "deployments")
        hospital = dev.founders["Hospital A"]
        engine, sessions = open_node_db(args.db or f"sqlite:///{tmp / 'node.db'}")
        kek = LocalKek(new_key(), "bench")
        directory = PatientDirectory(sessions, kek)
        for i in range(PATIENTS):
            seed = f"bench-patient-{i}".encode()
            pub = x25519_public_key(x25519_from_seed(seed))
            directory.link(f"bench-patient-{i}", FHIR_AUTHORITY, "0x" + (i + 1).to_bytes(20, "big").hex(), pub)
        pipeline = IngestPipeline(sessions, LocalBlobStore(tmp / "blobs"), kek, hospital.address, directory=directory)

        # FHIR ----------------------------------------------------------------------------------------------
        payloads = fhir_payloads(args.fhir)
        size = sum(map(len, payloads)) / len(payloads)
        # The parser processes start before the clock: a running node has them already.
        with BulkIngest(pipeline, {"source_system": "bench", "validate": "fast"}, chunk=args.batch) as bulk:
            t0 = time.perf_counter()
            stored = sum(
                r.status == "queued"
                for outcome in bulk.run((f"obs-{i}", p) for i, p in enumerate(payloads))
                for r in outcome.results
            )
            fhir_s = time.perf_counter() - t0
        assert stored == args.fhir, f"only {stored} of {args.fhir} FHIR records were queued"
        print(f"FHIR: {args.fhir} records of {size:,.0f} B in {fhir_s:.2f}s ({args.fhir / fhir_s:,.0f}/s)", flush=True)

        # DICOM ---------------------------------------------------------------------------------------------
        dicom_dir = tmp / "dicom"
        dicom_dir.mkdir()
        files = big_dicom_files(dicom_dir, args.dicom_files, args.dicom_mb)
        # CT_small's patient must be linked for its images to be queued rather than held for linking.
        ct_patient = dcmread(files[0], stop_before_pixels=True).PatientID
        directory.link(ct_patient, "", "0x" + "ab" * 20, x25519_public_key(x25519_from_seed(b"ct")))
        dicom_bytes = sum(f.stat().st_size for f in files)
        # The input files were just written: flush them first, or their writeback competes with the node's
        # own writes inside the timed section (in production the modality's files are long on disk).
        os.sync()
        t0 = time.perf_counter()
        for f in files:
            results = pipeline.ingest(parse_file(f, source_system="bench-pacs"))
            assert all(r.status == "queued" for r in results), results
        dicom_s = time.perf_counter() - t0
        dicom_mb = dicom_bytes / 1e6
        print(f"DICOM: {len(files)} files, {dicom_mb:,.0f} MB in {dicom_s:.2f}s ({dicom_mb / dicom_s:,.0f} MB/s)")

        # anchoring -----------------------------------------------------------------------------------------
        records_client = contracts_for(rpc, dev.manifest, hospital).records
        anchorer = Anchorer(sessions, records_client, max_batch=500, max_wait_ms=0)
        queued = pipeline.status_counts().get("queued", 0)
        t0 = time.perf_counter()
        step = anchorer.drain()
        anchor_s = time.perf_counter() - t0
        assert step.confirmed == queued, f"confirmed {step.confirmed} of {queued}"
        print(f"anchored: {step.confirmed} records in {anchor_s:.2f}s ({step.confirmed / anchor_s:,.0f}/s)")
        engine.dispose()

    print(
        json.dumps(
            {
                "bench": "ingest",
                "fhir_records": args.fhir,
                "fhir_rps": round(args.fhir / fhir_s, 1),
                "dicom_mb": round(dicom_mb, 1),
                "dicom_mbps": round(dicom_mb / dicom_s, 1),
                "aes_gcm_mbps": round(aes, 1),
                "anchored_rps": round(step.confirmed / anchor_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
