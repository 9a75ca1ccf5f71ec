"""The catch-up's fetch worker: a child process that reads ranges of logs from the node, decodes them and
streams the rows to the writer (indexer.follower).

Why a process: in one process the reads (HTTP, JSON parsing) and decoding shared the GIL with the writer's
inserts, and the sqlite3 module gives the GIL up and takes it back around every statement step: each
take-back waited behind the fetch thread's Python work (json.loads of a 4 MB reply holds the GIL
throughout), which made the inserts 2-3x slower than SQLite's own work.

Inside the worker a reader thread keeps the next ``eth_getLogs`` request in flight while the previous reply is
decoded, so the node's time to serve a range overlaps the worker's time to decode one. The worker needs only
the standard library, msgspec and the fast decoders; anything unusual (an RPC error that is not about range size, an
unreachable node, an unexpected reply) ends it with an "error" message and the writer goes on without it,
fetching in-process with the full client (retries, error types).

Protocol: the job (a dict, see ``follower.Indexer._start_worker``) on stdin, then on stdout a stream of
:data:`WorkerMessage` values, all MessagePack (msgspec; ~3x faster to write than marshal and ~6x than pickle for
these rows). Only built-in types cross; tuples arrive as lists.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any, BinaryIO

import msgspec

from indexer.decode import (
    Decoder,
    Log,
    LogsReplyError,
    Values,
    add_rows,
    block_info,
    fast_decoder,
    group_logs,
    parse_logs,
)

#: ("range", start, end, logs read, headers, tables, blocks, logs of events without a fast decoder as tuples of
#: :class:`Log` fields, next range size, seconds spent) | ("reorg", message) | ("error", message) | ("done",)
WorkerMessage = tuple[Any, ...]
#: (number, hash, parent hash, timestamp) of one block.
HeaderTuple = tuple[int, str, str, int]
#: One range as read from the node: (first block, last block, logs, block headers, seconds spent reading).
_ReadRange = tuple[int, int, list[Log], list[HeaderTuple], float]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


def frame(message: Any) -> bytes:
    """``message`` as MessagePack behind its length (8 bytes, big-endian), so the reader takes whole frames
    off the pipe."""
    body = _ENCODER.encode(message)
    return len(body).to_bytes(8, "big") + body


def read_frame(stream: BinaryIO) -> Any:
    """The next message from ``stream`` (see :func:`frame`); EOFError at the end of the stream."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("stream ended")
    size = int.from_bytes(head, "big")
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("stream ended inside a message")
    return _DECODER.decode(body)


def adapt_range(size: int, logs: int, target: int, max_range: int) -> int:
    """The next range size: aim at ``target`` logs, change by 4x at most (4x up after an empty range)."""
    new = size * 4 if logs == 0 else max(size // 4, min(size * 4, size * target // logs))
    return max(1, min(max_range, new))


class _RangeTooLarge(Exception):
    pass


class _Spec:
    """What the worker knows of an event: its table and fast decoder (None: the writer decodes it)."""

    __slots__ = ("decode", "table")

    def __init__(self, table: str, decode: Decoder | None) -> None:
        self.table = table
        self.decode = decode


def serve_ranges() -> None:
    """Entry point of the fetch worker: reads its job from stdin and writes :data:`WorkerMessage` values to
    stdout until the goal block or an error."""
    import gc
    import queue
    import threading

    # Parsed replies are trees of dicts and lists (~1M containers per 100k logs) that live until their range
    # is decoded; each collection the allocations trigger walks them all, which doubled the parsing cost.
    # Nothing here builds reference cycles, so reference counting frees everything without the collector.
    gc.disable()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    job = read_frame(stdin)
    out: queue.Queue[bytes | None] = queue.Queue(maxsize=job["depth"])

    def send() -> None:
        # Writing releases the GIL, so encoded ranges go out while the next one is read and decoded.
        while (item := out.get()) is not None:
            stdout.write(item)
            stdout.flush()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        for message in fetch_ranges(job):
            out.put(frame(message))
    except Exception as exc:  # reported to the writer, which continues without the worker
        kind = "reorg" if type(exc).__name__ == "ReorgDetected" else "error"
        out.put(frame((kind, f"{type(exc).__name__}: {exc}")))
    out.put(None)
    sender.join()


class _Node:
    """A minimal JSON-RPC client over one keep-alive connection (standard library only)."""

    def __init__(self, job: dict[str, Any]) -> None:
        import http.client
        from urllib.parse import urlsplit

        url = urlsplit(job["url"])
        conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._conn = conn_type(url.hostname or "127.0.0.1", url.port, timeout=job["timeout"])
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._range_errors = job["range_errors"]
        self._ids = iter(range(1, 1 << 62))

    def post(self, body: Any) -> bytes:
        self._conn.request("POST", self._path, json.dumps(body), {"Content-Type": "application/json"})
        resp = self._conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return data

    def logs(self, start: int, end: int, addresses: list[str]) -> list[Log]:
        params = [{"fromBlock": hex(start), "toBlock": hex(end), "address": addresses}]
        body = self.post({"jsonrpc": "2.0", "id": next(self._ids), "method": "eth_getLogs", "params": params})
        try:
            return parse_logs(body)
        except LogsReplyError as exc:
            text = str(exc).lower()
            if any(s in text for s in self._range_errors):
                raise _RangeTooLarge(text, start, end) from None
            raise RuntimeError(f"eth_getLogs: {exc}") from None

    def headers(self, numbers: list[int]) -> list[HeaderTuple]:
        from indexer.errors import ReorgDetected

        replies = json.loads(
            self.post(
                [
                    {"jsonrpc": "2.0", "id": i, "method": "eth_getBlockByNumber", "params": [hex(n), False]}
                    for i, n in enumerate(numbers)
                ]
            )
        )
        by_id = {r.get("id"): r for r in replies}
        out = []
        for i, n in enumerate(numbers):
            raw = by_id[i].get("result")
            if raw is None:
                raise ReorgDetected(f"block {n} is no longer on the chain")
            out.append((n, raw["hash"], raw["parentHash"], int(raw["timestamp"], 16)))
        return out


#: Ranges requested from the node at once: while one reply is parsed, the node serves the next.
READ_AHEAD = 2


def _read_ranges(job: dict[str, Any], out: Any, stop: Any) -> None:
    """Read ranges into the queue ``out`` in order (then None, or the exception that stopped it).

    ``READ_AHEAD`` ranges are in flight at once, each on its own connection: the node (multi-threaded)
    serves one while this process parses another. Each new range is sized from the logs of the newest one
    read; a range the node refuses as too large drops the ranges after it and is asked for again, halved."""
    import collections
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor

    local = threading.local()
    filter_addresses = list(job["specs"])

    def read(a: int, end: int) -> _ReadRange:
        node = getattr(local, "node", None)
        if node is None:
            node = local.node = _Node(job)
        t0 = time.perf_counter()
        logs = node.logs(a, end, filter_addresses)
        numbers = sorted({a, end, *(int(h, 16) for h in {lg.blockNumber for lg in logs})})
        return a, end, logs, node.headers(numbers), time.perf_counter() - t0

    try:
        with ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="read") as pool:
            size, goal = job["range"], job["goal"]
            a = job["start"]
            flight: collections.deque[Future[_ReadRange]] = collections.deque()
            while (a <= goal or flight) and not stop.is_set():
                while len(flight) < READ_AHEAD and a <= goal:
                    end = min(goal, a + size - 1)
                    flight.append(pool.submit(read, a, end))
                    a = end + 1
                try:
                    item = flight.popleft().result()
                except _RangeTooLarge as exc:
                    first, last = exc.args[1], exc.args[2]
                    if last == first:
                        raise
                    for later in flight:  # read again after the halved range
                        later.cancel()
                    for later in flight:
                        with contextlib.suppress(Exception):
                            later.result()
                    flight.clear()
                    size, a = max(1, (last - first + 1) // 2), first
                    continue
                size = adapt_range(item[1] - item[0] + 1, len(item[2]), job["target_logs"], job["max_range"])
                out.put(item)
        out.put(None)
    except Exception as exc:  # handed to the decoding thread, which reports it
        out.put(exc)


def fetch_ranges(job: dict[str, Any]) -> Any:
    """The worker's messages for the job's blocks (a generator; see :data:`WorkerMessage`)."""
    import queue
    import threading

    specs = {
        addr: {topic: _Spec(table, fast_decoder(name)) for topic, (table, name) in by_topic.items()}
        for addr, by_topic in job["specs"].items()
    }
    read: queue.Queue[_ReadRange | Exception | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    reader = threading.Thread(target=_read_ranges, args=(job, read, stop), daemon=True)
    reader.start()
    try:
        while (item := read.get()) is not None:
            if isinstance(item, Exception):
                raise item
            a, end, logs, headers, read_s = item
            t0 = time.perf_counter()
            info = block_info(logs, {n: (h, ts) for n, h, _, ts in headers})
            tables: dict[str, list[Values]] = {}
            blocks: set[int] = set()
            other: list[tuple[Any, ...]] = []  # Log fields, rebuilt by the writer (only built-ins cross)
            for spec, group in group_logs(logs, specs).items():
                if spec.decode is None:
                    other.extend(msgspec.structs.astuple(log) for log in group)
                else:
                    add_rows(tables, blocks, spec.table, spec.decode(group, info))
            # Rows stay in chain order. Sorting a range's records by record id made its inserts into the unique
            # record-id index ~15% cheaper, but cost this process ~0.2 s of CPU per 100,000 logs (it is the
            # catch-up's slowest stage) and slowed the deferred index build, whose input arrives nearly in time
            # order from a chain: 3-10% slower catch-ups in alternating passes.
            size = adapt_range(end - a + 1, len(logs), job["target_logs"], job["max_range"])
            seconds = read_s + time.perf_counter() - t0
            yield ("range", a, end, len(logs), headers, tables, blocks, other, size, seconds)
        yield ("done",)
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            read.get_nowait()  # unblock a reader waiting to put
