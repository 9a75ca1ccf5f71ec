"""Shared fixtures: one real Anvil per test session with the dev consortium deployed; each test runs inside
an EVM snapshot that is reverted afterwards, so tests are isolated without redeploying."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from eth_account import Account
from eth_account.signers.local import LocalAccount

from medledger.chain.anvil import AnvilProcess, AnvilSettings
from medledger.chain.deploy import Contracts, DeploymentManifest
from medledger.chain.devchain import DevConsortium, deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import TransactionSender

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Chain:
    """A test's view of the dev chain."""

    rpc: JsonRpcClient
    settings: AnvilSettings
    dev: DevConsortium

    @property
    def manifest(self) -> DeploymentManifest:
        return self.dev.manifest

    def founder(self, name: str) -> LocalAccount:
        return self.dev.founders[name]

    @property
    def hospital_a(self) -> LocalAccount:
        return self.founder("Hospital A")

    @property
    def hospital_b(self) -> LocalAccount:
        return self.founder("Hospital B")

    @property
    def cdc(self) -> LocalAccount:
        return self.founder("Regional CDC")

    @property
    def auditor(self) -> LocalAccount:
        return self.founder("Regional Audit Office")

    def outsider(self, i: int = 0) -> LocalAccount:
        """A dev account that is not a member (accounts 5..9)."""
        return self.dev.accounts[5 + i]

    @staticmethod
    def new_patient() -> LocalAccount:
        """A fresh patient wallet; with zero base fee it can transact without holding ether."""
        return Account.from_key(secrets.token_bytes(32))

    def sender(self, account: LocalAccount) -> TransactionSender:
        return TransactionSender(self.rpc, account)

    def as_(self, account: LocalAccount) -> Contracts:
        """All four contracts acting as ``account`` (a fresh sender, so nonces are read anew)."""
        return Contracts.from_manifest(self.rpc, self.manifest, self.sender(account))

    @property
    def read(self) -> Contracts:
        return Contracts.from_manifest(self.rpc, self.manifest)

    def timestamp(self) -> int:
        return int(self.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def advance(self, seconds: int) -> None:
        """Move chain time forward and mine a block at the new time."""
        self.rpc.call("evm_increaseTime", [seconds])
        self.rpc.call("evm_mine", [])


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilProcess]:
    with AnvilProcess(AnvilSettings.load(port=0)) as proc:
        yield proc


@pytest.fixture(scope="session")
def dev_consortium(anvil: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> DevConsortium:
    rpc = JsonRpcClient(anvil.url)
    return deploy_dev(rpc, anvil.settings, directory=tmp_path_factory.mktemp("deployments"))


@pytest.fixture
def chain(anvil: AnvilProcess, dev_consortium: DevConsortium) -> Iterator[Chain]:
    rpc = JsonRpcClient(anvil.url)
    snapshot = rpc.call("evm_snapshot")
    try:
        yield Chain(rpc, anvil.settings, dev_consortium)
    finally:
        rpc.call("evm_revert", [snapshot])
        rpc.close()


def postgres_required() -> bool:
    return os.environ.get("MEDLEDGER_REQUIRE_POSTGRES") == "1"


# ---------------------------------------------------------------------------------------------- databases

PG_ADMIN_URL = os.environ.get("MEDLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if postgres_required():
            pytest.fail(f"PostgreSQL is required (MEDLEDGER_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} (set MEDLEDGER_REQUIRE_POSTGRES=1 to require it)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    admin = _pg_admin()
    name = f"medledger_test_{secrets.token_hex(6)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: a SQLite file, and (second run) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        yield request.getfixturevalue("pg_url")


# ---------------------------------------------------------------------------------------------- e-mail


class Mailbox:
    """A real SMTP server's (aiosmtpd) handler keeping every message; ``refuse`` answers RCPT TO with that reply."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on loopback: its mailbox and port."""
    from node.embedded import free_port

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
