"""Deployment: idempotent, resumable, survives a reset chain; the `medledger chain` commands and their errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medledger.chain.anvil import AnvilProcess, AnvilSettings, dev_private_keys, free_port
from medledger.chain.deploy import CONTRACT_ORDER, Contracts, DeploymentManifest, manifest_path
from medledger.chain.devchain import deploy_dev
from medledger.chain.rpc import JsonRpcClient

ROOT = Path(__file__).resolve().parents[2]
MEDLEDGER = [sys.executable, "-m", "assembly.cli"]


@pytest.fixture
def fresh_chain():
    with AnvilProcess(AnvilSettings.load(port=0)) as anvil:
        yield anvil


def test_redeploy_finds_the_existing_deployment_and_sends_nothing(fresh_chain, tmp_path):
    rpc = JsonRpcClient(fresh_chain.url)
    first = deploy_dev(rpc, fresh_chain.settings, directory=tmp_path).manifest
    head = rpc.block_number()
    second = deploy_dev(rpc, fresh_chain.settings, directory=tmp_path).manifest
    assert second.contracts == first.contracts
    assert rpc.block_number() == head
    assert set(first.contracts) == set(CONTRACT_ORDER)
    assert first.start_block == first.contracts["Consortium"].block


def test_interrupted_deployment_resumes_with_only_the_missing_contracts(fresh_chain, tmp_path):
    rpc = JsonRpcClient(fresh_chain.url)
    full = deploy_dev(rpc, fresh_chain.settings, directory=tmp_path).manifest
    # As if the run had stopped after RecordRegistry: the manifest names only the first two contracts.
    path = manifest_path(full.chain_id, tmp_path)
    partial = DeploymentManifest.load(path)
    partial.contracts = {k: v for k, v in partial.contracts.items() if k in ("Consortium", "RecordRegistry")}
    partial.save(path)

    resumed = deploy_dev(rpc, fresh_chain.settings, directory=tmp_path).manifest
    assert resumed.contracts["Consortium"] == full.contracts["Consortium"]
    assert resumed.contracts["RecordRegistry"] == full.contracts["RecordRegistry"]
    assert resumed.contracts["ConsentRegistry"].address != full.contracts["ConsentRegistry"].address
    # the newly deployed registries are wired to the same Consortium
    c = Contracts.from_manifest(rpc, resumed)
    consortium_of = c.consent.abi.function("consortium")
    out = rpc.call("eth_call", [{"to": c.consent.address, "data": "0x" + consortium_of.selector.hex()}, "latest"])
    assert consortium_of.decode(bytes.fromhex(out[2:]))[0].lower() == c.consortium.address.lower()


def test_a_reset_chain_gets_a_fresh_deployment(tmp_path):
    settings = AnvilSettings.load(port=0)
    with AnvilProcess(settings) as first_chain:
        rpc = JsonRpcClient(first_chain.url)
        before = deploy_dev(rpc, settings, directory=tmp_path).manifest
        rpc.call("anvil_setCode", [before.address("Consortium"), "0x"])  # the chain no longer has it
        after = deploy_dev(rpc, settings, directory=tmp_path).manifest
        assert after.contracts["Consortium"].address != before.contracts["Consortium"].address
        assert Contracts.from_manifest(rpc, after).consortium.member_count() == 4


def test_manifest_rejects_garbage(tmp_path):
    bad = tmp_path / "31337.json"
    bad.write_text("{not json")
    with pytest.raises(Exception) as exc:
        DeploymentManifest.load(bad)
    assert "malformed" in str(exc.value)


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEDLEDGER, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_chain_up_exit_deploys_and_prints_json_then_finds_it_again(tmp_path):
    args = ("chain", "up", "--port", "0", "--exit", "--json", "--state-dir", str(tmp_path / "state"))
    args += ("--deployments-dir", str(tmp_path / "deployments"))
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["chain_id"] == 31337
    assert set(out["contracts"]) == set(CONTRACT_ORDER)
    assert (tmp_path / "state" / "anvil-state.json").exists()  # state saved on the way out

    second = _cli(*args)  # the saved state is loaded: the same contracts are found, not redeployed
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["contracts"] == out["contracts"]


def test_chain_status_reports_and_fails_on_missing_contracts(fresh_chain, tmp_path):
    rpc = JsonRpcClient(fresh_chain.url)
    manifest = deploy_dev(rpc, fresh_chain.settings, directory=tmp_path).manifest
    ok = _cli("chain", "status", "--rpc", fresh_chain.url, "--deployments-dir", str(tmp_path), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["missing"] == []

    rpc.call("anvil_setCode", [manifest.address("AccessLog"), "0x"])
    gone = _cli("chain", "status", "--rpc", fresh_chain.url, "--deployments-dir", str(tmp_path))
    assert gone.returncode == 2
    assert gone.stderr.strip().splitlines() == [
        "error [config_error]: contracts missing on chain: AccessLog (chain reset? run deploy again)"
    ]


def test_cli_errors_are_one_line_with_exit_codes(tmp_path):
    no_key = _cli("chain", "deploy", "--rpc", "http://127.0.0.1:1", env={"MEDLEDGER_DEPLOYER_KEY": ""})
    assert no_key.returncode == 2
    assert no_key.stderr.strip() == "error [config_error]: set MEDLEDGER_DEPLOYER_KEY to the deployer's private key"

    bad_key = _cli("chain", "deploy", env={"MEDLEDGER_DEPLOYER_KEY": "0x1234"})
    assert bad_key.returncode == 2
    assert "not a valid private key" in bad_key.stderr
    assert "0x1234" not in bad_key.stderr + bad_key.stdout  # secrets never echoed

    down = _cli("chain", "status", "--rpc", f"http://127.0.0.1:{free_port()}", timeout=120)
    assert down.returncode == 1
    assert len(down.stderr.strip().splitlines()) == 1
    assert "chain_unavailable" in down.stderr
    assert "Traceback" not in down.stderr

    no_manifest = _cli("chain", "status", "--rpc", "http://127.0.0.1:1", "--deployments-dir", str(tmp_path))
    assert no_manifest.returncode == 1
    assert "Traceback" not in no_manifest.stderr


def test_deploy_command_with_a_founders_file(fresh_chain, tmp_path):
    founders = {
        "threshold": 1,
        "voting_period_seconds": 3600,
        "founders": [
            {
                "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "roles": "hospital,relayer",
                "name": "Hospital A",
                "endpoint": "https://a.example",
                "encryption_key": "11" * 32,
            }
        ],
    }
    path = tmp_path / "founders.json"
    path.write_text(json.dumps(founders))
    deployer_key = dev_private_keys(fresh_chain.settings)[0]  # Anvil's public dev account 0
    result = _cli(
        "chain", "deploy", "--rpc", fresh_chain.url, "--founders", str(path), "--deployments-dir", str(tmp_path),
        env={"MEDLEDGER_DEPLOYER_KEY": deployer_key},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert deployer_key[2:] not in result.stdout + result.stderr
    manifest = DeploymentManifest.load(tmp_path / "31337.json")
    consortium = Contracts.from_manifest(JsonRpcClient(fresh_chain.url), manifest).consortium
    assert consortium.threshold() == 1
    assert consortium.members() == ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]

    path.write_text(json.dumps({"threshold": 1, "voting_period_seconds": 5, "founders": [{"name": "x"}]}))
    bad = _cli(
        "chain", "deploy", "--rpc", fresh_chain.url, "--founders", str(path), "--deployments-dir", str(tmp_path / "b"),
        env={"MEDLEDGER_DEPLOYER_KEY": deployer_key},
    )  # fmt: skip
    assert bad.returncode == 2
    assert "each founder needs" in bad.stderr
