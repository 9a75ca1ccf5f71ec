"""``medledger indexer``: follow the chain into the index, show where it stands, rebuild it from scratch."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from indexer.db import adopt_page_size, index_engine
from indexer.errors import IndexerError
from indexer.follower import Indexer, IndexerConfig, Progress, drop_schema, schema_revision
from indexer.queries import IndexQueries
from medledger.chain.deploy import DeploymentManifest, manifest_path
from medledger.chain.rpc import JsonRpcClient, RpcError, RpcUnavailable
from medledger.cli_support import console, handles_errors, print_json

DEFAULT_DB = "sqlite:///.medledger/indexer.db"
DEFAULT_RPC = "http://127.0.0.1:8545"

app = typer.Typer(help="Index the ledger into SQL: patient timelines, consent state, the access audit trail.")

RpcOpt = Annotated[str, typer.Option("--rpc", envvar="MEDLEDGER_RPC", help="Chain node JSON-RPC URL.")]
DbOpt = Annotated[str, typer.Option("--db", envvar="MEDLEDGER_INDEXER_DB", help="SQLite or PostgreSQL URL.")]
DirOpt = Annotated[
    Path | None,
    typer.Option("--deployments-dir", help="Directory of deployment manifests (default chain_config/deployments)."),
]
ConfOpt = Annotated[int, typer.Option("--confirmations", min=0, help="Blocks to stay behind the head.")]


def _open(rpc_url: str, db_url: str, deployments_dir: Path | None, confirmations: int) -> Indexer:
    # Local arguments first: a bad --db is reported without touching the chain or the manifests.
    engine = index_engine(db_url)
    rpc = JsonRpcClient(rpc_url, retries=2)
    manifest = DeploymentManifest.load(manifest_path(rpc.chain_id(), deployments_dir))
    return Indexer(engine, rpc, manifest, IndexerConfig(confirmations=confirmations))


def _lag_line(p: Progress) -> str:
    return (
        f"head {p.head}, indexed {p.indexed}, lag {p.lag_blocks} blocks / {p.lag_seconds} s"
        + (f", {p.logs} new events" if p.logs else "")
        + (f", {p.reorgs} reorg(s) handled" if p.reorgs else "")
    )


@app.command()
@handles_errors
def run(
    rpc: RpcOpt = DEFAULT_RPC,
    db: DbOpt = DEFAULT_DB,
    deployments_dir: DirOpt = None,
    confirmations: ConfOpt = 0,
    once: Annotated[bool, typer.Option("--once", help="Catch up to the head and exit.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.1, help="Seconds between head polls.")] = 1.0,
) -> None:
    """Follow the chain: catch up, then keep indexing new blocks (Ctrl-C to stop)."""
    ix = _open(rpc, db, deployments_dir, confirmations)
    if once:
        t0 = time.perf_counter()
        result = ix.sync()
        elapsed = time.perf_counter() - t0
        rate = f" ({result.logs / elapsed:,.0f} events/s)" if result.logs and elapsed > 0 else ""
        console.print(f"indexed {result.logs} events in {result.ranges} ranges{rate}")
        console.print(_lag_line(ix.progress(result)))
        return
    ix.config = IndexerConfig(confirmations=confirmations, poll_interval=poll)
    console.print(f"following chain {ix.rpc.chain_id()} from block {ix.position().block_number + 1}; Ctrl-C stops")
    last: tuple[int, int] | None = None

    def show(p: Progress) -> None:
        nonlocal last
        if (p.indexed, p.lag_blocks) != last or p.logs:
            console.print(_lag_line(p))
            last = (p.indexed, p.lag_blocks)

    ix.follow(on_progress=show)


def _status_data(rpc_url: str, db_url: str) -> dict[str, Any]:
    engine = index_engine(db_url)
    if schema_revision(engine) is None:
        raise IndexerError(f"{db_url} holds no index yet: run `medledger indexer run`")
    st = IndexQueries(engine).status()
    data: dict[str, Any] = asdict(st)
    head: int | None = None
    head_time: int | None = None
    try:
        with JsonRpcClient(rpc_url, retries=0, timeout=5) as client:
            raw = client.call("eth_getBlockByNumber", ["latest", False])
            head, head_time = int(raw["number"], 16), int(raw["timestamp"], 16)
    except (RpcUnavailable, RpcError) as exc:
        data["chain_error"] = exc.message
    data["head"] = head
    data["lag_blocks"] = head - st.indexed_block if head is not None and st.indexed_block is not None else None
    data["lag_seconds"] = head_time - st.indexed_block_time if head_time is not None and st.indexed_block_time else None
    engine.dispose()
    return data


@app.command()
@handles_errors
def status(
    rpc: RpcOpt = DEFAULT_RPC,
    db: DbOpt = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Chain head, last indexed block, lag and row counts."""
    data = _status_data(rpc, db)
    if as_json:
        print_json(data)
        return
    head = data["head"] if data["head"] is not None else f"unknown ({data.get('chain_error')})"
    console.print(f"chain {data['chain_id']}  head {head}  indexed {data['indexed_block']}", highlight=False)
    if data["lag_blocks"] is not None:
        console.print(f"lag {data['lag_blocks']} blocks / {data['lag_seconds']} s", highlight=False)
    table = Table("table", "rows")
    for name, n in data["counts"].items():
        table.add_row(name, f"{n:,}")
    console.print(table)


@app.command()
@handles_errors
def rebuild(
    rpc: RpcOpt = DEFAULT_RPC,
    db: DbOpt = DEFAULT_DB,
    deployments_dir: DirOpt = None,
    confirmations: ConfOpt = 0,
) -> None:
    """Drop the index and build it again from the deployment's start block."""
    engine = index_engine(db)
    client = JsonRpcClient(rpc, retries=2)
    manifest = DeploymentManifest.load(manifest_path(client.chain_id(), deployments_dir))
    drop_schema(engine)
    adopt_page_size(engine)
    ix = Indexer(engine, client, manifest, IndexerConfig(confirmations=confirmations))
    t0 = time.perf_counter()
    result = ix.sync()
    console.print(
        f"rebuilt from block {manifest.start_block}: {result.logs} events in {time.perf_counter() - t0:.1f} s"
    )
    console.print(_lag_line(ix.progress(result)))


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "120")
    app()
