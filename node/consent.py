"""Consent decisions: may this accessor read this patient's record of this class for this purpose, now?

The answer comes from the ledger view (an index confirmed current with the chain head, see node.ledger_view)
through a cache keyed by the view's generation: an entry is reused only while the indexed block is unchanged,
so a revocation is honored from the first probe that sees its block, with no time-based expiry to tune. A
decision names what authorized it (grant id or break-glass id), which goes into the access log and lets an
auditor re-check it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from indexer.queries import BreakGlassView, GrantView
from medledger.addresses import Address
from medledger.errors import MedLedgerError
from medledger.vocabulary import AuthKind, Purpose, RecordClass
from node.ledger_view import HeadCheckNeeded, LedgerView, Snapshot


class ConsentDenied(MedLedgerError):
    """No grant or open break-glass window authorizes this access (403)."""

    code = "consent_denied"


@dataclass(frozen=True)
class Decision:
    kind: AuthKind
    auth_id: int
    block_number: int


@dataclass(frozen=True)
class _State:
    generation: int
    grants: tuple[GrantView, ...]
    windows: tuple[BreakGlassView, ...]


class ConsentDecider:
    """Decides from the ledger view with a bounded per-(patient, accessor) cache.

    Args:
        view: The node's ledger view.
        cache_size: Pairs kept; least recently used pairs are dropped first.
        max_head_age: See the attribute.
    """

    def __init__(self, view: LedgerView, *, cache_size: int = 50_000, max_head_age: float = 0.02) -> None:
        self.view = view
        #: Seconds a chain-head probe may be reused. 0 makes every decision confirm the chain head first
        #: (concurrent decisions share one probe), capping decisions at the RPC round-trip rate (~1.5k/s
        #: here); the default 20 ms bounds how long after its block a revocation can go unseen, far below
        #: a QBFT block period, while decisions run from the cache.
        self.max_head_age = max_head_age
        self._cache: OrderedDict[tuple[Address, Address], _State] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def decide(
        self,
        patient: Address,
        accessor: Address,
        record_class: int,
        purpose: Purpose,
        *,
        now: int | None = None,
        wait: bool = True,
        asked_at: float | None = None,
    ) -> Decision:
        """The authorization for this access, or :class:`ConsentDenied` with a precise reason.

        ``patient`` and ``accessor`` are Addresses: one spelling per account, so the cache is keyed by them as is.

        Raises :class:`node.ledger_view.LedgerStale` if the ledger view is too old to decide on. With
        ``wait=False`` it raises :class:`node.ledger_view.HeadCheckNeeded` where it would wait for the chain.
        ``asked_at`` (``time.monotonic()``; default: now) is when the access was asked for: the decision
        reflects every block mined more than ``max_head_age`` before it.
        """
        self.view.snapshot()  # fail closed first if the view is stale
        snap = self.view.at_head(max_age=self.max_head_age, wait=wait, asked_at=asked_at)
        t = int(time.time()) if now is None else now
        try:
            return self._decide(patient, accessor, record_class, purpose, t, snap)
        except ConsentDenied:
            # A grant made moments ago may be in a block not yet probed: before refusing, check the head once
            # more (indexing it if it changed consent); allowed requests never pay for this.
            if not wait:
                raise HeadCheckNeeded from None
            fresh = self.view.at_head(max_age=0)
            if fresh.generation == snap.generation:
                raise
            return self._decide(patient, accessor, record_class, purpose, t, fresh)

    def _decide(
        self, patient: Address, accessor: Address, record_class: int, purpose: Purpose, t: int, snap: Snapshot
    ) -> Decision:
        state = self._state(patient, accessor, snap.generation)
        # Break-glass first: an open emergency window is the authorization the accessor is acting under, and
        # the audit must show it as such even if a grant also exists.
        for w in state.windows:
            if w.opened_at <= t <= w.expires_at:
                return Decision(AuthKind.BREAK_GLASS, w.break_glass_id, snap.block_number)
        reasons: list[str] = []
        for g in state.grants:
            if g.purpose != int(purpose):
                continue
            if not g.covers(record_class):
                reasons.append(f"grant #{g.grant_id} does not cover {RecordClass.label(record_class)} records")
            elif t < g.valid_from:
                reasons.append(f"grant #{g.grant_id} is not valid before {g.valid_from}")
            elif t > g.valid_until:
                reasons.append(f"grant #{g.grant_id} expired at {g.valid_until}")
            else:
                return Decision(AuthKind.GRANT, g.grant_id, snap.block_number)
        message = "; ".join(reasons) or f"no grant from this patient for purpose {purpose.name.lower()}"
        raise ConsentDenied(
            message,
            details={
                "patient": patient,
                "accessor": accessor,
                "purpose": purpose.name.lower(),
                "record_class": RecordClass.label(record_class),
                "block_number": snap.block_number,
            },
        )

    def _state(self, patient: Address, accessor: Address, generation: int) -> _State:
        key = (patient, accessor)
        with self._lock:
            state = self._cache.get(key)
            if state is not None and state.generation == generation:
                self._cache.move_to_end(key)
                return state
        grants, windows = self.view.queries.consent_state(patient, accessor)
        state = _State(generation, tuple(grants), tuple(windows))
        with self._lock:
            self._cache[key] = state
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return state
