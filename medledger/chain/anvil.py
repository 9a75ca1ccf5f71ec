"""Run a local Anvil dev chain (the npm-pinned binary) for development, the demo and tests."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.chain.rpc import JsonRpcClient, RpcUnavailable
from medledger.errors import ConfigError
from medledger.paths import chain_config_dir, project_root

_PLATFORM_PACKAGE = {
    ("Linux", "x86_64"): "anvil-linux-amd64",
    ("Linux", "aarch64"): "anvil-linux-arm64",
    ("Darwin", "x86_64"): "anvil-darwin-amd64",
    ("Darwin", "arm64"): "anvil-darwin-arm64",
}


def find_anvil() -> Path:
    """Locate the Anvil binary: ``MEDLEDGER_ANVIL``, the npm-pinned package, then ``PATH``."""
    env = os.environ.get("MEDLEDGER_ANVIL")
    if env:
        return Path(env)
    package = _PLATFORM_PACKAGE.get((platform.system(), platform.machine()))
    if package:
        candidate = project_root() / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ConfigError("anvil not found: run scripts/bootstrap.sh (npm ci) or set MEDLEDGER_ANVIL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class AnvilSettings:
    chain_id: int = 31337
    host: str = "127.0.0.1"
    port: int = 8545
    accounts: int = 10
    mnemonic: str = "test test test test test test test test test test test junk"
    base_fee: int = 0
    block_gas_limit: int = 30_000_000
    hardfork: str = "cancun"
    #: Block states kept (in memory) for historical calls; 0 keeps full history on disk.
    prune_history: int = 1024

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> AnvilSettings:
        path = path or chain_config_dir() / "anvil" / "dev.json"
        raw = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw)


class AnvilProcess:
    """An Anvil child process; use as a context manager or call :meth:`start` / :meth:`stop`.

    Args:
        settings: Chain settings (port 0 picks a free port).
        state_path: If given, chain state is loaded from and saved to this file, so a restart keeps it.
        log_path: Where Anvil's output goes (default: discarded).
    """

    def __init__(
        self, settings: AnvilSettings | None = None, *, state_path: Path | None = None, log_path: Path | None = None
    ) -> None:
        self.settings = settings or AnvilSettings.load()
        self.port = self.settings.port or free_port()
        self.state_path = state_path
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def command(self) -> list[str]:
        s = self.settings
        cmd = [
            str(find_anvil()),
            "--host", s.host,
            "--port", str(self.port),
            "--chain-id", str(s.chain_id),
            "--accounts", str(s.accounts),
            "--mnemonic", s.mnemonic,
            "--base-fee", str(s.base_fee),
            "--gas-limit", str(s.block_gas_limit),
            "--hardfork", s.hardfork,
        ]  # fmt: skip
        if s.prune_history:
            cmd += ["--prune-history", str(s.prune_history)]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
        return cmd

    @property
    def pid(self) -> int | None:
        """The Anvil process id while it runs (benches read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 20.0) -> AnvilProcess:
        if self._proc is not None:
            return self
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        rpc = JsonRpcClient(self.url, retries=0, timeout=2.0)
        try:
            while True:
                if self._proc.poll() is not None:
                    raise ConfigError(f"anvil exited with status {self._proc.returncode} (port {self.port} in use?)")
                try:
                    rpc.call("eth_chainId")
                    return self
                except RpcUnavailable:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise ConfigError(f"anvil did not answer on {self.url} within {timeout:.0f}s") from None
                    time.sleep(0.05)
        finally:
            rpc.close()

    def stop(self) -> None:
        """Stop Anvil; with a state path it saves the chain state on the way out."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Stop Anvil abruptly (crash tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dev_private_keys(settings: AnvilSettings) -> list[str]:
    """Private keys Anvil derives from its mnemonic (m/44'/60'/0'/0/i). Dev chains only."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(settings.mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
        for i in range(settings.accounts)
    ]
