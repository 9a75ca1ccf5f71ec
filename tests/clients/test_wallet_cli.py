"""``medledger wallet``: keystore v3 files, passwords from the environment or a hidden prompt, keys imported
from an environment variable only, never overwriting a wallet."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from assembly.cli import app
from clients.wallet import PatientWallet, load_wallet, save_wallet

PASSWORD = "correct horse battery staple"
runner = CliRunner()


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The production cost (2**18) takes about a second per file; the format is the same at any cost.
    monkeypatch.setattr("clients.wallet.KEYSTORE_SCRYPT_N", 2**12)
    yield


def _env(**extra: str) -> dict[str, str]:
    return {"MEDLEDGER_WALLET_PASSWORD": PASSWORD, "MEDLEDGER_WALLET": "", **extra}


def test_create_show_and_refuse_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "w" / "wallet.json"
    created = runner.invoke(app, ["wallet", "create", "--wallet", str(path), "--json"], env=_env())
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    keystore = json.loads(path.read_text())
    assert keystore["version"] == 3 and "crypto" in keystore
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert info["address"].lower() == "0x" + keystore["address"].lower()
    assert PASSWORD not in created.output

    shown = runner.invoke(app, ["wallet", "show", "--json"], env=_env(MEDLEDGER_WALLET=str(path)))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == info
    wallet = load_wallet(path, PASSWORD)
    assert info["encryption_public_key"] == "0x" + wallet.encryption_public_key.hex()

    before = path.read_bytes()
    again = runner.invoke(app, ["wallet", "create", "--wallet", str(path)], env=_env())
    assert again.exit_code == 2
    assert "error [wallet_exists]" in again.stderr
    assert path.read_bytes() == before


def test_password_prompt_is_hidden_and_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "wallet.json"
    env = {"MEDLEDGER_WALLET_PASSWORD": ""}
    created = runner.invoke(app, ["wallet", "create", "--wallet", str(path)], env=env, input="s3cret-pw\ns3cret-pw\n")
    assert created.exit_code == 0, created.output
    assert "s3cret-pw" not in created.output
    wrong = runner.invoke(app, ["wallet", "show", "--wallet", str(path)], env=env, input="nope\n")
    assert wrong.exit_code == 2
    assert "error [wallet_password_wrong]" in wrong.stderr and "nope" not in wrong.output
    ok = runner.invoke(app, ["wallet", "show", "--wallet", str(path), "--json"], env=env, input="s3cret-pw\n")
    assert ok.exit_code == 0, ok.output


def test_import_reads_the_key_from_the_named_variable_only(tmp_path: Path) -> None:
    account = Account.create()
    key_hex = account.key.hex()
    path = tmp_path / "imported.json"
    out = runner.invoke(
        app, ["wallet", "import", "--key-env", "MY_KEY", "--wallet", str(path), "--json"], env=_env(MY_KEY=key_hex)
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["address"] == account.address
    assert key_hex.removeprefix("0x") not in out.output
    assert load_wallet(path, PASSWORD).address == account.address

    missing = runner.invoke(app, ["wallet", "import", "--key-env", "UNSET_KEY", "--wallet", str(tmp_path / "x.json")])
    assert missing.exit_code == 2 and "error [key_missing]" in missing.stderr
    bad = runner.invoke(
        app, ["wallet", "import", "--key-env", "BAD", "--wallet", str(tmp_path / "y.json")], env=_env(BAD="zz-not-hex")
    )
    assert bad.exit_code == 2 and "error [invalid_key]" in bad.stderr and "zz-not-hex" not in bad.output
    assert not (tmp_path / "y.json").exists()


def test_missing_or_foreign_wallet_file_is_bad_input(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["wallet", "show", "--wallet", str(tmp_path / "none.json")], env=_env())
    assert missing.exit_code == 2 and "error [wallet_not_found]" in missing.stderr
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": 1}')
    got = runner.invoke(app, ["wallet", "show", "--wallet", str(foreign)], env=_env())
    assert got.exit_code == 2 and "error [wallet_unreadable]" in got.stderr


def test_save_wallet_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    wallet = PatientWallet.create()
    save_wallet(wallet, path, PASSWORD, iterations=2**10)
    try:
        save_wallet(PatientWallet.create(), path, PASSWORD, iterations=2**10)
    except Exception as exc:
        assert getattr(exc, "code", "") == "wallet_exists"
    else:
        raise AssertionError("overwrote a wallet")
    assert load_wallet(path, PASSWORD).address == wallet.address
