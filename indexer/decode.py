"""Turn MedLedger logs (as ``eth_getLogs`` returns them) into table rows.

Every event of RecordRegistry, ConsentRegistry and AccessLog has only static fields, so their decoders slice
the hex strings of topics and data directly: the generic eth_abi path (``AbiEvent.decode``) costs ~4x more
per log than the node takes to deliver it, and these events are nearly all of the volume. Consortium events
carry strings and bytes; they are rare and go through eth_abi. tests/indexer/test_decode.py proves both
paths agree.

Decoders take all logs of one event in a range at once (:func:`group_logs` sorts them out): a loop per event
instead of a function call per log halved the decoding cost of a catch-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from indexer.errors import BadLog
from medledger.vocabulary import RecordStatus

if TYPE_CHECKING:
    from medledger.chain.abi import AbiEvent

# eth_utils and the ABI loader (eth_abi) are imported where used: the fetch worker process
# (indexer.fetch_worker) imports this module for the fast decoders only, and those imports were most of its
# start-up time.


class Log(msgspec.Struct, gc=False, frozen=True):
    """One entry of an ``eth_getLogs`` reply: the fields the indexer reads (others are skipped when parsing).

    Parsed straight from the reply's bytes (:func:`parse_logs`): ~2x faster than ``json.loads`` into dicts,
    and, being untracked by the garbage collector, free of its passes over a range's 100k+ objects."""

    address: str
    topics: list[str]
    data: str
    blockNumber: str
    blockHash: str
    transactionHash: str
    logIndex: str
    removed: bool = False


class _LogsReply(msgspec.Struct, gc=False):
    result: list[Log] | None = None
    error: dict[str, Any] | None = None


_LOGS_REPLY = msgspec.json.Decoder(_LogsReply)


class LogsReplyError(Exception):
    """The node answered ``eth_getLogs`` with a JSON-RPC error (``message`` as given) or an unreadable reply."""


def parse_logs(body: bytes) -> list[Log]:
    """The logs of an ``eth_getLogs`` JSON-RPC reply (removed ones left out); :class:`LogsReplyError` for an
    error reply or one that is not a logs reply."""
    try:
        reply = _LOGS_REPLY.decode(body)
    except msgspec.ValidationError as exc:
        raise LogsReplyError(f"not an eth_getLogs reply: {exc}") from None
    except msgspec.DecodeError as exc:
        raise LogsReplyError(f"malformed JSON-RPC reply: {exc}") from None
    if reply.error is not None or reply.result is None:
        raise LogsReplyError(str((reply.error or {}).get("message", "reply without a result")))
    return [log for log in reply.result if not log.removed]


def logs_from_json(values: list[dict[str, Any]]) -> list[Log]:
    """:class:`Log` values from already-parsed JSON (removed ones left out); :class:`BadLog` if malformed."""
    try:
        logs = msgspec.convert(values, list[Log])
    except msgspec.ValidationError as exc:
        raise BadLog(f"malformed eth_getLogs entry: {exc}") from None
    return [log for log in logs if not log.removed]


Row = dict[str, Any]
#: One table row as inserted: ``KEY`` columns first, then the table's columns in ``COLUMNS`` order.
Values = tuple[Any, ...]
#: The block number of each log as the node wrote it (``"0x1a"``) -> (block number, block time).
BlockInfo = dict[str, tuple[int, int]]
#: (logs of one event, their blocks) -> one row of the event's table per log, in order
Decoder = Callable[[list[Log], BlockInfo], list[Values]]
#: A log that passed its shape check: (log, topics, lowercase data, block number, block time).
_Checked = tuple[Log, list[str], str, int, int]

_ACTIVE = int(RecordStatus.ACTIVE)

#: Columns every decoded row starts with: the log's position and transaction.
KEY = ("block_number", "log_index", "tx_hash")

#: Columns of each event table after ``KEY``, in the order the decoders emit them. Rows are plain tuples (no
#: per-log dicts or objects): the writer hands them to the driver's executemany as they are. Columns a later
#: event sets (:data:`STATUS_COLUMNS`) are not among them: they start NULL, and binding a None costs Python's
#: sqlite3 module ~1 us (a failed adapter lookup), as much as the rest of a records row's values together.
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
    ),
    "consent_revocations": ("grant_id", "patient", "grantee", "replaced", "relayer", "block_time"),
    "break_glass": (
        "break_glass_id",
        "patient",
        "accessor",
        "reason_hash",
        "opened_at",
        "expires_at",
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
        "decided_block",
        "block_time",
    ),
}

#: Columns of event tables that later events set (a record's amendment or erasure, a grant's revocation, a
#: break-glass window's closure); NULL when the row is inserted, reset to NULL by a reorg rollback.
STATUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "records": ("superseded_by", "status_block"),
    "consent_grants": ("revoked_block", "revoked_log_index", "revoked_time", "replaced"),
    "break_glass": ("closed_block", "closed_time"),
}


def column(table: str, name: str) -> int:
    """Position of column ``name`` in the rows of ``table`` (``KEY`` included)."""
    return (*KEY, *COLUMNS[table]).index(name)


def topic0(signature: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=signature).hex()


def _bad(log: Log, n_topics: int, n_words: int) -> BadLog:
    topics, data = log.topics, log.data
    return BadLog(
        f"log {log.transactionHash}#{int(log.logIndex, 16)} has {len(topics)} topics and "
        f"{(len(data) - 2) // 2} data bytes; expected {n_topics} and {32 * n_words}"
    )


# The decoders below slice fixed offsets of the hex strings: topic addresses are the last 40 digits of
# ``0x`` + 64, data word i is ``data[2 + 64 i : 66 + 64 i]`` (an address word: its last 40 digits). Hex is
# lowercased (nodes send lowercase, but the JSON-RPC spec does not promise it): data once per log, topics per
# field used.


def _checked(logs: list[Log], info: BlockInfo, n_topics: int, n_words: int) -> Iterator[_Checked]:
    """Each log with its topics, lowercased data, block number and block time, after checking its shape."""
    size = 2 + 64 * n_words
    for log in logs:
        t = log.topics
        d = log.data
        if len(t) != n_topics or len(d) != size:
            raise _bad(log, n_topics, n_words)
        block, block_time = info[log.blockNumber]
        yield log, t, d.lower(), block, block_time


def _record_anchored(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            "0x" + t[1][26:].lower(),
            "0x" + t[2][26:].lower(),
            t[3].lower(),
            "0x" + d[2:66],
            int(d[66:130], 16),
            (clinical := int(d[130:194], 16)),
            clinical or block_time,
            block_time,
            _ACTIVE,
        )
        for log, t, d, block, block_time in _checked(logs, info, 4, 3)
    ]


def _record_amended(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (block, int(log.logIndex, 16), log.transactionHash, t[1].lower(), t[2].lower(), "0x" + t[3][26:].lower())
        for log, t, _, block, _ in _checked(logs, info, 4, 0)
    ]


def _record_erased(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (block, int(log.logIndex, 16), log.transactionHash, t[1].lower(), "0x" + t[2][26:].lower(), "0x" + d[2:66])
        for log, t, d, block, _ in _checked(logs, info, 3, 1)
    ]


def _digest_anchored(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            int(t[1], 16),
            "0x" + t[2][26:].lower(),
            t[3].lower(),
            "0x" + d[2:66],
            int(d[66:130], 16),
            block_time,
        )
        for log, t, d, block, block_time in _checked(logs, info, 4, 2)
    ]


def _consent_granted(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            int(t[1], 16),
            "0x" + t[2][26:].lower(),
            "0x" + t[3][26:].lower(),
            str(int(d[2:66], 16)),
            int(d[66:130], 16),
            int(d[130:194], 16),
            int(d[194:258], 16),
            int(d[258:322], 16),
            "0x" + d[346:386],
            block_time,
        )
        for log, t, d, block, block_time in _checked(logs, info, 4, 6)
    ]


def _consent_revoked(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            int(t[1], 16),
            "0x" + t[2][26:].lower(),
            "0x" + t[3][26:].lower(),
            int(d[2:66], 16) != 0,
            "0x" + d[90:130],
            block_time,
        )
        for log, t, d, block, block_time in _checked(logs, info, 4, 2)
    ]


def _break_glass_opened(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            int(t[1], 16),
            "0x" + t[2][26:].lower(),
            "0x" + t[3][26:].lower(),
            "0x" + d[2:66],
            block_time,
            int(d[66:130], 16),
        )
        for log, t, d, block, block_time in _checked(logs, info, 4, 2)
    ]


def _break_glass_closed(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            int(t[1], 16),
            "0x" + t[2][26:].lower(),
            "0x" + t[3][26:].lower(),
            block_time,
        )
        for log, t, _, block, block_time in _checked(logs, info, 4, 0)
    ]


def _access_logged(logs: list[Log], info: BlockInfo) -> list[Values]:
    return [
        (
            block,
            int(log.logIndex, 16),
            log.transactionHash,
            "0x" + t[1][26:].lower(),
            "0x" + t[2][26:].lower(),
            t[3].lower(),
            "0x" + d[26:66],
            int(d[66:130], 16),
            int(d[130:194], 16),
            str(int(d[194:258], 16)),
            "0x" + d[258:322],
            str(int(d[322:386], 16)),
            int(d[386:450], 16),
            block_time,
        )
        for log, t, d, block, block_time in _checked(logs, info, 4, 7)
    ]


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return v.lower()
    return v


_MEMBER_KINDS = {
    "MemberAdmitted": "admitted",
    "MemberRemoved": "removed",
    "MemberRolesChanged": "roles",
    "MemberProfileUpdated": "profile",
}


def _generic(ev: AbiEvent, table: str) -> Decoder:
    """eth_abi decoding for the Consortium's events, shaped for ``table``."""
    columns = COLUMNS[table]

    def row(log: Log, info: BlockInfo) -> Values:
        try:
            args = ev.decode([bytes.fromhex(x[2:]) for x in log.topics], bytes.fromhex(log.data[2:]))
        except Exception as exc:  # eth_abi raises several unrelated types on malformed input
            raise BadLog(f"log {log.transactionHash} does not decode as {ev.name}: {exc}") from None
        args = {k: _jsonable(v) for k, v in args.items()}
        if table == "member_events":
            values = {
                "account": args["account"],
                "kind": _MEMBER_KINDS[ev.name],
                "roles": args.get("roles"),
                "name": args.get("name"),
                "endpoint": args.get("endpoint"),
                "encryption_key": args.get("encryptionKey"),
            }
        elif table == "patient_keys":
            values = {"patient": args["patient"], "encryption_key": args["encryptionKey"], "relayer": args["relayer"]}
        else:
            values = {"name": ev.name, "args": json.dumps(args, sort_keys=True)}
        key = (info[log.blockNumber][0], int(log.logIndex, 16), log.transactionHash)
        return key + tuple(values[c] for c in columns)

    def decode(logs: list[Log], info: BlockInfo) -> list[Values]:
        return [row(log, info) for log in logs]

    return decode


@dataclass(frozen=True)
class EventSpec:
    contract: str
    name: str
    table: str
    decode: Decoder

    def row(self, log: dict[str, Any], block_time: int) -> Row:
        """One log's decoded columns by name, without ``KEY`` (for tests and debugging; the writer uses
        tuples). Block number and hash are optional here."""
        full = {"address": "0x", "blockNumber": "0x0", "blockHash": "0x", **log}
        (values,) = self.decode(
            logs_from_json([full]), {full["blockNumber"]: (int(full["blockNumber"], 16), block_time)}
        )
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
_MEMBER_EVENTS = set(_MEMBER_KINDS)

CONTRACTS = ("Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog")


def fast_decoder(event: str) -> Decoder | None:
    """The hand-written decoder of ``event`` (by name), or None for events decoded with eth_abi."""
    fast = _FAST.get(event)
    return fast[1] if fast else None


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


def block_info(logs: list[Log], headers: dict[int, tuple[str, int]]) -> BlockInfo:
    """Each block number the logs name, parsed, with its time; ``headers`` maps block numbers to (hash, time).

    Raises :class:`indexer.errors.ReorgDetected` if a log names a block hash other than the header's: the
    chain changed between reading the logs and the headers."""
    from indexer.errors import ReorgDetected

    info: BlockInfo = {}
    for hexnum, block_hash in {(log.blockNumber, log.blockHash) for log in logs}:
        number = int(hexnum, 16)
        expected, block_time = headers[number]
        if block_hash.lower() != expected.lower():
            raise ReorgDetected(f"block {number} changed while its logs were read")
        info[hexnum] = (number, block_time)
    return info


def group_logs(logs: Iterable[Log], by_address: dict[str, dict[str, Any]]) -> dict[Any, list[Log]]:
    """Logs by what ``by_address[address][topic0]`` says about their event, in chain order within each group.
    Logs of unknown events (a newer contract version) and of other addresses (a node ignoring the filter)
    are left out."""
    groups: dict[Any, list[Log]] = {}
    for log in logs:
        address = log.address
        specs = by_address.get(address) or by_address.get(address.lower())
        topics = log.topics
        if specs is None or not topics:
            continue
        spec = specs.get(topics[0]) or specs.get(topics[0].lower())
        if spec is None:
            continue
        group = groups.get(spec)
        if group is None:
            groups[spec] = [log]
        else:
            group.append(log)
    return groups


def add_rows(tables: dict[str, list[Values]], blocks: set[int], table: str, rows: list[Values]) -> None:
    """Append decoded ``rows`` to ``tables[table]`` and note their blocks as having events."""
    mine = tables.get(table)
    if mine is None:
        tables[table] = rows
    else:
        mine.extend(rows)
    blocks.update({row[0] for row in rows})


class LogDecoder:
    """Decodes logs of one deployment (contract addresses) into rows per table."""

    def __init__(self, addresses: dict[str, str]) -> None:
        specs = event_specs()
        self._by_address = {addr.lower(): specs[name] for name, addr in addresses.items()}

    def specs_by_address(self) -> dict[str, dict[str, EventSpec]]:
        """``{lowercase address: {topic0: spec}}``."""
        return self._by_address

    def decode(self, logs: list[Log], info: BlockInfo) -> Decoded:
        """Rows per table (see :func:`group_logs` for the logs left out)."""
        decoded = Decoded({}, set())
        for spec, group in group_logs(logs, self._by_address).items():
            add_rows(decoded.tables, decoded.blocks, spec.table, spec.decode(group, info))
        return decoded
