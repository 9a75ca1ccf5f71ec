"""Deploy the MedLedger contracts and keep a per-chain deployment manifest.

Idempotent and resumable: the manifest is rewritten after every contract, and a later run skips each
contract whose recorded code is still on chain. A manifest whose contracts have vanished (a reset dev chain)
is replaced by a fresh deployment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak

from medledger.addresses import Address, eip55
from medledger.chain.abi import load_artifact
from medledger.chain.contracts import (
    AccessLogClient,
    ConsentRegistryClient,
    ConsortiumClient,
    RecordRegistryClient,
)
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from medledger.chain.types import Founder
from medledger.errors import ConfigError, InputError
from medledger.files import atomic_write_text
from medledger.paths import chain_config_dir

CONTRACT_ORDER = ("Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog")


@dataclass
class DeployedContract:
    address: Address
    block: int
    tx_hash: str
    code_hash: str

    def __post_init__(self) -> None:
        self.address = Address(self.address, "contract address")


@dataclass
class DeploymentManifest:
    chain_id: int
    deployer: Address
    threshold: int
    voting_period: int
    contracts: dict[str, DeployedContract] = field(default_factory=dict)
    deployed_at: int = 0

    def __post_init__(self) -> None:
        self.deployer = Address(self.deployer, "deployer")

    @property
    def complete(self) -> bool:
        return all(name in self.contracts for name in CONTRACT_ORDER)

    @property
    def start_block(self) -> int:
        """First block the indexer must read."""
        return min(c.block for c in self.contracts.values())

    def address(self, name: str) -> Address:
        try:
            return self.contracts[name].address
        except KeyError:
            raise ConfigError(f"deployment for chain {self.chain_id} has no {name}") from None

    def to_json(self) -> str:
        body = asdict(self)
        body["start_block"] = self.start_block if self.contracts else None
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DeploymentManifest:
        raw = json.loads(text)
        raw.pop("start_block", None)
        contracts = {k: DeployedContract(**v) for k, v in raw.pop("contracts", {}).items()}
        return cls(contracts=contracts, **raw)

    @classmethod
    def load(cls, path: Path) -> DeploymentManifest:
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no deployment manifest at {path}: run `medledger chain deploy`") from None
        except (ValueError, TypeError, KeyError, InputError) as exc:
            raise ConfigError(f"deployment manifest {path} is malformed: {exc}") from None

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())


def manifest_path(chain_id: int, directory: Path | None = None) -> Path:
    return (directory or chain_config_dir() / "deployments") / f"{chain_id}.json"


@dataclass(frozen=True)
class Contracts:
    """Clients of all four contracts of one deployment."""

    consortium: ConsortiumClient
    records: RecordRegistryClient
    consent: ConsentRegistryClient
    access_log: AccessLogClient

    @classmethod
    def from_manifest(
        cls, rpc: JsonRpcClient, manifest: DeploymentManifest, sender: TransactionSender | None = None
    ) -> Contracts:
        return cls(
            ConsortiumClient(rpc, manifest.address("Consortium"), sender),
            RecordRegistryClient(rpc, manifest.address("RecordRegistry"), sender),
            ConsentRegistryClient(rpc, manifest.address("ConsentRegistry"), sender),
            AccessLogClient(rpc, manifest.address("AccessLog"), sender),
        )

    def acting_as(self, sender: TransactionSender) -> Contracts:
        return Contracts(
            self.consortium.with_sender(sender),
            self.records.with_sender(sender),
            self.consent.with_sender(sender),
            self.access_log.with_sender(sender),
        )


def _code_hash(rpc: JsonRpcClient, address: str) -> str:
    code = rpc.call("eth_getCode", [address, "latest"])
    return "0x" + keccak(hexstr=code).hex() if code not in ("0x", "0x0", None) else ""


def _still_deployed(rpc: JsonRpcClient, c: DeployedContract) -> bool:
    return _code_hash(rpc, c.address) == c.code_hash


def deploy(
    rpc: JsonRpcClient,
    sender: TransactionSender,
    founders: list[Founder],
    threshold: int,
    voting_period: int,
    *,
    directory: Path | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> DeploymentManifest:
    """Deploy (or find, or finish) the MedLedger contracts on ``rpc``'s chain; returns the manifest.

    ``on_step(contract, what)`` is told "found" or "deployed" per contract, for progress output.
    """
    chain_id = rpc.chain_id()
    path = manifest_path(chain_id, directory)
    manifest: DeploymentManifest | None = None
    if path.exists():
        manifest = DeploymentManifest.load(path)
        # Keep only the contracts still on chain; a reset chain starts over.
        if "Consortium" not in manifest.contracts or not _still_deployed(rpc, manifest.contracts["Consortium"]):
            manifest = None
        else:
            manifest.contracts = {k: v for k, v in manifest.contracts.items() if _still_deployed(rpc, v)}
    if manifest is None:
        manifest = DeploymentManifest(chain_id, sender.address, threshold, voting_period)

    for name in CONTRACT_ORDER:
        if name in manifest.contracts:
            if on_step:
                on_step(name, "found")
            continue
        artifact = load_artifact(name)
        if name == "Consortium":
            args: tuple[Any, ...] = ([f.as_tuple() for f in founders], threshold, voting_period)
        else:
            args = (manifest.address("Consortium"),)
        data = artifact.bytecode + artifact.abi.encode_constructor(*args)
        receipt = sender.transact(None, data, abi=artifact.abi)
        if not receipt.contract_address:
            raise ConfigError(f"deployment of {name} returned no contract address (tx {receipt.tx_hash})")
        address = eip55(receipt.contract_address)
        manifest.contracts[name] = DeployedContract(
            address, receipt.block_number, receipt.tx_hash, _code_hash(rpc, address)
        )
        manifest.deployed_at = int(time.time())
        manifest.save(path)
        if on_step:
            on_step(name, "deployed")
    manifest.save(path)
    return manifest


def load_founders(path: Path | None = None) -> dict[str, Any]:
    """Read a founders file (chain_config/anvil/founders.json format)."""
    path = path or chain_config_dir() / "anvil" / "founders.json"
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"founders file not found: {path}") from None
    except ValueError as exc:
        raise ConfigError(f"founders file {path} is not valid JSON: {exc}") from None
