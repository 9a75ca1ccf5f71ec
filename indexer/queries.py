"""Read API over the index, for the node's HTTP API, the clients and the CLI.

All lists are newest first. Paginated queries return a :class:`Page` whose ``next_cursor`` is an opaque
string: pass it back to get the rows strictly after the last one returned. Cursors are keyset positions,
not offsets, so pages stay complete and free of duplicates while new blocks are indexed.

Addresses and ids are accepted in any hex case (an :class:`~medledger.addresses.Address` is one) and returned
as :class:`~medledger.addresses.Address` (checksummed; made from the stored lowercase hex by the cached
:func:`~medledger.addresses.eip55`, so rows repeating an address cost a dictionary hit) or lowercase (ids).
Times are Unix seconds; "now" means the time of the last indexed block, the chain's view of the present.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Engine,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)

from indexer.errors import BadQuery
from indexer.models import (
    EVENT_TABLES,
    AccessEntry,
    Block,
    BreakGlassWindow,
    ConsentGrant,
    Cursor,
    MemberEvent,
    PatientKey,
    Record,
)
from medledger.addresses import Address, eip55
from medledger.vocabulary import AuthKind, Purpose, RecordClass, RecordStatus, Role

T = TypeVar("T")

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_LIMIT = 1000

_records = Record.__table__
_grants = ConsentGrant.__table__
_windows = BreakGlassWindow.__table__
_accesses = AccessEntry.__table__
_cursor = Cursor.__table__


def _address(value: str, what: str = "address") -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise BadQuery(f"{what} must be 0x followed by 40 hex digits, got {value!r}")
    return value.lower()


def _bytes32(value: str, what: str) -> str:
    if not isinstance(value, str) or not _BYTES32.match(value):
        raise BadQuery(f"{what} must be 0x followed by 64 hex digits, got {value!r}")
    return value.lower()


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be 1..{MAX_LIMIT}, got {limit}")
    return limit


def _window(since: int | None, until: int | None) -> None:
    for name, v in (("since", since), ("until", until)):
        if v is not None and v < 0:
            raise BadQuery(f"{name} must be a Unix time ≥ 0, got {v}")
    if since is not None and until is not None and since > until:
        raise BadQuery(f"since ({since}) is after until ({until})")


def encode_cursor(kind: str, key: Sequence[int]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, n: int) -> tuple[int, ...]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadQuery(f"invalid {kind} cursor {cursor!r}") from None
    if (
        not isinstance(raw, list)
        or len(raw) != n + 1
        or raw[0] != kind
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw[1:])
    ):
        raise BadQuery(f"invalid {kind} cursor {cursor!r}")
    return tuple(raw[1:])


#: A log index past every log of a block: (block, _AFTER_EVERY_LOG) is the state after the whole block.
_AFTER_EVERY_LOG = 2**31 - 1


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class TimelineEntry:
    record_id: str
    patient: Address
    custodian: Address
    commitment: str
    record_class: int
    clinical_time: int
    #: Sort time: the clinical time, or the anchoring block's time if none was given.
    event_time: int
    block_number: int
    log_index: int
    tx_hash: str
    status: RecordStatus
    superseded_by: str | None

    @property
    def record_class_name(self) -> str:
        return RecordClass.label(self.record_class)


@dataclass(frozen=True)
class GrantView:
    grant_id: int
    patient: Address
    grantee: Address
    classes: int
    purpose: int
    valid_from: int
    valid_until: int
    replaces_grant_id: int
    relayer: Address | None
    block_number: int
    log_index: int
    granted_at: int
    revoked_block: int | None
    revoked_at: int | None
    replaced: bool | None

    def covers(self, record_class: int) -> bool:
        return bool(self.classes >> record_class & 1)

    @property
    def class_names(self) -> list[str]:
        return [c.name.lower() for c in RecordClass if self.classes >> int(c) & 1]


@dataclass(frozen=True)
class BreakGlassView:
    break_glass_id: int
    patient: Address
    accessor: Address
    reason_hash: str
    opened_at: int
    expires_at: int
    closed_at: int | None
    block_number: int
    log_index: int

    @property
    def ends_at(self) -> int:
        """Last second the window was (or will be) open: closing early ends it the second before."""
        return min(self.expires_at, self.closed_at - 1) if self.closed_at is not None else self.expires_at


@dataclass(frozen=True)
class AccessView:
    patient: Address
    accessor: Address
    record_id: str
    custodian: Address
    purpose: int
    auth_kind: int
    auth_id: int
    staff_ref: str
    sequence: int
    block_number: int
    log_index: int
    block_time: int
    tx_hash: str
    #: The block the custodian decided the access at (0: unknown); consent is judged there.
    decided_block: int = 0


@dataclass(frozen=True)
class AccessAuthorization:
    """Whether the authorization an access names was valid at the access's block, and why not if not."""

    access: AccessView
    valid: bool
    reason: str
    grant: GrantView | None = None
    break_glass: BreakGlassView | None = None


@dataclass(frozen=True)
class MemberView:
    account: Address
    roles: int
    name: str
    endpoint: str
    encryption_key: str
    active: bool
    admitted_block: int

    @property
    def role_names(self) -> list[str]:
        return [r.name.lower() for r in Role if r.name and self.roles & int(r)]


@dataclass(frozen=True)
class IndexStatus:
    chain_id: int | None
    start_block: int | None
    indexed_block: int | None
    indexed_block_hash: str | None
    indexed_block_time: int | None
    counts: dict[str, int]


def _cs(addr: str | None) -> Address | None:
    return eip55(addr) if addr else None


#: The records columns a TimelineEntry is made of, in its field order: rows are unpacked by position (reading
#: 12 columns by name cost ~12 µs a row, a quarter of a timeline page's time on PostgreSQL).
_ENTRY_COLUMNS = (
    _records.c.record_id,
    _records.c.patient,
    _records.c.custodian,
    _records.c.commitment,
    _records.c.record_class,
    _records.c.clinical_time,
    _records.c.event_time,
    _records.c.block_number,
    _records.c.log_index,
    _records.c.tx_hash,
    _records.c.status,
    _records.c.superseded_by,
)
_STATUSES = {int(s): s for s in RecordStatus}


@functools.cache
def _timeline_statement(classes: bool, custodian: bool, since: bool, until: bool, cursor: bool) -> Select[Any]:
    """The timeline query for one combination of filters, with bound parameters (built once: constructing and
    cache-keying the statement cost more than PostgreSQL's time to answer it)."""
    r = _records.c
    conds: list[ColumnElement[bool]] = [r.patient == bindparam("patient")]
    if classes:
        conds.append(r.record_class.in_(bindparam("classes", expanding=True)))
    if custodian:
        conds.append(r.custodian == bindparam("custodian"))
    if since:
        conds.append(r.event_time >= bindparam("since"))
    if until:
        conds.append(r.event_time <= bindparam("until"))
    if cursor:
        key = tuple_(bindparam("c_time", type_=BigInteger), bindparam("c_block", type_=BigInteger),
                     bindparam("c_log", type_=Integer))  # fmt: skip
        conds.append(tuple_(r.event_time, r.block_number, r.log_index) < key)
    return (
        select(*_ENTRY_COLUMNS)
        .where(and_(*conds))
        .order_by(r.event_time.desc(), r.block_number.desc(), r.log_index.desc())
        .limit(bindparam("limit", type_=Integer))
    )


def _entry(r: Row[Any]) -> TimelineEntry:
    rid, patient, custodian, commitment, cls, clinical, event, block, log, tx, status, superseded = r
    return TimelineEntry(
        rid, eip55(patient), eip55(custodian), commitment, cls, clinical, event, block, log, tx, _STATUSES[status],
        superseded,
    )  # fmt: skip


def _grant(r: Row[Any]) -> GrantView:
    return GrantView(
        r.grant_id,
        eip55(r.patient),
        eip55(r.grantee),
        int(r.classes),
        r.purpose,
        r.valid_from,
        r.valid_until,
        r.replaces_grant_id,
        _cs(r.relayer),
        r.block_number,
        r.log_index,
        r.block_time,
        r.revoked_block,
        r.revoked_time,
        r.replaced,
    )


def _window_view(r: Row[Any]) -> BreakGlassView:
    return BreakGlassView(
        r.break_glass_id,
        eip55(r.patient),
        eip55(r.accessor),
        r.reason_hash,
        r.opened_at,
        r.expires_at,
        r.closed_time,
        r.block_number,
        r.log_index,
    )


def _access(r: Row[Any]) -> AccessView:
    return AccessView(
        eip55(r.patient),
        eip55(r.accessor),
        r.record_id,
        eip55(r.custodian),
        r.purpose,
        r.auth_kind,
        int(r.auth_id),
        r.staff_ref,
        int(r.sequence),
        r.block_number,
        r.log_index,
        r.block_time,
        r.tx_hash,
        int(r.decided_block or 0),
    )


class IndexQueries:
    """Typed queries over an indexer database (read-only; safe to share across threads)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _now(self) -> int:
        with self.engine.connect() as conn:
            t = conn.execute(select(_cursor.c.block_time).where(_cursor.c.id == 1)).scalar_one_or_none()
        return int(t or 0)

    # ------------------------------------------------------------------ timeline

    def timeline(
        self,
        patient: str,
        *,
        classes: Sequence[int] | None = None,
        custodian: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[TimelineEntry]:
        """A patient's records across custodians, newest first by clinical time (anchoring time if none),
        optionally only of ``classes``, from ``custodian``, with ``since ≤ time ≤ until``."""
        n = _limit(limit)
        params: dict[str, Any] = {"patient": _address(patient, "patient"), "limit": n + 1}
        if classes is not None:
            if not classes or not all(isinstance(c, int) and 1 <= c <= 255 for c in classes):
                raise BadQuery(f"classes must be a non-empty list of class codes 1..255, got {list(classes)!r}")
            params["classes"] = sorted(set(int(c) for c in classes))
        if custodian is not None:
            params["custodian"] = _address(custodian, "custodian")
        _window(since, until)
        if since is not None:
            params["since"] = since
        if until is not None:
            params["until"] = until
        if cursor is not None:
            params["c_time"], params["c_block"], params["c_log"] = decode_cursor("timeline", cursor, 3)
        stmt = _timeline_statement(
            classes is not None, custodian is not None, since is not None, until is not None, cursor is not None
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt, params).all()
        items = [_entry(x) for x in rows[:n]]
        nxt = None
        if len(rows) > n:
            last = items[-1]
            nxt = encode_cursor("timeline", (last.event_time, last.block_number, last.log_index))
        return Page(items, nxt)

    def record(self, record_id: str) -> TimelineEntry | None:
        rid = _bytes32(record_id, "record id")
        with self.engine.connect() as conn:
            row = conn.execute(select(*_ENTRY_COLUMNS).where(_records.c.record_id == rid)).one_or_none()
        return _entry(row) if row is not None else None

    # ------------------------------------------------------------------ consent

    def _active_conds(self, at_time: int) -> list[ColumnElement[bool]]:
        g = _grants.c
        return [
            g.block_time <= at_time,
            g.valid_from <= at_time,
            g.valid_until >= at_time,
            or_(g.revoked_time.is_(None), g.revoked_time > at_time),
        ]

    def active_grants(self, patient: str, *, at_time: int | None = None) -> list[GrantView]:
        """Grants of ``patient`` in force at ``at_time`` (default: the last indexed block's time)."""
        t = self._now() if at_time is None else at_time
        g = _grants.c
        stmt = (
            select(_grants)
            .where(g.patient == _address(patient, "patient"), *self._active_conds(t))
            .order_by(g.block_number.desc(), g.log_index.desc())
        )
        with self.engine.connect() as conn:
            return [_grant(x) for x in conn.execute(stmt)]

    def grants_held(self, grantee: str, *, at_time: int | None = None, active_only: bool = True) -> list[GrantView]:
        """Grants naming ``grantee``: those in force at ``at_time`` (default now), or all if not ``active_only``."""
        g = _grants.c
        conds: list[ColumnElement[bool]] = [g.grantee == _address(grantee, "grantee")]
        if active_only:
            conds += self._active_conds(self._now() if at_time is None else at_time)
        stmt = select(_grants).where(*conds).order_by(g.block_number.desc(), g.log_index.desc())
        with self.engine.connect() as conn:
            return [_grant(x) for x in conn.execute(stmt)]

    def grant_history(self, patient: str) -> list[GrantView]:
        """Every grant the patient ever made, with how it ended."""
        g = _grants.c
        stmt = (
            select(_grants)
            .where(g.patient == _address(patient, "patient"))
            .order_by(g.block_number.desc(), g.log_index.desc())
        )
        with self.engine.connect() as conn:
            return [_grant(x) for x in conn.execute(stmt)]

    def grant(self, grant_id: int) -> GrantView | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_grants).where(_grants.c.grant_id == grant_id)).one_or_none()
        return _grant(row) if row is not None else None

    def consent_at(
        self,
        patient: str,
        grantee: str,
        record_class: int,
        purpose: int,
        *,
        block: int,
        log_index: int | None = None,
        block_time: int | None = None,
    ) -> GrantView | None:
        """The grant that let ``grantee`` read ``patient``'s ``record_class`` records for ``purpose`` at
        ``block`` (before its log ``log_index`` if given, else after the whole block), or None.

        The grant's validity window is checked against ``block_time``; if not given it is looked up among
        indexed blocks (every block with an event is), else :class:`BadQuery` is raised."""
        pos = (block, log_index if log_index is not None else 2**31 - 1)
        g = _grants.c
        stmt = (
            select(_grants)
            .where(
                g.patient == _address(patient, "patient"),
                g.grantee == _address(grantee, "grantee"),
                g.purpose == purpose,
                tuple_(g.block_number, g.log_index) < tuple_(*pos),
                or_(g.revoked_block.is_(None), tuple_(g.revoked_block, g.revoked_log_index) > tuple_(*pos)),
            )
            .order_by(g.block_number.desc(), g.log_index.desc())
        )
        b = Block.__table__
        with self.engine.connect() as conn:
            if block_time is None:
                block_time = conn.execute(select(b.c.timestamp).where(b.c.number == block)).scalar_one_or_none()
                if block_time is None:
                    raise BadQuery(f"block {block} has no indexed time: pass block_time")
            rows = conn.execute(stmt).all()
        for row in rows:
            gv = _grant(row)
            if gv.valid_from <= block_time <= gv.valid_until and gv.covers(record_class):
                return gv
        return None

    def consent_state(self, patient: str, accessor: str) -> tuple[list[GrantView], list[BreakGlassView]]:
        """Everything that can authorize ``accessor`` on ``patient`` now or later: grants not revoked or replaced
        (any validity window) and break-glass windows not closed (expired ones included: callers compare times).
        One round trip; the node's consent decisions cache this per indexed block."""
        g, w = _grants.c, _windows.c
        p, a = _address(patient, "patient"), _address(accessor, "accessor")
        with self.engine.connect() as conn:
            grants = conn.execute(
                select(_grants)
                .where(g.patient == p, g.grantee == a, g.revoked_block.is_(None))
                .order_by(g.block_number.desc(), g.log_index.desc())
            ).all()
            windows = conn.execute(
                select(_windows)
                .where(w.patient == p, w.accessor == a, w.closed_block.is_(None))
                .order_by(w.block_number.desc(), w.log_index.desc())
            ).all()
        return [_grant(x) for x in grants], [_window_view(x) for x in windows]

    def break_glass_windows(
        self, *, patient: str | None = None, accessor: str | None = None, open_at: int | None = None
    ) -> list[BreakGlassView]:
        """Break-glass windows on ``patient`` and/or by ``accessor``; with ``open_at``, only those open then."""
        w = _windows.c
        conds: list[ColumnElement[bool]] = []
        if patient is not None:
            conds.append(w.patient == _address(patient, "patient"))
        if accessor is not None:
            conds.append(w.accessor == _address(accessor, "accessor"))
        if open_at is not None:
            conds += [
                w.opened_at <= open_at,
                w.expires_at >= open_at,
                or_(w.closed_time.is_(None), w.closed_time > open_at),
            ]
        stmt = select(_windows).where(*conds).order_by(w.block_number.desc(), w.log_index.desc())
        with self.engine.connect() as conn:
            return [_window_view(x) for x in conn.execute(stmt)]

    def grant_for_access(self, block_number: int, log_index: int) -> AccessAuthorization:
        """Check the access logged at (``block_number``, ``log_index``) against the consent state it was decided
        on (the end of its ``decided_block``; its own position if that is 0): the grant or break-glass window
        it names must exist, match patient/accessor/purpose/class, have begun before it and not have ended
        (revoked, replaced, closed) by then, and the access's block time must be inside its validity window."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_accesses).where(_accesses.c.block_number == block_number, _accesses.c.log_index == log_index)
            ).one_or_none()
            if row is None:
                raise BadQuery(f"no access logged at block {block_number} log {log_index}")
            access = _access(row)
            rec = conn.execute(select(_records).where(_records.c.record_id == row.record_id)).one_or_none()
            # Consent is judged where the custodian decided: after every log of the block it cites (the state it
            # read), so a revocation mined between the release and its batched logging does not count against
            # it; an access without a decision block is judged at its own position.
            pos = (access.decided_block, _AFTER_EVERY_LOG) if access.decided_block else (block_number, log_index)
            kind = row.auth_kind
            if kind == AuthKind.GRANT:
                g = conn.execute(select(_grants).where(_grants.c.grant_id == access.auth_id)).one_or_none()
                if g is None:
                    return AccessAuthorization(access, False, "unknown grant")
                grant = _grant(g)
                reason = self._grant_problem(row, rec, g, pos)
                return AccessAuthorization(access, reason is None, reason or "ok", grant=grant)
            if kind == AuthKind.BREAK_GLASS:
                w = conn.execute(select(_windows).where(_windows.c.break_glass_id == access.auth_id)).one_or_none()
                if w is None:
                    return AccessAuthorization(access, False, "unknown break-glass window")
                view = _window_view(w)
                reason = self._window_problem(row, w, pos)
                return AccessAuthorization(access, reason is None, reason or "ok", break_glass=view)
        if kind == AuthKind.PATIENT:
            ok = row.accessor == row.patient
            return AccessAuthorization(access, ok, "ok" if ok else "accessor is not the patient")
        if kind == AuthKind.CUSTODIAN:
            ok = row.accessor == row.custodian or (rec is not None and row.accessor == rec.custodian)
            return AccessAuthorization(access, ok, "ok" if ok else "accessor is not the record's custodian")
        return AccessAuthorization(access, False, f"unknown authorization kind {kind}")

    @staticmethod
    def _grant_problem(a: Row[Any], rec: Row[Any] | None, g: Row[Any], pos: tuple[int, int]) -> str | None:
        if g.patient != a.patient:
            return "grant belongs to another patient"
        if g.grantee != a.accessor:
            return "grant names another grantee"
        if g.purpose != a.purpose:
            return f"grant is for purpose {Purpose.label(g.purpose)}, access for {Purpose.label(a.purpose)}"
        if (g.block_number, g.log_index) > pos:
            return "grant was made after the access"
        if g.revoked_block is not None and (g.revoked_block, g.revoked_log_index) < pos:
            return "grant was replaced before the access" if g.replaced else "grant was revoked before the access"
        if a.block_time < g.valid_from:
            return "grant was not yet valid"
        if a.block_time > g.valid_until:
            return "grant had expired"
        if rec is None:
            return "accessed record is not anchored"
        if not int(g.classes) >> rec.record_class & 1:
            return f"grant does not cover record class {rec.record_class}"
        return None

    @staticmethod
    def _window_problem(a: Row[Any], w: Row[Any], pos: tuple[int, int]) -> str | None:
        if w.patient != a.patient:
            return "break-glass window is on another patient"
        if w.accessor != a.accessor:
            return "break-glass window belongs to another accessor"
        if (w.block_number, w.log_index) > pos:
            return "break-glass window was opened after the access"
        # Closing sets the window's end to the second before the closing block, so nothing in that block or
        # later is covered (an access earlier in the same block is reported as after the closure too).
        if w.closed_block is not None and w.closed_block <= pos[0]:
            return "break-glass window was closed before the access"
        if a.block_time > w.expires_at:
            return "break-glass window had expired"
        return None

    # ------------------------------------------------------------------ access history

    def accesses(
        self,
        *,
        patient: str | None = None,
        accessor: str | None = None,
        record_id: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AccessView]:
        """Logged accesses, newest first, filtered by any of patient, accessor, record and time window."""
        a = _accesses.c
        conds: list[ColumnElement[bool]] = []
        if patient is not None:
            conds.append(a.patient == _address(patient, "patient"))
        if accessor is not None:
            conds.append(a.accessor == _address(accessor, "accessor"))
        if record_id is not None:
            conds.append(a.record_id == _bytes32(record_id, "record id"))
        _window(since, until)
        if since is not None:
            conds.append(a.block_time >= since)
        if until is not None:
            conds.append(a.block_time <= until)
        if cursor is not None:
            key = decode_cursor("accesses", cursor, 2)
            conds.append(tuple_(a.block_number, a.log_index) < tuple_(*key))
        n = _limit(limit)
        stmt = select(_accesses).where(*conds).order_by(a.block_number.desc(), a.log_index.desc()).limit(n + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        items = [_access(x) for x in rows[:n]]
        nxt = encode_cursor("accesses", (items[-1].block_number, items[-1].log_index)) if len(rows) > n else None
        return Page(items, nxt)

    # ------------------------------------------------------------------ statistics

    def counts(
        self,
        by: Literal["class", "custodian", "day"],
        *,
        patient: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> dict[str, int]:
        """Number of anchored records per record class (name), custodian (address) or day (UTC, ISO date)."""
        r = _records.c
        key: ColumnElement[Any]
        if by == "class":
            key = r.record_class
        elif by == "custodian":
            key = r.custodian
        elif by == "day":
            key = r.event_time // 86400
        else:
            raise BadQuery(f"counts by must be class, custodian or day, got {by!r}")
        conds: list[ColumnElement[bool]] = []
        if patient is not None:
            conds.append(r.patient == _address(patient, "patient"))
        _window(since, until)
        if since is not None:
            conds.append(r.event_time >= since)
        if until is not None:
            conds.append(r.event_time <= until)
        stmt = select(key.label("k"), func.count().label("n")).where(*conds).group_by(key).order_by(key)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        out: dict[str, int] = {}
        for k, n in rows:
            if by == "class":
                label = RecordClass.label(k)
            elif by == "custodian":
                label = eip55(k)
            else:
                label = dt.datetime.fromtimestamp(int(k) * 86400, dt.UTC).date().isoformat()
            out[label] = int(n)
        return out

    # ------------------------------------------------------------------ membership

    def members(self, *, include_removed: bool = False) -> list[MemberView]:
        """Consortium members as of the last indexed block, replayed from their events."""
        m = MemberEvent.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(m).order_by(m.c.block_number, m.c.log_index)).all()
        state: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r.kind == "admitted":
                state[r.account] = {
                    "roles": r.roles,
                    "name": r.name,
                    "endpoint": r.endpoint,
                    "encryption_key": r.encryption_key,
                    "active": True,
                    "admitted_block": r.block_number,
                }
            elif r.account in state:
                s = state[r.account]
                if r.kind == "removed":
                    s["active"] = False
                elif r.kind == "roles":
                    s["roles"] = r.roles
                elif r.kind == "profile":
                    s["endpoint"], s["encryption_key"] = r.endpoint, r.encryption_key
        return [MemberView(eip55(a), **s) for a, s in state.items() if include_removed or s["active"]]

    def patient_key(self, patient: str) -> str | None:
        """The patient's current registered encryption key (hex), or None."""
        k = PatientKey.__table__
        stmt = (
            select(k.c.encryption_key)
            .where(k.c.patient == _address(patient, "patient"))
            .order_by(k.c.block_number.desc(), k.c.log_index.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar_one_or_none()

    # ------------------------------------------------------------------ status

    def status(self) -> IndexStatus:
        """Where the index stands and how many rows each table holds."""
        with self.engine.connect() as conn:
            cur = conn.execute(select(_cursor).where(_cursor.c.id == 1)).one_or_none()
            counts = {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in EVENT_TABLES}
        if cur is None:
            return IndexStatus(None, None, None, None, None, counts)
        return IndexStatus(cur.chain_id, cur.start_block, cur.block_number, cur.block_hash, cur.block_time, counts)
