"""Waking background workers when there is work, instead of having them poll the database.

The anchorer and the access logger used to ask the database for work every 50 ms, in every node, busy or not
(two idle nodes spent ~10% of a core on it). Now whoever creates work rings the worker's :class:`Doorbell`
after committing it (ingest and patient links for the anchorer, the access journal for the access logger),
and a worker with nothing to do sleeps until it rings, or for ``idle_interval`` at most: work committed by
another process (a CLI run, a second API process on PostgreSQL) is still picked up, only not at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class Doorbell:
    """A wake-up signal for one background worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        """Wake the worker (after committing the work it is to find)."""
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or ``timeout`` seconds pass; True if rung. Rings before the call count."""
        rung = self._event.wait(timeout)
        # Cleared before the worker looks for work: a ring after this point is either seen by that look
        # (its work was committed before the ring) or wakes the next wait.
        self._event.clear()
        return rung


def idle_wait(
    stop: threading.Event,
    wake: Doorbell | None,
    *,
    in_flight: bool,
    due_in: float | None,
    poll_interval: float,
    idle_interval: float,
) -> None:
    """How a worker that found nothing to do right now waits before looking again.

    Transactions in flight: poll for their receipts every ``poll_interval``. A partial batch filling up:
    sleep until it is due (``due_in`` seconds; rings would only wake it to find the batch still not due).
    Nothing at all: sleep until rung (or ``idle_interval``); without a doorbell, poll every ``poll_interval``.
    """
    if in_flight or (wake is None and due_in is None):
        stop.wait(poll_interval)
    elif due_in is not None:
        stop.wait(min(max(due_in, 0.0), idle_interval))
    else:
        assert wake is not None
        wake.wait(idle_interval)


class WorkerStep(Protocol):
    """What one step of a chain-writing worker reports (node.anchorer.AnchorStep, node.access_logger.LogStep)."""

    chain_down: bool
    in_flight: int
    due_in: float | None

    @property
    def idle(self) -> bool: ...


def run_steps(
    step: Callable[[], WorkerStep],
    stop: threading.Event,
    *,
    wake: Doorbell | None,
    poll_interval: float,
    idle_interval: float,
    max_backoff: float,
) -> None:
    """Run ``step`` until ``stop`` is set: again at once after progress, backing off exponentially (from
    0.1 s) while the chain is down, and per :func:`idle_wait` when there was nothing to do."""
    backoff = 0.0
    while not stop.is_set():
        result = step()
        if result.chain_down:
            backoff = min(max(backoff * 2, 0.1), max_backoff)
            stop.wait(backoff)
            continue
        backoff = 0.0
        if result.idle:
            idle_wait(
                stop,
                wake,
                in_flight=result.in_flight > 0,
                due_in=result.due_in,
                poll_interval=poll_interval,
                idle_interval=idle_interval,
            )
