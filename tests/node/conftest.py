"""Fixtures for the node's database, pipeline and anchorer tests: a real node database (SQLite and PostgreSQL via
``db_url``), a real KEK, a real blob store, and (for crash tests) an Anvil per test whose state survives restarts."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from medledger.chain.anvil import AnvilProcess, AnvilSettings, free_port
from medledger.chain.contracts import RecordRegistryClient
from medledger.chain.devchain import DevConsortium, deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from medledger.crypto import new_key, x25519_public_key
from medledger.records import MEDIA_FHIR_JSON, CanonicalRecord, PatientIdentity
from medledger.vocabulary import RecordClass
from node.db import open_node_db
from node.db.models import AnchorOutbox, Record, RecordState
from node.keystore import LocalKek
from node.storage import LocalBlobStore

#: Anvil dev account 1 ("Hospital A" in the dev consortium); pipeline tests without a chain use it as custodian.
CUSTODIAN = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@dataclass
class NodeDb:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture
def node_db(db_url: str) -> Iterator[NodeDb]:
    engine, sessions = open_node_db(db_url)
    try:
        yield NodeDb(db_url, engine, sessions)
    finally:
        engine.dispose()


@pytest.fixture
def kek() -> LocalKek:
    return LocalKek(new_key(), "local:test")


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", fsync=False)


def fhir_record(
    i: int, *, mrn: str = "MRN-1", authority: str = "HOSP-A", size: int = 4096, source: str = "ehr-a"
) -> CanonicalRecord:
    """A FHIR-Observation-sized record (``size`` bytes of JSON)."""
    head = json.dumps({"resourceType": "Observation", "id": f"obs-{i}", "subject": {"reference": f"Patient/{mrn}"}})
    payload = (head[:-1] + ', "note": "' + "x" * max(0, size - len(head) - 12) + '"}').encode()
    return CanonicalRecord(
        patient=PatientIdentity(mrn, authority, "Doe", "Jane", "1980-05-01", "F"),
        record_class=RecordClass.LAB,
        type_code="Observation/8867-4",
        clinical_time=datetime(2024, 5, 1, 12, 0, i % 60, tzinfo=UTC),
        source_system=source,
        source_id=f"obs-{i}",
        media_type=MEDIA_FHIR_JSON,
        payload=payload,
        summary={"code": "8867-4"},
    )


def patient_keys() -> tuple[str, bytes, object]:
    """A fresh patient: (ledger address, X25519 public key, X25519 private key)."""
    from eth_account import Account

    from medledger.crypto import x25519_from_seed

    priv = x25519_from_seed(secrets.token_bytes(32))
    return Account.create().address, x25519_public_key(priv), priv


def assert_outbox_invariant(sessions: sessionmaker[Session]) -> None:
    """Transactional outbox: an outbox row exists exactly for the records that are queued or submitted."""
    with sessions() as s:
        outbox = {bytes(r) for r in s.scalars(select(AnchorOutbox.record_id))}
        waiting = {
            bytes(r)
            for r in s.scalars(
                select(Record.record_id).where(Record.status.in_([RecordState.QUEUED, RecordState.SUBMITTED]))
            )
        }
    assert outbox == waiting


@dataclass
class OwnChain:
    """An Anvil of one test, with a state file so it can be stopped and started at the same URL."""

    anvil: AnvilProcess
    rpc: JsonRpcClient
    dev: DevConsortium

    @property
    def hospital(self) -> LocalAccount:
        return self.dev.founders["Hospital A"]

    @property
    def registry(self) -> str:
        return self.dev.manifest.address("RecordRegistry")

    def records_client(self, *, retries: int = 0) -> RecordRegistryClient:
        """RecordRegistry as Hospital A over a fresh connection (fresh nonce state, like a restarted node)."""
        rpc = JsonRpcClient(self.anvil.url, retries=retries, timeout=5.0)
        return RecordRegistryClient(rpc, self.registry, TransactionSender(rpc, self.hospital))

    def anchored_events(self) -> dict[bytes, int]:
        """RecordAnchored events per record id over the whole chain."""
        read = RecordRegistryClient(self.rpc, self.registry)
        topic = next(t for t, e in read.abi.events_by_topic.items() if e.name == "RecordAnchored")
        logs = self.rpc.call(
            "eth_getLogs",
            [{"address": self.registry, "fromBlock": "0x0", "toBlock": "latest", "topics": ["0x" + topic.hex()]}],
        )
        counts: dict[bytes, int] = {}
        for entry in logs:
            rid = bytes.fromhex(entry["topics"][3][2:])
            counts[rid] = counts.get(rid, 0) + 1
        return counts

    def mine_all(self) -> None:
        """Mine until the pool is empty (a block holds fewer than two 500-record batches)."""
        for _ in range(100):
            pending = int(self.rpc.call("txpool_status")["pending"], 16)
            if pending == 0:
                return
            self.rpc.call("evm_mine")
        raise AssertionError("transactions stay pending")


@pytest.fixture
def own_chain(tmp_path: Path) -> Iterator[OwnChain]:
    settings = AnvilSettings.load(port=free_port())
    anvil = AnvilProcess(settings, state_path=tmp_path / "anvil-state.json")
    anvil.start()
    rpc = JsonRpcClient(anvil.url, retries=0, timeout=5.0)
    try:
        dev = deploy_dev(rpc, settings, directory=tmp_path / "deployments")
        yield OwnChain(anvil, rpc, dev)
    finally:
        rpc.close()
        anvil.kill()
