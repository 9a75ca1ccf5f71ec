"""The node's background work while it serves: its own workers (anchoring, following the ledger and keeping
the head probe of consent decisions fresh while they are asked for, moving the access journal on chain,
retrying erasure markers, sending the modules' queued contract writes, delivering notifications) and those of
its enabled modules. Each runs in its own daemon thread, supervised: it waits (with back-off) for the chain if
it cannot be reached at start, so the API comes up and ingest queues even while the chain is down, and it is
restarted after an unexpected failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from medledger.errors import ConfigError, MedLedgerError
from node.modules.base import Worker
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
        self._workers: list[Worker] = []

    def workers(self) -> list[Worker]:
        """The node's own workers, then each enabled module's, in node.toml's order."""
        s = self.services
        own = [
            Worker("anchorer", lambda stop: s.anchorer().run(stop, wake=s.anchor_bell), wake=s.anchor_bell.ring),
            Worker("ledger-view", self._follow_ledger),
            Worker(
                "ledger-head",
                lambda stop: s.ledger.watch_head(stop, max_age=s.decider.max_head_age),
                wake=self._wake_ledger,
            ),
            Worker(
                "access-logger", lambda stop: s.access_logger().run(stop, wake=s.access_bell), wake=s.access_bell.ring
            ),
            Worker("erasures", self._retry_erasures),
            Worker("chain-writer", lambda stop: s.chain_writer.run(stop), wake=s.chain_writer.bell.ring),
            Worker("notifications", lambda stop: s.notifications.run(stop), wake=s.notifications.bell.ring),
        ]
        return own + [w for ctx in s.contexts.values() for w in ctx.module.workers(ctx)]

    def start(self) -> NodeRuntime:
        self._workers = self.workers()
        names = [w.name for w in self._workers]
        if len(set(names)) != len(names):
            raise ConfigError(f"two background workers share a name: {sorted(names)}")
        for worker in self._workers:
            self._spawn(worker.name, worker.run)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for worker in self._workers:
            if worker.wake is not None:
                worker.wake()  # workers asleep on their doorbell see the stop at once
        for t in self._threads:
            t.join(timeout=timeout)

    def __enter__(self) -> NodeRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wake_ledger(self) -> None:
        # Only a view that exists has a watcher to wake; building one here would dial the chain at stop.
        if "ledger" in vars(self.services):
            self.services.ledger.wake_watcher()

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
