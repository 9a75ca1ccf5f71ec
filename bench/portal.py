"""The patient wallet app in a real browser (Debian's Chromium via Playwright) on loopback.

usage: python bench/portal.py [--records 10000] [--dicom-mb 40] [--runs 3]

1. Fresh Anvil with the dev consortium; Hospital A and Hospital B provisioned and started in this process. A
   patient (home node B) with --records small lab records and one --dicom-mb MB imaging record held and
   anchored by A, indexed by both nodes.
2. timeline: the app is opened at B, the patient imports her keystore (cheap scrypt: the key derivation is
   not what is measured) and signs in (SIWE). From her signed-in moment: timeline_first_render_ms until the
   first rows are in the DOM (the first page of 100), timeline_interactive_ms until all --records are loaded
   and the filter works over all of them (pages of 1000 in the background; the page stays usable
   throughout). Also the page's boot (navigation to its first render) and one filter over everything.
   --runs fresh page loads, medians reported.
3. decrypt_mbps: the app opens the DICOM record: signs in at A, fetches the release (base64 JSON), and the
   browser decodes it, checks SHA-256(ciphertext) against the chain's commitment, unwraps the record key
   (X25519 ECIES) and AES-256-GCM-decrypts it: MB of plaintext per second of that browser-side work (from
   the release's arrival to the plaintext; the transfer is reported apart). The plaintext is compared with
   the Python client's.
4. max_page_kib: the largest JS + CSS one portal page ships (uncompressed), from portal/static.

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.patient import PatientClient  # noqa: E402
from clients.wallet import PatientWallet, save_wallet  # noqa: E402
from medledger.chain.anvil import AnvilProcess, AnvilSettings  # noqa: E402
from medledger.chain.deploy import manifest_path  # noqa: E402
from medledger.chain.devchain import deploy_dev  # noqa: E402
from medledger.chain.rpc import JsonRpcClient  # noqa: E402
from medledger.records import MEDIA_DICOM, MEDIA_FHIR_JSON, CanonicalRecord, PatientIdentity  # noqa: E402
from medledger.vocabulary import RecordClass  # noqa: E402
from node.db.models import Record, RecordState  # noqa: E402
from node.embedded import EmbeddedNode, provision_node  # noqa: E402
from portal import STATIC  # noqa: E402

PASSWORD = "bench-password"
WALLET_PASSWORD = "bench wallet password"
MRN = "MRN-PORTAL"
CLASSES = [RecordClass.LAB, RecordClass.VITAL_SIGNS, RecordClass.MEDICATION, RecordClass.CONDITION]


def records(n: int, dicom_mb: int) -> list[CanonicalRecord]:
    who = PatientIdentity(MRN, "HOSP-A", "Doe", "Jane", "1980-05-01", "F")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        body = json.dumps({"resourceType": "Observation", "id": f"obs-{i}", "valueQuantity": {"value": i % 200}})
        rec = CanonicalRecord(
            patient=who, record_class=CLASSES[i % len(CLASSES)], type_code="Observation/8867-4",
            clinical_time=start + timedelta(hours=6 * i), source_system="ehr-bench", source_id=f"obs-{i}",
            media_type=MEDIA_FHIR_JSON, payload=body.encode(), summary={"code": "8867-4"},
        )  # fmt: skip
        out.append(rec)
    # A CT-sized DICOM: preamble, "DICM", then image-sized bytes (random, so nothing compresses it away).
    dicom = b"\0" * 128 + b"DICM" + os.urandom(dicom_mb * 1024 * 1024 - 132)
    ct = CanonicalRecord(
        patient=who, record_class=RecordClass.IMAGING, type_code="CT", clinical_time=datetime.now(UTC),
        source_system="pacs-bench", source_id="ct-1", media_type=MEDIA_DICOM, payload=dicom,
        summary={"modality": "CT"},
    )  # fmt: skip
    out.append(ct)
    return out


def wait_confirmed(a, ids: list[str]) -> None:
    rids = [bytes.fromhex(i[2:]) for i in ids]
    while True:
        with a.sessions() as s:
            left = sum(1 for r in rids if s.get(Record, r).status != RecordState.CONFIRMED)
        if left == 0:
            return
        time.sleep(0.2)


def page_kib() -> dict[str, float]:
    css = (STATIC / "assets" / "styles.css").stat().st_size
    return {
        html.stem: ((STATIC / "assets" / f"{html.stem}.js").stat().st_size + css) / 1024
        for html in sorted(STATIC.glob("*.html"))
    }


def marks(page) -> dict[str, float]:
    return page.evaluate(
        "Object.fromEntries(performance.getEntriesByType('mark')"
        ".filter(m => m.name.startsWith('medledger:')).map(m => [m.name.slice(10), m.startTime]))"
    )


def open_signed_in(browser, url: str, keystore: Path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(120_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#import-wallet")
    boot_ms = page.evaluate("performance.now()")
    page.set_input_files("#import-wallet input[type=file]", str(keystore))
    page.fill("#import-wallet input[type=password]", WALLET_PASSWORD)
    page.click("#import-wallet button[type=submit]")
    return context, page, boot_ms, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--dicom-mb", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from tests.portal.conftest import CHROMIUM_ARGS, chromium_path

    chromium = chromium_path()
    if chromium is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium, or scripts/install_browser.sh)")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="medledger-bench-portal-"))
    with AnvilProcess(AnvilSettings.load(port=0)) as anvil:
        rpc = JsonRpcClient(anvil.url)
        dev = deploy_dev(rpc, anvil.settings, directory=tmp / "deployments")
        dev.manifest.save(manifest_path(dev.manifest.chain_id, tmp / "deployments"))
        nodes = {}
        for name in ("Hospital A", "Hospital B"):
            d = tmp / name.replace(" ", "-")
            provision_node(
                d, name, password=PASSWORD, rpc_url=anvil.url, deployments_dir=str(tmp / "deployments"),
                private_key=bytes(dev.founders[name].key), scrypt_n=2**12,
            )  # fmt: skip
            nodes[name] = EmbeddedNode(d, PASSWORD).start()
        a, b = nodes["Hospital A"].services, nodes["Hospital B"].services
        assert a is not None and b is not None
        try:
            wallet = PatientWallet.create()
            patient = PatientClient(wallet, nodes["Hospital B"].url)
            patient.register_key()
            keystore = save_wallet(wallet, tmp / "wallet.json", WALLET_PASSWORD, iterations=2**10)
            a.directory.link(MRN, "HOSP-A", wallet.address, wallet.encryption_public_key)
            t = time.perf_counter()
            ids = [r.as_api()["record_id"] for r in a.pipeline.ingest(records(args.records, args.dicom_mb))]
            wait_confirmed(a, ids)
            block = rpc.block_number()
            for s in (a, b):
                s.ledger.sync()
                assert s.ledger.wait_for_block(block)
            print(f"setup: {len(ids)} records ingested, anchored and indexed in {time.perf_counter() - t:.1f} s")
            dicom_id = ids[-1]
            url = f"{nodes['Hospital B'].url}/portal/patient.html"

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                runs = []
                for run in range(args.runs):
                    context, page, boot_ms, errors = open_signed_in(browser, url, keystore)
                    page.wait_for_selector("main[data-state=complete]")
                    m = marks(page)
                    count = page.inner_text("#timeline-status")
                    t0 = time.perf_counter()
                    page.select_option("main select", "medication")
                    page.wait_for_selector("#timeline li:first-child a:text-is('Medication')")
                    filter_ms = (time.perf_counter() - t0) * 1000
                    assert not errors, errors
                    runs.append(
                        {
                            "boot_ms": boot_ms,
                            "first": m["timeline-first"] - m["signed-in"],
                            "complete": m["timeline-complete"] - m["signed-in"],
                            "filter_ms": filter_ms,
                        }
                    )
                    print(
                        f"run {run + 1}: page boot {boot_ms:.0f} ms, first rows {runs[-1]['first']:.0f} ms, "
                        f"all loaded {runs[-1]['complete']:.0f} ms after sign-in; filter {filter_ms:.0f} ms; {count}"
                    )
                    if run < args.runs - 1:
                        context.close()

                # Decrypt the DICOM record in the same (signed-in) page, --runs times (the view rebuilt each time).
                expected = hashlib.sha256(patient.download(dicom_id).content).hexdigest()
                decrypts = []
                for run in range(args.runs):
                    page.evaluate("location.hash = '#/timeline'")
                    page.wait_for_selector("#timeline li")
                    page.evaluate(f"location.hash = '#/record?id={dicom_id}'")
                    page.wait_for_selector("#decrypt")
                    t0 = time.perf_counter()
                    page.click("#decrypt")
                    viewer = page.wait_for_selector(".viewer[data-sha256]", timeout=300_000)
                    wall = time.perf_counter() - t0
                    m = marks(page)
                    size = int(viewer.get_attribute("data-bytes") or 0)
                    assert viewer.get_attribute("data-sha256") == expected
                    assert size == args.dicom_mb * 1024 * 1024
                    decrypt_s = (m["decrypt-end"] - m["decrypt-start"]) / 1000
                    decoded_s = (m["decrypt-decoded"] - m["decrypt-start"]) / 1000
                    decrypts.append(size / 1e6 / decrypt_s)
                    print(
                        f"decrypt {run + 1}: {size / 1e6:.1f} MB decoded, verified and decrypted in the browser in "
                        f"{decrypt_s * 1000:.0f} ms ({decrypts[-1]:.0f} MB/s; base64 decoding {decoded_s * 1000:.0f} "
                        f"ms of it); click to plaintext {wall * 1000:.0f} ms including the sign-in at A (first "
                        f"time), the {size * 4 / 3 / 1e6:.0f} MB base64 transfer and the DICOM viewer"
                    )
                decrypt_mbps = statistics.median(decrypts)
                browser.close()
        finally:
            for node in nodes.values():
                node.stop()

    sizes = page_kib()
    print("JS+CSS per page (KiB): " + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items()))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        json.dumps(
            {
                "bench": "portal",
                "timeline_first_render_ms": round(med["first"], 1),
                "timeline_interactive_ms": round(med["complete"], 1),
                "decrypt_mbps": round(decrypt_mbps, 1),
                "max_page_kib": round(max(sizes.values()), 1),
                "records": args.records,
                "page_boot_ms": round(med["boot_ms"], 1),
                "filter_ms": round(med["filter_ms"], 1),
                "dicom_mb": args.dicom_mb,
            }
        )
    )


if __name__ == "__main__":
    main()
