"""The node-module seam end to end: a toy workflow (router + worker + table + CLI group + settings), installed the
way a workflow package is (an entry point in the ``medledger.modules`` group) and enabled from ``node.toml``,
served by a real ``medledger node serve`` process; misconfigured modules fail at start with one line."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from medledger.db import current_revision, make_engine
from node.auth import StaffRole, create_staff
from node.config import NodeConfig
from node.db import open_node_db
from node.embedded import free_port
from node.modules import version_table
from node.modules.loader import available
from node.service import NodeServices
from tests.node.test_cli import PASSWORD, make_node
from tests.workflows.toy.module import module as toy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site directory in which the toy workflow is installed as a package registering its entry point."""
    site = tmp_path / "site"
    info = site / "medledger_toy-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: medledger-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[medledger.modules]\ntoy = tests.workflows.toy.module:module\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def _node(tmp_path: Path, **toy_settings: object) -> Path:
    data_dir = make_node(tmp_path)
    config = NodeConfig.load(data_dir)
    config.modules = ["ingest", "sharing", "toy"]
    config.module_settings = {"toy": dict(toy_settings)}
    config.save()
    return data_dir


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "MEDLEDGER_NODE_PASSWORD": PASSWORD, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}


@pytest.fixture
def served(tmp_path: Path, installed: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    data_dir = _node(tmp_path, greeting="你好", sweep_interval=0.05)
    engine, sessions = open_node_db(NodeConfig.load(data_dir).db_url)
    with sessions.begin() as s:
        tokens = {role.value: create_staff(s, role.value, role)[1] for role in StaffRole}
    engine.dispose()
    port = free_port()
    cmd = [sys.executable, "-m", "assembly", "node", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=_env(installed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node did not start: {proc.communicate()[1][-2000:]}")
            time.sleep(0.1)
        yield url, tokens, data_dir
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_module_enabled_in_node_toml_serves_its_routes_runs_its_worker_and_owns_its_table(
    served: tuple[str, dict[str, str], Path], installed: Path
) -> None:
    url, tokens, data_dir = served
    clinician = {"Authorization": f"Bearer {tokens['clinician']}"}
    r = httpx.post(f"{url}/v1/toy/notes", json={"text": "  first note  "}, headers=clinician)
    assert r.status_code == 201, r.text
    assert r.json()["text"] == "first note" and r.json()["author"] == "clinician"

    # The module's worker runs in the node's runtime: it marks the note seen.
    deadline = time.monotonic() + 10
    while not httpx.get(f"{url}/v1/toy/notes", headers=clinician).json()[0]["seen"]:
        assert time.monotonic() < deadline, "the toy worker never ran"
        time.sleep(0.05)

    # Its settings come from node.toml's [toy] section.
    assert httpx.get(f"{url}/v1/toy/greeting", headers=clinician).json() == {
        "greeting": "你好",
        "node": "Test Hospital",
    }
    # The router's role dependency: an auditor is refused before the route runs; no token is 401.
    r = httpx.get(f"{url}/v1/toy/notes", headers={"Authorization": f"Bearer {tokens['auditor']}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert httpx.get(f"{url}/v1/toy/notes").status_code == 401
    # Its own error code answers with the status it declared, nothing written.
    r = httpx.post(f"{url}/v1/toy/notes", json={"text": "   "}, headers=clinician)
    assert r.status_code == 422 and r.json()["error"]["code"] == "toy_note_invalid"
    # The node's own API is still there, and the spec documents the module's routes.
    spec = httpx.get(f"{url}/openapi.json").json()
    assert {"/v1/toy/notes", "/v1/toy/greeting", "/v1/ingest", "/v1/me/timeline"} <= set(spec["paths"])
    assert spec["x-error-codes"]["toy_note_invalid"]["status"] == 422  # its error code, from the registry

    # Its command group is mounted on the `medledger` command of an installation that has the module.
    out = subprocess.run(
        [sys.executable, "-m", "assembly", "toy", "notes", "--data-dir", str(data_dir), "--json"],
        env=_env(installed),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [(n["text"], n["seen"]) for n in json.loads(out.stdout)] == [("first note", True)]

    # Its table is migrated under its own version table, next to the node's.
    engine = make_engine(NodeConfig.load(data_dir).db_url)
    try:
        assert {"toy_notes", "records", "alembic_version", "alembic_version_toy"} <= set(
            inspect(engine).get_table_names()
        )
        assert current_revision(engine, version_table(toy)) == "toy_0001"
        assert current_revision(engine) is not None  # the node's own history is untouched by the module's
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("modules", "section", "message"),
    [
        (["ingest", "nope"], {}, "unknown module 'nope' (known: "),
        (["ingest", "toy", "toy"], {}, "module 'toy' is listed twice"),
        (["ingest", "toy"], {"sweep_interval": -1}, "[toy]: sweep_interval must be in (0, 60] seconds"),
        (["ingest", "toy"], {"colour": "red"}, "[toy]: unknown setting(s) colour (known: greeting, sweep_interval)"),
        (["ingest", "toy"], {"sweep_interval": "fast"}, "[toy]: sweep_interval must be a number, not 'fast'"),
        (["ingest"], {"greeting": "hi"}, "[toy] is not a setting of the node nor of an enabled module"),
        (["ingest", "tests.workflows.toy.nowhere:module"], {}, "cannot be loaded from tests.workflows.toy.nowhere"),
        (["ingest", "node.config:NodeConfig"], {}, "is not a node module"),
    ],
)
def test_a_misconfigured_module_fails_at_start_with_one_line(
    tmp_path: Path, installed: Path, modules: list[str], section: dict[str, object], message: str
) -> None:
    from assembly.cli import app

    data_dir = make_node(tmp_path)
    config = NodeConfig.load(data_dir)
    config.modules = modules
    config.module_settings = {"toy": section} if section else {}
    config.save()
    result = CliRunner().invoke(
        app, ["node", "serve", "--data-dir", str(data_dir)], env={"MEDLEDGER_NODE_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error [config_error]: "), result.output
    assert message in lines[0]


def test_installed_modules_are_discovered_through_their_entry_point(installed: Path) -> None:
    known = available()
    assert known["toy"] == "tests.workflows.toy.module:module"
    assert known["ingest"] == "node.modules.builtin:ingest" and known["sharing"] == "node.modules.builtin:sharing"


@pytest.mark.postgres
def test_a_module_schema_migrates_on_postgres(tmp_path: Path, pg_url: str) -> None:
    data_dir = make_node(tmp_path)
    config = NodeConfig.load(data_dir)
    config.database_url = pg_url
    config.save()
    with NodeServices.open(data_dir, password=PASSWORD, modules=["ingest", toy]) as services:
        with services.engine.connect() as conn:
            assert conn.execute(text("select count(*) from toy_notes")).scalar() == 0
        assert current_revision(services.engine, version_table(toy)) == "toy_0001"
        assert [m.name for m in services.modules] == ["ingest", "toy"]
