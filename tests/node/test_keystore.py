"""LocalKeystore: password-protected institution keys on disk."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from medledger.crypto import DecryptionError, new_key, unwrap_with_x25519, wrap_to_x25519
from medledger.errors import ConfigError, InputError, MedLedgerError
from node.keystore import ACCOUNT_FILE, SECRETS_FILE, KeyEncryptionKey, KeystorePasswordError, LocalKeystore

PASSWORD = "correct horse battery staple"
FAST_N = 2**12


@pytest.fixture
def created(tmp_path: Path) -> tuple[Path, LocalKeystore]:
    path = tmp_path / "keystore"
    return path, LocalKeystore.create(path, PASSWORD, n=FAST_N)


def _secret_strings(ks: LocalKeystore) -> list[str]:
    """Every secret in hex, as it might leak into text."""
    raw_x25519 = ks.encryption_private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return [
        ks.account.key.hex(),
        raw_x25519.hex(),
        ks.kek._kek.hex(),  # type: ignore[attr-defined]
        PASSWORD,
    ]


def test_create_open_round_trip(created: tuple[Path, LocalKeystore]) -> None:
    path, ks = created
    opened = LocalKeystore.open(path, PASSWORD)
    assert opened.address == ks.address
    assert opened.account.key == ks.account.key
    assert opened.encryption_public_key == ks.encryption_public_key
    assert len(opened.encryption_public_key) == 32
    assert opened.key_id == ks.key_id == ks.kek.key_id
    assert ks.key_id.startswith("local:")
    # The reopened KEK and X25519 key are the same keys, shown by cross-unwrapping.
    record_key = new_key()
    assert opened.kek.unwrap(ks.kek.wrap(record_key)) == record_key
    assert unwrap_with_x25519(wrap_to_x25519(record_key, ks.encryption_public_key), opened.encryption_private_key) == (
        record_key
    )
    assert isinstance(opened.kek, KeyEncryptionKey)


def test_account_file_is_a_standard_v3_keystore(created: tuple[Path, LocalKeystore]) -> None:
    path, ks = created
    doc = json.loads((path / ACCOUNT_FILE).read_text())
    assert doc["version"] == 3
    assert doc["crypto"]["kdf"] == "scrypt"
    assert doc["crypto"]["kdfparams"]["n"] == FAST_N
    assert doc["address"].lower() == ks.address[2:].lower()


def test_two_keystores_have_independent_keys(tmp_path: Path) -> None:
    a = LocalKeystore.create(tmp_path / "a", PASSWORD, n=FAST_N)
    b = LocalKeystore.create(tmp_path / "b", PASSWORD, n=FAST_N)
    assert a.address != b.address
    assert a.encryption_public_key != b.encryption_public_key
    assert a.key_id != b.key_id
    with pytest.raises(DecryptionError):
        b.kek.unwrap(a.kek.wrap(new_key()))


def test_imported_account_key(tmp_path: Path) -> None:
    key = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    ks = LocalKeystore.create(tmp_path / "k", PASSWORD, n=FAST_N, private_key=key)
    assert ks.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert LocalKeystore.open(tmp_path / "k", PASSWORD).account.key == key


def test_wrong_password(created: tuple[Path, LocalKeystore]) -> None:
    path, _ = created
    with pytest.raises(KeystorePasswordError) as exc:
        LocalKeystore.open(path, "wrong password")
    err = exc.value
    assert isinstance(err, MedLedgerError)
    assert err.code == "keystore_bad_password"
    assert err.exit_code == 2
    assert "wrong password" not in str(err) and "wrong password" not in json.dumps(err.to_dict())


def test_refuses_to_overwrite(created: tuple[Path, LocalKeystore]) -> None:
    path, ks = created
    before = {name: (path / name).read_bytes() for name in (ACCOUNT_FILE, SECRETS_FILE)}
    with pytest.raises(ConfigError):
        LocalKeystore.create(path, PASSWORD, n=FAST_N)
    with pytest.raises(ConfigError):
        LocalKeystore.create(path, "another password", n=FAST_N)
    assert {name: (path / name).read_bytes() for name in before} == before
    assert LocalKeystore.open(path, PASSWORD).address == ks.address


def test_refuses_partial_keystore_and_file_path(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / SECRETS_FILE).write_text("{}")
    with pytest.raises(ConfigError):
        LocalKeystore.create(tmp_path / "partial", PASSWORD, n=FAST_N)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        LocalKeystore.create(tmp_path / "file", PASSWORD, n=FAST_N)


def test_empty_password_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        LocalKeystore.create(tmp_path / "k", "", n=FAST_N)
    assert not (tmp_path / "k").exists()


def test_permissions(tmp_path: Path) -> None:
    # A pre-existing, too-open directory is tightened as well.
    path = tmp_path / "ks"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    LocalKeystore.create(path, PASSWORD, n=FAST_N)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for name in (ACCOUNT_FILE, SECRETS_FILE):
        assert stat.S_IMODE((path / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in path.iterdir()) == [ACCOUNT_FILE, SECRETS_FILE]  # no temp files left


def test_missing_keystore(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LocalKeystore.open(tmp_path / "nope", PASSWORD)


@pytest.mark.parametrize("name", [ACCOUNT_FILE, SECRETS_FILE])
def test_missing_file(created: tuple[Path, LocalKeystore], name: str) -> None:
    path, _ = created
    (path / name).unlink()
    with pytest.raises(ConfigError):
        LocalKeystore.open(path, PASSWORD)


@pytest.mark.parametrize("name", [ACCOUNT_FILE, SECRETS_FILE])
@pytest.mark.parametrize("content", ["", "not json", "[]", '{"version": 3}'])
def test_corrupt_file(created: tuple[Path, LocalKeystore], name: str, content: str) -> None:
    path, _ = created
    (path / name).write_text(content)
    with pytest.raises(ConfigError):
        LocalKeystore.open(path, PASSWORD)


def test_tampered_secrets_ciphertext_is_config_error(created: tuple[Path, LocalKeystore]) -> None:
    path, _ = created
    doc = json.loads((path / SECRETS_FILE).read_text())
    ct = bytearray(bytes.fromhex(doc["ciphertext"]))
    ct[0] ^= 1
    doc["ciphertext"] = ct.hex()
    (path / SECRETS_FILE).write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as exc:
        LocalKeystore.open(path, PASSWORD)
    assert not isinstance(exc.value, KeystorePasswordError)


def test_tampered_secrets_header_is_detected(created: tuple[Path, LocalKeystore]) -> None:
    path, _ = created
    doc = json.loads((path / SECRETS_FILE).read_text())
    doc["key_id"] = "local:attacker"
    (path / SECRETS_FILE).write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        LocalKeystore.open(path, PASSWORD)


def test_secrets_from_another_keystore_rejected(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    LocalKeystore.create(a, PASSWORD, n=FAST_N)
    LocalKeystore.create(b, PASSWORD, n=FAST_N)
    (a / SECRETS_FILE).write_bytes((b / SECRETS_FILE).read_bytes())
    with pytest.raises(ConfigError):
        LocalKeystore.open(a, PASSWORD)


def test_memory_exhausting_scrypt_params_refused(created: tuple[Path, LocalKeystore]) -> None:
    path, _ = created
    doc = json.loads((path / ACCOUNT_FILE).read_text())
    doc["crypto"]["kdfparams"]["n"] = 2**30
    (path / ACCOUNT_FILE).write_text(json.dumps(doc))
    with pytest.raises(ConfigError):
        LocalKeystore.open(path, PASSWORD)


def test_no_secret_in_repr_str_or_errors(created: tuple[Path, LocalKeystore], caplog: pytest.LogCaptureFixture) -> None:
    path, ks = created
    secrets = _secret_strings(ks)
    caplog.set_level(logging.DEBUG)
    texts = [repr(ks), str(ks), repr(ks.kek), str(ks.kek)]
    with pytest.raises(KeystorePasswordError) as wrong:
        LocalKeystore.open(path, "guess")
    texts += [str(wrong.value), repr(wrong.value), json.dumps(wrong.value.to_dict())]
    (path / SECRETS_FILE).chmod(0o644)  # provokes the permissions warning, which must not leak either
    doc = json.loads((path / SECRETS_FILE).read_text())
    doc["ciphertext"] = "00" + doc["ciphertext"][2:]
    (path / SECRETS_FILE).write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as corrupt:
        LocalKeystore.open(path, PASSWORD)
    texts += [str(corrupt.value), json.dumps(corrupt.value.to_dict())]
    texts += [r.getMessage() for r in caplog.records]
    assert any("0600" in t for t in texts)  # the warning was emitted (so the log check below is meaningful)
    blob = "\n".join(texts).lower()
    for secret in secrets:
        assert secret.lower() not in blob
    assert ks.address in repr(ks)


def test_not_picklable(created: tuple[Path, LocalKeystore]) -> None:
    import pickle

    _, ks = created
    with pytest.raises(TypeError):
        pickle.dumps(ks)
    with pytest.raises(TypeError):
        pickle.dumps(ks.kek)
