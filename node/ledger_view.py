"""The node's live view of the ledger: an embedded indexer that follows the chain head, and what consent
decisions need from it — a *generation* that changes whenever the indexed block changes (so caches keyed by
it can never outlive the state they were read from), membership, and patients' registered keys.

Freshness for decisions: the indexer follows every event (the access log too), and the node's own access
logger adds a block every few hundred milliseconds, so the index is often a block or two behind the head.
Rather than index those blocks inside a request, :meth:`LedgerView.at_head` *verifies* that none of them
changes what decisions read: one ``eth_blockNumber`` (with the indexed block's hash, to catch a reorg) and one
``eth_getLogs`` over the blocks ahead of the index, filtered to the Consortium and ConsentRegistry. If they
hold no event, the indexed consent state is the state at the head; if they do (a grant, a revocation, a
membership change), the request indexes them first. Probes are shared by concurrent callers and reused for
``max_age`` seconds, so a revocation is honored from its block on, give or take that age.

Fail-closed: if the view could not be confirmed current (by a sync or a probe) for ``max_staleness``
seconds (chain down, database trouble), :meth:`LedgerView.snapshot` raises :class:`LedgerStale` and the
node refuses to release records rather than decide on old consent.

Why a follower inside the node rather than a query per request: consent reads are the hot path (every
release), and an index at the head answers them from local SQL; the chain is asked once per probe, not once
per request.
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


class HeadCheckNeeded(Exception):
    """A decision needs the chain (a probe is due) and the caller asked not to block on it."""


@dataclass(frozen=True)
class Snapshot:
    """The indexed state at one moment: decisions made against it cite its block.

    ``block_number`` is the newest block at which this state is known to hold: the indexed block, or a later
    one whose blocks in between were verified to carry no consent or membership event."""

    generation: int
    block_number: int
    chain_head: int


#: Contracts whose events change what decisions read (membership and keys; grants and break-glass).
DECISION_CONTRACTS = ("Consortium", "ConsentRegistry")


class LedgerView:
    """Follows the chain into ``engine`` (the node's index database) and serves consent-state lookups.

    Args:
        engine: The index database (its own schema; separate from the node database).
        rpc: The chain.
        manifest: The deployment to follow.
        poll_interval: Seconds between head polls.
        max_staleness: Seconds without confirming the view current after which decisions are refused.
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
        self._decision_filter = [manifest.address(name).lower() for name in DECISION_CONTRACTS]
        self._sync_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._probed_at = 0.0
        self._changed = threading.Condition()
        self._generation = 0
        self._indexed = -1
        self._indexed_hash = ""
        self._verified = -1  # newest block the indexed decision state is known to hold at
        self._head = -1
        self._fresh_at = 0.0  # when the view was last confirmed current (sync or probe)
        self._demand_at = 0.0  # when a decision last asked for the head (see watch_head)
        self._demand = threading.Event()
        self._members: tuple[int, dict[str, MemberView]] = (-1, {})

    # ------------------------------------------------------------------ following

    def sync(self) -> Snapshot:
        """Bring the index to the chain head now (also used right after this node relays a consent change)."""
        with self._sync_lock:
            result = self.indexer.sync()
            pos = result.position if result.position is not None else self.indexer.position()
            with self._changed:
                if pos.block_number != self._indexed or result.reorgs:
                    self._generation += 1
                    self._indexed = pos.block_number
                    self._indexed_hash = pos.block_hash
                    self._verified = pos.block_number
                self._verified = max(self._verified, pos.block_number)
                self._head = max(self._head, result.target, pos.block_number)
                self._fresh_at = time.monotonic()
                self._changed.notify_all()
                return self._snapshot_locked()

    def refresh(self, *, older_than: float = 0.0) -> Snapshot:
        """Sync now unless a sync finished less than ``older_than`` seconds ago; concurrent callers share one
        sync (whoever waited for the lock finds the view fresh and returns at once)."""
        started = time.monotonic()
        with self._sync_lock, self._changed:
            if self._fresh_at >= started - older_than and self._fresh_at != 0.0:
                return self._snapshot_locked()
        return self.sync()

    def at_head(self, *, max_age: float = 0.0, wait: bool = True) -> Snapshot:
        """The view, confirmed current with the chain head for decisions (see the module docstring): a probe
        shared by concurrent callers and reused for ``max_age`` seconds; an inline sync only if the blocks
        ahead of the index change consent or membership (or the indexed block was reorged away). This is
        what makes a revocation effective from the first block containing it rather than from the
        follower's next poll.

        With ``wait=False`` it never blocks on the chain: if a probe is due it raises :class:`HeadCheckNeeded`
        (event-loop callers then call again from a thread)."""
        started = time.monotonic()
        self._demand_at = started
        if not self._demand.is_set():
            self._demand.set()  # wakes watch_head after a quiet spell
        if not wait:
            if self._probed_at == 0.0 or self._probed_at < started - max_age:
                raise HeadCheckNeeded
            return self.snapshot()
        with self._probe_lock:
            if self._probed_at < started - max_age or self._probed_at == 0.0:
                if not self._probe():
                    return self.sync()
                self._probed_at = time.monotonic()
        return self.snapshot()

    def _probe(self) -> bool:
        """Check the chain against the index; True if decisions may use the indexed state at the head."""
        with self._changed:
            indexed, indexed_hash = self._indexed, self._indexed_hash
        if indexed < 0:
            return False
        head_hex, block = self.rpc.batch([("eth_blockNumber", []), ("eth_getBlockByNumber", [hex(indexed), False])])
        head = int(head_hex, 16)
        if block is None or block["hash"] != indexed_hash:
            return False  # the indexed block is gone or changed: a reorg for the indexer to roll back
        if head > indexed:
            logs = self.rpc.call(
                "eth_getLogs", [{"fromBlock": hex(indexed + 1), "toBlock": hex(head), "address": self._decision_filter}]
            )
            if logs:
                return False
        with self._changed:
            self._head = max(self._head, head)
            if self._indexed == indexed:  # else a sync moved the index meanwhile (and verified it itself)
                self._verified = max(self._verified, head)
            self._fresh_at = time.monotonic()
        return True

    def watch_head(self, stop: threading.Event, *, max_age: float, idle_after: float = 1.0) -> None:
        """While decisions are being asked for (within the last ``idle_after`` seconds), keep the head probe
        younger than ``max_age`` so that requests find it fresh instead of waiting for it; when they stop,
        sleep until the next one. Errors are logged and retried with back-off (decisions meanwhile probe
        for themselves, or fail closed)."""
        period = max_age / 2
        backoff = period
        while not stop.is_set():
            if time.monotonic() - self._demand_at > idle_after:
                self._demand.clear()
                self._demand.wait(idle_after)
                continue
            try:
                self.at_head(max_age=period)
                backoff = period
            except MedLedgerError as exc:
                log.warning("ledger view cannot probe the head (%s): %s", exc.code, exc.message)
                backoff = min(backoff * 2, 5.0)
            stop.wait(backoff)

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
            if self._fresh_at == 0.0 or time.monotonic() - self._fresh_at > self.max_staleness:
                raise LedgerStale(
                    "the node cannot reach the ledger: consent cannot be checked, nothing is released",
                    details={"indexed_block": self._indexed},
                )
            return self._snapshot_locked()

    def _snapshot_locked(self) -> Snapshot:
        return Snapshot(self._generation, max(self._indexed, self._verified), self._head)

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
