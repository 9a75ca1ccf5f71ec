"""EIP-712 typed data of MedLedger's relayed patient actions.

These dictionaries are the published schema (docs/contracts.md): the same JSON works with eth-account's
``sign_typed_data(full_message=...)`` and ethers' ``signTypedData(domain, types, message)``.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from medledger.chain.types import GrantTerms

CONSORTIUM_DOMAIN_NAME = "MedLedger Consortium"
CONSENT_DOMAIN_NAME = "MedLedger ConsentRegistry"
#: Off-chain only: custodians verify erasure requests and anchor their digest with the erasure marker; the
#: domain's verifyingContract is the RecordRegistry, binding a request to one deployment and chain.
ERASURE_DOMAIN_NAME = "MedLedger Erasure"
DOMAIN_VERSION = "1"

EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

TYPES: dict[str, list[dict[str, str]]] = {
    "Grant": [
        {"name": "patient", "type": "address"},
        {"name": "grantee", "type": "address"},
        {"name": "classes", "type": "uint256"},
        {"name": "purpose", "type": "uint8"},
        {"name": "validFrom", "type": "uint64"},
        {"name": "validUntil", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "Revoke": [
        {"name": "patient", "type": "address"},
        {"name": "grantId", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "EraseRecord": [
        {"name": "patient", "type": "address"},
        {"name": "recordId", "type": "bytes32"},
        {"name": "deadline", "type": "uint256"},
    ],
    "RegisterPatientKey": [
        {"name": "patient", "type": "address"},
        {"name": "encryptionKey", "type": "bytes"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}

#: Every type a wallet signs, with the domain type: what nodes publish (GET /v1/consent/context/{patient}).
SCHEMA: dict[str, list[dict[str, str]]] = {"EIP712Domain": EIP712_DOMAIN_TYPE, **TYPES}


def domain(name: str, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    return {"name": name, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": verifying_contract}


def _full(primary: str, dom: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": SCHEMA["EIP712Domain"], primary: SCHEMA[primary]},
        "primaryType": primary,
        "domain": dom,
        "message": message,
    }


def grant_typed_data(dom: dict[str, Any], patient: str, terms: GrantTerms, nonce: int, deadline: int) -> dict[str, Any]:
    return _full(
        "Grant",
        dom,
        {
            "patient": patient,
            "grantee": terms.grantee,
            "classes": terms.classes,
            "purpose": int(terms.purpose),
            "validFrom": terms.valid_from,
            "validUntil": terms.valid_until,
            "nonce": nonce,
            "deadline": deadline,
        },
    )


def revoke_typed_data(dom: dict[str, Any], patient: str, grant_id: int, nonce: int, deadline: int) -> dict[str, Any]:
    return _full("Revoke", dom, {"patient": patient, "grantId": grant_id, "nonce": nonce, "deadline": deadline})


def register_key_typed_data(
    dom: dict[str, Any], patient: str, encryption_key: bytes, nonce: int, deadline: int
) -> dict[str, Any]:
    return _full(
        "RegisterPatientKey",
        dom,
        {"patient": patient, "encryptionKey": encryption_key, "nonce": nonce, "deadline": deadline},
    )


def erase_typed_data(dom: dict[str, Any], patient: str, record_id: bytes, deadline: int) -> dict[str, Any]:
    return _full("EraseRecord", dom, {"patient": patient, "recordId": record_id, "deadline": deadline})


def typed_data_digest(typed: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest that is signed (keccak256 of 0x1901 ‖ domainSeparator ‖ structHash)."""
    m = encode_typed_data(full_message=typed)
    return keccak(b"\x19" + m.version + m.header + m.body)


def sign_typed_data(account: LocalAccount, typed: dict[str, Any]) -> bytes:
    """65-byte ``r || s || v`` signature, as wallets produce it."""
    return bytes(account.sign_message(encode_typed_data(full_message=typed)).signature)


#: secp256k1's group order and its half: the contracts' ECDSA (OpenZeppelin) refuses s above the half (EIP-2).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


def recover_signer(typed: dict[str, Any], signature: bytes) -> str:
    """The address that signed ``typed`` (checksummed). ``ValueError`` for a signature the contracts would refuse:
    not 65 bytes, v not 27/28, or r, s out of range or s in the upper half (the malleable twin of a valid
    signature, which eth_account alone would accept: a relay would then pay for a transaction that reverts)."""
    sig = bytes(signature)
    if len(sig) != 65 or sig[64] not in (27, 28):
        raise ValueError("a signature is 65 bytes r || s || v with v = 27 or 28")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s <= _HALF_N):
        raise ValueError("non-canonical signature (r or s out of range, or s in the upper half)")
    return str(Account.recover_message(encode_typed_data(full_message=typed), signature=sig))
