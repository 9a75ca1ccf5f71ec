"""The toy workflow's background work: mark new notes as seen."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.workflows.toy.service import ToyService


def sweeper(service: ToyService, interval: float) -> Callable[[threading.Event], None]:
    def run(stop: threading.Event) -> None:
        while not stop.wait(interval):
            service.sweep()

    return run
