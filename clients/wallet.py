"""A patient's wallet: one secp256k1 key that signs (sign-in, grants, revocations, erasures) and, derived
from it, the X25519 key that record keys are wrapped to, so the patient backs up a single secret.

Signatures are the ones common wallets make: EIP-712 typed data (schema in medledger.chain.typed_data) and
EIP-4361 sign-in messages (EIP-191).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

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
    def address(self) -> str:
        return str(self.account.address)

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
