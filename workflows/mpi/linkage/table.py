"""Patient lists as the bootstrap commands read them: a UTF-8 CSV with a header, and a ``--columns`` mapping from
the matcher's fields to the list's columns (``id=MRN,family=姓,given=名,birth_date=DOB,address=street+city``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workflows.mpi.errors import ColumnsInvalid, CsvUnreadable
from workflows.mpi.linkage.normalize import FIELD_NAMES

# A patient list with a field this long is not a patient list; csv's own limit (128 KiB) would be the only bound.
_MAX_FIELD = 4096


@dataclass(frozen=True)
class ColumnMap:
    """Field → source columns (several only for ``address``, joined with a space in order)."""

    columns: dict[str, tuple[str, ...]]

    @classmethod
    def parse(cls, spec: str) -> ColumnMap:
        columns: dict[str, tuple[str, ...]] = {}
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            name, sep, source = item.partition("=")
            name, source = name.strip(), source.strip()
            if not sep or not source:
                raise ColumnsInvalid(f"--columns: {item!r} is not FIELD=COLUMN")
            if name not in FIELD_NAMES:
                raise ColumnsInvalid(f"--columns: unknown field {name!r} (known: {', '.join(FIELD_NAMES)})")
            if name in columns:
                raise ColumnsInvalid(f"--columns: {name!r} is mapped twice")
            parts = tuple(p.strip() for p in source.split("+"))
            if any(not p for p in parts) or (len(parts) > 1 and name != "address"):
                raise ColumnsInvalid(f"--columns: {item!r}: only address may join columns with +")
            columns[name] = parts
        if "id" not in columns:
            raise ColumnsInvalid("--columns must map id (the list's record identifier)")
        if not {"family", "given", "name"} & columns.keys():
            raise ColumnsInvalid("--columns must map a name (family and/or given, or name)")
        return cls(columns)

    def check(self, header: Sequence[str], where: str) -> None:
        missing = [c for cols in self.columns.values() for c in cols if c not in header]
        if missing:
            raise ColumnsInvalid(f"{where} has no column {', '.join(map(repr, missing))} (it has: {', '.join(header)})")

    def apply(self, rows: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
        return [
            {f: " ".join((row.get(c) or "").strip() for c in cols).strip() for f, cols in self.columns.items()}
            for row in rows
        ]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a UTF-8 CSV (a BOM is allowed); one-line errors for what cannot be read."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            if not header:
                raise CsvUnreadable(f"{path}: empty file (a header row is needed)")
            rows = []
            for row in reader:
                if None in row:
                    raise CsvUnreadable(f"{path}, line {reader.line_num}: more fields than the header has")
                if any(v is not None and len(v) > _MAX_FIELD for v in row.values()):
                    raise CsvUnreadable(f"{path}, line {reader.line_num}: a field longer than {_MAX_FIELD} characters")
                rows.append({k: v or "" for k, v in row.items()})
    except FileNotFoundError:
        raise CsvUnreadable(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CsvUnreadable(f"{path}: is a directory") from None
    except PermissionError:
        raise CsvUnreadable(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise CsvUnreadable(f"{path}: not UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise CsvUnreadable(f"{path}: {exc}") from None
    return header, rows


def load(path: Path, columns: ColumnMap) -> list[dict[str, str]]:
    """A patient list's rows as mapped fields; ids must be present and unique."""
    header, rows = read_csv(path)
    columns.check(header, str(path))
    mapped = columns.apply(rows)
    seen: set[str] = set()
    for line, row in enumerate(mapped, start=2):
        rid = row["id"]
        if not rid:
            raise ColumnsInvalid(f"{path}, line {line}: the id column is empty")
        if rid in seen:
            raise ColumnsInvalid(f"{path}, line {line}: id {rid!r} appears twice")
        seen.add(rid)
    return mapped
