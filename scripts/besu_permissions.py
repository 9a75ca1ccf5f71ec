"""Render Besu's local permissions file from the Consortium contract and, if it changed, reload Besu.

Run it on every Besu host from a timer (and after governance events), against the host's own node:

    .venv/bin/python scripts/besu_permissions.py \\
        --rpc http://127.0.0.1:8545 \\
        --manifest chain_config/deployments/2026.json \\
        --out /var/lib/medledger/besu/permissions_config.toml \\
        --reload-rpc http://127.0.0.1:8545 \\
        [--extra-account ADDR ...] [--extra-node ENODE_URL ...] [--include-deployer] [--allow-dns-hosts]

``accounts-allowlist`` = active members (+ extra accounts), ``nodes-allowlist`` = nodes registered by active
members (+ extra nodes such as bootnodes). The file is written atomically and only when the lists change;
with ``--reload-rpc`` Besu then re-reads it (``perm_reloadPermissionsFromFile``). Besu's live lists are also
compared with the file on every run, so a reload that failed last time is retried.

Bootstrap, before the contracts exist (no --rpc/--manifest read; the deployer must be allowed to deploy):

    .venv/bin/python scripts/besu_permissions.py --bootstrap --out PATH \\
        --extra-account DEPLOYER --extra-node ENODE_URL [--extra-node ...]

Node hosts must be IP addresses unless ``--allow-dns-hosts`` (only for Besu run with ``--Xdns-enabled``): Besu
rejects the whole file over one host name it cannot parse, so such registrations are skipped with a warning.
Refuses to write an empty nodes-allowlist (Besu would drop every peer and QBFT would stop) unless
``--allow-empty-nodes``. Exit status: 0 done, 1 failure (chain or Besu unreachable, write failed), 2 bad input or
configuration (missing manifest, wrong chain). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from medledger.chain.besu import (
    PermissionLists,
    allowlists_match,
    live_allowlists,
    normalize_address,
    normalize_enode_url,
    read_permission_lists,
    reload_permissions,
    write_permissions,
)
from medledger.chain.contracts import ConsortiumClient
from medledger.chain.deploy import DeploymentManifest
from medledger.chain.rpc import JsonRpcClient
from medledger.cli_support import ScriptArgumentParser, script_main
from medledger.errors import ConfigError, MedLedgerError


def build_parser() -> argparse.ArgumentParser:
    p = ScriptArgumentParser(
        prog="besu_permissions.py",
        description="Render Besu's permissions_config.toml from the Consortium contract.",
    )
    p.add_argument("--rpc", help="JSON-RPC URL of a node of the MedLedger chain (read the contract)")
    p.add_argument("--manifest", type=Path, help="deployment manifest, chain_config/deployments/<chainId>.json")
    p.add_argument("--out", type=Path, required=True, help="permissions file to write (Besu's permissions_config.toml)")
    p.add_argument("--extra-account", action="append", default=[], metavar="ADDR", help="also allow this account")
    p.add_argument("--extra-node", action="append", default=[], metavar="ENODE", help="also allow this enode URL")
    p.add_argument("--include-deployer", action="store_true", help="also allow the manifest's deployer account")
    p.add_argument("--reload-rpc", metavar="URL", help="Besu JSON-RPC URL (PERM API) to reload after a change")
    p.add_argument("--bootstrap", action="store_true", help="write only the extras; do not read the contract")
    p.add_argument("--allow-empty-nodes", action="store_true", help="write even if nodes-allowlist is empty")
    p.add_argument(
        "--allow-dns-hosts", action="store_true", help="accept DNS names as node hosts (Besu runs --Xdns-enabled)"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per RPC request (default 10)")
    return p


def _bootstrap_lists(args: argparse.Namespace) -> PermissionLists:
    accounts = tuple(dict.fromkeys(normalize_address(a, "extra account") for a in args.extra_account))
    nodes = tuple(dict.fromkeys(normalize_enode_url(n, allow_dns=args.allow_dns_hosts) for n in args.extra_node))
    return PermissionLists(
        chain_id=None,
        block_number=None,
        contract=None,
        accounts=tuple(sorted(accounts, key=lambda a: int(a, 16))),
        nodes=tuple(sorted(nodes)),
        extra_accounts=accounts,
        extra_nodes=nodes,
    )


def _contract_lists(args: argparse.Namespace) -> PermissionLists:
    if not args.rpc or not args.manifest:
        raise ConfigError("--rpc and --manifest are required (or --bootstrap)")
    manifest = DeploymentManifest.load(args.manifest)
    extras = list(args.extra_account)
    if args.include_deployer:
        extras.append(manifest.deployer)
    with JsonRpcClient(args.rpc, timeout=args.timeout, retries=2) as rpc:
        chain_id = rpc.chain_id()
        if chain_id != manifest.chain_id:
            raise ConfigError(
                f"{args.rpc} serves chain {chain_id} but {args.manifest} is for chain {manifest.chain_id}"
            )
        consortium = ConsortiumClient(rpc, manifest.address("Consortium"))
        return read_permission_lists(
            consortium, extra_accounts=extras, extra_nodes=args.extra_node, allow_dns=args.allow_dns_hosts
        )


def _reload_if_needed(url: str, lists: PermissionLists, changed: bool, timeout: float) -> str:
    with JsonRpcClient(url, timeout=timeout, retries=2) as besu:
        if not changed:
            accounts, nodes = live_allowlists(besu)
            if allowlists_match(lists, accounts, nodes):
                return "Besu already enforces it"
        reload_permissions(besu)
        return "Besu reloaded" if changed else "Besu was out of date and reloaded"


def run(args: argparse.Namespace) -> int:
    lists = _bootstrap_lists(args) if args.bootstrap else _contract_lists(args)
    if not lists.nodes and not args.allow_empty_nodes:
        raise MedLedgerError(
            "nodes-allowlist would be empty, which disconnects every peer: register nodes with addNode or pass "
            "--extra-node (or --allow-empty-nodes)"
        )
    text = lists.to_toml()
    tomllib.loads(text)  # never hand Besu a file it cannot parse
    changed = write_permissions(args.out, text)
    status = f"{'updated' if changed else 'unchanged'} {args.out}: {len(lists.accounts)} accounts, "
    status += f"{len(lists.nodes)} nodes"
    if not args.bootstrap:
        status += f" (chain {lists.chain_id}, block {lists.block_number})"
    for s in lists.skipped:
        print(f"warning: skipped {s}", file=sys.stderr)
    if args.reload_rpc:
        status += "; " + _reload_if_needed(args.reload_rpc, lists, changed, args.timeout)
    print(status)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return script_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
