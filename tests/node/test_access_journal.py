"""The access journal on both databases: group commit, awaiting on an event loop, nonces riding along with
the next commit (and written on their own when no access follows), the access logger's doorbell."""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy import func, select

from medledger.vocabulary import AuthKind, Purpose
from node.access_journal import NONCE_FLUSH_INTERVAL, AccessJournal, JournalEntry
from node.db.models import AccessEntry, SeenNonce
from node.doorbell import Doorbell

PATIENT = "0x" + "11" * 20
ACCESSOR = "0x" + "22" * 20


def _entry(i: int) -> JournalEntry:
    return JournalEntry(PATIENT, ACCESSOR, i.to_bytes(32, "big"), Purpose.TREATMENT, AuthKind.GRANT, 1)


def _count(sessions, column) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count(column))) or 0)


def test_concurrent_appends_are_durable_when_they_return(node_db):
    bell = Doorbell()
    journal = AccessJournal(node_db.engine, on_commit=bell.ring)
    try:
        threads = [threading.Thread(target=journal.append, args=(_entry(i),)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _count(node_db.sessions, AccessEntry.id) == 32
        assert bell.wait(0)  # the access logger was told
    finally:
        journal.close()


def test_append_async_awaits_the_commit(node_db):
    journal = AccessJournal(node_db.engine)

    async def main() -> None:
        await asyncio.gather(*(journal.append_async(_entry(i)) for i in range(10)))
        assert _count(node_db.sessions, AccessEntry.id) == 10

    try:
        asyncio.run(main())
    finally:
        journal.close()


def test_nonce_rides_with_the_next_access_and_alone_within_the_flush_interval(node_db):
    journal = AccessJournal(node_db.engine)
    try:
        journal.remember_nonce(ACCESSOR, "n-released", int(time.time()) + 60)
        journal.append(_entry(1))
        # Durable before the release returned: the key only leaves after this commit.
        assert _count(node_db.sessions, SeenNonce.nonce) == 1

        # A refused request claims a nonce and journals nothing: it is written on its own, soon.
        journal.remember_nonce(ACCESSOR, "n-refused", int(time.time()) + 60)
        deadline = time.monotonic() + NONCE_FLUSH_INTERVAL + 2
        while _count(node_db.sessions, SeenNonce.nonce) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(node_db.sessions, SeenNonce.nonce) == 2
    finally:
        journal.close()


def test_nonces_claimed_at_shutdown_are_written(node_db):
    journal = AccessJournal(node_db.engine)
    journal.append(_entry(1))
    journal.remember_nonce(ACCESSOR, "n-last", int(time.time()) + 60)
    journal.close()
    assert _count(node_db.sessions, SeenNonce.nonce) == 1


def test_a_nonce_already_written_does_not_fail_the_commit(node_db):
    # A commit whose outcome was lost keeps its nonces for the next one; if the server had committed, they are
    # already there, and writing them again must not fail that commit (nor every one after it).
    expires = int(time.time()) + 60
    with node_db.sessions.begin() as s:
        s.add(SeenNonce(signer=ACCESSOR, nonce="n-twice", expires_at=expires))
    journal = AccessJournal(node_db.engine)
    try:
        journal.remember_nonce(ACCESSOR, "n-twice", expires)
        journal.append(_entry(1))
        journal.append(_entry(2))
        assert _count(node_db.sessions, AccessEntry.id) == 2
        assert _count(node_db.sessions, SeenNonce.nonce) == 1
    finally:
        journal.close()
