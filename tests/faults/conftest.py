"""Fault injection against real components: a PostgreSQL cluster of the test's own (initdb in a temporary
directory, so the machine's server on 5432 stays up for the other tests), a size-limited tmpfs for the blob
store, and ``medledger node serve`` subprocesses killed with SIGKILL. All on the session's real Anvil, whose
state is snapshotted per module and reverted afterwards.

The faults need root (mount) and PostgreSQL's binaries: without them the tests skip with the reason, unless
``MEDLEDGER_REQUIRE_FAULTS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from clients.auditor.audit import AuditSettings, run_audit
from clients.auditor.model import AuditReport, Scope
from clients.patient import PatientClient
from clients.wallet import PatientWallet
from medledger.chain.anvil import AnvilProcess
from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.deploy import manifest_path
from medledger.chain.devchain import DevConsortium
from medledger.chain.rpc import JsonRpcClient
from node.auth import StaffRole, create_staff
from node.config import NodeConfig
from node.embedded import EmbeddedNode, free_port, provision_node
from node.ingest.fhir import FHIR_LOGICAL_ID_AUTHORITY

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "test-node-password"
PG_BIN = Path(os.environ.get("MEDLEDGER_PG_BIN", "/usr/lib/postgresql/15/bin"))


def faults_required() -> bool:
    return os.environ.get("MEDLEDGER_REQUIRE_FAULTS") == "1"


def unavailable(reason: str) -> NoReturn:
    if faults_required():
        pytest.fail(f"fault injection is required (MEDLEDGER_REQUIRE_FAULTS=1) but {reason}")
    pytest.skip(f"{reason} (set MEDLEDGER_REQUIRE_FAULTS=1 to require it)")


def observation(mrn: str, i: int, *, note: int = 0) -> bytes:
    """A FHIR Observation of patient ``mrn`` (by logical id), unique per ``i``; ``note`` characters of narrative
    make its ciphertext a file of the blob store rather than a row of its pack (above 64 KiB)."""
    obs: dict[str, object] = {
        "resourceType": "Observation",
        "id": f"fault-{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/{mrn}"},
        "effectiveDateTime": "2024-05-01T10:15:00+02:00",
        "valueQuantity": {"value": 60 + i % 40, "unit": "beats/minute", "system": "http://unitsofmeasure.org"},
    }
    if note:
        obs["note"] = [{"text": (f"{i:08d} " * (note // 9 + 1))[:note]}]
    return json.dumps(obs).encode()


# ---------------------------------------------------------------------------------------------- chain, node


@dataclass
class ChainEnv:
    anvil: AnvilProcess
    rpc: JsonRpcClient
    dev: DevConsortium
    deployments: Path

    def anchored_events(self) -> dict[bytes, int]:
        """RecordAnchored events per record id over the whole chain."""
        registry = self.dev.manifest.address("RecordRegistry")
        read = RecordRegistryClient(self.rpc, registry)
        topic = next(t for t, e in read.abi.events_by_topic.items() if e.name == "RecordAnchored")
        logs = self.rpc.call(
            "eth_getLogs",
            [{"address": registry, "fromBlock": "0x0", "toBlock": "latest", "topics": ["0x" + topic.hex()]}],
        )
        counts: dict[bytes, int] = {}
        for entry in logs:
            rid = bytes.fromhex(entry["topics"][3][2:])
            counts[rid] = counts.get(rid, 0) + 1
        return counts

    def audit(self, patient: str) -> AuditReport:
        """The independent audit of ``patient`` from the chain alone, ciphertexts fetched from the nodes."""
        auditor = self.dev.founders["Regional Audit Office"]
        os.environ["MEDLEDGER_TEST_AUDITOR_KEY"] = bytes(auditor.key).hex()
        try:
            return run_audit(
                Scope.patient(patient),
                AuditSettings(
                    rpc_url=self.rpc.url,
                    deployments_dir=self.deployments,
                    ciphertexts=True,
                    key_env="MEDLEDGER_TEST_AUDITOR_KEY",
                ),
            )
        finally:
            del os.environ["MEDLEDGER_TEST_AUDITOR_KEY"]


@pytest.fixture(scope="module")
def chain_env(
    anvil: AnvilProcess, dev_consortium: DevConsortium, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainEnv]:
    rpc = JsonRpcClient(anvil.url)
    snapshot = rpc.call("evm_snapshot")
    deployments = tmp_path_factory.mktemp("faults-deployments")
    dev_consortium.manifest.save(manifest_path(dev_consortium.manifest.chain_id, deployments))
    try:
        yield ChainEnv(anvil, rpc, dev_consortium, deployments)
    finally:
        rpc.call("evm_revert", [snapshot])
        rpc.close()


@dataclass
class Site:
    """Hospital A's data directory, a staff token, and a patient linked there with a key registered on chain."""

    data_dir: Path
    port: int
    staff_token: str
    wallet: PatientWallet
    mrn: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def staff(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.staff_token}"}, timeout=timeout)

    def patient(self) -> PatientClient:
        return PatientClient(self.wallet, self.url)


def provision_site(root: Path, env: ChainEnv, *, database_url: str = "", store_url: str = "") -> Site:
    """Provision Hospital A under ``root`` and set it up through one embedded run: profile published, a
    clinician's token, a patient whose key is registered and who is linked (records of theirs anchor at once)."""
    data_dir = root / "hospital-a"
    port = free_port()
    provision_node(
        data_dir, "Hospital A", password=PASSWORD, rpc_url=env.anvil.url, deployments_dir=str(env.deployments),
        private_key=bytes(env.dev.founders["Hospital A"].key), scrypt_n=2**12, port=port, database_url=database_url,
    )  # fmt: skip
    if store_url:
        config = NodeConfig.load(data_dir)
        config.store_url = store_url
        config.save()
    node = EmbeddedNode(data_dir, PASSWORD).start()
    try:
        services = node.services
        assert services is not None
        with services.sessions.begin() as s:
            token = create_staff(s, "clinician at A", StaffRole.CLINICIAN)[1]
        wallet = PatientWallet.create()
        mrn = f"pat-{wallet.address[2:10].lower()}"
        with PatientClient(wallet, node.url) as patient:
            patient.register_key()
        services.directory.link(mrn, FHIR_LOGICAL_ID_AUTHORITY, wallet.address, wallet.encryption_public_key)
    finally:
        node.stop()
    return Site(data_dir, port, token, wallet, mrn)


class NodeProcess:
    """``medledger node serve`` of ``site`` as a child process, killed with SIGKILL or stopped."""

    def __init__(self, site: Site, log: Path) -> None:
        self.site = site
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 40.0) -> NodeProcess:
        cmd = [sys.executable, "-m", "assembly", "node", "serve", "--data-dir", str(self.site.data_dir)]
        env = {**os.environ, "MEDLEDGER_NODE_PASSWORD": PASSWORD}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.site.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"node did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no handler, no flush, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


@dataclass
class Settled:
    records: int
    erased: int
    anchored_events: int
    accesses_on_chain: int
    audit_accesses: int


def settle(
    env: ChainEnv, db_url: str, acknowledged: set[str], released: int, patient: str, timeout: float = 60.0
) -> Settled:
    """Wait until the node has anchored every record and moved every journaled access on chain, then prove the
    invariants: 0 lost (every acknowledged record anchored), 0 duplicated (one RecordAnchored event per record),
    every release the API answered on the AccessLog (the journal holds at least those, all confirmed, and the
    chain as many as the journal), the audit clean."""
    from sqlalchemy import func, select

    from medledger.db import make_engine
    from node.db.models import AccessEntry, AccessState, Erasure, ErasureState, Record, RecordState

    engine = make_engine(db_url)
    done = {RecordState.CONFIRMED.value, RecordState.ERASED.value}
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as c:
                states = {"0x" + bytes(rid).hex(): st for rid, st in c.execute(select(Record.record_id, Record.status))}
                journal = dict(
                    (st, n)
                    for st, n in c.execute(select(AccessEntry.status, func.count()).group_by(AccessEntry.status))
                )
                erasures = {
                    "0x" + bytes(rid).hex(): st for rid, st in c.execute(select(Erasure.record_id, Erasure.status))
                }
            if (
                set(states.values()) <= done
                and set(journal) <= {AccessState.CONFIRMED.value}
                and set(erasures.values()) <= {ErasureState.CONFIRMED.value}
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the node did not settle: records {sorted(set(states.values()))}, journal {journal}"
                )
            time.sleep(0.1)
    finally:
        engine.dispose()
    lost = acknowledged - set(states)
    assert not lost, f"{len(lost)} acknowledged records are gone"
    # A shredded record is erased here and on chain, never one without the other.
    assert {rid for rid, st in states.items() if st == RecordState.ERASED.value} == set(erasures)
    events = env.anchored_events()
    mine = {rid: events.get(bytes.fromhex(rid[2:]), 0) for rid in states}
    assert all(n == 1 for n in mine.values()), {rid: n for rid, n in mine.items() if n != 1}
    journaled = journal.get(AccessState.CONFIRMED.value, 0)
    assert journaled >= released, f"{released} releases answered, {journaled} journaled"
    report = env.audit(patient)
    assert report.violations == [], report.violations
    assert len(report.accesses) == journaled, (len(report.accesses), journaled)
    return Settled(len(states), len(erasures), sum(mine.values()), journaled, len(report.accesses))


# ---------------------------------------------------------------------------------------------- PostgreSQL


class PgCluster:
    """A PostgreSQL cluster of the test's own, run as the ``postgres`` OS user when the test runs as root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.logfile = root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {out.stderr[-2000:]}")

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        # fsync off: a restart, not a power loss, is the fault under test; the unix socket stays in our directory.
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL's initdb is not at {PG_BIN} (MEDLEDGER_PG_BIN)")
    root = Path(tempfile.mkdtemp(prefix="medledger-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PgCluster(root)
    try:
        cluster.init()
        cluster.start()
    except (AssertionError, OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        unavailable(f"a private PostgreSQL cluster cannot be started here: {exc}")
    try:
        yield cluster
    finally:
        with contextlib.suppress(AssertionError):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- tmpfs


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """An 8 MiB tmpfs of this test's own (root only); unmounted afterwards."""
    mount = Path(tempfile.mkdtemp(prefix="medledger-faults-fs-"))
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if out.returncode != 0:
        mount.rmdir()
        unavailable(f"a size-limited tmpfs cannot be mounted here: {out.stderr.strip() or out.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        mount.rmdir()
