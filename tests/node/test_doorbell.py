"""Background workers sleep while idle and wake when their producers ring: the anchorer on ingest, the access
logger on a journal commit (real Anvil, real node database). A long ``idle_interval`` proves it is the ring,
not a poll, that wakes them; with no ring they do not look at the database at all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, func, select

from medledger.vocabulary import AuthKind, Purpose
from node.access_journal import AccessJournal, JournalEntry
from node.access_logger import AccessLogger
from node.anchorer import Anchorer
from node.db.models import AccessEntry, AccessState, Record, RecordState
from node.directory import PatientDirectory
from node.doorbell import Doorbell, idle_wait
from node.pipeline import IngestPipeline
from tests.node.conftest import fhir_record, patient_keys
from tests.sharing.conftest import wait_until


def test_doorbell_remembers_a_ring_until_waited_for():
    bell = Doorbell()
    assert bell.wait(0) is False
    bell.ring()
    assert bell.wait(5) is True  # rung before the wait: returns at once
    t = time.monotonic()
    assert bell.wait(0.05) is False and time.monotonic() - t >= 0.05


def test_idle_wait_polls_only_while_transactions_are_in_flight():
    stop, bell = threading.Event(), Doorbell()
    t = time.monotonic()
    idle_wait(stop, bell, in_flight=True, due_in=None, poll_interval=0.01, idle_interval=10)
    assert time.monotonic() - t < 1  # receipts to collect: a short poll
    t = time.monotonic()
    idle_wait(stop, bell, in_flight=False, due_in=0.02, poll_interval=0.01, idle_interval=10)
    assert 0.015 < time.monotonic() - t < 1  # a partial batch: until it is due
    threading.Timer(0.05, bell.ring).start()
    t = time.monotonic()
    idle_wait(stop, bell, in_flight=False, due_in=None, poll_interval=0.01, idle_interval=10)
    assert 0.04 < time.monotonic() - t < 5  # nothing to do: until rung


@contextmanager
def running(run, bell: Doorbell) -> Iterator[None]:
    """``run(stop, wake=bell, idle_interval=60)`` in a thread: only a ring can wake it in a test's time."""
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(stop,), kwargs={"wake": bell, "idle_interval": 60.0}, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        bell.ring()
        worker.join(timeout=10)


def _count_queries(engine) -> list[int]:
    seen = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args: object) -> None:
        seen[0] += 1

    return seen


def test_idle_anchorer_sleeps_until_ingest_rings(chain, node_db, kek, store):
    hospital = chain.hospital_a
    bell = Doorbell()
    pipeline = IngestPipeline(node_db.sessions, store, kek, hospital.address, on_queued=bell.ring)
    address, public, _ = patient_keys()
    anchorer = Anchorer(node_db.sessions, chain.as_(hospital).records, max_wait_ms=0)
    with running(anchorer.run, bell):
        time.sleep(0.3)  # idle: it checked once and sleeps on the bell
        queries = _count_queries(node_db.engine)
        time.sleep(0.5)
        assert queries[0] == 0, "an idle anchorer must not poll the database"

        # Linking a patient queues their pending records and rings too (PatientDirectory shares the bell).
        pipeline.ingest([fhir_record(0, mrn="MRN-BELL")])
        PatientDirectory(node_db.sessions, kek, on_queued=bell.ring).link("MRN-BELL", "HOSP-A", address, public)
        pipeline.ingest([fhir_record(1, mrn="MRN-BELL")])

        def confirmed() -> bool:
            with node_db.sessions() as s:
                return s.scalar(select(func.count()).where(Record.status == RecordState.CONFIRMED)) == 2

        wait_until(confirmed, timeout=10, what="records anchored after the ring")


def test_idle_access_logger_wakes_on_journal_commit(chain, node_db):
    bell = Doorbell()
    journal = AccessJournal(node_db.engine, on_commit=bell.ring)
    logger = AccessLogger(node_db.sessions, chain.as_(chain.hospital_a).access_log, max_wait_ms=0)
    with running(logger.run, bell):
        time.sleep(0.3)
        patient = chain.new_patient().address
        journal.append(
            JournalEntry(patient, chain.hospital_b.address, b"\x07" * 32, Purpose.TREATMENT, AuthKind.GRANT, 1)
        )

        def logged() -> bool:
            with node_db.sessions() as s:
                return s.scalar(select(func.count()).where(AccessEntry.status == AccessState.CONFIRMED)) == 1

        wait_until(logged, timeout=10, what="access logged after the journal rang")
    journal.close()
