"""``medledger chain``: run a dev chain, deploy the contracts, inspect a deployment."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer
from eth_account import Account
from rich.table import Table

from medledger.chain.anvil import AnvilProcess, AnvilSettings
from medledger.chain.deploy import (
    CONTRACT_ORDER,
    Contracts,
    DeploymentManifest,
    deploy,
    load_founders,
    manifest_path,
)
from medledger.chain.devchain import deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender
from medledger.chain.types import Founder
from medledger.cli_support import console, handles_errors, print_json
from medledger.errors import ConfigError
from medledger.paths import project_root
from medledger.vocabulary import Role

app = typer.Typer(help="Run a dev chain, deploy the MedLedger contracts, inspect a deployment.", no_args_is_help=True)

DeploymentsDir = Annotated[
    Path | None,
    typer.Option("--deployments-dir", help="Where manifests live (default: chain_config/deployments)."),
]


@app.command()
@handles_errors
def up(
    port: Annotated[int, typer.Option(help="RPC port (0 = any free port).")] = 8545,
    state_dir: Annotated[Path, typer.Option(help="Where the dev chain keeps its state between runs.")] = Path(
        ".medledger/devchain"
    ),
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard the saved chain state first.")] = False,
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop after deploying instead of serving.")] = False,
    deployments_dir: DeploymentsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the deployment as JSON.")] = False,
) -> None:
    """Start a local Anvil chain, deploy the contracts (or find them) and print the deployment.

    The chain keeps its state in STATE_DIR, so stopping and starting again finds the same contracts.

    Example: medledger chain up            (serve until Ctrl-C)
             medledger chain up --exit     (deploy, print, stop)
    """
    settings = AnvilSettings.load(port=port)
    if port and not _port_free(settings.host, port):
        raise ConfigError(f"port {port} is in use: stop what runs there or pass --port 0")
    state_dir = state_dir if state_dir.is_absolute() else project_root() / state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    state = state_dir / "anvil-state.json"
    if fresh and state.exists():
        state.unlink()
    with AnvilProcess(settings, state_path=state, log_path=state_dir / "anvil.log") as anvil:
        rpc = JsonRpcClient(anvil.url)
        dev = deploy_dev(rpc, settings, directory=deployments_dir)
        if as_json:
            path = manifest_path(dev.manifest.chain_id, deployments_dir)
            print_json({"rpc_url": anvil.url, "manifest": path.as_posix(), **_manifest_dict(dev.manifest)})
        else:
            _print_deployment(rpc, dev.manifest, anvil.url, manifest_path(dev.manifest.chain_id, deployments_dir))
        if exit_after:
            return
        console.print("\n[bold]Dev chain running.[/bold] Ctrl-C stops it (state is saved).")
        _wait_for_interrupt()


@app.command("deploy")
@handles_errors
def deploy_cmd(
    rpc_url: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of the chain.")] = "http://127.0.0.1:8545",
    founders_file: Annotated[
        Path | None, typer.Option("--founders", help="Founders JSON (default: chain_config/anvil/founders.json).")
    ] = None,
    key_env: Annotated[
        str, typer.Option(help="Environment variable holding the deployer's private key (never a flag).")
    ] = "MEDLEDGER_DEPLOYER_KEY",
    deployments_dir: DeploymentsDir = None,
) -> None:
    """Deploy the four contracts to any chain, idempotently, and write the manifest.

    Founders in the file give `address`, `roles`, `name`, `endpoint` and `encryption_key` (hex). The deployer
    key is read from the environment so it never appears in shell history or process lists.

    Example: MEDLEDGER_DEPLOYER_KEY=0x... medledger chain deploy --rpc http://besu:8545 --founders founders.json
    """
    key = os.environ.get(key_env)
    if not key:
        raise ConfigError(f"set {key_env} to the deployer's private key")
    try:
        deployer = Account.from_key(key)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_env} is not a valid private key") from None
    config = load_founders(founders_file)
    try:
        founders = [
            Founder(f["address"], Role.parse(f["roles"]), f["name"], f["endpoint"], bytes.fromhex(f["encryption_key"]))
            for f in config["founders"]
        ]
        threshold, period = int(config["threshold"]), int(config["voting_period_seconds"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"founders file: each founder needs address, roles, name, endpoint, encryption_key ({exc})"
        ) from None
    rpc = JsonRpcClient(rpc_url)
    manifest = deploy(
        rpc,
        TransactionSender(rpc, deployer),
        founders,
        threshold,
        period,
        directory=deployments_dir,
        on_step=lambda name, what: console.print(f"{name}: {what}"),
    )
    _print_deployment(rpc, manifest, rpc_url, manifest_path(manifest.chain_id, deployments_dir))


@app.command()
@handles_errors
def status(
    rpc_url: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of the chain.")] = "http://127.0.0.1:8545",
    deployments_dir: DeploymentsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show the deployment on a chain: contracts (checked against the chain), members, head block.

    Exit code 1 if a contract in the manifest is missing on chain.
    """
    rpc = JsonRpcClient(rpc_url)
    path = manifest_path(rpc.chain_id(), deployments_dir)
    manifest = DeploymentManifest.load(path)
    missing = [
        n for n, c in manifest.contracts.items() if rpc.call("eth_getCode", [c.address, "latest"]) in ("0x", None)
    ]
    if as_json:
        print_json({"rpc_url": rpc_url, "head": rpc.block_number(), "missing": missing, **_manifest_dict(manifest)})
    else:
        _print_deployment(rpc, manifest, rpc_url, path)
    if missing:
        raise ConfigError(f"contracts missing on chain: {', '.join(missing)} (chain reset? run deploy again)")


def _manifest_dict(manifest: DeploymentManifest) -> dict:
    return dict(json.loads(manifest.to_json()))


def _print_deployment(rpc: JsonRpcClient, manifest: DeploymentManifest, url: str, path: Path) -> None:
    table = Table(title=f"MedLedger on chain {manifest.chain_id} — {url}")
    table.add_column("contract")
    table.add_column("address", no_wrap=True, min_width=42)
    table.add_column("block", justify="right")
    for name in CONTRACT_ORDER:
        if name in manifest.contracts:
            c = manifest.contracts[name]
            table.add_row(name, c.address, str(c.block))
    console.print(table)
    consortium = Contracts.from_manifest(rpc, manifest).consortium
    members = Table(title=f"Members (threshold {consortium.threshold()} of {consortium.member_count()})")
    members.add_column("name", overflow="fold")
    members.add_column("address", no_wrap=True, min_width=42)
    members.add_column("roles", overflow="fold")
    members.add_column("endpoint", overflow="fold")
    for account in consortium.members():
        m = consortium.get_member(account)
        members.add_row(m.name, m.account, str(m.roles.name).lower().replace("|", ", "), m.endpoint)
    console.print(members)
    console.print(f"manifest: {path}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
