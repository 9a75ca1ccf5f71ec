"""``medledger wallet``: the patient's key on disk (keystore v3) and its registration on the ledger.

The password comes from ``MEDLEDGER_WALLET_PASSWORD`` or a hidden prompt; a private key to import comes from
an environment variable named by ``--key-env``, never from the command line (argv is visible to every user of
the machine and lands in shell history).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from eth_account import Account

from clients.cli_options import (
    DEFAULT_NODE,
    JsonOpt,
    NodeOpt,
    WalletOpt,
    cli_errors,
    open_wallet,
    wallet_password,
    wallet_path,
)
from clients.patient import PatientClient
from clients.wallet import PatientWallet, read_keystore, save_wallet
from medledger.cli_support import console, print_json
from medledger.errors import ConfigError, InputError

app = typer.Typer(
    help="Your patient wallet: one key that signs consent and, derived from it, the key your records are "
    "encrypted to. Stored encrypted (keystore v3) at ~/.medledger/wallet.json unless --wallet or "
    "MEDLEDGER_WALLET says otherwise.",
    no_args_is_help=True,
)


def _summary(wallet: PatientWallet, path: Any) -> dict[str, str]:
    return {
        "address": wallet.address,
        "encryption_public_key": "0x" + wallet.encryption_public_key.hex(),
        "wallet": str(path),
    }


def _show(info: dict[str, str], as_json: bool, title: str) -> None:
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{title}[/bold]")
    console.print(f"  address                [cyan]{info['address']}[/cyan]", soft_wrap=True)
    console.print(f"  encryption key (X25519) {info['encryption_public_key']}", soft_wrap=True, highlight=False)
    console.print(f"  file                   {info['wallet']}", soft_wrap=True, highlight=False)


@app.command(
    epilog="Example:\n\n  MEDLEDGER_WALLET_PASSWORD=… medledger wallet create\n\n"
    "  medledger wallet create --wallet ./eva.json"
)
@cli_errors
def create(wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Create a new wallet (a fresh key) and save it encrypted under a password. Refuses to overwrite a file."""
    path = wallet_path(wallet)
    if path.exists():
        raise InputError(f"{path} already exists; refusing to overwrite a wallet", code="wallet_exists")
    new = PatientWallet.create()
    save_wallet(new, path, wallet_password(confirm=True))
    _show(_summary(new, path), as_json, "wallet created")
    if not as_json:
        console.print("Back up this file and its password: they are the only way to your records' keys.")


@app.command("import", epilog="Example:\n\n  read -rs KEY && export KEY && medledger wallet import --key-env KEY")
@cli_errors
def import_(
    key_env: Annotated[
        str,
        typer.Option(
            "--key-env", help="Name of the environment variable holding the private key (hex).", metavar="NAME"
        ),
    ],
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import an existing private key (from an environment variable, never the command line) into a new
    wallet file."""
    path = wallet_path(wallet)
    if path.exists():
        raise InputError(f"{path} already exists; refusing to overwrite a wallet", code="wallet_exists")
    raw = os.environ.get(key_env, "").strip()
    if not raw:
        raise ConfigError(f"environment variable {key_env} (--key-env) is not set", code="key_missing")
    try:
        imported = PatientWallet(Account.from_key(raw))
    except (ValueError, TypeError):
        # Name the variable, never its content.
        raise InputError(f"{key_env} does not hold a valid private key (hex)", code="invalid_key") from None
    save_wallet(imported, path, wallet_password(confirm=True))
    _show(_summary(imported, path), as_json, "wallet imported")


@app.command(epilog="Example:\n\n  medledger wallet show\n\n  medledger wallet show --json | jq -r .address")
@cli_errors
def show(wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Show the wallet's address and X25519 encryption public key (needs the password to derive the key)."""
    path = wallet_path(wallet)
    read_keystore(path)  # a missing or foreign file fails before asking for a password
    _show(_summary(open_wallet(wallet), path), as_json, "wallet")


@app.command(epilog=f"Example:\n\n  medledger wallet register --node {DEFAULT_NODE}")
@cli_errors
def register(node: NodeOpt = DEFAULT_NODE, wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Register your encryption key on the ledger: you sign, your home node relays (and pays for) it. Nodes
    can then wrap your records' keys to you."""
    read_keystore(wallet_path(wallet))
    me = open_wallet(wallet)
    with PatientClient(me, node) as client:
        out = client.register_key()
    if as_json:
        print_json({"address": me.address, **out})
        return
    console.print(
        f"encryption key of [cyan]{me.address}[/cyan] registered in block {out['block_number']} (tx {out['tx_hash']})",
        soft_wrap=True,
    )
