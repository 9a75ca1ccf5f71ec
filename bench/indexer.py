"""Indexer throughput and timeline query latency.

usage: python bench/indexer.py [--events 100000] [--batch 500] [--rows 1000000] [--queries 300] [--repeat 3]
                              [--profile]

1. On a fresh Anvil, anchor --events records in batches of --batch per transaction.
2. Plain ``eth_getLogs`` over the same blocks, in ranges of the size the indexer converges to, with no
   decoding or writes: the rate the node can deliver (``raw_getlogs_per_s``).
3. Catch-up: a fresh indexer (SQLite) indexes the deployment from its start block (``events_per_s``).
   Steps 2 and 3 alternate --repeat times; the figures are medians.
4. Bulk-load --rows timeline rows (10,000 of them for one patient) into a throwaway SQLite file and a
   throwaway PostgreSQL database, then time --queries timeline calls (first pages, cursor pages, class,
   custodian and time filters) through the query API.

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as `python bench/indexer.py`, this file's directory comes first on sys.path and its name would shadow
# the `indexer` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from indexer.db import index_engine  # noqa: E402
from indexer.follower import MIGRATIONS, Indexer, IndexerConfig  # noqa: E402
from indexer.queries import IndexQueries  # noqa: E402
from medledger.chain.anvil import AnvilProcess, AnvilSettings  # noqa: E402
from medledger.chain.devchain import contracts_for, deploy_dev  # noqa: E402
from medledger.chain.rpc import JsonRpcClient  # noqa: E402
from medledger.chain.types import RecordAnchor  # noqa: E402
from medledger.db import upgrade  # noqa: E402
from medledger.vocabulary import RecordClass  # noqa: E402

PG_ADMIN = os.environ.get("MEDLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HEAVY = "0x" + "ab" * 20
CUSTODIANS = ["0x" + f"{i:040x}" for i in range(1, 9)]


def generate(rpc: JsonRpcClient, dev, n: int, batch: int) -> None:
    records = contracts_for(rpc, dev.manifest, dev.founders["Hospital A"]).records
    patients = ["0x" + secrets.token_hex(20) for _ in range(max(1, n // 100))]
    classes = list(RecordClass)
    hashes = []
    for start in range(0, n, batch):
        rows = [
            RecordAnchor(
                secrets.token_bytes(32),
                patients[i % len(patients)],
                secrets.token_bytes(32),
                classes[i % len(classes)],
                1_700_000_000 + i,
            )
            for i in range(start, min(n, start + batch))
        ]
        hashes.append(records.send_anchor_records(rows))
    receipts = records.sender.wait(hashes, timeout=900)
    assert all(r.status == 1 for r in receipts), "an anchoring transaction failed"


def raw_getlogs(
    rpc: JsonRpcClient, addresses: list[str], start: int, end: int, blocks_per_call: int
) -> tuple[int, float]:
    t0 = time.perf_counter()
    total = 0
    a = start
    while a <= end:
        b = min(end, a + blocks_per_call - 1)
        total += len(rpc.call("eth_getLogs", [{"fromBlock": hex(a), "toBlock": hex(b), "address": addresses}]))
        a = b + 1
    return total, time.perf_counter() - t0


def timeline_rows(n: int, heavy: int):
    """``n`` synthetic records rows; ``heavy`` of them belong to HEAVY, the rest to ~n/100 patients."""
    rng = random.Random(7)
    patients = ["0x" + f"{i:040x}" for i in range(1000, 1000 + max(1, (n - heavy) // 100))]
    for i in range(n):
        patient = HEAVY if i < heavy else patients[i % len(patients)]
        t = 1_600_000_000 + rng.randrange(0, 10 * 365 * 86400)
        yield (
            i // 500,  # block_number
            i % 500,  # log_index
            "0x" + f"{i:064x}",  # tx_hash
            "0x" + secrets.token_hex(32),  # record_id
            patient,
            CUSTODIANS[i % len(CUSTODIANS)],
            "0x" + f"{i:064x}",  # commitment
            1 + i % 13,  # record_class
            t,  # clinical_time
            t,  # event_time
            t,  # block_time
            1,  # status
        )


COLUMNS = (
    "block_number, log_index, tx_hash, record_id, patient, custodian, commitment, record_class, "
    "clinical_time, event_time, block_time, status"
)


def load_sqlite(url: str, n: int, heavy: int) -> None:
    engine = index_engine(url)
    upgrade(engine, MIGRATIONS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        rows = timeline_rows(n, heavy)
        while chunk := [r for _, r in zip(range(50_000), rows, strict=False)]:
            cur.executemany(f"INSERT INTO records ({COLUMNS}) VALUES ({','.join('?' * 12)})", chunk)
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()


def load_postgres(url: str, n: int, heavy: int) -> None:
    engine = index_engine(url)
    upgrade(engine, MIGRATIONS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY records ({COLUMNS}) FROM STDIN") as copy:
            for r in timeline_rows(n, heavy):
                copy.write_row(r)
        raw.commit()
        cur.execute("ANALYZE records")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()


def time_timeline(url: str, queries: int) -> tuple[float, float]:
    engine = index_engine(url)
    q = IndexQueries(engine)
    rng = random.Random(11)
    # Warm-up: open pool connections and page the index in, as a running node would have.
    for _ in range(20):
        q.timeline(HEAVY)
    cursors: list[str] = []
    page = q.timeline(HEAVY, limit=50)
    while page.next_cursor and len(cursors) < 150:
        cursors.append(page.next_cursor)
        page = q.timeline(HEAVY, limit=50, cursor=page.next_cursor)
    samples = []
    for i in range(queries):
        kind = i % 5
        t0 = time.perf_counter()
        if kind == 0:
            q.timeline(HEAVY)
        elif kind == 1:
            q.timeline(HEAVY, cursor=rng.choice(cursors))
        elif kind == 2:
            q.timeline(HEAVY, classes=[rng.randrange(1, 14)])
        elif kind == 3:
            q.timeline(HEAVY, custodian=rng.choice(CUSTODIANS))
        else:
            lo = 1_600_000_000 + rng.randrange(0, 9 * 365 * 86400)
            q.timeline(HEAVY, since=lo, until=lo + 180 * 86400)
        samples.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--heavy", type=int, default=10_000, help="timeline rows of the one queried patient")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="raw passes and catch-ups (medians are reported)")
    ap.add_argument("--profile", action="store_true", help="profile the first catch-up with pyinstrument")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medledger-bench-indexer-"))
    with AnvilProcess(AnvilSettings.load(port=0)) as anvil:
        rpc = JsonRpcClient(anvil.url, timeout=120)
        dev = deploy_dev(rpc, anvil.settings, directory=work)
        t0 = time.perf_counter()
        generate(rpc, dev, args.events, args.batch)
        print(f"generated {args.events:,} events in {time.perf_counter() - t0:.1f} s")
        head = rpc.block_number()
        addresses = [c.address for c in dev.manifest.contracts.values()]
        config = IndexerConfig()
        blocks_per_call = max(1, config.target_logs // args.batch)
        # Raw passes and catch-ups alternate, and the medians are reported: on a shared 2-core machine single
        # passes of ~1.5 s vary by ±15%.
        raw_rates: list[float] = []
        rates: list[float] = []
        for i in range(args.repeat):
            raw_n, raw_s = raw_getlogs(rpc, addresses, dev.manifest.start_block, head, blocks_per_call)
            raw_rates.append(raw_n / raw_s)
            print(f"raw eth_getLogs: {raw_n:,} logs in {raw_s:.2f} s = {raw_n / raw_s:,.0f}/s")

            engine = index_engine(f"sqlite:///{work / f'index-{i}.db'}")
            ix = Indexer(engine, rpc, dev.manifest, config)
            profiler = None
            if args.profile and i == 0:
                from pyinstrument import Profiler

                profiler = Profiler()
                profiler.start()
            t0 = time.perf_counter()
            result = ix.sync()
            elapsed = time.perf_counter() - t0
            if profiler is not None:
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
            events = result.logs
            rates.append(events / elapsed)
            print(
                f"catch-up: {events:,} events in {elapsed:.2f} s = {events / elapsed:,.0f}/s over {result.ranges} "
                f"ranges (writer {ix.stats.write_s:.2f} s, of which inserts {ix.stats.insert_s:.2f} s; fetch worker "
                f"{ix.stats.fetch_s:.2f} s)"
            )
            engine.dispose()
        raw_rate = statistics.median(raw_rates)
        rate = statistics.median(rates)

    sqlite_url = f"sqlite:///{work / 'timeline.db'}"
    t0 = time.perf_counter()
    load_sqlite(sqlite_url, args.rows, args.heavy)
    print(f"sqlite: loaded {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
    sq50, sq99 = time_timeline(sqlite_url, args.queries)
    print(f"sqlite timeline: p50 {sq50:.2f} ms, p99 {sq99:.2f} ms")

    import psycopg

    name = f"medledger_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pg_url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
        t0 = time.perf_counter()
        load_postgres(pg_url, args.rows, args.heavy)
        print(f"postgres: loaded {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        pg50, pg99 = time_timeline(pg_url, args.queries)
        print(f"postgres timeline: p50 {pg50:.2f} ms, p99 {pg99:.2f} ms")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    print(
        json.dumps(
            {
                "bench": "indexer",
                "events": events,
                "events_per_s": round(rate),
                "raw_getlogs_per_s": round(raw_rate),
                "ratio": round(rate / raw_rate, 3),
                "timeline_p50_ms_sqlite": round(sq50, 3),
                "timeline_p99_ms_sqlite": round(sq99, 3),
                "timeline_p50_ms_postgres": round(pg50, 3),
                "timeline_p99_ms_postgres": round(pg99, 3),
            },
            separators=(",", ":"),
        )
    )


if __name__ == "__main__":
    main()
