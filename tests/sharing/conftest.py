"""Two institution nodes (Hospital A and Hospital B, the dev founders' keys), served over loopback HTTP from
this process, on the session's real Anvil. The network is shared by a test module: the chain is
snapshotted when the module starts and reverted when it ends; every test makes its own patients.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clients.api import NodeClient
from clients.patient import PatientClient
from clients.wallet import PatientWallet
from medledger.chain.anvil import AnvilProcess
from medledger.chain.deploy import manifest_path
from medledger.chain.devchain import DevConsortium
from medledger.chain.rpc import JsonRpcClient
from node.auth import StaffRole, create_staff
from node.db.models import Record, RecordState
from node.embedded import EmbeddedNode, provision_node
from node.service import NodeServices
from tests.node.conftest import fhir_record

PASSWORD = "test-node-password"


def wait_until(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Institution:
    node: EmbeddedNode
    tokens: dict[str, str]

    @property
    def services(self) -> NodeServices:
        assert self.node.services is not None
        return self.node.services

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def address(self) -> str:
        return self.services.address

    def staff(self, role: str = "clinician") -> NodeClient:
        return NodeClient(self.url, token=self.tokens[role])


@dataclass
class Network:
    rpc: JsonRpcClient
    dev: DevConsortium
    a: Institution
    b: Institution
    deployments: Path
    clients: list[PatientClient] = field(default_factory=list)
    _mrn: int = 0

    def patient(self, *, records: int = 2, home: Institution | None = None) -> tuple[PatientClient, list[str]]:
        """A new patient with a registered key, linked at A, with ``records`` lab records held and anchored
        by A and indexed by both nodes; returns the patient's client (home node B) and the record ids."""
        wallet = PatientWallet.create()
        client = PatientClient(wallet, (home or self.b).url)
        self.clients.append(client)
        client.register_key()
        self._mrn += 1
        mrn = f"MRN-{self._mrn}-{wallet.address[2:8]}"
        a = self.a.services
        a.directory.link(mrn, "HOSP-A", wallet.address, wallet.encryption_public_key)
        recs = [fhir_record(i, mrn=mrn, authority="HOSP-A", source=f"ehr-{mrn}") for i in range(records)]
        results = a.pipeline.ingest(recs)
        assert [r.status for r in results] == ["queued"] * records
        ids = [r.as_api()["record_id"] for r in results]
        self.wait_anchored(ids)
        return client, ids

    def wait_anchored(self, ids: list[str]) -> None:
        a = self.a.services

        def anchored() -> bool:
            with a.sessions() as s:
                rows = [s.get(Record, bytes.fromhex(i[2:])) for i in ids]
            return all(r is not None and r.status == RecordState.CONFIRMED for r in rows)

        wait_until(anchored, what="records anchored")
        block = self.rpc.block_number()
        for inst in (self.a, self.b):
            inst.services.ledger.sync()
            assert inst.services.ledger.wait_for_block(block)

    def sync(self) -> None:
        for inst in (self.a, self.b):
            inst.services.ledger.sync()


def _institution(root: Path, name: str, key: bytes, anvil: AnvilProcess, deployments: Path) -> Institution:
    data_dir = root / name.replace(" ", "-").lower()
    provision_node(
        data_dir, name, password=PASSWORD, rpc_url=anvil.url, deployments_dir=str(deployments), private_key=key,
        scrypt_n=2**12,
    )  # fmt: skip
    node = EmbeddedNode(data_dir, PASSWORD).start()
    assert node.services is not None
    tokens: dict[str, str] = {}
    with node.services.sessions.begin() as s:
        for role in StaffRole:
            tokens[role.value] = create_staff(s, f"{role.value} at {name}", role)[1]
    return Institution(node, tokens)


@pytest.fixture(scope="module")
def network(
    anvil: AnvilProcess, dev_consortium: DevConsortium, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    rpc = JsonRpcClient(anvil.url)
    snapshot = rpc.call("evm_snapshot")
    root = tmp_path_factory.mktemp("network")
    deployments = root / "deployments"
    dev_consortium.manifest.save(manifest_path(dev_consortium.manifest.chain_id, deployments))
    a = _institution(root, "Hospital A", bytes(dev_consortium.founders["Hospital A"].key), anvil, deployments)
    b = _institution(root, "Hospital B", bytes(dev_consortium.founders["Hospital B"].key), anvil, deployments)
    net = Network(rpc, dev_consortium, a, b, deployments)
    try:
        yield net
    finally:
        for c in net.clients:
            c.close()
        a.node.stop()
        b.node.stop()
        rpc.call("evm_revert", [snapshot])
        rpc.close()
