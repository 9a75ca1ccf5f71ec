"""Turn MedLedger logs (as ``eth_getLogs`` returns them) into table rows.

Every event of RecordRegistry, ConsentRegistry and AccessLog has only static fields, so their decoders slice
the hex strings of topics and data directly: the generic eth_abi path (``AbiEvent.decode``) costs ~4x more
per log than the node takes to deliver it, and these events are nearly all of the volume. Consortium events
carry strings and bytes; they are rare and go through eth_abi. tests/indexer/test_decode.py proves both
paths agree.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from indexer.errors import BadLog
from medledger.vocabulary import RecordStatus

if TYPE_CHECKING:
    from medledger.chain.abi import AbiEvent

# eth_utils and the ABI loader (eth_abi) are imported where used: the fetch worker process (serve_ranges)
# imports this module for the fast decoders only, and those imports were most of its start-up time.

Log = dict[str, Any]
Row = dict[str, Any]
#: One table row as inserted: ``KEY`` columns first, then the table's columns in ``COLUMNS`` order.
Values = tuple[Any, ...]
#: (log, block number, block time) -> row of the event's table
Decoder = Callable[[Log, int, int], Values]

_ACTIVE = int(RecordStatus.ACTIVE)

#: Columns every decoded row starts with: the log's position and transaction.
KEY = ("block_number", "log_index", "tx_hash")

#: Columns of each event table after ``KEY``, in the order the decoders emit them. Rows are plain tuples (no
#: per-log dicts or objects): the writer hands them to the driver's executemany as they are.
COLUMNS: dict[str, tuple[str, ...]] = {
    "member_events": ("account", "kind", "roles", "name", "endpoint", "encryption_key"),
    "patient_keys": ("patient", "encryption_key", "relayer"),
    "governance_events": ("name", "args"),
    "records": (
        "patient",
        "custodian",
        "record_id",
        "commitment",
        "record_class",
        "clinical_time",
        "event_time",
        "block_time",
        "status",
        "superseded_by",
        "status_block",
    ),
    "amendments": ("previous_id", "new_id", "custodian"),
    "erasures": ("record_id", "custodian", "request_hash"),
    "digests": ("digest_id", "custodian", "kind", "root", "count", "block_time"),
    "consent_grants": (
        "grant_id",
        "patient",
        "grantee",
        "classes",
        "purpose",
        "valid_from",
        "valid_until",
        "replaces_grant_id",
        "relayer",
        "block_time",
        "revoked_block",
        "revoked_log_index",
        "revoked_time",
        "replaced",
    ),
    "consent_revocations": ("grant_id", "patient", "grantee", "replaced", "relayer", "block_time"),
    "break_glass": (
        "break_glass_id",
        "patient",
        "accessor",
        "reason_hash",
        "opened_at",
        "expires_at",
        "closed_block",
        "closed_time",
    ),
    "break_glass_closures": ("break_glass_id", "patient", "accessor", "block_time"),
    "accesses": (
        "patient",
        "accessor",
        "record_id",
        "custodian",
        "purpose",
        "auth_kind",
        "auth_id",
        "staff_ref",
        "sequence",
        "block_time",
    ),
}


def column(table: str, name: str) -> int:
    """Position of column ``name`` in the rows of ``table`` (``KEY`` included)."""
    return (*KEY, *COLUMNS[table]).index(name)


def topic0(signature: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=signature).hex()


def _bad(log: Log, n_topics: int, n_words: int) -> BadLog:
    topics, data = log["topics"], log["data"]
    return BadLog(
        f"log {log.get('transactionHash')}#{int(log.get('logIndex', '0x0'), 16)} has {len(topics)} topics and "
        f"{(len(data) - 2) // 2} data bytes; expected {n_topics} and {32 * n_words}"
    )


# The decoders below slice fixed offsets of the hex strings: topic addresses are the last 40 digits of
# ``0x`` + 64, data word i is ``data[2 + 64 i : 66 + 64 i]`` (an address word: its last 40 digits). Hex is
# lowercased once per string (nodes send lowercase, but the JSON-RPC spec does not promise it).


def _record_anchored(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 4 or len(d) != 194:
        raise _bad(log, 4, 3)
    d = d.lower()
    clinical = int(d[130:194], 16)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        "0x" + t[1][26:].lower(),
        "0x" + t[2][26:].lower(),
        t[3].lower(),
        "0x" + d[2:66],
        int(d[66:130], 16),
        clinical,
        clinical or block_time,
        block_time,
        _ACTIVE,
        None,
        None,
    )


def _record_amended(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    if len(t) != 4 or len(log["data"]) != 2:
        raise _bad(log, 4, 0)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        t[1].lower(),
        t[2].lower(),
        "0x" + t[3][26:].lower(),
    )


def _record_erased(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 3 or len(d) != 66:
        raise _bad(log, 3, 1)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        t[1].lower(),
        "0x" + t[2][26:].lower(),
        "0x" + d[2:66].lower(),
    )


def _digest_anchored(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 4 or len(d) != 130:
        raise _bad(log, 4, 2)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        int(t[1], 16),
        "0x" + t[2][26:].lower(),
        t[3].lower(),
        "0x" + d[2:66].lower(),
        int(d[66:130], 16),
        block_time,
    )


def _consent_granted(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 4 or len(d) != 386:
        raise _bad(log, 4, 6)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        int(t[1], 16),
        "0x" + t[2][26:].lower(),
        "0x" + t[3][26:].lower(),
        str(int(d[2:66], 16)),
        int(d[66:130], 16),
        int(d[130:194], 16),
        int(d[194:258], 16),
        int(d[258:322], 16),
        "0x" + d[346:386].lower(),
        block_time,
        None,
        None,
        None,
        None,
    )


def _consent_revoked(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 4 or len(d) != 130:
        raise _bad(log, 4, 2)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        int(t[1], 16),
        "0x" + t[2][26:].lower(),
        "0x" + t[3][26:].lower(),
        int(d[2:66], 16) != 0,
        "0x" + d[90:130].lower(),
        block_time,
    )


def _break_glass_opened(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 4 or len(d) != 130:
        raise _bad(log, 4, 2)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        int(t[1], 16),
        "0x" + t[2][26:].lower(),
        "0x" + t[3][26:].lower(),
        "0x" + d[2:66].lower(),
        block_time,
        int(d[66:130], 16),
        None,
        None,
    )


def _break_glass_closed(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    if len(t) != 4 or len(log["data"]) != 2:
        raise _bad(log, 4, 0)
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        int(t[1], 16),
        "0x" + t[2][26:].lower(),
        "0x" + t[3][26:].lower(),
        block_time,
    )


def _access_logged(log: Log, block: int, block_time: int) -> Values:
    t = log["topics"]
    d = log["data"]
    if len(t) != 4 or len(d) != 386:
        raise _bad(log, 4, 6)
    d = d.lower()
    return (
        block,
        int(log["logIndex"], 16),
        log["transactionHash"],
        "0x" + t[1][26:].lower(),
        "0x" + t[2][26:].lower(),
        t[3].lower(),
        "0x" + d[26:66],
        int(d[66:130], 16),
        int(d[130:194], 16),
        str(int(d[194:258], 16)),
        "0x" + d[258:322],
        str(int(d[322:386], 16)),
        block_time,
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return v.lower()
    return v


def _generic(ev: AbiEvent, table: str) -> Decoder:
    """eth_abi decoding for the Consortium's events, shaped for ``table``."""
    columns = COLUMNS[table]

    def decode(log: Log, block: int, block_time: int) -> Values:
        try:
            args = ev.decode([bytes.fromhex(x[2:]) for x in log["topics"]], bytes.fromhex(log["data"][2:]))
        except Exception as exc:  # eth_abi raises several unrelated types on malformed input
            raise BadLog(f"log {log.get('transactionHash')} does not decode as {ev.name}: {exc}") from None
        args = {k: _jsonable(v) for k, v in args.items()}
        if table == "member_events":
            kind = {
                "MemberAdmitted": "admitted",
                "MemberRemoved": "removed",
                "MemberRolesChanged": "roles",
                "MemberProfileUpdated": "profile",
            }[ev.name]
            row = {
                "account": args["account"],
                "kind": kind,
                "roles": args.get("roles"),
                "name": args.get("name"),
                "endpoint": args.get("endpoint"),
                "encryption_key": args.get("encryptionKey"),
            }
        elif table == "patient_keys":
            row = {"patient": args["patient"], "encryption_key": args["encryptionKey"], "relayer": args["relayer"]}
        else:
            row = {"name": ev.name, "args": json.dumps(args, sort_keys=True)}
        key = (block, int(log["logIndex"], 16), log["transactionHash"])
        return key + tuple(row[c] for c in columns)

    return decode


@dataclass(frozen=True)
class EventSpec:
    contract: str
    name: str
    table: str
    decode: Decoder

    def row(self, log: Log, block_time: int) -> Row:
        """The decoded columns by name, without ``KEY`` (for tests and debugging; the writer uses tuples)."""
        values = self.decode(log, 0, block_time)
        return dict(zip(COLUMNS[self.table], values[len(KEY) :], strict=True))


_FAST: dict[str, tuple[str, Decoder]] = {
    "RecordAnchored": ("records", _record_anchored),
    "RecordAmended": ("amendments", _record_amended),
    "RecordErased": ("erasures", _record_erased),
    "DigestAnchored": ("digests", _digest_anchored),
    "ConsentGranted": ("consent_grants", _consent_granted),
    "ConsentRevoked": ("consent_revocations", _consent_revoked),
    "BreakGlassOpened": ("break_glass", _break_glass_opened),
    "BreakGlassClosed": ("break_glass_closures", _break_glass_closed),
    "AccessLogged": ("accesses", _access_logged),
}
_MEMBER_EVENTS = {"MemberAdmitted", "MemberRemoved", "MemberRolesChanged", "MemberProfileUpdated"}

CONTRACTS = ("Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog")


def event_specs() -> dict[str, dict[str, EventSpec]]:
    """``{contract: {topic0 hex: spec}}`` for every event of every MedLedger contract."""
    from medledger.chain.abi import load_artifact

    out: dict[str, dict[str, EventSpec]] = {}
    for contract in CONTRACTS:
        specs: dict[str, EventSpec] = {}
        for ev in load_artifact(contract).abi.events.values():
            key = "0x" + ev.topic0.hex()
            if ev.name in _FAST:
                table, fn = _FAST[ev.name]
            elif ev.name in _MEMBER_EVENTS:
                table, fn = "member_events", _generic(ev, "member_events")
            elif ev.name == "PatientKeyRegistered":
                table, fn = "patient_keys", _generic(ev, "patient_keys")
            else:
                table, fn = "governance_events", _generic(ev, "governance_events")
            specs[key] = EventSpec(contract, ev.name, table, fn)
        out[contract] = specs
    return out


@dataclass
class Decoded:
    """One range's rows: per event table a list of tuples in ``KEY + COLUMNS`` order, and the blocks that have
    events."""

    tables: dict[str, list[Values]]
    blocks: set[int]

    def extend(self, other: Decoded) -> None:
        """Append ``other``'s rows (a later range) to these."""
        for name, rows in other.tables.items():
            mine = self.tables.get(name)
            if mine is None:
                self.tables[name] = list(rows)
            else:
                mine.extend(rows)
        self.blocks |= other.blocks


class LogDecoder:
    """Decodes logs of one deployment (contract addresses) into rows per table."""

    def __init__(self, addresses: dict[str, str]) -> None:
        specs = event_specs()
        self._by_address = {addr.lower(): specs[name] for name, addr in addresses.items()}

    def specs_by_address(self) -> dict[str, dict[str, EventSpec]]:
        """``{lowercase address: {topic0: spec}}``."""
        return self._by_address

    def decode(self, logs: list[Log], block_times: dict[int, int]) -> Decoded:
        """Rows per table. Logs of unknown events (a newer contract version) and of other addresses (a node
        ignoring the filter) are skipped."""
        tables: dict[str, list[Values]] = {}
        blocks: set[int] = set()
        by_address = self._by_address
        # Per-range memo of the block number parse: a range has far fewer blocks than logs.
        numbers: dict[str, int] = {}
        for log in logs:
            specs = by_address.get(log["address"]) or by_address.get(log["address"].lower())
            if specs is None:
                continue
            topics = log["topics"]
            spec = (specs.get(topics[0]) or specs.get(topics[0].lower())) if topics else None
            if spec is None:
                continue
            hexnum = log["blockNumber"]
            block = numbers.get(hexnum)
            if block is None:
                block = numbers[hexnum] = int(hexnum, 16)
                blocks.add(block)
            row = spec.decode(log, block, block_times[block])
            rows = tables.get(spec.table)
            if rows is None:
                rows = tables[spec.table] = []
            rows.append(row)
        return Decoded(tables, blocks)


# ---------------------------------------------------------------------------------------------- fetch worker
#
# The catch-up runs the node reads (HTTP, JSON parsing) and the decoding in a child process, which streams
# decoded rows to the writer (indexer.follower). In one process they shared the GIL with the writer's
# inserts, and the sqlite3 module gives the GIL up and takes it back around every statement step: each
# take-back waited behind the fetch thread's Python work (json.loads of a 4 MB response holds the GIL
# throughout), which made the inserts 2-3x slower than SQLite's own work. The worker needs only the standard
# library and the fast decoders; anything unusual (an RPC error that is not about range size, an unreachable
# node, an unexpected reply) ends it with an "error" message and the writer goes on without it, fetching
# in-process with the full client (retries, error types).

#: Messages from the worker: ("range", start, end, logs read, headers, tables, blocks, raw logs of events
#: without a fast decoder, next range size, seconds spent) | ("reorg", message) | ("error", message) | ("done",)
WorkerMessage = tuple[Any, ...]


class _RangeTooLarge(Exception):
    pass


def serve_ranges() -> None:
    """Entry point of the fetch worker: reads its job (a pickled dict, see follower.Indexer._worker_job) from
    stdin and writes pickled :data:`WorkerMessage` values to stdout until the goal block or an error."""
    import pickle
    import queue
    import threading

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    job = pickle.load(stdin)
    out: queue.Queue[bytes | None] = queue.Queue(maxsize=job["depth"])

    def send() -> None:
        # Writing releases the GIL, so pickled ranges go out while the next one is read and decoded.
        while (item := out.get()) is not None:
            stdout.write(item)
            stdout.flush()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        for message in _fetch_ranges(job):
            out.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # reported to the writer, which continues without the worker
        kind = "reorg" if type(exc).__name__ == "ReorgDetected" else "error"
        out.put(pickle.dumps((kind, f"{type(exc).__name__}: {exc}"), protocol=pickle.HIGHEST_PROTOCOL))
    out.put(None)
    sender.join()


def _fetch_ranges(job: dict[str, Any]) -> Any:
    import http.client
    import time
    from urllib.parse import urlsplit

    from indexer.errors import ReorgDetected

    url = urlsplit(job["url"])
    conn_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_type(url.hostname or "127.0.0.1", url.port, timeout=job["timeout"])
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    ids = iter(range(1, 1 << 62))

    def post(body: Any) -> Any:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return json.loads(data)

    def call(method: str, params: list[Any]) -> Any:
        reply = post({"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params})
        if "error" in reply:
            text = str(reply["error"].get("message", "")).lower()
            if any(s in text for s in job["range_errors"]):
                raise _RangeTooLarge(text)
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    specs: dict[str, dict[str, tuple[str, Decoder | None]]] = {
        addr: {t: (table, _FAST[name][1] if name in _FAST else None) for t, (table, name) in by_topic.items()}
        for addr, by_topic in job["specs"].items()
    }
    filter_addresses = list(job["specs"])
    size, goal = job["range"], job["goal"]
    a = job["start"]
    while a <= goal:
        t0 = time.perf_counter()
        end = min(goal, a + size - 1)
        try:
            logs = call("eth_getLogs", [{"fromBlock": hex(a), "toBlock": hex(end), "address": filter_addresses}])
        except _RangeTooLarge:
            if end == a:
                raise
            size = max(1, (end - a + 1) // 2)
            continue
        logs = [lg for lg in logs if not lg.get("removed")]
        hexnums = {lg["blockNumber"] for lg in logs}
        numbers = sorted({a, end, *(int(h, 16) for h in hexnums)})
        replies = post(
            [
                {"jsonrpc": "2.0", "id": i, "method": "eth_getBlockByNumber", "params": [hex(n), False]}
                for i, n in enumerate(numbers)
            ]
        )
        by_id = {r.get("id"): r for r in replies}
        headers: list[tuple[int, str, str, int]] = []
        hashes: dict[int, str] = {}
        times: dict[int, int] = {}
        for i, n in enumerate(numbers):
            raw = by_id[i].get("result")
            if raw is None:
                raise ReorgDetected(f"block {n} is no longer on the chain")
            ts = int(raw["timestamp"], 16)
            headers.append((n, raw["hash"], raw["parentHash"], ts))
            hashes[n] = raw["hash"]
            times[n] = ts
        tables: dict[str, list[Values]] = {}
        blocks: set[int] = set()
        other: list[Log] = []
        block_of = {h: int(h, 16) for h in hexnums}
        for log in logs:
            block = block_of[log["blockNumber"]]
            if log["blockHash"] != hashes[block]:
                raise ReorgDetected(f"block {block} changed while range {a}..{end} was read")
            by_topic = specs.get(log["address"].lower())
            topics = log["topics"]
            if by_topic is None or not topics:
                continue
            spec = by_topic.get(topics[0].lower())
            if spec is None:
                continue
            table, fn = spec
            if fn is None:
                other.append(log)
                continue
            blocks.add(block)
            rows = tables.get(table)
            if rows is None:
                rows = tables[table] = []
            rows.append(fn(log, block, times[block]))
        size = _adapt(end - a + 1, len(logs), job["target_logs"], job["max_range"])
        yield ("range", a, end, len(logs), headers, tables, blocks, other, size, time.perf_counter() - t0)
        a = end + 1
    yield ("done",)


def _adapt(size: int, logs: int, target: int, max_range: int) -> int:
    """The next range size: aim at ``target`` logs, change by 4x at most (4x up after an empty range)."""
    new = size * 4 if logs == 0 else max(size // 4, min(size * 4, size * target // logs))
    return max(1, min(max_range, new))
