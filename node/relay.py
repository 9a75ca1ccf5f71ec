"""Relaying patients' EIP-712 signed consent actions: the node checks each request completely before it
spends gas, then submits it from its RELAYER account and waits for the block.

Checked here, in this order, each with its own error code: chain id (``wrong_chain``), deadline
(``signature_expired``), signer (``invalid_signature``: not the patient over this chain's contract domain,
which also catches forged and wrong-chain signatures that do not say which chain they were for), nonce
(``nonce_mismatch``: replayed or out of order), and the terms (``invalid_grant``). The contract re-checks all
of it; these checks exist so a bad request costs nothing and gets a precise answer.

After a consent change is mined the ledger view is synced at once, so this node enforces a revocation from
the very block that contains it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from medledger.addresses import Address, checksummed
from medledger.chain.abi import ContractRevert
from medledger.chain.contracts import ConsentRegistryClient, ConsortiumClient
from medledger.chain.typed_data import (
    CONSENT_DOMAIN_NAME,
    CONSORTIUM_DOMAIN_NAME,
    SCHEMA,
    domain,
    grant_typed_data,
    recover_signer,
    register_key_typed_data,
    revoke_typed_data,
)
from medledger.chain.types import GrantTerms
from medledger.errors import MedLedgerError
from medledger.vocabulary import Purpose
from node.ledger_view import LedgerView

#: Longest a signed request may stay valid: a leaked signature should not be usable for long.
MAX_DEADLINE_SECONDS = 7 * 24 * 3600


class RelayRejected(MedLedgerError):
    """A signed patient request failed a check; nothing was sent to the chain."""

    code = "relay_rejected"


_REVERT_CODES = {
    "InvalidGrant": "invalid_grant",
    "UnknownGrant": "unknown_grant",
    "NotGrantPatient": "not_grant_patient",
    "GrantAlreadyRevoked": "grant_already_revoked",
    "SignatureExpired": "signature_expired",
    "InvalidSignature": "invalid_signature",
    "InvalidAccountNonce": "nonce_mismatch",
    "InvalidEncryptionKey": "invalid_encryption_key",
    "MissingRole": "relayer_not_authorized",
    "NotMember": "relayer_not_authorized",
}


@dataclass(frozen=True)
class Relayed:
    tx_hash: str
    block_number: int
    grant_id: int | None = None

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tx_hash": self.tx_hash, "block_number": self.block_number}
        if self.grant_id is not None:
            out["grant_id"] = self.grant_id
        return out


class ConsentRelay:
    """Verifies and relays grants, revocations and patient key registrations.

    Args:
        consent: ConsentRegistry client acting as this node's relayer account.
        consortium: Consortium client acting as this node's relayer account.
        view: The ledger view, synced after each change.
        chain_id: This chain.
    """

    def __init__(
        self, consent: ConsentRegistryClient, consortium: ConsortiumClient, view: LedgerView, chain_id: int
    ) -> None:
        self.consent = consent
        self.consortium = consortium
        self.view = view
        self.chain_id = chain_id
        self.consent_domain = domain(CONSENT_DOMAIN_NAME, chain_id, to_checksum_address(consent.address))
        self.consortium_domain = domain(CONSORTIUM_DOMAIN_NAME, chain_id, to_checksum_address(consortium.address))

    def context(self, patient: str) -> dict[str, Any]:
        """What a wallet needs to sign: the typed-data schema, the domains and the patient's current nonces."""
        p = checksummed(patient, "patient")
        return {
            "chain_id": self.chain_id,
            "types": SCHEMA,
            "consent_domain": self.consent_domain,
            "consortium_domain": self.consortium_domain,
            "consent_nonce": self.consent.nonces(p),
            "consortium_nonce": self.consortium.nonces(p),
        }

    # ------------------------------------------------------------------ requests

    def grant(
        self,
        patient: str,
        terms: GrantTerms,
        nonce: int,
        deadline: int,
        signature: bytes,
        *,
        chain_id: int | None = None,
    ) -> Relayed:
        p = checksummed(patient, "patient")
        self._check_common(chain_id, deadline, signature)
        _check_terms(p, terms)
        typed = grant_typed_data(self.consent_domain, p, terms, nonce, deadline)
        self._check_signer(typed, signature, p)
        self._check_nonce(self.consent.nonces(p), nonce)
        try:
            grant_id, receipt = self.consent.grant_by_sig_receipt(p, terms, nonce, deadline, signature)
        except ContractRevert as exc:
            raise _rejected(exc) from None
        self.view.sync()
        return Relayed(receipt.tx_hash, receipt.block_number, grant_id)

    def revoke(
        self, patient: str, grant_id: int, nonce: int, deadline: int, signature: bytes, *, chain_id: int | None = None
    ) -> Relayed:
        p = checksummed(patient, "patient")
        self._check_common(chain_id, deadline, signature)
        if grant_id < 1:
            raise RelayRejected(f"no grant #{grant_id}", code="unknown_grant")
        typed = revoke_typed_data(self.consent_domain, p, grant_id, nonce, deadline)
        self._check_signer(typed, signature, p)
        if grant_id > self.consent.grant_count():
            raise RelayRejected(f"no grant #{grant_id}", code="unknown_grant")
        g = self.consent.get_grant(grant_id)
        if g.patient != p:
            raise RelayRejected(f"grant #{grant_id} belongs to another patient", code="not_grant_patient")
        if g.revoked:
            raise RelayRejected(f"grant #{grant_id} is already revoked or replaced", code="grant_already_revoked")
        self._check_nonce(self.consent.nonces(p), nonce)
        try:
            receipt = self.consent.revoke_by_sig(p, grant_id, nonce, deadline, signature)
        except ContractRevert as exc:
            raise _rejected(exc) from None
        self.view.sync()
        return Relayed(receipt.tx_hash, receipt.block_number, grant_id)

    def register_key(
        self,
        patient: str,
        encryption_key: bytes,
        nonce: int,
        deadline: int,
        signature: bytes,
        *,
        chain_id: int | None = None,
    ) -> Relayed:
        p = checksummed(patient, "patient")
        self._check_common(chain_id, deadline, signature)
        if len(encryption_key) != 32:
            raise RelayRejected("an X25519 public key is 32 bytes", code="invalid_encryption_key")
        typed = register_key_typed_data(self.consortium_domain, p, encryption_key, nonce, deadline)
        self._check_signer(typed, signature, p)
        self._check_nonce(self.consortium.nonces(p), nonce)
        try:
            receipt = self.consortium.register_patient_key_by_sig(p, encryption_key, nonce, deadline, signature)
        except ContractRevert as exc:
            raise _rejected(exc) from None
        self.view.sync()
        return Relayed(receipt.tx_hash, receipt.block_number)

    # ------------------------------------------------------------------ checks

    def _check_common(self, chain_id: int | None, deadline: int, signature: bytes) -> None:
        if chain_id is not None and chain_id != self.chain_id:
            raise RelayRejected(
                f"signed for chain {chain_id}, this ledger is chain {self.chain_id}",
                code="wrong_chain",
                details={"expected": self.chain_id, "got": chain_id},
            )
        now = int(time.time())
        if deadline < now:
            raise RelayRejected("the signature's deadline has passed", code="signature_expired")
        if deadline > now + MAX_DEADLINE_SECONDS:
            raise RelayRejected(
                f"deadline more than {MAX_DEADLINE_SECONDS // 86400} days ahead", code="deadline_too_far"
            )
        if len(signature) != 65:
            raise RelayRejected("a signature is 65 bytes (r, s, v)", code="invalid_signature")

    @staticmethod
    def _check_signer(typed: dict[str, Any], signature: bytes, patient: Address) -> None:
        try:
            signer = recover_signer(typed, signature)
        except Exception:  # malformed r/s/v: eth-keys raises several types; all mean the same to the caller
            signer = None
        if signer != patient:
            raise RelayRejected(
                "signature was not made by the patient over this request on this chain's contract",
                code="invalid_signature",
                details={"recovered": signer},
            )

    @staticmethod
    def _check_nonce(current: int, nonce: int) -> None:
        if nonce != current:
            raise RelayRejected(
                f"nonce {nonce} is not the patient's next nonce {current} (replayed or out of order)",
                code="nonce_mismatch",
                details={"expected": current, "got": nonce},
            )


def _check_terms(patient: Address, t: GrantTerms) -> None:
    problems = []
    if Address(t.grantee, "grantee") == patient:
        problems.append("grantee is the patient")
    if int(t.grantee, 16) == 0:
        problems.append("grantee is the zero address")
    if t.classes <= 0 or t.classes >= 1 << 256:
        problems.append("no record classes")
    if int(t.purpose) not in {int(p) for p in Purpose}:
        problems.append("unknown purpose")
    if t.valid_until <= max(t.valid_from, int(time.time())):
        problems.append("validUntil must be in the future and after validFrom")
    if problems:
        raise RelayRejected("invalid grant: " + "; ".join(problems), code="invalid_grant")


def _rejected(exc: ContractRevert) -> RelayRejected:
    return RelayRejected(exc.message, code=_REVERT_CODES.get(exc.error, "contract_reverted"), details=exc.details)
