"""Bulk inserts on the node's hot paths (ingest batches, the access journal) without SQLAlchemy's per-row work,
and inserts that skip rows already present, on both databases.

``fast_insert(conn, table, rows)`` sends the same SQL with the same bound values as
``conn.execute(table.insert(), rows)``, minus Core's per-row, per-column processing (building a
compiled-parameter dict for each of 500 rows x 21 columns was half of an ingest batch's commit). Each column's
own bind processor (JSON, DateTime, LargeBinary for this dialect) still adapts its value, so what reaches the
driver is exactly what Core would send; a value shared by every row (``now``) is adapted once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

#: (dialect, driver, table, columns) -> (SQL, bind names in placeholder order, their processors, positional?)
_plans: dict[tuple[str, str, str, tuple[str, ...]], tuple[str, list[str], list[Any], bool]] = {}


def fast_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` inside ``conn``'s transaction."""
    if not rows:
        return
    dialect = conn.dialect
    keys = tuple(rows[0])
    plan_key = (dialect.name, dialect.driver, table.name, keys)
    plan = _plans.get(plan_key)
    if plan is None:
        compiled = table.insert().compile(dialect=dialect, column_keys=list(keys))
        # positiontup names the binds in placeholder order (qmark/format); named styles take dicts.
        names = list(compiled.positiontup) if compiled.positional and compiled.positiontup else list(keys)
        procs = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in names]
        plan = _plans[plan_key] = (compiled.string, names, procs, bool(compiled.positional))
    sql, names, procs, positional = plan
    first = rows[0]
    # Columns whose value is the very same object in every row (timestamps of the batch): adapt once.
    shared: dict[int, Any] = {}
    for j, (k, proc) in enumerate(zip(names, procs, strict=True)):
        v = first[k]
        if proc is not None and all(r[k] is v for r in rows):
            shared[j] = proc(v)
    adapted: list[Any] = []
    for r in rows:
        values = [
            shared[j] if j in shared else (r[k] if proc is None else proc(r[k]))
            for j, (k, proc) in enumerate(zip(names, procs, strict=True))
        ]
        adapted.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
    conn.exec_driver_sql(sql, adapted)


def insert_ignoring_conflicts(
    conn: Connection | Session, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` on SQLite and PostgreSQL: for rows that may already be
    there (concurrent ingests adding the same patient; a nonce re-sent after a commit whose outcome was lost)."""
    if not rows:
        return
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).on_conflict_do_nothing(index_elements=keys), rows)


__all__ = ["fast_insert", "insert_ignoring_conflicts"]
