"""What the role CLIs (``medledger wallet | patient | clinician | demo``) share: options, the wallet password,
tokens, and the error contract.

Errors are one line on stderr, ``error [code]: message``, with exit 1 when the operation failed or a node
refused it (403, 404, 409, 410 …) and exit 2 for bad input or configuration (including a node's 400/422).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from clients.api import NodeRefused
from clients.wallet import WALLET_PASSWORD_ENV, PatientWallet, default_wallet_path, load_wallet
from medledger.addresses import Address
from medledger.cli_support import handles_errors, report_error
from medledger.errors import ConfigError, InputError, MedLedgerError

P = ParamSpec("P")
R = TypeVar("R")

NODE_ENV = "MEDLEDGER_NODE_URL"
DEFAULT_NODE = "http://127.0.0.1:8702"
STAFF_TOKEN_ENV = "MEDLEDGER_STAFF_TOKEN"

#: A node's answer for a malformed request is the caller's bad input (exit 2), not a refused operation.
_BAD_INPUT_STATUSES = {400, 413, 415, 422}

NodeOpt = Annotated[
    str,
    typer.Option(
        "--node", envvar=NODE_ENV, help="Node API URL (your home node; env MEDLEDGER_NODE_URL).", metavar="URL"
    ),
]
WalletOpt = Annotated[
    Path | None,
    typer.Option(
        "--wallet",
        help="Wallet file (keystore v3). Default: $MEDLEDGER_WALLET, else ~/.medledger/wallet.json.",
        metavar="PATH",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def exit_code_of(exc: MedLedgerError) -> int:
    if isinstance(exc, NodeRefused):
        return 2 if exc.status in _BAD_INPUT_STATUSES else 1
    return exc.exit_code


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """:func:`medledger.cli_support.handles_errors` (format, Ctrl-C) with the role CLIs' exit codes: a node's
    refusal keeps the node's own code, and its 400/413/415/422 count as bad input (exit 2)."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MedLedgerError as exc:
            report_error(exc)
            raise typer.Exit(exit_code_of(exc)) from None

    return handles_errors(inner)


def wallet_path(path: Path | None) -> Path:
    return path.expanduser() if path is not None else default_wallet_path()


def wallet_password(*, confirm: bool = False) -> str:
    """The wallet password from ``MEDLEDGER_WALLET_PASSWORD``, else a hidden prompt (never echoed or logged)."""
    env = os.environ.get(WALLET_PASSWORD_ENV)
    if env:
        return env
    password: str = typer.prompt("Wallet password", hide_input=True, confirmation_prompt=confirm, err=True)
    if not password:
        raise InputError("the wallet password must not be empty", code="wallet_password_empty")
    return password


def open_wallet(path: Path | None) -> PatientWallet:
    return load_wallet(wallet_path(path), wallet_password())


def staff_token(env_name: str | None) -> str:
    """The staff bearer token from the environment variable ``env_name`` (default MEDLEDGER_STAFF_TOKEN)."""
    name = env_name or STAFF_TOKEN_ENV
    token = os.environ.get(name, "").strip()
    if not token:
        raise ConfigError(f"no staff token: set {name} (from `medledger node staff add`)", code="staff_token_missing")
    return token


def address_arg(value: str, what: str = "address") -> Address:
    """A ledger address (surrounding blanks ignored), or exit 2 (``invalid_address``)."""
    return Address(value.strip(), what)


def record_arg(value: str) -> str:
    """A record id as the nodes expect it: 0x + 64 lowercase hex digits, or exit 2."""
    raw = value.strip().lower()
    if not raw.startswith("0x"):
        raw = "0x" + raw
    if len(raw) != 66 or any(c not in "0123456789abcdef" for c in raw[2:]):
        raise InputError(f"a record id is 32 bytes of hex (0x + 64 digits), got {value!r}", code="invalid_record_id")
    return raw


def when(ts: int | None) -> str:
    """A ledger timestamp for people (UTC)."""
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def short(value: str | None, keep: int = 10) -> str:
    """``0x1234…abcd`` for addresses and hashes in narrow tables (``--json`` always has them whole)."""
    if not value:
        return "-"
    return value if len(value) <= 2 * keep else f"{value[:keep]}…{value[-4:]}"


def write_new(path: Path, content: bytes, *, force: bool) -> None:
    """Write ``content`` to ``path``; an existing file is kept unless ``force``."""
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it", code="output_exists")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}", code="output_unwritable") from None
