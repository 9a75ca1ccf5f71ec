"""A patient's wallet: one secp256k1 key that signs (sign-in, grants, revocations, erasures) and, derived
from it, the X25519 key that record keys are wrapped to, so the patient backs up a single secret.

Signatures are the ones common wallets make: EIP-712 typed data (schema in medledger.chain.typed_data) and
EIP-4361 sign-in messages (EIP-191).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from medledger.addresses import Address
from medledger.auth.siwe import SiweMessage, sign_siwe
from medledger.chain.typed_data import (
    erase_typed_data,
    grant_typed_data,
    register_key_typed_data,
    revoke_typed_data,
    sign_typed_data,
)
from medledger.chain.types import GrantTerms
from medledger.crypto import x25519_from_seed, x25519_public_key
from medledger.errors import ConfigError, InputError

PATIENT_KEY_LABEL = b"medledger/patient-x25519/v1"


@dataclass(frozen=True)
class PatientWallet:
    account: LocalAccount

    @classmethod
    def create(cls) -> PatientWallet:
        return cls(Account.create())

    @classmethod
    def from_key(cls, private_key: bytes | str) -> PatientWallet:
        return cls(Account.from_key(private_key))

    @property
    def address(self) -> Address:
        return Address(self.account.address, "wallet address")

    @property
    def encryption_key(self) -> X25519PrivateKey:
        return x25519_from_seed(bytes(self.account.key), label=PATIENT_KEY_LABEL)

    @property
    def encryption_public_key(self) -> bytes:
        return x25519_public_key(self.encryption_key)

    # ------------------------------------------------------------------ signatures

    def siwe(
        self, *, domain: str, uri: str, chain_id: int, nonce: str, statement: str | None = None
    ) -> tuple[str, bytes]:
        message = SiweMessage(
            domain=domain,
            address=self.address,
            statement=statement or "Sign in to MedLedger to see and control your health records.",
            uri=uri,
            chain_id=chain_id,
            nonce=nonce,
            issued_at=datetime.now(UTC).replace(microsecond=0),
        )
        return message.to_text(), sign_siwe(self.account, message)

    def sign_grant(self, dom: dict[str, Any], terms: GrantTerms, nonce: int, deadline: int) -> bytes:
        return sign_typed_data(self.account, grant_typed_data(dom, self.address, terms, nonce, deadline))

    def sign_revoke(self, dom: dict[str, Any], grant_id: int, nonce: int, deadline: int) -> bytes:
        return sign_typed_data(self.account, revoke_typed_data(dom, self.address, grant_id, nonce, deadline))

    def sign_register_key(self, dom: dict[str, Any], nonce: int, deadline: int) -> bytes:
        typed = register_key_typed_data(dom, self.address, self.encryption_public_key, nonce, deadline)
        return sign_typed_data(self.account, typed)

    def sign_erase(self, dom: dict[str, Any], record_id: bytes, deadline: int) -> bytes:
        return sign_typed_data(self.account, erase_typed_data(dom, self.address, record_id, deadline))


def deadline(seconds: int = 900) -> int:
    return int(time.time()) + seconds


# ---------------------------------------------------------------------------------------------- keystore file
# The wallet at rest: an Ethereum keystore v3 file (scrypt + AES-128-CTR, the format common wallets import), so
# the patient's one secret is encrypted under a password and can move to another wallet application.

#: Where ``medledger wallet`` keeps the wallet unless ``--wallet`` or ``MEDLEDGER_WALLET`` says otherwise.
WALLET_PATH_ENV = "MEDLEDGER_WALLET"
WALLET_PASSWORD_ENV = "MEDLEDGER_WALLET_PASSWORD"
#: scrypt cost of new wallet files; None = eth_account's default (2**18, as common wallets use). Tests lower it.
KEYSTORE_SCRYPT_N: int | None = None


def default_wallet_path() -> Path:
    """``$MEDLEDGER_WALLET``, else ``~/.medledger/wallet.json``."""
    env = os.environ.get(WALLET_PATH_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".medledger" / "wallet.json"


def save_wallet(wallet: PatientWallet, path: Path, password: str, *, iterations: int | None = None) -> Path:
    """Write ``wallet`` encrypted under ``password`` to a new file at ``path`` (mode 0600).

    Never overwrites: an existing file may be the only copy of another key. ``iterations`` is the scrypt cost
    (default :data:`KEYSTORE_SCRYPT_N`)."""
    if not password:
        raise InputError("the wallet password must not be empty", code="wallet_password_empty")
    keystore = Account.encrypt(bytes(wallet.account.key), password, iterations=iterations or KEYSTORE_SCRYPT_N)
    data = (json.dumps(keystore, indent=2) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: refuse an existing file atomically, and create it private from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{path} already exists; refusing to overwrite a wallet", code="wallet_exists") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def read_keystore(path: Path) -> dict[str, Any]:
    """The keystore JSON at ``path`` (not decrypted)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no wallet at {path}: create one with `medledger wallet create`", code="wallet_not_found"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the wallet {path}: {exc}", code="wallet_unreadable") from None
    if not isinstance(raw, dict) or ("crypto" not in raw and "Crypto" not in raw):
        raise ConfigError(f"{path} is not a keystore v3 wallet file", code="wallet_unreadable")
    return raw


def load_wallet(path: Path, password: str) -> PatientWallet:
    """Decrypt the wallet file at ``path``."""
    keystore = read_keystore(path)
    try:
        key = Account.decrypt(keystore, password)
    except ValueError:
        # eth_account says "MAC mismatch" for a wrong password; never echo the password itself.
        raise InputError(f"wrong password for the wallet {path}", code="wallet_password_wrong") from None
    return PatientWallet.from_key(bytes(key))
