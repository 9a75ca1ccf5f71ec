"""``kill -9`` of a served node (``medledger node serve``, SQLite) during each stage of a record's life: while
records are being ingested, while the anchorer batches them onto the chain, while released accesses wait for
the access logger, while a patient's erasure runs. The kill points are random (a fixed seed; each stage comes
round in turn); after every kill the node is started again on the same data directory, and at the end the
invariants are proven: 0 lost (every record the API acknowledged is anchored), 0 duplicated (one RecordAnchored
event per record), every release the API answered on the AccessLog, every erasure both local and on chain, the
audit clean.

``MEDLEDGER_FAULT_KILLS`` (default 6) sets the number of kills, ``MEDLEDGER_FAULT_SEED`` the seed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from clients.patient import PatientClient
from node.config import NodeConfig
from tests.faults.conftest import ChainEnv, NodeProcess, Site, observation, provision_site, settle

SEED = int(os.environ.get("MEDLEDGER_FAULT_SEED", "20261204"))
KILLS = int(os.environ.get("MEDLEDGER_FAULT_KILLS", "6"))
STAGES = ("ingest", "anchor", "access_logging", "erasure")
#: Seconds after a stage's work starts within which its kill falls (uniformly, from the seed).
WINDOWS = {"ingest": (0.05, 0.8), "anchor": (0.0, 0.6), "access_logging": (0.0, 0.5), "erasure": (0.0, 0.4)}


class Ledger:
    """What the API acknowledged, over every run of the node."""

    def __init__(self) -> None:
        self.acknowledged: set[str] = set()
        self.released = 0
        self.answers: Counter[str] = Counter()
        self.next_id = 0

    def take(self, n: int = 1) -> int:
        first = self.next_id
        self.next_id += n
        return first


def post_records(site: Site, book: Ledger, n: int, *, timeout: float = 10.0) -> list[str]:
    """Ingest ``n`` records in one bundle; the ids acknowledged (queued) or [] if the request died."""
    first = book.take(n)
    entries = [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-9000-{i:012d}", "resource": json.loads(observation(site.mrn, i))}
        for i in range(first, first + n)
    ]
    body = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()
    try:
        with site.staff(timeout) as staff:
            r = staff.post("/v1/ingest", content=body, headers={"Content-Type": "application/fhir+json"})
    except httpx.TransportError:
        book.answers["ingest died"] += 1
        return []
    book.answers[f"ingest {r.status_code}"] += 1
    assert r.status_code == 201, r.text
    ids = [rec["record_id"] for rec in r.json()["records"] if rec["status"] == "queued"]
    book.acknowledged |= set(ids)
    return ids


def wait_confirmed(site: Site, ids: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with site.staff() as staff:
        for rid in ids:
            while staff.get(f"/v1/records/{rid}").json()["status"] != "confirmed":
                assert time.monotonic() < deadline, f"{rid} did not anchor"
                time.sleep(0.05)


def ingest_loop(site: Site, book: Ledger, rng: random.Random, stop: threading.Event) -> None:
    while not stop.is_set():
        post_records(site, book, rng.randint(1, 20), timeout=5.0)


def release_loop(
    site: Site, book: Ledger, token: str, ids: list[str], stop: threading.Event, count: int | None = None
) -> None:
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {token}"}, timeout=5.0) as c:
        n = 0
        while not stop.is_set() and (count is None or n < count):
            try:
                r = c.get(f"/v1/records/{ids[n % len(ids)]}/release")
            except httpx.TransportError:
                book.answers["release died"] += 1
                return
            n += 1
            book.answers[f"release {r.status_code}"] += 1
            if r.status_code == 200:
                book.released += 1


def erase(patient: PatientClient, record_id: str, outcomes: dict[str, str]) -> None:
    try:
        outcomes[record_id] = patient.erase(record_id)["status"]
    except Exception as exc:  # the request dies with the node; judged after the restart
        outcomes[record_id] = f"died: {type(exc).__name__}"


def test_kill9_at_random_points_of_every_stage_loses_and_duplicates_nothing(
    chain_env: ChainEnv, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    site = provision_site(tmp_path, chain_env)
    node = NodeProcess(site, tmp_path / "node.log").start()
    book = Ledger()
    releasable = post_records(site, book, 3)
    wait_confirmed(site, releasable)
    erasures: dict[str, str] = {}  # record id -> what the erase request answered
    kills: list[str] = []
    try:
        for k in range(KILLS):
            stage = STAGES[k % len(STAGES)]
            delay = rng.uniform(*WINDOWS[stage])
            patient = PatientClient(site.wallet, site.url)
            stop = threading.Event()
            if stage == "ingest":
                work: Callable[[], object] = partial(ingest_loop, site, book, random.Random(SEED + k), stop)
            elif stage == "anchor":
                post_records(site, book, 40)  # acknowledged: the anchorer now owes them to the chain
                work = stop.wait
            elif stage == "access_logging":
                token = patient.session().token
                assert token is not None
                # Answered releases first (journaled, not yet on chain), then more in flight when the kill comes.
                release_loop(site, book, token, releasable, threading.Event(), count=5)
                work = partial(release_loop, site, book, token, releasable, stop)
            else:
                [target] = post_records(site, book, 1)
                wait_confirmed(site, [target])
                patient.timeline()  # sign in first, so the kill falls inside the erase itself
                erasures[target] = "died"
                work = partial(erase, patient, target, erasures)
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            time.sleep(delay)
            node.kill()
            stop.set()
            worker.join(timeout=15)
            patient.close()
            kills.append(f"{stage}@{delay:.3f}s")
            node.start()
        # An erase the kill cut off is asked again, as the patient would; the node answers it or says it is done.
        with PatientClient(site.wallet, site.url) as patient:
            for rid, outcome in erasures.items():
                if outcome != "confirmed":
                    try:
                        erasures[rid] = "retried: " + patient.erase(rid)["status"]
                    except Exception as exc:
                        code = getattr(exc, "code", type(exc).__name__)
                        assert code == "record_erased", exc
                        erasures[rid] = "retried: already erased"
        db_url = NodeConfig.load(site.data_dir).db_url
        settled = settle(chain_env, db_url, book.acknowledged, book.released, site.wallet.address, timeout=60)
        print(f"kill -9: seed {SEED}, {len(kills)} kills {kills}, {node.starts} starts")
        print(f"kill -9: answers {dict(sorted(book.answers.items()))}; erasures {sorted(erasures.values())}")
        print(f"kill -9: settled {settled}")
        assert settled.erased == len(erasures)
    finally:
        node.stop()
