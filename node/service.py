"""The node's composition root: opens the keystore, database, blob store and chain connection once and hands
the services to the CLI, the HTTP API and the node's modules. Nothing else constructs these, so every surface
behaves the same.

The chain is connected lazily: ingest works while the chain is down (records wait in the outbox), only
anchoring and membership checks need it. Services are built on first use (``cached_property``) and closed, in
the reverse order of their creation, by :meth:`NodeServices.close`: a new service with a ``close()`` needs no
line there.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from indexer.db import index_engine
from medledger.addresses import Address, eip55
from medledger.chain.deploy import Contracts, DeploymentManifest, manifest_path
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import Receipt, TransactionSender
from medledger.db import upgrade
from medledger.errors import ConfigError
from node.access_journal import AccessJournal
from node.access_logger import AccessLogger
from node.anchorer import Anchorer
from node.chain_outbox import ChainWriter
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
from node.modules.base import ModuleContext, NodeModule
from node.modules.loader import load_modules
from node.notifications import NotificationService
from node.notifications.config import notification_channels
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
    #: The enabled modules with their contexts, in the order node.toml lists them.
    contexts: dict[str, ModuleContext] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        password: str | None = None,
        rpc_timeout: float = 30.0,
        rpc_retries: int = 5,
        modules: Sequence[str | NodeModule] | None = None,
    ) -> NodeServices:
        """Open the node in ``data_dir`` with the modules node.toml enables (or ``modules``, given by name or as
        objects). Misconfigured modules fail here, before anything starts, with a one-line ``ConfigError``."""
        config = NodeConfig.load(data_dir)
        chosen = _resolve(config, modules)
        keystore = LocalKeystore.open(config.keystore_path, password or read_password(config.password_env))
        engine, sessions = open_node_db(config.db_url)
        services = cls(
            config,
            keystore,
            engine,
            sessions,
            open_store(config.blob_store_url),
            rpc_timeout=rpc_timeout,
            rpc_retries=rpc_retries,
        )
        try:
            for module, settings in chosen:
                if module.schema is not None:
                    upgrade(engine, module.schema.migrations)
                services.contexts[module.name] = ModuleContext(module, services, settings)
        except BaseException:
            services.close()
            raise
        return services

    @property
    def modules(self) -> list[NodeModule]:
        return [ctx.module for ctx in self.contexts.values()]

    def module(self, name: str) -> ModuleContext:
        """The context of the enabled module ``name`` (``ConfigError`` if this node does not run it)."""
        try:
            return self.contexts[name]
        except KeyError:
            raise ConfigError(
                f"this node does not run the {name!r} module (add it to modules in node.toml)", code="module_disabled"
            ) from None

    def __enter__(self) -> NodeServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> Address:
        """This institution's ledger address (the keystore's account)."""
        # eip55 is cached: the keystore's own property recomputes the checksum (a keccak) on every call.
        return eip55(self.keystore.account.address)

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
    def sender(self) -> TransactionSender:
        """The node's account on chain: every transaction of this node is signed and sent through it."""
        return TransactionSender(self.rpc, self.keystore.account)

    @cached_property
    def contracts(self) -> Contracts:
        return Contracts.from_manifest(self.rpc, self.manifest, self.sender)

    @cached_property
    def chain_writer(self) -> ChainWriter:
        """The queue of the node's single contract writes: a workflow registers its kinds' handlers when its
        module opens and enqueues calls in its own database transactions (node.chain_outbox)."""
        return ChainWriter(
            self.sessions,
            lambda: self.sender,
            confirmations=self.config.anchor.confirmations,
        )

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
        return BreakGlassService(self.sessions, self.contracts.consent, self.ledger, self.address, self.notifications)

    @cached_property
    def notifications(self) -> NotificationService:
        """Notices, inboxes, contacts and outbound deliveries (the channels node.toml's [notifications] sets)."""
        return NotificationService(
            self.sessions,
            notification_channels(self.config.notifications),
            node_name=self.config.name,
            max_attempts=self.config.notifications.max_attempts,
            retry_base=self.config.notifications.retry_base_s,
        )

    @cached_property
    def erasures(self) -> ErasureService:
        return ErasureService(self.sessions, self.store, self.contracts.records, self.chain_id)

    @cached_property
    def remote(self) -> RemoteRecords:
        return RemoteRecords(self.keystore.account, self.keystore.encryption_private_key, self.ledger)

    def close(self) -> None:
        """Close the modules (in reverse order), then every service built so far (newest first), then the chain
        connection, the blob store and the database."""
        for ctx in reversed(list(self.contexts.values())):
            ctx.module.close(ctx)
        cached = {name for name, attr in vars(type(self)).items() if isinstance(attr, cached_property)}
        for name, value in reversed(list(self.__dict__.items())):
            closer = getattr(value, "close", None)
            if name in cached and callable(closer):
                closer()
        if self._rpc is not None:
            self._rpc.close()
        self.store.close()
        self.engine.dispose()


def _resolve(config: NodeConfig, modules: Sequence[str | NodeModule] | None) -> list[tuple[NodeModule, Any]]:
    """The modules to run with their validated settings; every ``[section]`` of node.toml must belong to one."""
    source: Sequence[str | NodeModule] = config.modules if modules is None else modules
    loaded = iter(load_modules([m for m in source if isinstance(m, str)]))
    chosen = [m if isinstance(m, NodeModule) else next(loaded) for m in source]
    where = config.data_dir / "node.toml"
    enabled = {m.name for m in chosen}
    if len(enabled) != len(chosen):
        raise ConfigError(f"{where}: a module is listed twice")
    stray = sorted(set(config.module_settings) - enabled)
    if stray:
        raise ConfigError(f"{where}: [{stray[0]}] is not a setting of the node nor of an enabled module")
    return [(m, m.parse_settings(config.module_settings.get(m.name, {}), f"{where} [{m.name}]")) for m in chosen]
