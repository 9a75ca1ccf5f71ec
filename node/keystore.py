"""The institution's keys: ledger account, X25519 encryption key and key-encryption key (KEK).

:class:`KeyEncryptionKey` is the seam for key custody. :class:`LocalKek` holds the KEK in process memory (opened
from :class:`LocalKeystore`); a KMS or HSM backend implements the same three members:

* ``key_id`` - a stable identifier stored next to every wrapped record key (e.g. ``"kms:arn:aws:kms:..."`` or
  ``"pkcs11:token=medledger;object=kek-2025"``), so records stay readable after the KEK rotates;
* ``wrap(record_key)`` / ``unwrap(wrapped)`` - for a PKCS#11 HSM, ``C_WrapKey``/``C_UnwrapKey`` with
  ``CKM_AES_KEY_WRAP`` (RFC 3394, the same format as :func:`medledger.crypto.wrap_key`); for a cloud KMS,
  ``Encrypt``/``Decrypt`` on the key ARN. A KMS round trip per record cannot reach 5,000 records/s, so a KMS
  backend should instead unwrap a *local* KEK once at start (KMS-wrapped data key) and keep using AES-KW in
  memory; an HSM does AES-KW at line rate. ``unwrap`` must raise ``medledger.crypto.DecryptionError`` on failure.

:class:`LocalKeystore` layout (directory 0700, files 0600, each written atomically):

* ``account.json`` - the ledger account as an Ethereum keystore v3 (scrypt), readable by standard wallets;
* ``secrets.json`` - the X25519 private key and the KEK, AES-256-GCM under a key scrypt-derived from the same
  password (own salt); the header (address, key id, KDF parameters) is the associated data, so it cannot be
  edited without detection.

The password is checked against ``account.json`` first, so a wrong password is reported as such
(``keystore_bad_password``), while a right password whose ``secrets.json`` fails to authenticate means the file
was damaged or tampered with (``ConfigError``). Opening costs two scrypt derivations (~0.4 s each at the
production n = 2**17 on this machine); tests create keystores with ``n=2**12``, stored in the files, so opening
them is fast too. Nothing here logs or formats key material or the password into messages.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from medledger.crypto import (
    RECORD_KEY_BYTES,
    new_key,
    unwrap_key,
    wrap_key,
    x25519_private_from_bytes,
    x25519_public_key,
)
from medledger.errors import ConfigError, InputError, MedLedgerError
from medledger.files import atomic_write_text

log = logging.getLogger(__name__)

ACCOUNT_FILE = "account.json"
SECRETS_FILE = "secrets.json"
SECRETS_FORMAT = "medledger-keystore-secrets"
SECRETS_VERSION = 1
#: Production scrypt cost (~0.4 s and 128 MiB per derivation here); 2**12 is enough for tests.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
# Bounds on a file's scrypt n: below the minimum a file was not made by us; above the maximum opening it would
# exhaust memory (n=2**20 already needs 1 GiB), which a planted file could otherwise force.
_MIN_N = 2**10
_MAX_N = 2**20


class KeystorePasswordError(MedLedgerError):
    """The keystore password is wrong."""

    code = "keystore_bad_password"
    exit_code = 2


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps record keys for the custodian (see the module docstring for KMS/HSM backends)."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, record_key: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> bytes: ...


class LocalKek:
    """A KEK held in memory: AES key wrap (RFC 3394) via :mod:`medledger.crypto`."""

    __slots__ = ("_kek", "_key_id")

    def __init__(self, kek: bytes, key_id: str) -> None:
        if len(kek) != RECORD_KEY_BYTES:
            raise InputError(f"a KEK is {RECORD_KEY_BYTES} bytes")
        self._kek = bytes(kek)
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, record_key: bytes) -> bytes:
        return wrap_key(record_key, self._kek)

    def unwrap(self, wrapped: bytes) -> bytes:
        return unwrap_key(wrapped, self._kek)

    def __repr__(self) -> str:
        return f"LocalKek(key_id={self._key_id!r})"

    def __reduce__(self) -> Any:
        # Pickling would copy the raw KEK into caches, queues or crash dumps.
        raise TypeError("LocalKek cannot be pickled")


# ---------------------------------------------------------------------------------------------- files


def _write_new_private(path: Path, text: str) -> None:
    """Create ``path`` 0600 with ``text``; ``ConfigError`` if it exists (O_EXCL makes refusal race-free)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError("keystore already exists; refusing to overwrite", details={"path": str(path)}) from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    # atomic_write_text keeps the existing (0600) mode, so the content never appears with a wider one.
    atomic_write_text(path, text)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("keystore file is missing", details={"path": str(path)}) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"keystore file is unreadable ({type(exc).__name__})", details={"path": str(path)}) from None
    try:
        obj = json.loads(text)
    except ValueError:
        raise ConfigError("keystore file is not valid JSON", details={"path": str(path)}) from None
    if not isinstance(obj, dict):
        raise ConfigError("keystore file is not a JSON object", details={"path": str(path)})
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("keystore file %s is accessible to group/others (mode %o); expected 0600", path, mode)
    return obj


def _check_scrypt_params(n: Any, r: Any, p: Any, path: Path) -> None:
    ok = (
        isinstance(n, int)
        and _MIN_N <= n <= _MAX_N
        and n & (n - 1) == 0
        and isinstance(r, int)
        and 1 <= r <= 32
        and isinstance(p, int)
        and 1 <= p <= 16
    )
    if not ok:
        raise ConfigError("keystore has unsupported scrypt parameters", details={"path": str(path)})


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def _secrets_aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------- keystore


class LocalKeystore:
    """A password-protected directory with the institution's ledger account, X25519 key and KEK."""

    __slots__ = ("_account", "_encryption_key", "_kek", "path")

    def __init__(self, path: Path, account: LocalAccount, encryption_key: X25519PrivateKey, kek: LocalKek) -> None:
        self.path = path
        self._account = account
        self._encryption_key = encryption_key
        self._kek = kek

    # ------------------------------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls,
        path: Path | str,
        password: str,
        *,
        n: int = SCRYPT_N,
        private_key: bytes | None = None,
    ) -> LocalKeystore:
        """Create a keystore with a new (or the given) ledger account, a new X25519 key and a new KEK.

        Refuses (``ConfigError``) if ``path`` already holds a keystore. ``n`` is the scrypt cost, recorded in
        the files; keep the default outside tests.
        """
        path = Path(path)
        if not isinstance(password, str) or not password:
            raise InputError("keystore password must be a non-empty string")
        _check_scrypt_params(n, SCRYPT_R, SCRYPT_P, path)
        if path.exists() and not path.is_dir():
            raise ConfigError("keystore path exists and is not a directory", details={"path": str(path)})
        if (path / ACCOUNT_FILE).exists() or (path / SECRETS_FILE).exists():
            raise ConfigError("keystore already exists; refusing to overwrite", details={"path": str(path)})
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask and ignored for an existing directory; set it explicitly.
        os.chmod(path, 0o700)

        account: LocalAccount = Account.from_key(private_key) if private_key is not None else Account.create()
        encryption_key = X25519PrivateKey.generate()
        kek = new_key()
        key_id = f"local:{secrets.token_hex(16)}"
        address = to_checksum_address(account.address)

        salt = os.urandom(16)
        header: dict[str, Any] = {
            "format": SECRETS_FORMAT,
            "version": SECRETS_VERSION,
            "address": address,
            "key_id": key_id,
            "kdf": "scrypt",
            "kdfparams": {"n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex(), "dklen": 32},
            "cipher": "aes-256-gcm",
        }
        plaintext = encryption_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) + kek
        nonce = os.urandom(12)
        sealed = AESGCM(_derive(password, salt, n, SCRYPT_R, SCRYPT_P)).encrypt(nonce, plaintext, _secrets_aad(header))
        secrets_doc = {**header, "nonce": nonce.hex(), "ciphertext": sealed.hex()}
        account_doc = Account.encrypt(account.key, password, kdf="scrypt", iterations=n)

        _write_new_private(path / SECRETS_FILE, json.dumps(secrets_doc, indent=2) + "\n")
        _write_new_private(path / ACCOUNT_FILE, json.dumps(account_doc, indent=2) + "\n")
        return cls(path, account, encryption_key, LocalKek(kek, key_id))

    @classmethod
    def open(cls, path: Path | str, password: str) -> LocalKeystore:
        """Open an existing keystore: ``KeystorePasswordError`` on a wrong password, ``ConfigError`` if missing
        or damaged."""
        path = Path(path)
        if not path.is_dir():
            raise ConfigError("keystore directory does not exist", details={"path": str(path)})
        account_doc = _read_json(path / ACCOUNT_FILE)
        secrets_doc = _read_json(path / SECRETS_FILE)
        header, nonce, sealed = cls._parse_secrets(secrets_doc, path / SECRETS_FILE)

        account = cls._decrypt_account(account_doc, password, path / ACCOUNT_FILE)
        if to_checksum_address(account.address) != header["address"]:
            raise ConfigError("keystore files belong to different accounts", details={"path": str(path)})

        params = header["kdfparams"]
        key = _derive(password, bytes.fromhex(params["salt"]), params["n"], params["r"], params["p"])
        try:
            plaintext = AESGCM(key).decrypt(nonce, sealed, _secrets_aad(header))
        except InvalidTag:
            # The password already opened account.json, so this is damage or tampering, not a typo.
            raise ConfigError(
                "keystore secrets file failed authentication (damaged or modified)",
                details={"path": str(path / SECRETS_FILE)},
            ) from None
        if len(plaintext) != 64:
            raise ConfigError("keystore secrets have an unexpected length", details={"path": str(path)})
        encryption_key = x25519_private_from_bytes(plaintext[:32])
        return cls(path, account, encryption_key, LocalKek(plaintext[32:], header["key_id"]))

    @staticmethod
    def _parse_secrets(doc: dict[str, Any], path: Path) -> tuple[dict[str, Any], bytes, bytes]:
        bad = ConfigError("keystore secrets file is malformed", details={"path": str(path)})
        if doc.get("format") != SECRETS_FORMAT or doc.get("version") != SECRETS_VERSION:
            raise ConfigError("keystore secrets file has an unknown format or version", details={"path": str(path)})
        try:
            header = {k: doc[k] for k in ("format", "version", "address", "key_id", "kdf", "kdfparams", "cipher")}
            params = header["kdfparams"]
            if header["kdf"] != "scrypt" or header["cipher"] != "aes-256-gcm" or not isinstance(params, dict):
                raise bad
            _check_scrypt_params(params.get("n"), params.get("r"), params.get("p"), path)
            salt = bytes.fromhex(params["salt"])
            nonce = bytes.fromhex(doc["nonce"])
            sealed = bytes.fromhex(doc["ciphertext"])
            if len(salt) < 16 or len(nonce) != 12 or not isinstance(header["key_id"], str):
                raise bad
            header["address"] = to_checksum_address(header["address"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise bad from None
        return header, nonce, sealed

    @staticmethod
    def _decrypt_account(doc: dict[str, Any], password: str, path: Path) -> LocalAccount:
        crypto = doc.get("crypto") or doc.get("Crypto")
        if (
            not isinstance(crypto, dict)
            or crypto.get("kdf") != "scrypt"
            or not isinstance(crypto.get("kdfparams"), dict)
        ):
            raise ConfigError("account keystore is malformed or not scrypt-protected", details={"path": str(path)})
        params = crypto["kdfparams"]
        _check_scrypt_params(params.get("n"), params.get("r"), params.get("p"), path)
        try:
            key = Account.decrypt(doc, password)
        except ValueError as exc:
            # eth-keyfile signals a wrong password only through this message; anything else is a bad file.
            if "MAC mismatch" in str(exc):
                raise KeystorePasswordError("keystore password is wrong") from None
            raise ConfigError("account keystore is malformed", details={"path": str(path)}) from None
        except (KeyError, TypeError, AttributeError):
            raise ConfigError("account keystore is malformed", details={"path": str(path)}) from None
        return Account.from_key(key)

    # ------------------------------------------------------------------------------------------ keys

    @property
    def account(self) -> LocalAccount:
        """The ledger (signing) account."""
        return self._account

    @property
    def address(self) -> str:
        return to_checksum_address(self._account.address)

    @property
    def encryption_private_key(self) -> X25519PrivateKey:
        return self._encryption_key

    @property
    def encryption_public_key(self) -> bytes:
        """The 32-byte X25519 public key registered on chain for this institution."""
        return x25519_public_key(self._encryption_key)

    @property
    def kek(self) -> KeyEncryptionKey:
        return self._kek

    @property
    def key_id(self) -> str:
        return self._kek.key_id

    def __repr__(self) -> str:
        return f"LocalKeystore(path={str(self.path)!r}, address={self.address!r}, key_id={self.key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("LocalKeystore cannot be pickled")
