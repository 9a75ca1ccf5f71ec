"""EIP-712 signature recovery accepts exactly what the contracts' ECDSA accepts: the canonical signature, not
its high-s twin (same signer, other bytes) nor a v outside 27/28, so a relay never pays for a transaction
that the contract will revert."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from medledger.chain.typed_data import domain, recover_signer, revoke_typed_data, sign_typed_data


def _hash(typed: dict) -> bytes:
    return _hash_eip191_message(encode_typed_data(full_message=typed))


N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _signed() -> tuple[str, dict, bytes]:
    account = Account.create()
    typed = revoke_typed_data(domain("MedLedger Consent", 31337, "0x" + "11" * 20), account.address, 7, 0, 2**40)
    return account.address, typed, sign_typed_data(account, typed)


def test_the_canonical_signature_recovers_its_signer() -> None:
    address, typed, sig = _signed()
    assert recover_signer(typed, sig) == address


def test_the_high_s_twin_and_odd_v_are_refused() -> None:
    address, typed, sig = _signed()
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = r + (N - s).to_bytes(32, "big") + bytes([55 - v])
    assert Account._recover_hash(_hash(typed), signature=twin) == address  # eth_account alone takes the twin
    with pytest.raises(ValueError, match="non-canonical"):
        recover_signer(typed, twin)
    for bad_v in (0, 1, 29):
        with pytest.raises(ValueError, match="v = 27 or 28"):
            recover_signer(typed, sig[:64] + bytes([bad_v]))
    with pytest.raises(ValueError):
        recover_signer(typed, sig[:64])
