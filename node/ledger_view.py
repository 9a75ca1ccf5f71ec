"""The node's live view of the ledger: an embedded indexer that follows the chain head, and what consent
decisions need from it — a *generation* that changes whenever the indexed block changes (so caches keyed by
it can never outlive the state they were read from), membership, and patients' registered keys.

Freshness for decisions: the indexer follows every event (the access log too), and the node's own access
logger adds a block every few hundred milliseconds, so the index is often a block or two behind the head.
Rather than index those blocks inside a request, :meth:`LedgerView.at_head` *verifies* that none of them
changes what decisions read. A probe reads the latest header; while no block was mined since the last probe
that is all. When blocks were mined, a second call (batched) reads the indexed block's header (the chain still
extends the index: no reorg) and the logs of the blocks ahead of the index, filtered to the Consortium and
ConsentRegistry. If they hold no event, the indexed consent state is the state at the head; if they do (a
grant, a revocation, a membership change), the request indexes them first. While decisions are asked for,
``watch_head`` probes every ``max_age / 2`` so requests find the view verified up to every block mined more
than ``max_age`` ago (20 ms by default): a revocation is honored within that of its block. A request that
finds it older awaits the next probe on the event loop (:meth:`LedgerView.fresh_async`).

Fail-closed: if the view could not be confirmed current (by a sync or a probe) for ``max_staleness``
seconds (chain down, database trouble), :meth:`LedgerView.snapshot` raises :class:`LedgerStale` and the
node refuses to release records rather than decide on old consent.

Why a follower inside the node rather than a query per request: consent reads are the hot path (every
release), and an index at the head answers them from local SQL; the chain is asked once per probe, not once
per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from indexer.follower import Indexer, IndexerConfig
from indexer.queries import IndexQueries, MemberView
from medledger.addresses import Address
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
        self._changed = threading.Condition()
        self._generation = 0
        self._indexed = -1
        self._indexed_hash = ""
        self._verified = -1  # newest block the indexed decision state is known to hold at
        self._head = -1
        self._fresh_at = 0.0  # when the view was last confirmed current (sync or probe)
        self._verified_at = 0.0  # every block mined before this moment is reflected in decisions
        self._verified_hash = ""
        self._watching = False
        self._probe_now = threading.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._waiters_lock = threading.Lock()
        self._demand_at = 0.0  # when a decision last asked for the head (see watch_head)
        self._demand = threading.Event()
        self._members: tuple[int, dict[Address, MemberView]] = (-1, {})

    # ------------------------------------------------------------------ following

    def sync(self) -> Snapshot:
        """Bring the index to the chain head now (also used right after this node relays a consent change)."""
        with self._sync_lock:
            started = time.monotonic()
            result = self.indexer.sync()
            pos = result.position if result.position is not None else self.indexer.position()
            with self._changed:
                if pos.block_number != self._indexed or result.reorgs:
                    self._generation += 1
                    self._indexed = pos.block_number
                    self._indexed_hash = pos.block_hash
                if pos.block_number >= self._verified or result.reorgs:
                    self._verified, self._verified_hash = pos.block_number, pos.block_hash
                self._head = max(self._head, result.target, pos.block_number)
                if pos.block_number >= result.target and not result.reorgs:
                    # At the head it read after starting: every block mined before then is in.
                    self._verified_at = max(self._verified_at, started)
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

    def at_head(self, *, max_age: float = 0.0, wait: bool = True, asked_at: float | None = None) -> Snapshot:
        """The view, confirmed current for decisions with every block mined more than ``max_age`` seconds
        ago (see the module docstring): probes shared by concurrent callers, and an inline sync only if the
        blocks ahead of the index change consent or membership (or the chain reorganized). This is what makes
        a revocation effective within ``max_age`` of its block rather than from the follower's next poll.

        With ``wait=False`` it never blocks on the chain: if a probe is due it raises :class:`HeadCheckNeeded`
        (event-loop callers then await :meth:`fresh_async`, or call again from a thread). ``asked_at``
        (``time.monotonic()``, default now) is when the decision was asked for: ``max_age`` counts from it."""
        now = time.monotonic()
        started = now if asked_at is None else min(asked_at, now)
        self._demand_at = now
        if not self._demand.is_set():
            self._demand.set()  # wakes watch_head after a quiet spell
        if not wait:
            if self._verified_at == 0.0 or self._verified_at < started - max_age:
                raise HeadCheckNeeded
            return self.snapshot()
        with self._probe_lock:
            if self._verified_at == 0.0 or self._verified_at < started - max_age:
                observed_at = time.monotonic()
                if not self._probe():
                    # Index what the probe found (a consent change, a reorg) before deciding; the sync reads a
                    # head at least as new as the probe's, so every block mined before the probe is in.
                    snap = self.sync()
                    with self._changed:
                        self._verified_at = max(self._verified_at, observed_at)
                    return snap
        return self.snapshot()

    async def fresh_async(self, max_age: float, timeout: float = 1.0, *, asked_at: float | None = None) -> bool:
        """Wait on the event loop (no thread) for ``watch_head``'s next probe to make the view fresh for
        ``max_age`` counted from ``asked_at`` (``time.monotonic()``, default now); False if no watcher runs or
        it did not manage within ``timeout`` (then probe from a thread with :meth:`at_head`)."""
        if not self._watching:
            return False
        # Fresh for this request: verified by a probe that started at most max_age before it was asked for
        # (with max_age 0, one that started after; any later probe serves it too).
        now = time.monotonic()
        threshold = (now if asked_at is None else min(asked_at, now)) - max_age
        deadline = now + timeout
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            if self._verified_at != 0.0 and self._verified_at >= threshold:
                return True
            if now >= deadline:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            with self._waiters_lock:
                self._waiters.append(fut)
            self._probe_now.set()
            try:
                await asyncio.wait_for(fut, deadline - now)
            except TimeoutError:
                return False

    def _probe(self) -> bool:
        """Check the chain against the index; True if decisions may use the indexed state up to the head.

        One call while no block was mined: the latest header, which must still be the verified head. New
        blocks take a second: the indexed block's header (the chain still extends the index) and the
        decision-relevant logs between the index and the new head."""
        observed_at = time.monotonic()
        latest = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        head, head_hash = int(latest["number"], 16), latest["hash"]
        with self._changed:
            indexed, indexed_hash = self._indexed, self._indexed_hash
            verified, verified_hash = self._verified, self._verified_hash
        if indexed < 0 or head < indexed:
            return False  # nothing indexed yet, or the chain got shorter than the index: sync (and roll back)
        if head < verified or (head == verified and head_hash != verified_hash):
            return False  # the verified head was replaced or dropped: a reorg
        if head > verified:  # new blocks: do they extend the index, and do they change decisions?
            block, logs = self.rpc.batch(
                [
                    ("eth_getBlockByNumber", [hex(indexed), False]),
                    (
                        "eth_getLogs",
                        [{"fromBlock": hex(indexed + 1), "toBlock": hex(head), "address": self._decision_filter}],
                    ),
                ]
            )
            if block is None or block["hash"] != indexed_hash:
                return False  # the indexed block is gone or changed: a reorg for the indexer to roll back
            if logs:
                return False  # consent or membership changed ahead of the index
        with self._changed:
            self._head = max(self._head, head)
            if self._indexed == indexed:  # else a sync moved the index meanwhile (and verified it itself)
                self._verified, self._verified_hash = head, head_hash
            # Every block mined before this probe started is at most the head it read, and verified.
            self._verified_at = max(self._verified_at, observed_at)
            self._fresh_at = time.monotonic()
        return True

    def watch_head(self, stop: threading.Event, *, max_age: float, idle_after: float = 1.0) -> None:
        """While decisions are being asked for (within the last ``idle_after`` seconds), keep the view
        verified within ``max_age`` so that requests find it fresh instead of waiting for it (probing every
        ``max_age / 2``, or at once when a request waits in :meth:`fresh_async`); when they stop, sleep until
        the next one. Errors are logged and retried with back-off (decisions meanwhile probe for themselves,
        or fail closed)."""
        # Probing every max_age / 2 leaves a probe's round trip (slow under load) to spare before requests find
        # the view stale and have to wait for it (fresh_async). With max_age 0 every decision needs a probe
        # that started after it arrived: the watcher then probes only when requests wait, and one probe serves
        # every request that arrived before it started (those arriving during it get the next one).
        period = max_age / 2
        backoff = period
        self._watching = True
        try:
            while not stop.is_set():
                if time.monotonic() - self._demand_at > idle_after:
                    self._demand.clear()
                    self._demand.wait(idle_after)
                    continue
                self._probe_now.clear()
                try:
                    self.at_head(max_age=period)
                    backoff = period
                except MedLedgerError as exc:
                    log.warning("ledger view cannot probe the head (%s): %s", exc.code, exc.message)
                    backoff = min(max(backoff * 2, 0.05), 5.0)
                self._wake_waiters()
                self._probe_now.wait(backoff if backoff > 0 else idle_after)
        finally:
            self._watching = False
            self._wake_waiters()

    def close(self) -> None:
        """Release the index database's connections."""
        self.indexer.engine.dispose()

    def wake_watcher(self) -> None:
        """Wake :meth:`watch_head` from its sleep (to see a stop at once instead of within ``idle_after``)."""
        self._demand.set()
        self._probe_now.set()

    def _wake_waiters(self) -> None:
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, []
        for fut in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
                fut.get_loop().call_soon_threadsafe(_resolve, fut)

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

    def members(self) -> dict[Address, MemberView]:
        """Active consortium members by address, as of the indexed block (cached per generation)."""
        gen = self._generation
        cached_gen, members = self._members
        if cached_gen != gen:
            members = {m.account: m for m in self.queries.members()}
            self._members = (gen, members)
        return members

    def member(self, address: str) -> MemberView | None:
        """The active member ``address`` (an :class:`Address`, used as is; any other string is made one, so a
        lowercase spelling cannot miss: ``InputError`` code ``invalid_address`` if it is no address), or None."""
        return self.members().get(Address(address))

    def has_role(self, address: str, roles: Role) -> bool:
        m = self.member(address)
        return m is not None and bool(m.roles & int(roles))

    def patient_key(self, patient: Address) -> bytes | None:
        """The patient's registered X25519 key, or None."""
        key = self.queries.patient_key(patient)
        return bytes.fromhex(key.removeprefix("0x")) if key else None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
