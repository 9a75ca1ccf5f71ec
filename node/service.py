"""The node's composition root: opens the keystore, database, blob store and chain connection once and hands
the services to the CLI and the HTTP API. Nothing else constructs these, so both surfaces behave the same.

The chain is connected lazily: ingest works while the chain is down (records wait in the outbox), only
anchoring and membership checks need it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from indexer.db import index_engine
from medledger.chain.deploy import Contracts, DeploymentManifest, manifest_path
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import Receipt, TransactionSender
from medledger.errors import ConfigError
from node.access_journal import AccessJournal
from node.access_logger import AccessLogger
from node.anchorer import Anchorer
from node.config import NodeConfig
from node.consent import ConsentDecider
from node.db import open_node_db
from node.directory import PatientDirectory
from node.doorbell import Doorbell
from node.emergency import BreakGlassService
from node.erasure import ErasureService
from node.identity import Identities
from node.keystore import LocalKeystore
from node.ledger_view import LedgerView
from node.pipeline import IngestPipeline
from node.relay import ConsentRelay
from node.release import ReleaseService
from node.remote import RemoteRecords
from node.storage import BlobStore, open_store


def read_password(env_name: str, *, confirm: bool = False) -> str:
    """The keystore password from ``env_name``, else an interactive prompt (never echoed)."""
    value = os.environ.get(env_name)
    if value:
        return value
    if not os.isatty(0):
        raise ConfigError(f"set {env_name} (no terminal to prompt for the keystore password)")
    first = getpass.getpass("Keystore password: ")
    if confirm and getpass.getpass("Repeat password: ") != first:
        raise ConfigError("passwords differ")
    if not first:
        raise ConfigError("empty password")
    return first


@dataclass
class NodeServices:
    config: NodeConfig
    keystore: LocalKeystore
    engine: Engine
    sessions: sessionmaker[Session]
    store: BlobStore
    #: Chain client settings: the long-running anchorer keeps retrying, a one-shot ``status`` gives up fast.
    rpc_timeout: float = 30.0
    rpc_retries: int = 5
    _rpc: JsonRpcClient | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        password: str | None = None,
        rpc_timeout: float = 30.0,
        rpc_retries: int = 5,
    ) -> NodeServices:
        config = NodeConfig.load(data_dir)
        keystore = LocalKeystore.open(config.keystore_path, password or read_password(config.password_env))
        engine, sessions = open_node_db(config.db_url)
        return cls(
            config,
            keystore,
            engine,
            sessions,
            open_store(config.blob_store_url),
            rpc_timeout=rpc_timeout,
            rpc_retries=rpc_retries,
        )

    def __enter__(self) -> NodeServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return self.keystore.address

    @cached_property
    def anchor_bell(self) -> Doorbell:
        """Rung when records are queued for anchoring (wakes the anchorer)."""
        return Doorbell()

    @cached_property
    def access_bell(self) -> Doorbell:
        """Rung when the journal committed accesses (wakes the access logger)."""
        return Doorbell()

    @cached_property
    def pipeline(self) -> IngestPipeline:
        return IngestPipeline(
            self.sessions, self.store, self.keystore.kek, self.address, on_queued=self.anchor_bell.ring
        )

    @cached_property
    def directory(self) -> PatientDirectory:
        # The pipeline's own directory: one PKEK cache and one view of linked patients per node.
        return self.pipeline.directory

    # chain ------------------------------------------------------------------------------------------------
    @property
    def rpc(self) -> JsonRpcClient:
        if self._rpc is None:
            self._rpc = JsonRpcClient(self.config.rpc_url, timeout=self.rpc_timeout, retries=self.rpc_retries)
        return self._rpc

    @cached_property
    def manifest(self) -> DeploymentManifest:
        return DeploymentManifest.load(manifest_path(self.rpc.chain_id(), self.config.deployments_path))

    @cached_property
    def contracts(self) -> Contracts:
        return Contracts.from_manifest(self.rpc, self.manifest, TransactionSender(self.rpc, self.keystore.account))

    def anchorer(self) -> Anchorer:
        a = self.config.anchor
        return Anchorer(
            self.sessions,
            self.contracts.records,
            max_batch=a.max_batch,
            max_wait_ms=a.max_wait_ms,
            confirmations=a.confirmations,
        )

    @cached_property
    def chain_id(self) -> int:
        return self.rpc.chain_id()

    def access_logger(self) -> AccessLogger:
        settings = self.config.access_log
        return AccessLogger(
            self.sessions, self.contracts.access_log, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms
        )

    def publish_profile(self) -> Receipt:
        """Publish this node's public URL and X25519 key in its consortium member profile, so other nodes can
        reach it and wrap record keys to it."""
        return self.contracts.consortium.update_profile(self.config.origin, self.keystore.encryption_public_key)

    # sharing ----------------------------------------------------------------------------------------------
    @cached_property
    def ledger(self) -> LedgerView:
        return LedgerView(
            index_engine(self.config.index_db_url),
            self.rpc,
            self.manifest,
            poll_interval=self.config.ledger_poll_interval,
        )

    @cached_property
    def decider(self) -> ConsentDecider:
        return ConsentDecider(self.ledger, max_head_age=self.config.consent_head_max_age_ms / 1000)

    @cached_property
    def journal(self) -> AccessJournal:
        return AccessJournal(self.engine, on_commit=self.access_bell.ring)

    @cached_property
    def identities(self) -> Identities:
        return Identities(
            self.sessions,
            self.keystore.kek,
            self.ledger,
            self.journal,
            chain_id=self.chain_id,
            public_url=self.config.origin,
        )

    @cached_property
    def releases(self) -> ReleaseService:
        return ReleaseService(
            self.sessions, self.store, self.keystore.kek, self.address, self.ledger, self.decider, self.journal
        )

    @cached_property
    def relay(self) -> ConsentRelay:
        return ConsentRelay(self.contracts.consent, self.contracts.consortium, self.ledger, self.chain_id)

    @cached_property
    def break_glass(self) -> BreakGlassService:
        return BreakGlassService(self.sessions, self.contracts.consent, self.ledger, self.address)

    @cached_property
    def erasures(self) -> ErasureService:
        return ErasureService(self.sessions, self.store, self.contracts.records, self.chain_id)

    @cached_property
    def remote(self) -> RemoteRecords:
        return RemoteRecords(self.keystore.account, self.keystore.encryption_private_key, self.ledger)

    def close(self) -> None:
        if "releases" in self.__dict__:
            self.releases.close()
        if "journal" in self.__dict__:
            self.journal.close()
        if "remote" in self.__dict__:
            self.remote.close()
        if "ledger" in self.__dict__:
            self.ledger.indexer.engine.dispose()
        if self._rpc is not None:
            self._rpc.close()
        self.store.close()
        self.engine.dispose()
