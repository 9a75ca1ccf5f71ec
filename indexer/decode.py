"""Turn MedLedger logs (as ``eth_getLogs`` returns them) into table rows.

Every event of RecordRegistry, ConsentRegistry and AccessLog has only static fields, so their decoders slice
the hex strings of topics and data directly: the generic eth_abi path (``AbiEvent.decode``) costs ~4x more
per log than the node takes to deliver it, and these events are nearly all of the volume. Consortium events
carry strings and bytes; they are rare and go through eth_abi. tests/indexer/test_decode.py proves both
paths agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from indexer.errors import BadLog
from medledger.chain.abi import AbiEvent, load_artifact
from medledger.vocabulary import RecordStatus

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
    "events": ("contract", "name"),
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
    """One range's rows: per event table (``events`` included) a list of tuples in ``KEY + COLUMNS`` order,
    and the blocks that have events."""

    tables: dict[str, list[Values]]
    blocks: set[int]


class LogDecoder:
    """Decodes logs of one deployment (contract addresses) into rows per table."""

    def __init__(self, addresses: dict[str, str]) -> None:
        specs = event_specs()
        self._by_address = {addr.lower(): specs[name] for name, addr in addresses.items()}

    def decode(self, logs: list[Log], block_times: dict[int, int]) -> Decoded:
        """Rows per table (plus ``events`` for every log). Logs of unknown events (a newer contract version)
        are kept in ``events`` only; logs of other addresses (a node ignoring the filter) are skipped."""
        events: list[Values] = []
        tables: dict[str, list[Values]] = {"events": events}
        blocks: set[int] = set()
        by_address = self._by_address
        # Per-range memo of the block number parse: a range has far fewer blocks than logs.
        numbers: dict[str, int] = {}
        for log in logs:
            specs = by_address.get(log["address"]) or by_address.get(log["address"].lower())
            if specs is None:
                continue
            hexnum = log["blockNumber"]
            block = numbers.get(hexnum)
            if block is None:
                block = numbers[hexnum] = int(hexnum, 16)
                blocks.add(block)
            topics = log["topics"]
            spec = (specs.get(topics[0]) or specs.get(topics[0].lower())) if topics else None
            if spec is None:
                events.append((block, int(log["logIndex"], 16), log["transactionHash"], "", ""))
                continue
            row = spec.decode(log, block, block_times[block])
            rows = tables.get(spec.table)
            if rows is None:
                rows = tables[spec.table] = []
            rows.append(row)
            events.append((block, row[1], row[2], spec.contract, spec.name))
        return Decoded(tables, blocks)
