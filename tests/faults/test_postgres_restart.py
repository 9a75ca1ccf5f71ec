"""The node's PostgreSQL restarts while records are being ingested, anchored and released (a cluster of the
test's own, stopped and started again under a served ``medledger node serve``): meanwhile the API answers 503
with a code, never a 500; afterwards the node has reconnected on its own, every record it acknowledged is
anchored exactly once, every release it answered is on the AccessLog, and the audit is clean."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.faults.conftest import ChainEnv, NodeProcess, PgCluster, observation, provision_site, settle

#: Codes a request may be refused with while the database is away: each says "retry", none is a 500.
UNAVAILABLE = {"database_unavailable", "access_log_unavailable", "ledger_unavailable"}
RESTARTS = 2


class Load:
    """Ingest and release requests in a loop until stopped, tallying every answer."""

    def __init__(self, url: str, staff_token: str, patient_token: str, released_ids: list[str], mrn: str) -> None:
        self.url = url
        self.mrn = mrn
        self.staff = {"Authorization": f"Bearer {staff_token}"}
        self.patient = {"Authorization": f"Bearer {patient_token}"}
        self.released_ids = released_ids
        self.stop = threading.Event()
        self.acknowledged: set[str] = set()
        self.released = 0
        self.answers: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def _answer(self, r: httpx.Response) -> str:
        if r.status_code < 400:
            return str(r.status_code)
        code = r.json().get("error", {}).get("code", "?")
        key = f"{r.status_code} {code}"
        if not (r.status_code == 503 and code in UNAVAILABLE):
            self.unexpected.append(f"{r.request.method} {r.request.url.path}: {key}")
        return key

    def ingest(self) -> None:
        i = 10_000
        with httpx.Client(base_url=self.url, headers=self.staff, timeout=10) as c:
            while not self.stop.is_set():
                i += 1
                try:
                    r = c.post("/v1/ingest", content=observation(self.mrn, i))
                except httpx.TransportError as exc:
                    self.answers[f"transport {type(exc).__name__}"] += 1
                    continue
                self.answers["ingest " + self._answer(r)] += 1
                if r.status_code == 201:
                    for rec in r.json()["records"]:
                        # A record failed for the database (status failed) was not acknowledged: nothing is stored.
                        if rec["status"] == "queued":
                            self.acknowledged.add(rec["record_id"])
                time.sleep(0.01)

    def release(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, headers=self.patient, timeout=10) as c:
            while not self.stop.is_set():
                rid = self.released_ids[n % len(self.released_ids)]
                n += 1
                try:
                    r = c.get(f"/v1/records/{rid}/release")
                except httpx.TransportError as exc:
                    self.answers[f"transport {type(exc).__name__}"] += 1
                    continue
                self.answers["release " + self._answer(r)] += 1
                if r.status_code == 200:
                    self.released += 1
                time.sleep(0.02)


def test_postgres_restarts_under_load_and_nothing_is_lost(
    chain_env: ChainEnv, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    site = provision_site(tmp_path, chain_env, database_url=pg_cluster.url)
    node = NodeProcess(site, tmp_path / "node.log").start()
    patient = site.patient()
    try:
        # Records to release: anchored before the load starts (a release needs the commitment on chain).
        with site.staff() as staff:
            seeded = [staff.post("/v1/ingest", content=observation(site.mrn, i)).json()["records"][0] for i in range(3)]
        seeded_ids = [r["record_id"] for r in seeded]
        deadline = time.monotonic() + 30
        with site.staff() as staff:
            while any(staff.get(f"/v1/records/{rid}").json()["status"] != "confirmed" for rid in seeded_ids):
                assert time.monotonic() < deadline, "the seed records did not anchor"
                time.sleep(0.1)
        token = patient.session().token
        assert token is not None
        load = Load(site.url, site.staff_token, token, seeded_ids, site.mrn)
        workers = [threading.Thread(target=load.ingest), threading.Thread(target=load.release)]
        for w in workers:
            w.start()
        try:
            for _ in range(RESTARTS):
                time.sleep(1.5)
                pg_cluster.stop("fast")  # terminates every session: the node's pool holds dead connections
                time.sleep(1.0)
                pg_cluster.start()
            time.sleep(2.0)
        finally:
            load.stop.set()
            for w in workers:
                w.join(timeout=30)
        print(f"postgres restarts: {RESTARTS}; answers: {dict(sorted(load.answers.items()))}")
        assert not load.unexpected, load.unexpected[:10]
        assert any(k.endswith("503 database_unavailable") for k in load.answers), load.answers
        # Reconnected on its own: both paths work again without a node restart.
        assert load.answers["ingest 201"] > 0 and load.answers["release 200"] > 0
        with site.staff() as staff:
            r = staff.post("/v1/ingest", content=observation(site.mrn, 99_999))
            assert r.status_code == 201, r.text
            load.acknowledged.add(r.json()["records"][0]["record_id"])
        assert node.proc is not None and node.proc.poll() is None
        settled = settle(
            chain_env, pg_cluster.url, load.acknowledged | set(seeded_ids), load.released, site.wallet.address
        )
        print(f"postgres restarts: settled {settled}")
    finally:
        patient.close()
        node.stop()
