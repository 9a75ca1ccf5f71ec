"""Catch-up mechanics: the deferred-index initial load, the fetch worker's wire format and its reply parsing."""

from __future__ import annotations

import gc
import io
import json

import pytest
from sqlalchemy import inspect

from indexer.decode import LogsReplyError, parse_logs
from indexer.fetch_worker import frame, read_frame
from indexer.follower import Indexer
from indexer.models import DEFERRED_INDEXES
from medledger.db import make_engine

from .conftest import dump, make_indexer, run_scenario


def _index_names(engine) -> set[str]:
    names: set[str] = set()
    for table in {ix.table.name for ix in DEFERRED_INDEXES}:
        names |= {ix["name"] for ix in inspect(engine).get_indexes(table)}
    return names


DEFERRED = {ix.name for ix in DEFERRED_INDEXES}


def test_initial_catch_up_loads_first_and_builds_indexes_after(chain, engine, tmp_path, monkeypatch):
    """An empty index loads the rows without the secondary indexes, then has every one of them, and holds
    the same facts as an index built row by row."""
    run_scenario(chain)
    seen_during_load: list[set[str]] = []
    apply = Indexer.apply

    def spying_apply(self, batch):
        seen_during_load.append(_index_names(self.engine))
        return apply(self, batch)

    monkeypatch.setattr(Indexer, "apply", spying_apply)
    ix = make_indexer(engine, chain, catch_up_blocks=1)
    assert ix.sync().logs > 0
    assert seen_during_load and all(not (names & DEFERRED) for names in seen_during_load)
    assert _index_names(engine) >= DEFERRED

    monkeypatch.setattr(Indexer, "apply", apply)
    ref = make_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    make_indexer(ref, chain, defer_indexes=False).sync()
    assert dump(engine) == dump(ref)


def test_indexes_stay_during_a_sync_that_is_not_initial(chain, engine, monkeypatch):
    """Following (an index that already has rows) never drops an index."""
    run_scenario(chain)
    ix = make_indexer(engine, chain, catch_up_blocks=1)
    ix.sync(target=chain.rpc.block_number() - 5)
    seen: list[set[str]] = []
    apply = Indexer.apply
    monkeypatch.setattr(
        Indexer, "apply", lambda self, batch: (seen.append(_index_names(engine)), apply(self, batch))[1]
    )
    ix.sync()
    assert seen and all(names >= DEFERRED for names in seen)


def test_interrupted_initial_load_gets_its_indexes_back(chain, engine, monkeypatch):
    """A load that dies with its indexes dropped (here: the writer fails mid-way) leaves them missing only
    until the indexer runs again; the rows it committed stay and the next sync continues from them."""
    run_scenario(chain)
    calls = []
    apply = Indexer.apply

    def failing_apply(self, batch):
        calls.append(batch.start)
        if len(calls) == 2:
            raise OSError("disk full")
        return apply(self, batch)

    monkeypatch.setattr(Indexer, "apply", failing_apply)
    ix = make_indexer(engine, chain, catch_up_blocks=1, initial_range=1, max_range=1, pipeline_depth=1)
    with pytest.raises(OSError, match="disk full"):
        ix.sync()
    # The failure was raised through the load's cleanup, which rebuilt the indexes already.
    assert _index_names(engine) >= DEFERRED

    # A crash that skips the cleanup (kill -9) leaves them missing; the next Indexer builds them first.
    with engine.begin() as conn:
        for index in DEFERRED_INDEXES:
            index.drop(conn)
    monkeypatch.setattr(Indexer, "apply", apply)
    again = make_indexer(engine, chain)
    assert _index_names(engine) >= DEFERRED
    assert again.sync().position.block_number == chain.rpc.block_number()


def test_frames_round_trip_and_truncation_is_end_of_stream():
    message = ("range", 1, 2, 3, [(1, "0xab", "0xcd", 5)], {"records": [(1, 0, "0x", None)]}, {1}, [], 8, 0.5)
    stream = io.BytesIO(frame(message) + frame(("done",)))
    # Only built-in values cross: tuples and sets arrive as lists.
    assert read_frame(stream) == [
        "range",
        1,
        2,
        3,
        [[1, "0xab", "0xcd", 5]],
        {"records": [[1, 0, "0x", None]]},
        [1],
        [],
        8,
        0.5,
    ]
    assert read_frame(stream) == ["done"]
    with pytest.raises(EOFError):
        read_frame(stream)
    cut = frame(message)[:-3]
    with pytest.raises(EOFError, match="inside a message"):
        read_frame(io.BytesIO(cut))


def _log(**overrides):
    log = {
        "address": "0x" + "11" * 20,
        "topics": ["0x" + "22" * 32],
        "data": "0x",
        "blockNumber": "0x5",
        "blockHash": "0x" + "33" * 32,
        "transactionHash": "0x" + "44" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x0",
        "removed": False,
    }
    return {**log, **overrides}


def test_logs_reply_parsing():
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": [_log(), _log(logIndex="0x1", removed=True)]}).encode()
    (log,) = parse_logs(body)  # the removed one is left out
    assert log.blockNumber == "0x5" and log.topics == ["0x" + "22" * 32]

    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "query returned more than 10000 results"}}
    with pytest.raises(LogsReplyError, match="more than 10000 results"):
        parse_logs(json.dumps(error).encode())
    with pytest.raises(LogsReplyError, match="malformed"):
        parse_logs(b"{not json")
    with pytest.raises(LogsReplyError, match="not an eth_getLogs reply"):
        parse_logs(json.dumps({"jsonrpc": "2.0", "id": 1, "result": [{"address": 5}]}).encode())


def test_collector_is_paused_for_a_worker_catch_up_and_restored(chain, engine, monkeypatch):
    """The cyclic GC is off while the fetch worker streams rows (they hold no cycles; collections walking them
    cost more than decoding them), on again afterwards — also when the load fails — and an application that
    had it off keeps it off."""
    run_scenario(chain)
    during: list[bool] = []
    apply = Indexer.apply

    def watching_apply(self, batch):
        during.append(gc.isenabled())
        if len(during) == 3:
            raise OSError("disk full")
        return apply(self, batch)

    monkeypatch.setattr(Indexer, "apply", watching_apply)
    # One block per range and per transaction, so the load fails on its third write.
    ix = make_indexer(engine, chain, catch_up_blocks=1, initial_range=1, max_range=1, target_logs=1, pipeline_depth=1)
    assert ix._use_worker(ix.position().block_number + 1, chain.rpc.block_number())  # the worker path
    assert gc.isenabled()
    with pytest.raises(OSError, match="disk full"):
        ix.sync()
    assert during == [False] * 3 and gc.isenabled()

    monkeypatch.setattr(Indexer, "apply", lambda self, batch: (during.append(gc.isenabled()), apply(self, batch))[1])
    gc.disable()
    try:
        ix.sync()
        assert not gc.isenabled()
    finally:
        gc.enable()
