"""Envelope encryption: record ciphertexts, AES key wrap, X25519 ECIES and the patient key hierarchy."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger import crypto
from medledger.crypto import (
    RECORD_KEY_BYTES,
    DecryptionError,
    commitment,
    decrypt_record,
    encrypt_record,
    new_key,
    unwrap_key,
    unwrap_with_x25519,
    wrap_key,
    wrap_to_x25519,
    x25519_from_seed,
    x25519_private_from_bytes,
    x25519_public_key,
)
from medledger.errors import InputError, MedLedgerError

CUSTODIAN = "0x" + "ab" * 20
OTHER_CUSTODIAN = "0x" + "cd" * 20
RECORD_ID = hashlib.sha256(b"record-1").digest()
PAYLOAD = b'{"resourceType":"Observation","status":"final","valueQuantity":{"value":7.2}}'


def _enc(plaintext: bytes = PAYLOAD, **kw) -> tuple[bytes, bytes]:
    return encrypt_record(plaintext, record_id=RECORD_ID, custodian=CUSTODIAN, **kw)


def test_record_round_trip_and_format() -> None:
    key, ct = _enc()
    assert len(key) == RECORD_KEY_BYTES
    assert ct[0] == 0x01
    assert len(ct) == 1 + 12 + len(PAYLOAD) + 16
    assert PAYLOAD not in ct
    assert decrypt_record(ct, key=key, record_id=RECORD_ID, custodian=CUSTODIAN) == PAYLOAD


def test_record_round_trip_empty_and_large_payload() -> None:
    for payload in (b"", os.urandom(3 * 1024 * 1024 + 7)):
        key, ct = _enc(payload)
        assert decrypt_record(ct, key=key, record_id=RECORD_ID, custodian=CUSTODIAN) == payload


def test_custodian_address_case_does_not_matter() -> None:
    key, ct = encrypt_record(PAYLOAD, record_id=RECORD_ID, custodian="0x" + "AB" * 20)
    assert decrypt_record(ct, key=key, record_id=RECORD_ID, custodian=CUSTODIAN) == PAYLOAD


def test_aad_layout() -> None:
    aad = crypto.record_aad(RECORD_ID, CUSTODIAN)
    assert aad == b"medledger/record/v1" + RECORD_ID + bytes.fromhex("ab" * 20)


def test_given_key_is_used_and_nonces_differ() -> None:
    key = new_key()
    k1, ct1 = _enc(key=key)
    k2, ct2 = _enc(key=key)
    assert k1 == k2 == key
    assert ct1[1:13] != ct2[1:13]
    assert ct1 != ct2
    assert decrypt_record(ct2, key=key, record_id=RECORD_ID, custodian=CUSTODIAN) == PAYLOAD


def test_fresh_keys_differ() -> None:
    assert len({_enc()[0] for _ in range(20)}) == 20


def test_every_tampered_byte_is_detected() -> None:
    key, ct = _enc(b"short payload")
    for i in range(len(ct)):
        tampered = bytearray(ct)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            decrypt_record(bytes(tampered), key=key, record_id=RECORD_ID, custodian=CUSTODIAN)


def test_truncated_and_extended_ciphertexts_fail() -> None:
    key, ct = _enc()
    for bad in (ct[:-1], ct[:13], b"", ct + b"\x00"):
        with pytest.raises(DecryptionError):
            decrypt_record(bad, key=key, record_id=RECORD_ID, custodian=CUSTODIAN)


def test_wrong_key_record_id_custodian_or_version_fail() -> None:
    key, ct = _enc()
    with pytest.raises(DecryptionError) as exc:
        decrypt_record(ct, key=new_key(), record_id=RECORD_ID, custodian=CUSTODIAN)
    assert exc.value.code == "decryption_failed"
    assert isinstance(exc.value, MedLedgerError)
    assert key.hex() not in str(exc.value)
    with pytest.raises(DecryptionError):
        decrypt_record(ct, key=key, record_id=hashlib.sha256(b"record-2").digest(), custodian=CUSTODIAN)
    with pytest.raises(DecryptionError):
        decrypt_record(ct, key=key, record_id=RECORD_ID, custodian=OTHER_CUSTODIAN)
    with pytest.raises(DecryptionError):
        decrypt_record(b"\x02" + ct[1:], key=key, record_id=RECORD_ID, custodian=CUSTODIAN)


def test_invalid_inputs_are_input_errors() -> None:
    with pytest.raises(InputError):
        encrypt_record(PAYLOAD, record_id=b"short", custodian=CUSTODIAN)
    with pytest.raises(InputError):
        encrypt_record(PAYLOAD, record_id=RECORD_ID, custodian="not-an-address")
    with pytest.raises(InputError):
        encrypt_record(PAYLOAD, record_id=RECORD_ID, custodian=CUSTODIAN, key=b"k" * 16)


def test_commitment_is_sha256_of_ciphertext_not_plaintext() -> None:
    _, ct = _enc()
    assert commitment(ct) == hashlib.sha256(ct).digest()
    assert len(commitment(ct)) == 32
    assert commitment(ct) != hashlib.sha256(PAYLOAD).digest()
    # Known SHA-256 vector (empty input), so the function is not merely self-consistent with hashlib.
    assert commitment(b"").hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_commitment_is_the_digest_inside_the_blob_cid() -> None:
    from medledger.cid import cid_for, parse_cid

    _, ct = _enc()
    assert parse_cid(cid_for(ct)).digest == commitment(ct)


def test_aes_key_wrap_round_trip_and_failures() -> None:
    kek, key = new_key(), new_key()
    wrapped = wrap_key(key, kek)
    assert len(wrapped) == 40
    assert key not in wrapped
    assert unwrap_key(wrapped, kek) == key
    with pytest.raises(DecryptionError):
        unwrap_key(wrapped, new_key())
    tampered = bytearray(wrapped)
    tampered[17] ^= 0x80
    with pytest.raises(DecryptionError):
        unwrap_key(bytes(tampered), kek)
    with pytest.raises(DecryptionError):
        unwrap_key(wrapped[:-8], kek)
    with pytest.raises(InputError):
        wrap_key(key, b"short kek")


def test_aes_key_wrap_rfc3394_vector() -> None:
    # RFC 3394 section 4.6: 256-bit key data wrapped with a 256-bit KEK.
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
    expected = "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
    assert wrap_key(data, kek).hex().upper() == expected
    assert unwrap_key(bytes.fromhex(expected), kek) == data


def test_ecies_round_trip_and_format() -> None:
    recipient = X25519PrivateKey.generate()
    pub = x25519_public_key(recipient)
    key = new_key()
    wrapped = wrap_to_x25519(key, pub)
    assert wrapped[0] == 0x01
    assert len(wrapped) == 1 + 32 + 12 + 32 + 16
    assert unwrap_with_x25519(wrapped, recipient) == key
    # A fresh ephemeral key each time: no linkage between two wraps of the same key.
    again = wrap_to_x25519(key, pub)
    assert again[1:33] != wrapped[1:33]


def test_ecies_wrong_recipient_and_tampering_fail() -> None:
    recipient = X25519PrivateKey.generate()
    wrapped = wrap_to_x25519(new_key(), x25519_public_key(recipient))
    with pytest.raises(DecryptionError):
        unwrap_with_x25519(wrapped, X25519PrivateKey.generate())
    for i in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x04
        with pytest.raises(DecryptionError):
            unwrap_with_x25519(bytes(tampered), recipient)
    with pytest.raises(DecryptionError):
        unwrap_with_x25519(wrapped[:40], recipient)


def test_ecies_rejects_bad_public_keys() -> None:
    with pytest.raises(InputError):
        wrap_to_x25519(new_key(), b"\x01" * 31)
    # The all-zero point is of low order: the shared secret would be zero and predictable.
    with pytest.raises(InputError):
        wrap_to_x25519(new_key(), bytes(32))


def test_x25519_helpers() -> None:
    a = x25519_from_seed(b"seed")
    assert x25519_public_key(a) == x25519_public_key(x25519_from_seed(b"seed"))
    assert x25519_public_key(a) != x25519_public_key(x25519_from_seed(b"other"))
    raw = os.urandom(32)
    k = x25519_private_from_bytes(raw)
    assert x25519_public_key(k) == x25519_public_key(X25519PrivateKey.from_private_bytes(raw))
    with pytest.raises(InputError) as exc:
        x25519_private_from_bytes(raw[:31])
    assert raw[:31].hex() not in str(exc.value)


def test_patient_hierarchy_end_to_end() -> None:
    """record key -> AES-KW under PKEK -> PKEK ECIES-wrapped once to the patient's X25519 key."""
    patient = X25519PrivateKey.generate()
    patient_pub = x25519_public_key(patient)
    institution_kek = new_key()
    pkek = new_key()
    wrapped_pkek = wrap_to_x25519(pkek, patient_pub)  # once per (patient, custodian)

    records = []
    for i in range(5):
        rid = hashlib.sha256(f"record-{i}".encode()).digest()
        body = f"observation {i}".encode()
        key, ct = encrypt_record(body, record_id=rid, custodian=CUSTODIAN)
        records.append((rid, body, ct, wrap_key(key, institution_kek), wrap_key(key, pkek)))

    # Patient side: one X25519 operation, then AES-KW per record.
    patient_pkek = unwrap_with_x25519(wrapped_pkek, patient)
    for rid, body, ct, custodian_copy, patient_copy in records:
        assert (
            decrypt_record(ct, key=unwrap_key(patient_copy, patient_pkek), record_id=rid, custodian=CUSTODIAN) == body
        )
        assert (
            decrypt_record(ct, key=unwrap_key(custodian_copy, institution_kek), record_id=rid, custodian=CUSTODIAN)
            == body
        )

    # Release to a requester: the custodian re-wraps one record key to the requester's X25519 key.
    requester = X25519PrivateKey.generate()
    rid, body, ct, custodian_copy, _ = records[2]
    grant = wrap_to_x25519(unwrap_key(custodian_copy, institution_kek), x25519_public_key(requester))
    assert decrypt_record(ct, key=unwrap_with_x25519(grant, requester), record_id=rid, custodian=CUSTODIAN) == body
    # Another patient cannot open the PKEK.
    with pytest.raises(DecryptionError):
        unwrap_with_x25519(wrapped_pkek, X25519PrivateKey.generate())
