"""The blob store's file system fills up mid-ingest (an 8 MiB tmpfs of the test's own): the ingest answers
``507 insufficient_storage``, leaves no record row, no outbox row and no blob of the refused batch behind
(a batch that filled the disk half-way included), and goes through once space is freed; every record the node
acknowledged is then anchored."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from sqlalchemy import func, select

from node.db.models import AnchorOutbox, Record, RecordState
from node.embedded import EmbeddedNode
from tests.faults.conftest import PASSWORD, ChainEnv, observation, provision_site
from tests.sharing.conftest import wait_until

#: Characters of narrative per large record: a ~150 KB ciphertext, stored as a file.
LARGE = 150_000


def bundle(mrn: str, start: int, n: int) -> bytes:
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "resource": json.loads(observation(mrn, i, note=LARGE)),
        }
        for i in range(start, start + n)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def stored_cids(root: Path) -> set[str]:
    """Every blob in the store: pack rows and files; temp files of a torn write count too."""
    cids: set[str] = set()
    pack = root / "packs.db"
    if pack.exists():
        with sqlite3.connect(f"file:{pack}?mode=ro", uri=True) as conn:
            cids |= {row[0] for row in conn.execute("SELECT cid FROM blobs")}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("packs.db"):
            cids.add(path.name)
    return cids


def test_a_full_blob_store_answers_507_leaves_nothing_behind_and_resumes(
    chain_env: ChainEnv, small_fs: Path, tmp_path: Path
) -> None:
    site = provision_site(tmp_path, chain_env, store_url=str(small_fs / "blobs"))
    node = EmbeddedNode(site.data_dir, PASSWORD).start(publish_profile=False)
    services = node.services
    assert services is not None
    try:
        with site.staff() as staff:

            def ingest(body: bytes) -> tuple[int, dict]:
                r = staff.post("/v1/ingest", content=body, headers={"Content-Type": "application/fhir+json"})
                return r.status_code, r.json()

            # Room for 10.5 large records, then batches of 3: the fourth fills the disk after its first two blobs.
            filler = small_fs / "filler"
            filler.write_bytes(b"\0" * max(0, free(small_fs) - int(10.5 * LARGE)))
            acknowledged: list[str] = []
            refused: bytes | None = None
            for start in range(0, 60, 3):
                body = bundle(site.mrn, start, 3)
                room = free(small_fs)
                status, reply = ingest(body)
                if status == 507:
                    assert reply["error"]["code"] == "insufficient_storage", reply
                    assert room > LARGE + 16_384, "the disk was full before the batch: not a mid-batch fault"
                    refused = body
                    break
                assert status == 201, reply
                assert {r["status"] for r in reply["records"]} == {"queued"}, reply
                acknowledged += [r["record_id"] for r in reply["records"]]
            assert refused is not None, "the file system never filled up"
            print(f"disk full: {len(acknowledged)} records acknowledged, then 507 on a batch of 3 ({room} bytes free)")
            assert len(acknowledged) >= 3

            # Nothing of the refused batch: every row is an acknowledged record, every blob a row's.
            with services.sessions() as s:
                rows = {("0x" + bytes(r.record_id).hex(), r.cid) for r in s.execute(select(Record)).scalars()}
                outbox = s.scalar(select(func.count()).select_from(AnchorOutbox))
            assert {rid for rid, _ in rows} == set(acknowledged)
            assert outbox is not None and outbox <= len(acknowledged)
            assert stored_cids(small_fs / "blobs") == {cid for _, cid in rows}
            # Still full: refused again, still nothing left behind.
            assert ingest(refused)[0] == 507
            assert stored_cids(small_fs / "blobs") == {cid for _, cid in rows}

            # Space freed: the same batch goes through, and every acknowledged record anchors.
            filler.unlink()
            status, reply = ingest(refused)
            assert status == 201, reply
            assert {r["status"] for r in reply["records"]} == {"queued"}
            acknowledged += [r["record_id"] for r in reply["records"]]

        def all_anchored() -> bool:
            with services.sessions() as s:
                states = list(s.execute(select(Record.status)).scalars())
            return len(states) == len(acknowledged) and set(states) == {RecordState.CONFIRMED}

        wait_until(all_anchored, timeout=30, what="every acknowledged record anchored")
        events = chain_env.anchored_events()
        assert all(events.get(bytes.fromhex(rid[2:])) == 1 for rid in acknowledged)
        for _rid, cid in rows:
            assert services.store.get(cid)  # the earlier blobs are whole
    finally:
        node.stop()
