"""Anchoring throughput: batched ``anchorRecords`` vs one transaction per record, on a fresh Anvil.

usage: python bench/anchor.py [--records 10000] [--batch 500]

Both modes use the same sender. Batched: send every batch, then wait for all receipts. Per-transaction: the
usual design of blockchain EHR prototypes, tuned to its best here: one gas estimate reused, up to --window
transactions in flight. Throughput counts
records whose receipts are confirmed with status 1. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from pathlib import Path

from medledger.chain.anvil import AnvilProcess, AnvilSettings
from medledger.chain.devchain import contracts_for, deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.types import RecordAnchor
from medledger.vocabulary import RecordClass


def make_records(n: int) -> list[RecordAnchor]:
    patients = ["0x" + secrets.token_hex(20) for _ in range(max(1, n // 100))]
    classes = list(RecordClass)
    return [
        RecordAnchor(
            secrets.token_bytes(32),
            patients[i % len(patients)],
            secrets.token_bytes(32),
            classes[i % len(classes)],
            1_700_000_000 + i,
        )
        for i in range(n)
    ]


def run_batched(records_client, records: list[RecordAnchor], batch: int) -> tuple[float, int]:
    sender = records_client.sender
    t0 = time.perf_counter()
    hashes = [records_client.send_anchor_records(records[i : i + batch]) for i in range(0, len(records), batch)]
    receipts = sender.wait(hashes)
    elapsed = time.perf_counter() - t0
    assert all(r.status == 1 for r in receipts), "a batch failed"
    return elapsed, sum(r.gas_used for r in receipts)


def run_per_tx(records_client, records: list[RecordAnchor], window: int) -> tuple[float, int]:
    """One transaction per record, at most ``window`` in flight: the baseline's best rate. Sending all 10,000
    at once is slower on Anvil, whose automine slows down as its pending pool grows."""
    sender = records_client.sender
    abi, to = records_client.abi, records_client.address
    fn = abi.function("anchorRecords")
    gas = int(sender.estimate_gas(to, fn.encode(([records[0].as_tuple()],))) * 1.25)
    t0 = time.perf_counter()
    in_flight: list[str] = []
    receipts = []
    for r in records:
        in_flight.append(sender.send(to, fn.encode(([r.as_tuple()],)), gas=gas))
        if len(in_flight) >= window:
            receipts += sender.wait(in_flight[: window // 2], timeout=600)
            del in_flight[: window // 2]
    receipts += sender.wait(in_flight, timeout=600)
    elapsed = time.perf_counter() - t0
    assert len(receipts) == len(records) and all(r.status == 1 for r in receipts), "a transaction failed"
    return elapsed, sum(r.gas_used for r in receipts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500, help="records per anchorRecords transaction")
    ap.add_argument("--window", type=int, default=256, help="per-tx mode: transactions in flight at most")
    args = ap.parse_args()

    settings = AnvilSettings.load(port=0)
    with AnvilProcess(settings) as anvil, tempfile.TemporaryDirectory() as tmp:
        rpc = JsonRpcClient(anvil.url)
        dev = deploy_dev(rpc, settings, directory=Path(tmp))
        hospital = contracts_for(rpc, dev.manifest, dev.founders["Hospital A"]).records

        batched_s, batched_gas = run_batched(hospital, make_records(args.records), args.batch)
        print(f"batched: {args.records} records in {batched_s:.2f}s ({args.records / batched_s:,.0f}/s)", flush=True)
        per_tx_s, per_tx_gas = run_per_tx(hospital, make_records(args.records), args.window)
        print(f"per-tx:  {args.records} records in {per_tx_s:.2f}s ({args.records / per_tx_s:,.0f}/s)", flush=True)

    batched_rps = args.records / batched_s
    per_tx_rps = args.records / per_tx_s
    print(
        json.dumps(
            {
                "bench": "anchor",
                "records": args.records,
                "batched_rps": round(batched_rps, 1),
                "per_tx_rps": round(per_tx_rps, 1),
                "ratio": round(batched_rps / per_tx_rps, 1),
                "gas_per_record_batched": round(batched_gas / args.records),
                "gas_per_record_per_tx": round(per_tx_gas / args.records),
            }
        )
    )


if __name__ == "__main__":
    main()
