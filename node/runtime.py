"""The node's background work while it serves: anchoring, following the ledger (and keeping the head probe
of consent decisions fresh while they are asked for), moving the access journal on chain and retrying
erasure markers. Each runs in its own daemon thread and waits (with back-off) for the
chain if it cannot be reached at start, so the API comes up and ingest queues even while the chain is down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from medledger.errors import MedLedgerError
from node.service import NodeServices

log = logging.getLogger(__name__)

#: Seconds between retries of erasure markers that could not be anchored.
ERASURE_RETRY_INTERVAL = 5.0


class NodeRuntime:
    """Starts and stops the background threads of one node."""

    def __init__(self, services: NodeServices) -> None:
        self.services = services
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> NodeRuntime:
        s = self.services
        self._spawn("anchorer", lambda stop: s.anchorer().run(stop, wake=s.anchor_bell))
        self._spawn("ledger-view", self._follow_ledger)
        self._spawn("ledger-head", lambda stop: s.ledger.watch_head(stop, max_age=s.decider.max_head_age))
        self._spawn("access-logger", lambda stop: s.access_logger().run(stop, wake=s.access_bell))
        self._spawn("erasures", self._retry_erasures)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for bell in (self.services.anchor_bell, self.services.access_bell):
            bell.ring()  # workers asleep on their doorbell see the stop at once
        self.services.ledger.wake_watcher()
        for t in self._threads:
            t.join(timeout=timeout)

    def __enter__(self) -> NodeRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _follow_ledger(self, stop: threading.Event) -> None:
        self.services.ledger.follow(stop)

    def _retry_erasures(self, stop: threading.Event) -> None:
        erasures = self.services.erasures
        while not stop.wait(ERASURE_RETRY_INTERVAL):
            erasures.submit_pending()

    def _spawn(self, name: str, work: Callable[[threading.Event], None]) -> None:
        def supervised() -> None:
            backoff = 0.5
            while not self.stop_event.is_set():
                try:
                    work(self.stop_event)
                    return
                except MedLedgerError as exc:
                    log.warning("%s waiting for the chain (%s): %s", name, exc.code, exc.message)
                except Exception:
                    log.exception("%s failed; restarting", name)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)

        t = threading.Thread(target=supervised, name=name, daemon=True)
        t.start()
        self._threads.append(t)
