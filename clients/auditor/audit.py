"""One audit, end to end: re-index the chain, gather the scope's facts, run the checks, build the report."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from clients.auditor.checks import check_accesses, check_ciphertexts
from clients.auditor.ciphertexts import CiphertextSource, NodeCiphertextSource, StoreCiphertextSource
from clients.auditor.facts import ProgressFn, gather, reindex
from clients.auditor.model import AuditReport, Facts, Scope
from indexer.db import index_engine
from medledger.blobs import BlobReader, open_reader
from medledger.chain.deploy import DeploymentManifest, manifest_path
from medledger.chain.rpc import JsonRpcClient
from medledger.errors import ConfigError, InputError

DEFAULT_RPC = "http://127.0.0.1:8545"
#: Environment variable read for the auditor institution's ledger key when ``--key-env`` is not given.
DEFAULT_KEY_ENV = "MEDLEDGER_AUDITOR_KEY"


@dataclass
class AuditSettings:
    """How to reach the chain and the custodians.

    Attributes:
        rpc_url: Chain node JSON-RPC URL.
        deployments_dir: Directory of ``<chain id>.json`` manifests (default ``chain_config/deployments``).
        db_url: Re-index database to keep or reuse; None = a temporary SQLite file deleted afterwards.
        ciphertexts: True = check (error if no source), False = skip, None = check when a source is available.
        key_env: Environment variable holding the auditor institution's ledger private key (hex); None = the
            default variable, read only if set.
        stores: Custodian address → blob-store path or URL, read directly (``--store``).
        source: A ready :class:`CiphertextSource` (embedding, tests); takes precedence over keys and stores.
    """

    rpc_url: str = DEFAULT_RPC
    deployments_dir: Path | None = None
    db_url: str | None = None
    ciphertexts: bool | None = None
    key_env: str | None = None
    stores: Mapping[str, str] = field(default_factory=dict)
    source: CiphertextSource | None = None


def load_account(key_env: str | None) -> Any | None:
    """The auditor's ledger account from the environment, or None if the default variable is unset.

    An explicitly named variable must be set. Errors name the variable, never its content.
    """
    from eth_account import Account

    name = key_env or DEFAULT_KEY_ENV
    raw = os.environ.get(name, "").strip()
    if not raw:
        if key_env is not None:
            raise ConfigError(f"environment variable {name} (--key-env) is not set")
        return None
    try:
        return Account.from_key(raw)
    except (ValueError, TypeError):
        raise ConfigError(f"environment variable {name} does not hold a valid private key (hex)") from None


@contextmanager
def _database(db_url: str | None) -> Iterator[Engine]:
    with ExitStack() as stack:
        if db_url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="medledger-audit-"))
            db_url = f"sqlite:///{Path(tmp) / 'index.db'}"
        engine = index_engine(db_url)
        try:
            yield engine
        finally:
            engine.dispose()


@dataclass
class _SourceParts:
    account: Any | None
    stores: dict[str, BlobReader]


def _prepare_source(settings: AuditSettings, stack: ExitStack) -> _SourceParts | None:
    """Key and stores, checked before the re-index so a configuration mistake fails fast."""
    if settings.ciphertexts is False or settings.source is not None:
        return None
    account = load_account(settings.key_env)
    stores: dict[str, BlobReader] = {}
    for custodian, where in settings.stores.items():
        # A local store must already exist (the reader creates nothing): a mistyped path would otherwise look
        # like a custodian that lost every ciphertext, i.e. false violations.
        try:
            stores[custodian] = reader = open_reader(where)
        except ConfigError as exc:
            raise ConfigError(f"--store {where}: {exc.message}", details=exc.details) from None
        stack.callback(reader.close)
    if account is None and not stores:
        if settings.ciphertexts:
            raise ConfigError(
                f"--ciphertexts needs the auditor's key (--key-env, default {DEFAULT_KEY_ENV}) or a --store"
            )
        return None
    return _SourceParts(account, stores)


def _build_source(
    settings: AuditSettings, parts: _SourceParts | None, facts: Facts, stack: ExitStack
) -> CiphertextSource | None:
    if settings.ciphertexts is False:
        return None
    if settings.source is not None:
        return settings.source
    if parts is None:
        return None
    node: CiphertextSource | None = None
    if parts.account is not None:
        src = NodeCiphertextSource.from_members(parts.account, facts.members.values())
        stack.callback(src.close)
        node = src
    if not parts.stores:
        return node

    def commitment_of(record_id: str) -> str | None:
        entry = facts.records_by_id.get(record_id.lower())
        return entry.commitment if entry is not None else None

    return StoreCiphertextSource(parts.stores, commitment_of, fallback=node)


def run_audit(
    scope: Scope, settings: AuditSettings | None = None, *, on_progress: ProgressFn | None = None
) -> AuditReport:
    """Re-index the chain from its deployment's start block and audit ``scope`` against it."""
    settings = settings or AuditSettings()
    with ExitStack() as stack:
        # Local configuration first (database, key, stores), so a mistake fails before any chain traffic.
        engine = stack.enter_context(_database(settings.db_url))
        parts = _prepare_source(settings, stack)
        rpc = stack.enter_context(JsonRpcClient(settings.rpc_url, retries=2))
        manifest = DeploymentManifest.load(manifest_path(rpc.chain_id(), settings.deployments_dir))
        if scope.kind == "range" and (scope.to_block or 0) > (head := rpc.block_number()):
            raise InputError(f"TO_BLOCK {scope.to_block} is beyond the chain head {head}")
        reindex(engine, rpc, manifest, on_progress=on_progress)
        facts = gather(engine, manifest, scope)
        accesses, findings = check_accesses(facts)
        report = AuditReport(facts, accesses, findings, generated_at=int(time.time()))
        source = _build_source(settings, parts, facts, stack)
        if source is not None:
            checks, problems = check_ciphertexts(facts, source)
            report.ciphertexts_checked = True
            report.ciphertexts = checks
            report.findings += problems
        return report
