"""Bulk ingest on every core: parse in worker processes while the main process encrypts, stores and commits.

Parsing (pure Python, ~120 µs per 4 KiB FHIR record) and the pipeline (~200 µs: encryption, blob writes,
one database transaction per batch) are each too slow alone for 5,000 records/s on this hardware; run side
by side they overlap. Workers are started with ``spawn``, never ``fork``: a forked child would inherit the
parent's database connections (closing an inherited PostgreSQL socket at exit breaks the parent's session).

Each input keeps its own outcome: a file that fails to parse is reported with its error code and the rest of
the batch still goes through.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medledger.errors import MedLedgerError
from medledger.records import CanonicalRecord
from node.ingest import parse, parse_file
from node.pipeline import IngestPipeline, IngestResult

#: One input: a name (a file path, or a label for in-memory data) and its bytes (None: read the file).
Item = tuple[str, bytes | None]


@dataclass
class ItemOutcome:
    """What happened to one input: a parse error, or the pipeline's result for each record it contained."""

    name: str
    error: MedLedgerError | None = None
    results: list[IngestResult] = field(default_factory=list)


def _parse_chunk(chunk: list[Item], options: dict[str, Any]) -> list[tuple[str, list[CanonicalRecord] | str]]:
    out: list[tuple[str, list[CanonicalRecord] | str]] = []
    for name, data in chunk:
        try:
            records = parse(data, **options) if data is not None else parse_file(Path(name), **options)
            out.append((name, records))
        except MedLedgerError as exc:
            # Errors cross the process boundary as (code, message): exception pickling loses custom fields.
            out.append((name, f"{exc.code}\x00{exc.message}"))
        except OSError as exc:
            out.append((name, f"unreadable\x00{exc.strerror or exc}"))
    return out


class BulkIngest:
    """Parse ``items`` in ``workers`` processes and ingest them through ``pipeline`` in order of input.

    Args:
        pipeline: The node's ingest pipeline (runs in this process: it owns the database session).
        parse_options: Keyword arguments for :func:`node.ingest.parse` (see ``NodeConfig.parse_options``).
        workers: Parser processes (default: cores - 1, at least 1); 0 parses in this process.
        chunk: Inputs per parse task; records of one chunk go to the pipeline in one transaction.
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        parse_options: dict[str, Any],
        *,
        workers: int | None = None,
        chunk: int = 500,
    ) -> None:
        self.pipeline = pipeline
        self.parse_options = parse_options
        self.workers = max(1, (os.cpu_count() or 2) - 1) if workers is None else workers
        self.chunk = chunk
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> BulkIngest:
        """Start the parser processes (and their imports) now rather than on the first chunk."""
        if self.workers and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            warm = [self._pool.submit(_parse_chunk, [], self.parse_options) for _ in range(self.workers)]
            for f in warm:
                f.result()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def run(self, items: Iterable[Item]) -> Iterator[ItemOutcome]:
        """Ingest ``items``; yields one outcome per item, in input order."""
        chunks = _chunks(items, self.chunk)
        if self.workers == 0:
            for c in chunks:
                yield from self._ingest(_parse_chunk(c, self.parse_options))
            return
        owned = self._pool is None
        if owned:
            self.__enter__()
        pool = self._pool
        assert pool is not None
        try:
            in_flight: deque[Future[list[tuple[str, list[CanonicalRecord] | str]]]] = deque()
            # Two chunks per worker keep the parsers busy while this process runs the pipeline.
            for c in chunks:
                in_flight.append(pool.submit(_parse_chunk, c, self.parse_options))
                if len(in_flight) > 2 * self.workers:
                    yield from self._ingest(in_flight.popleft().result())
            while in_flight:
                yield from self._ingest(in_flight.popleft().result())
        finally:
            if owned:
                self.__exit__()

    def _ingest(self, parsed: list[tuple[str, list[CanonicalRecord] | str]]) -> Iterator[ItemOutcome]:
        records: list[CanonicalRecord] = []
        spans: list[tuple[str, int, int] | tuple[str, str]] = []
        for name, value in parsed:
            if isinstance(value, str):
                spans.append((name, value))
            else:
                spans.append((name, len(records), len(records) + len(value)))
                records.extend(value)
        results = self.pipeline.ingest(records) if records else []
        for span in spans:
            if len(span) == 2:
                code, message = span[1].split("\x00", 1)
                yield ItemOutcome(span[0], error=MedLedgerError(message, code=code))
            else:
                name, start, end = span
                yield ItemOutcome(name, results=results[start:end])


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
