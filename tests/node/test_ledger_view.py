"""The node's ledger view on a real Anvil: decisions see consent changes ahead of the index without waiting
for the follower, blocks that change nothing are verified without indexing them, probes are one call while
no block is mined, reorgs are caught, and event-loop callers wait for the head watcher instead of a thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from indexer.db import index_engine
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.types import Access, GrantTerms
from medledger.vocabulary import AuthKind, Purpose, RecordClass, class_mask
from node.consent import ConsentDecider, ConsentDenied
from node.ledger_view import HeadCheckNeeded, LedgerStale, LedgerView


class CountingRpc(JsonRpcClient):
    """The real client, counting the HTTP round trips it makes (a batch is one)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.round_trips = 0

    def _post(self, body):  # type: ignore[no-untyped-def]
        self.round_trips += 1
        return super()._post(body)


@pytest.fixture
def view(chain, tmp_path):
    rpc = CountingRpc(chain.rpc.url)
    v = LedgerView(index_engine(f"sqlite:///{tmp_path / 'index.db'}"), rpc, chain.manifest)
    v.sync()
    yield v
    v.indexer.engine.dispose()
    rpc.close()


def _grant(chain, patient, grantee) -> int:
    labs = class_mask([RecordClass.LAB])
    terms = GrantTerms(grantee.address, labs, Purpose.TREATMENT, 0, chain.timestamp() + 10_000)
    return chain.as_(patient).consent.grant(terms)


def _log_access(chain, patient) -> None:
    """A block that changes nothing decisions read: an access logged by Hospital B."""
    access = Access(patient.address, chain.hospital_b.address, b"\x01" * 32, Purpose.TREATMENT, AuthKind.PATIENT, 0)
    chain.as_(chain.hospital_b).access_log.log_accesses([access])


def test_grant_ahead_of_the_index_is_seen_by_the_next_decision(chain, view):
    """No follower runs here: the decision's probe finds the ConsentGranted log ahead of the index and
    indexes it before deciding."""
    patient, b = chain.new_patient(), chain.hospital_b
    decider = ConsentDecider(view)
    with pytest.raises(ConsentDenied):
        decider.decide(patient.address, b.address, int(RecordClass.LAB), Purpose.TREATMENT)
    grant_id = _grant(chain, patient, b)
    time.sleep(decider.max_head_age)
    decision = decider.decide(patient.address, b.address, int(RecordClass.LAB), Purpose.TREATMENT)
    assert decision.auth_id == grant_id


def test_blocks_without_consent_events_are_verified_not_indexed(chain, view):
    indexed = view.snapshot().block_number
    patient = chain.new_patient()
    _log_access(chain, patient)
    _log_access(chain, patient)
    head = chain.rpc.block_number()
    snap = view.at_head(max_age=0)
    assert snap.block_number == head  # the decision state holds at the head...
    assert view.indexer.position().block_number == indexed  # ...without indexing those blocks


def test_probe_is_one_round_trip_while_no_block_is_mined(chain, view):
    view.at_head(max_age=0)
    before = view.rpc.round_trips
    for _ in range(5):
        view.at_head(max_age=0)
    assert view.rpc.round_trips - before == 5
    _log_access(chain, chain.new_patient())
    before = view.rpc.round_trips
    view.at_head(max_age=0)
    assert view.rpc.round_trips - before == 2  # the new block: header of the indexed block + logs, batched


def test_revocation_ahead_of_the_index_is_enforced(chain, view):
    patient, b = chain.new_patient(), chain.hospital_b
    grant_id = _grant(chain, patient, b)
    decider = ConsentDecider(view)
    time.sleep(decider.max_head_age)
    assert decider.decide(patient.address, b.address, int(RecordClass.LAB), Purpose.TREATMENT).auth_id == grant_id
    chain.as_(patient).consent.revoke(grant_id)
    time.sleep(decider.max_head_age)
    with pytest.raises(ConsentDenied):
        decider.decide(patient.address, b.address, int(RecordClass.LAB), Purpose.TREATMENT)


def test_reorg_of_the_verified_head_is_caught(chain, view):
    """A revert to before a grant, then a different block at the same height: the probe sees the verified
    head replaced and re-syncs; the grant is gone."""
    patient, b = chain.new_patient(), chain.hospital_b
    snapshot = chain.rpc.call("evm_snapshot")
    _grant(chain, patient, b)
    decider = ConsentDecider(view)
    time.sleep(decider.max_head_age)
    decider.decide(patient.address, b.address, int(RecordClass.LAB), Purpose.TREATMENT)
    chain.rpc.call("evm_revert", [snapshot])
    _log_access(chain, patient)  # a block at the grant's height, on the new fork
    time.sleep(decider.max_head_age)
    with pytest.raises(ConsentDenied):
        decider.decide(patient.address, b.address, int(RecordClass.LAB), Purpose.TREATMENT)


def test_event_loop_callers_wait_for_the_watcher_not_a_thread(chain, view):
    max_age = 0.02
    time.sleep(0.05)
    with pytest.raises(HeadCheckNeeded):
        view.at_head(max_age=max_age, wait=False)  # stale: nothing verified lately

    async def no_watcher() -> bool:
        return await view.fresh_async(max_age)

    assert asyncio.run(no_watcher()) is False  # nobody to wait for: the caller probes itself

    stop = threading.Event()
    watcher = threading.Thread(target=view.watch_head, args=(stop,), kwargs={"max_age": max_age}, daemon=True)
    watcher.start()
    try:

        async def with_watcher() -> None:
            time.sleep(0.05)  # let everything go stale again
            assert await view.fresh_async(max_age)
            view.at_head(max_age=max_age, wait=False)  # fresh now, no probe needed

        asyncio.run(with_watcher())
    finally:
        stop.set()
        watcher.join(timeout=5)


def test_strict_freshness_is_served_by_a_probe_started_after_the_request(chain, view):
    """consent_head_max_age_ms = 0: every decision needs a probe that started after it was asked for. The
    watcher then probes only when requests wait (one probe for all that asked before it started) instead of
    spinning, and a request that got its probe decides without probing again."""
    stop = threading.Event()
    watcher = threading.Thread(target=view.watch_head, args=(stop,), kwargs={"max_age": 0.0}, daemon=True)
    watcher.start()
    try:
        asked_at = time.monotonic()
        with pytest.raises(HeadCheckNeeded):
            view.at_head(max_age=0.0, wait=False, asked_at=asked_at)  # also marks demand: the watcher wakes

        async def requests() -> float:
            t0 = time.monotonic()
            assert all(await asyncio.gather(*(view.fresh_async(0.0, asked_at=asked_at) for _ in range(8))))
            return time.monotonic() - t0

        waited = asyncio.run(requests())
        assert waited < 0.5  # served by the watcher's next probe, not by fresh_async's 1 s timeout
        view.at_head(max_age=0.0, wait=False, asked_at=asked_at)  # the probe it waited for counts for it
        with pytest.raises(HeadCheckNeeded):
            view.at_head(max_age=0.0, wait=False)  # asked now: that probe started before

        # Demand is recent but nobody waits: the watcher sleeps rather than probing back to back.
        trips = view.rpc.round_trips
        time.sleep(0.3)
        assert view.rpc.round_trips - trips <= 1
    finally:
        stop.set()
        view.wake_watcher()
        t0 = time.monotonic()
        watcher.join(timeout=5)
        assert time.monotonic() - t0 < 0.5  # woken, not waiting out idle_after (1 s)
    assert not watcher.is_alive()


def test_stale_view_fails_closed(chain, view):
    view.max_staleness = 0.05
    time.sleep(0.1)
    with pytest.raises(LedgerStale):
        view.snapshot()
    view.at_head(max_age=0)  # a successful probe makes it current again
    view.snapshot()
