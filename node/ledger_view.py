"""The node's live view of the ledger: an embedded indexer that follows the chain head, and what consent
decisions need from it — a *generation* that changes whenever the indexed block changes (so caches keyed by
it can never outlive the state they were read from), membership, and patients' registered keys.

Freshness is fail-closed: if the index could not be brought to the chain head for ``max_staleness`` seconds
(chain down, database trouble), :meth:`LedgerView.generation` raises :class:`LedgerStale` and the node
refuses to release records rather than decide on old consent.

Why a follower inside the node rather than a query per request: consent reads are the hot path (every
release), and an index at the head answers them from local SQL; the chain is asked once per poll, not once
per request. A revocation is seen by the first poll after its block (``poll_interval``, 50 ms by default).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from indexer.follower import Indexer, IndexerConfig
from indexer.queries import IndexQueries, MemberView
from medledger.chain.deploy import DeploymentManifest
from medledger.chain.rpc import JsonRpcClient
from medledger.errors import MedLedgerError
from medledger.vocabulary import Role

log = logging.getLogger(__name__)


class LedgerStale(MedLedgerError):
    """The node's view of the ledger is too old to decide on consent (503)."""

    code = "ledger_unavailable"


@dataclass(frozen=True)
class Snapshot:
    """The indexed state at one moment: decisions made against it cite its block."""

    generation: int
    block_number: int
    chain_head: int


class LedgerView:
    """Follows the chain into ``engine`` (the node's index database) and serves consent-state lookups.

    Args:
        engine: The index database (its own schema; separate from the node database).
        rpc: The chain.
        manifest: The deployment to follow.
        poll_interval: Seconds between head polls.
        max_staleness: Seconds without a successful sync after which decisions are refused.
    """

    def __init__(
        self,
        engine: Engine,
        rpc: JsonRpcClient,
        manifest: DeploymentManifest,
        *,
        poll_interval: float = 0.05,
        max_staleness: float = 5.0,
    ) -> None:
        # No confirmation depth: consent must reflect the newest block; reorgs are rolled back by the indexer.
        self.indexer = Indexer(engine, rpc, manifest, IndexerConfig(confirmations=0, poll_interval=poll_interval))
        self.queries = IndexQueries(engine)
        self.rpc = rpc
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self._sync_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._probed_at = 0.0
        self._changed = threading.Condition()
        self._generation = 0
        self._indexed = -1
        self._head = -1
        self._synced_at = 0.0
        self._members: tuple[int, dict[str, MemberView]] = (-1, {})

    # ------------------------------------------------------------------ following

    def sync(self) -> Snapshot:
        """Bring the index to the chain head now (also used right after this node relays a consent change)."""
        with self._sync_lock:
            result = self.indexer.sync()
            pos = result.position
            indexed = pos.block_number if pos is not None else self.indexer.position().block_number
            with self._changed:
                if indexed != self._indexed or result.reorgs:
                    self._generation += 1
                    self._indexed = indexed
                self._head = max(result.target, indexed)
                self._synced_at = time.monotonic()
                self._changed.notify_all()
                return Snapshot(self._generation, self._indexed, self._head)

    def refresh(self, *, older_than: float = 0.0) -> Snapshot:
        """Sync now unless a sync finished less than ``older_than`` seconds ago; concurrent callers share one
        sync (whoever waited for the lock finds the view fresh and returns at once)."""
        started = time.monotonic()
        with self._sync_lock, self._changed:
            if self._synced_at >= started - older_than and self._synced_at != 0.0:
                return Snapshot(self._generation, self._indexed, self._head)
        return self.sync()

    def at_head(self, *, max_age: float = 0.0) -> Snapshot:
        """The view, made current with the chain head: asks the chain for its head block (one
        ``eth_blockNumber``, shared by concurrent callers and reused for ``max_age`` seconds) and syncs first
        if the chain is ahead. This is what makes a revocation effective from the first block containing
        it rather than from the follower's next poll."""
        started = time.monotonic()
        with self._probe_lock:
            if self._probed_at < started - max_age or self._probed_at == 0.0:
                head = self.rpc.block_number()
                self._probed_at = time.monotonic()
                with self._changed:
                    self._head = max(self._head, head)
        with self._changed:
            behind = self._indexed < self._head
        if behind:
            return self.sync()
        return self.snapshot()

    def follow(self, stop: threading.Event) -> None:
        """Keep the view at the head until ``stop`` is set (errors are logged and retried with back-off)."""
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                self.sync()
                backoff = self.poll_interval
            except MedLedgerError as exc:
                log.warning("ledger view cannot sync (%s): %s", exc.code, exc.message)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("ledger view sync failed")
                backoff = min(backoff * 2, 5.0)
            stop.wait(backoff)

    def wait_for_block(self, block_number: int, timeout: float = 10.0) -> bool:
        """Wait until the index includes ``block_number`` (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._indexed < block_number:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    # ------------------------------------------------------------------ state

    def snapshot(self) -> Snapshot:
        """The current indexed state, or :class:`LedgerStale` if it is too old to decide on."""
        with self._changed:
            if self._synced_at == 0.0 or time.monotonic() - self._synced_at > self.max_staleness:
                raise LedgerStale(
                    "the node cannot reach the ledger: consent cannot be checked, nothing is released",
                    details={"indexed_block": self._indexed},
                )
            return Snapshot(self._generation, self._indexed, self._head)

    def members(self) -> dict[str, MemberView]:
        """Active consortium members by lower-case address, as of the indexed block (cached per generation)."""
        gen = self._generation
        cached_gen, members = self._members
        if cached_gen != gen:
            members = {m.account.lower(): m for m in self.queries.members()}
            self._members = (gen, members)
        return members

    def member(self, address: str) -> MemberView | None:
        return self.members().get(address.lower())

    def has_role(self, address: str, roles: Role) -> bool:
        m = self.member(address)
        return m is not None and bool(m.roles & int(roles))

    def patient_key(self, patient: str) -> bytes | None:
        """The patient's registered X25519 key, or None."""
        key = self.queries.patient_key(patient)
        return bytes.fromhex(key.removeprefix("0x")) if key else None
