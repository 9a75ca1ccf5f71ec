"""`medledger indexer` commands through typer's runner against the test chain."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from indexer.cli import app
from medledger.chain.deploy import manifest_path

from .conftest import run_scenario

runner = CliRunner()


def _args(chain, tmp_path, db):
    chain.manifest.save(manifest_path(chain.manifest.chain_id, tmp_path))
    return ["--rpc", chain.rpc.url, "--db", db, "--deployments-dir", str(tmp_path)]


def test_run_status_rebuild(chain, db_url, tmp_path):
    run_scenario(chain)
    args = _args(chain, tmp_path, db_url)
    r = runner.invoke(app, ["run", "--once", *args])
    assert r.exit_code == 0, r.output
    assert "indexed 28 events" in r.output and "lag 0 blocks" in r.output

    r = runner.invoke(app, ["status", "--json", "--rpc", chain.rpc.url, "--db", db_url])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["lag_blocks"] == 0 and data["indexed_block"] == chain.rpc.block_number()
    assert data["counts"]["records"] == 6

    r = runner.invoke(app, ["rebuild", *args])
    assert r.exit_code == 0, r.output
    again = json.loads(runner.invoke(app, ["status", "--json", "--rpc", chain.rpc.url, "--db", db_url]).output)
    assert again["counts"] == data["counts"] and again["indexed_block_hash"] == data["indexed_block_hash"]


def test_errors_are_one_line(chain, tmp_path):
    r = runner.invoke(app, ["status", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--rpc", chain.rpc.url])
    assert r.exit_code == 1 and "holds no index yet" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["run", "--once", "--rpc", chain.rpc.url, "--deployments-dir", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no deployment manifest" in r.output
    r = runner.invoke(app, ["run", "--once", "--db", "nonsense", *(_args(chain, tmp_path, "x")[:2])])
    assert r.exit_code == 2 and "not a database URL" in r.output
    r = runner.invoke(app, ["run", "--once", "--confirmations", "-1"])
    assert r.exit_code == 2
