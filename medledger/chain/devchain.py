"""The dev consortium: Anvil's well-known accounts as founding members (chain_config/anvil/founders.json).

Dev and test use only: these keys are public knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from medledger.chain.anvil import AnvilSettings, dev_private_keys
from medledger.chain.deploy import Contracts, DeploymentManifest, deploy, load_founders
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from medledger.chain.types import Founder
from medledger.crypto import x25519_from_seed, x25519_public_key
from medledger.vocabulary import Role


@cache
def _keys(mnemonic: str, count: int) -> tuple[str, ...]:
    return tuple(dev_private_keys(AnvilSettings(mnemonic=mnemonic, accounts=count)))


@dataclass(frozen=True)
class DevConsortium:
    """A deployed dev consortium: the manifest, the deployer and each founder's account by name."""

    manifest: DeploymentManifest
    deployer: LocalAccount
    founders: dict[str, LocalAccount]
    accounts: tuple[LocalAccount, ...]


def dev_accounts(settings: AnvilSettings) -> tuple[LocalAccount, ...]:
    return tuple(Account.from_key(k) for k in _keys(settings.mnemonic, settings.accounts))


def dev_founders(settings: AnvilSettings, config: dict) -> list[tuple[LocalAccount, Founder]]:
    accounts = dev_accounts(settings)
    out = []
    for f in config["founders"]:
        acct = accounts[int(f["account"])]
        enc = x25519_public_key(x25519_from_seed(bytes(acct.key)))
        out.append((acct, Founder(acct.address, Role.parse(f["roles"]), f["name"], f["endpoint"], enc)))
    return out


def deploy_dev(
    rpc: JsonRpcClient, settings: AnvilSettings, *, founders_file: Path | None = None, directory: Path | None = None
) -> DevConsortium:
    """Deploy (idempotently) the dev consortium to ``rpc`` with Anvil account 0 paying."""
    config = load_founders(founders_file)
    accounts = dev_accounts(settings)
    founders = dev_founders(settings, config)
    sender = TransactionSender(rpc, accounts[0])
    manifest = deploy(
        rpc,
        sender,
        [f for _, f in founders],
        int(config["threshold"]),
        int(config["voting_period_seconds"]),
        directory=directory,
    )
    return DevConsortium(manifest, accounts[0], {f.name: a for a, f in founders}, accounts)


def contracts_for(rpc: JsonRpcClient, manifest: DeploymentManifest, account: LocalAccount) -> Contracts:
    """All four contracts acting as ``account``."""
    return Contracts.from_manifest(rpc, manifest, TransactionSender(rpc, account))
