"""Besu production-chain helpers: QBFT extraData and genesis, and the permissions file rendered from the
Consortium contract on the real Anvil dev chain, including the two command-line scripts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import rlp

from medledger.chain.besu import (
    PermissionLists,
    qbft_extra_data,
    qbft_extra_data_validators,
    read_permission_lists,
    render_genesis,
    render_permissions,
    write_permissions,
)
from medledger.chain.types import Node
from medledger.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# Besu docs, "QBFT" (docs/HowTo/Configure/Consensus-Protocols/QBFT.md, "One Initial Validator in toEncode.json"):
# the output of `besu rlp encode --from=toEncode.json --type=QBFT_EXTRA_DATA` for one validator.
DOCS_ONE_VALIDATOR = "9811ebc35d7b06b3fa8dc5809a1f9c52751e1deb"
DOCS_ONE_VALIDATOR_EXTRA = (
    "0xf83aa00000000000000000000000000000000000000000000000000000000000000000"
    "d5949811ebc35d7b06b3fa8dc5809a1f9c52751e1debc080c0"
)
# Current Besu docs, private-networks/how-to/configure/consensus/qbft.md, "Generate extra data": four validators
# in the order given (the docs call it ascending; it is not, and Besu keeps the given order).
DOCS_FOUR_VALIDATORS = [
    "0x4592c8e45706cc08b8f44b11e43cba0cfc5892cb",
    "0x06e23768a0f59cf365e18c2e0c89e151bcdedc70",
    "0xc5327f96ee02d7bcbc1bf1236b8c15148971e1de",
    "0xab5e7f4061c605820d3744227eed91ff8e2c8908",
]
DOCS_FOUR_VALIDATORS_EXTRA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f854944592c8e45706cc08b8f44b11e43cba0cfc"
    "5892cb9406e23768a0f59cf365e18c2e0c89e151bcdedc7094c5327f96ee02d7bcbc1bf1236b8c15148971e1de94ab5e7f4061c605820d"
    "3744227eed91ff8e2c8908c080c0"
)
# Besu docs, IBFT 2.0 genesis example, same single validator: IBFT 2.0 writes "no vote" as 0x80 and the round as
# four bytes. QBFT must not produce this layout (Besu's QbftExtraDataCodec expects an empty vote *list*).
DOCS_IBFT2_ONE_VALIDATOR_EXTRA = (
    "0xf83ea00000000000000000000000000000000000000000000000000000000000000000"
    "d5949811ebc35d7b06b3fa8dc5809a1f9c52751e1deb808400000000c0"
)
ISTANBUL_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"


def _is_error(stderr: str, starts: str = "") -> bool:
    """``stderr`` begins with the commands' one error format, ``error [code]: message``, message starting so."""
    return re.match(r"error \[[a-z0-9_]+\]: " + re.escape(starts), stderr) is not None


def enode_id(label: str) -> str:
    """A deterministic 128-hex node id (the contract only checks the format)."""
    return hashlib.sha512(label.encode()).hexdigest()


def walk_keys(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from walk_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_keys(v)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDLEDGER_ROOT": str(ROOT)}
    return subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------- extraData


def test_extra_data_matches_besu_docs_single_validator_byte_for_byte():
    assert qbft_extra_data([DOCS_ONE_VALIDATOR]) == DOCS_ONE_VALIDATOR_EXTRA
    assert qbft_extra_data(["0x" + DOCS_ONE_VALIDATOR]) == DOCS_ONE_VALIDATOR_EXTRA


def test_extra_data_matches_besu_docs_four_validators_byte_for_byte():
    assert qbft_extra_data(DOCS_FOUR_VALIDATORS) == DOCS_FOUR_VALIDATORS_EXTRA


def test_extra_data_is_not_the_ibft2_layout():
    assert qbft_extra_data([DOCS_ONE_VALIDATOR]) != DOCS_IBFT2_ONE_VALIDATOR_EXTRA
    with pytest.raises(InputError):
        qbft_extra_data_validators(DOCS_IBFT2_ONE_VALIDATOR_EXTRA)


def test_extra_data_decodes_back():
    assert [v.lower() for v in qbft_extra_data_validators(DOCS_FOUR_VALIDATORS_EXTRA)] == DOCS_FOUR_VALIDATORS


@pytest.mark.parametrize(
    "validators",
    [
        [],
        ["0x1234"],
        ["not an address"],
        ["0x" + "g" * 40],
        [DOCS_FOUR_VALIDATORS[0], DOCS_FOUR_VALIDATORS[0].upper().replace("0X", "0x")],  # duplicate, other case
        ["0x4592C8e45706cc08b8f44b11e43cba0cfc5892cb"],  # mixed case with a wrong checksum
    ],
)
def test_extra_data_rejects_bad_validators(validators):
    with pytest.raises(InputError):
        qbft_extra_data(validators)


# ---------------------------------------------------------------------------------------------- genesis


def test_render_genesis_has_what_besu_needs():
    genesis = render_genesis(DOCS_FOUR_VALIDATORS)
    config = genesis["config"]
    assert config["chainId"] == 2026
    assert [k for k in config if k.lower() == "chainid"] == ["chainId"]
    assert config["londonBlock"] == 0
    assert config["shanghaiTime"] == 0
    assert config["cancunTime"] == 0
    assert config["zeroBaseFee"] is True
    assert config["qbft"] == {"blockperiodseconds": 2, "epochlength": 30000, "requesttimeoutseconds": 4}
    assert int(genesis["gasLimit"], 16) >= 30_000_000
    assert genesis["difficulty"] == "0x1"
    assert genesis["mixHash"] == ISTANBUL_MIX_HASH
    assert genesis["alloc"] == {}
    assert not [k for k in walk_keys(genesis) if k.startswith("_")], "template comments must not reach Besu"
    json.dumps(genesis)  # serialisable as is


def test_render_genesis_extra_data_decodes_to_the_sorted_validators():
    genesis = render_genesis(DOCS_FOUR_VALIDATORS, chain_id=4242)
    assert genesis["config"]["chainId"] == 4242
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    assert vanity == b"\x00" * 32
    assert validators == sorted(bytes.fromhex(v[2:]) for v in DOCS_FOUR_VALIDATORS)
    assert (vote, round_, seals) == ([], b"", [])
    # Any order of the same set gives the same genesis, hence the same genesis block hash on every node.
    assert render_genesis(list(reversed(DOCS_FOUR_VALIDATORS)), chain_id=4242) == genesis


@pytest.mark.parametrize("chain_id", [0, -1, True, "2026"])
def test_render_genesis_rejects_bad_chain_id(chain_id):
    with pytest.raises(InputError):
        render_genesis(DOCS_FOUR_VALIDATORS, chain_id=chain_id)


def test_render_genesis_rejects_missing_or_non_qbft_template(tmp_path):
    with pytest.raises(ConfigError):
        render_genesis(DOCS_FOUR_VALIDATORS, template=tmp_path / "missing.json")
    ibft = tmp_path / "ibft.json"
    ibft.write_text(json.dumps({"config": {"chainId": 1, "ibft2": {}}}))
    with pytest.raises(ConfigError):
        render_genesis(DOCS_FOUR_VALIDATORS, template=ibft)


# ---------------------------------------------------------------------------------------------- permissions


def register_two_nodes(chain) -> tuple[Node, Node]:
    a = Node(chain.hospital_a.address, 30303, enode_id("hospital-a-validator"), "192.0.2.11")
    b = Node(chain.hospital_b.address, 30304, enode_id("hospital-b-validator"), "192.0.2.12")
    chain.as_(chain.hospital_a).consortium.add_node(a.enode_id, a.host, a.port)
    chain.as_(chain.hospital_b).consortium.add_node(b.enode_id, b.host, b.port)
    return a, b


def founders(chain) -> list[str]:
    return [chain.hospital_a.address, chain.hospital_b.address, chain.cdc.address, chain.auditor.address]


def test_render_permissions_lists_members_and_registered_nodes(chain):
    a, b = register_two_nodes(chain)
    consortium = chain.read.consortium
    text = render_permissions(consortium)
    parsed = tomllib.loads(text)
    assert set(parsed) == {"accounts-allowlist", "nodes-allowlist"}
    assert parsed["accounts-allowlist"] == sorted(founders(chain), key=lambda x: int(x, 16))
    assert parsed["nodes-allowlist"] == sorted([a.enode_url, b.enode_url])

    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("DO NOT EDIT BY HAND" in ln for ln in header)
    assert f"# chain id: {chain.rpc.chain_id()}" in header
    assert f"# contract: {consortium.address}" in header
    assert any(ln.startswith("# block: ") and int(ln.split(": ")[1]) == chain.rpc.block_number() for ln in header)
    # Deterministic: the same state renders the same text.
    assert render_permissions(consortium) == text


def test_nodes_allowlist_agrees_with_connection_allowed(chain):
    a, b = register_two_nodes(chain)
    consortium = chain.read.consortium
    allowlist = tomllib.loads(render_permissions(consortium))["nodes-allowlist"]
    for node in (a, b):
        assert node.enode_url in allowlist
        assert consortium.connection_allowed(node.enode_id, node.host, node.port)
    unregistered = Node(chain.cdc.address, 30305, enode_id("not-registered"), "192.0.2.13")
    assert unregistered.enode_url not in allowlist
    assert not consortium.connection_allowed(unregistered.enode_id, unregistered.host, unregistered.port)
    wrong_port = Node(a.owner, a.port + 1, a.enode_id, a.host)
    assert wrong_port.enode_url not in allowlist
    assert not consortium.connection_allowed(a.enode_id, a.host, a.port + 1)


def test_removed_member_loses_account_and_nodes(chain):
    a, b = register_two_nodes(chain)
    c = chain.as_(chain.hospital_a).consortium
    pid = c.propose_removal(chain.hospital_b.address)
    chain.as_(chain.cdc).consortium.approve(pid)
    c.execute(pid)
    parsed = tomllib.loads(render_permissions(chain.read.consortium))
    assert chain.hospital_b.address not in parsed["accounts-allowlist"]
    assert parsed["nodes-allowlist"] == [a.enode_url]
    assert not chain.read.consortium.connection_allowed(b.enode_id, b.host, b.port)


def test_extras_are_validated_normalised_and_deduplicated(chain):
    deployer = chain.manifest.deployer
    bootnode = "enode://" + enode_id("bootnode").upper() + "@192.0.2.20:30303"
    lists = read_permission_lists(
        chain.read.consortium,
        extra_accounts=[deployer.lower(), deployer, chain.hospital_a.address],
        extra_nodes=[bootnode, bootnode],
    )
    assert lists.accounts == tuple(sorted([*founders(chain), deployer], key=lambda x: int(x, 16)))
    assert lists.nodes == ("enode://" + enode_id("bootnode") + "@192.0.2.20:30303",)
    with pytest.raises(InputError):
        read_permission_lists(chain.read.consortium, extra_accounts=["0xnope"])
    with pytest.raises(InputError):
        read_permission_lists(chain.read.consortium, extra_nodes=["enode://abc@192.0.2.1:30303"])
    with pytest.raises(InputError):
        read_permission_lists(chain.read.consortium, extra_nodes=[f"enode://{enode_id('x')}@192.0.2.1:70000"])


def test_malformed_registration_is_skipped_not_injected(chain):
    # The contract accepts any host text; a quote and newline must not break (or extend) Besu's TOML.
    evil_host = '192.0.2.66"]\naccounts-allowlist = ["0x0000000000000000000000000000000000000bad'
    chain.as_(chain.hospital_a).consortium.add_node(enode_id("evil"), evil_host, 30303)
    a, _ = register_two_nodes(chain)
    text = render_permissions(chain.read.consortium)
    parsed = tomllib.loads(text)
    assert len(parsed["nodes-allowlist"]) == 2 and a.enode_url in parsed["nodes-allowlist"]
    assert "0x0000000000000000000000000000000000000bad" not in text
    assert f"# skipped: enode {enode_id('evil')} registered by {chain.hospital_a.address}" in text


def test_dns_hosts_only_when_besu_resolves_them(chain):
    # Without --Xdns-enabled Besu rejects the whole file over one host name, so names are opt-in.
    chain.as_(chain.hospital_a).consortium.add_node(enode_id("dns"), "node-a.example.org", 30303)
    chain.as_(chain.hospital_b).consortium.add_node(enode_id("typo"), "999.1.1.1", 30303)
    named = f"enode://{enode_id('dns')}@node-a.example.org:30303"
    default = read_permission_lists(chain.read.consortium, allow_dns=False)
    assert default.nodes == ()
    assert len(default.skipped) == 2 and all("not an IP address" in s for s in default.skipped)
    with_dns = read_permission_lists(chain.read.consortium, allow_dns=True)
    assert with_dns.nodes == (named,)
    assert len(with_dns.skipped) == 1 and enode_id("typo") in with_dns.skipped[0]
    with pytest.raises(InputError):
        read_permission_lists(chain.read.consortium, extra_nodes=[named])
    assert named in read_permission_lists(chain.read.consortium, extra_nodes=[named], allow_dns=True).nodes


def test_write_permissions_reports_change_and_no_change(tmp_path):
    path = tmp_path / "besu" / "permissions_config.toml"
    lists = PermissionLists(1, 10, "0x" + "11" * 20, ("0x" + "22" * 20,), (f"enode://{enode_id('n')}@192.0.2.1:30303",))
    assert write_permissions(path, lists.to_toml()) is True
    assert path.read_text() == lists.to_toml()
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    # A later block with the same lists: unchanged, and the file is left as it was.
    later = PermissionLists(1, 11, lists.contract, lists.accounts, lists.nodes)
    assert write_permissions(path, later.to_toml()) is False
    assert "# block: 10" in path.read_text()
    # Different lists: changed; the old mode is kept.
    path.chmod(0o640)
    grown = PermissionLists(1, 12, lists.contract, (*lists.accounts, "0x" + "33" * 20), lists.nodes)
    assert write_permissions(path, grown.to_toml()) is True
    assert "# block: 12" in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in path.parent.iterdir()] == ["permissions_config.toml"], "no temp files left behind"


def test_empty_lists_render_as_valid_toml():
    text = PermissionLists(1, 1, "0x" + "11" * 20, (), ()).to_toml()
    assert tomllib.loads(text) == {"accounts-allowlist": [], "nodes-allowlist": []}


# ---------------------------------------------------------------------------------------------- scripts


class FakeBesu:
    """A loopback JSON-RPC server answering the PERM methods the sync uses, recording each call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.accounts: list[str] = []
        self.nodes: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls.append(body["method"])
                result = {
                    "perm_reloadPermissionsFromFile": "Success",
                    "perm_getAccountsAllowlist": fake.accounts,
                    "perm_getNodesAllowlist": fake.nodes,
                }[body["method"]]
                data = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_besu() -> Iterator[FakeBesu]:
    fake = FakeBesu()
    try:
        yield fake
    finally:
        fake.close()


def test_permissions_script_writes_file_and_reloads_only_when_needed(chain, tmp_path, fake_besu):
    a, b = register_two_nodes(chain)
    manifest = tmp_path / "deployments" / f"{chain.manifest.chain_id}.json"
    chain.manifest.save(manifest)
    out = tmp_path / "besu" / "permissions_config.toml"
    cmd = [
        "scripts/besu_permissions.py",
        "--rpc", chain.rpc.url,
        "--manifest", str(manifest),
        "--out", str(out),
        "--include-deployer",
        "--reload-rpc", fake_besu.url,
    ]  # fmt: skip

    first = run_script(*cmd)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"updated {out}: 5 accounts, 2 nodes")
    assert "Besu reloaded" in first.stdout
    assert fake_besu.calls == ["perm_reloadPermissionsFromFile"]
    parsed = tomllib.loads(out.read_text())
    expected_accounts = sorted([*founders(chain), chain.manifest.deployer], key=lambda x: int(x, 16))
    assert parsed["accounts-allowlist"] == expected_accounts
    assert parsed["nodes-allowlist"] == sorted([a.enode_url, b.enode_url])

    # Unchanged lists and Besu already enforcing them: no reload.
    fake_besu.calls.clear()
    fake_besu.accounts = [x.lower() for x in expected_accounts]
    fake_besu.nodes = list(parsed["nodes-allowlist"])
    second = run_script(*cmd)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"unchanged {out}") and "already enforces" in second.stdout
    assert fake_besu.calls == ["perm_getAccountsAllowlist", "perm_getNodesAllowlist"]

    # Unchanged file but Besu still on old lists (say the last reload failed): reload now.
    fake_besu.calls.clear()
    fake_besu.nodes = fake_besu.nodes[:1]
    third = run_script(*cmd)
    assert third.returncode == 0, third.stderr
    assert "out of date and reloaded" in third.stdout
    assert fake_besu.calls[-1] == "perm_reloadPermissionsFromFile"


def test_permissions_script_missing_manifest_is_a_one_line_error(tmp_path):
    out = tmp_path / "permissions_config.toml"
    missing = tmp_path / "deployments" / "2026.json"
    r = run_script("scripts/besu_permissions.py", "--rpc", "http://127.0.0.1:9", "--manifest", str(missing),
                   "--out", str(out))  # fmt: skip
    assert r.returncode == 2
    assert _is_error(r.stderr) and str(missing) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


def test_permissions_script_refuses_empty_nodes_allowlist(chain, tmp_path):
    manifest = tmp_path / "manifest.json"
    chain.manifest.save(manifest)
    out = tmp_path / "permissions_config.toml"
    r = run_script("scripts/besu_permissions.py", "--rpc", chain.rpc.url, "--manifest", str(manifest),
                   "--out", str(out))  # fmt: skip
    assert r.returncode == 1
    assert _is_error(r.stderr, "nodes-allowlist would be empty") and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_permissions_script_wrong_chain_and_bad_input(chain, tmp_path):
    manifest = tmp_path / "manifest.json"
    chain.manifest.save(manifest)
    text = manifest.read_text().replace(f'"chain_id": {chain.manifest.chain_id}', '"chain_id": 2026')
    manifest.write_text(text)
    out = tmp_path / "permissions_config.toml"
    r = run_script("scripts/besu_permissions.py", "--rpc", chain.rpc.url, "--manifest", str(manifest),
                   "--out", str(out))  # fmt: skip
    assert r.returncode == 2 and "is for chain 2026" in r.stderr and "Traceback" not in r.stderr

    r = run_script("scripts/besu_permissions.py", "--bootstrap", "--out", str(out), "--extra-account", "0x123")
    assert r.returncode == 2 and _is_error(r.stderr, "extra account") and "Traceback" not in r.stderr

    r = run_script("scripts/besu_permissions.py", "--out")
    assert r.returncode == 2 and _is_error(r.stderr) and len(r.stderr.strip().splitlines()) == 1


def test_permissions_script_bootstrap_needs_no_chain(tmp_path):
    out = tmp_path / "permissions_config.toml"
    deployer = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    node = f"enode://{enode_id('validator-1')}@192.0.2.11:30303"
    r = run_script("scripts/besu_permissions.py", "--bootstrap", "--out", str(out),
                   "--extra-account", deployer, "--extra-node", node)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(out.read_text()) == {"accounts-allowlist": [deployer], "nodes-allowlist": [node]}
    assert "# bootstrap: " in out.read_text() and "# block:" not in out.read_text()


def test_genesis_script_writes_genesis_and_rejects_bad_input(tmp_path):
    out = tmp_path / "genesis.json"
    args = ["scripts/besu_genesis.py", "--out", str(out)]
    for v in DOCS_FOUR_VALIDATORS:
        args += ["--validator", v]
    r = run_script(*args)
    assert r.returncode == 0, r.stderr
    genesis = json.loads(out.read_text())
    assert genesis == render_genesis(DOCS_FOUR_VALIDATORS)
    assert genesis["extraData"] in r.stdout
    # Same inputs again: the file is identical, so no --force is needed.
    assert run_script(*args).returncode == 0
    # A different genesis over an existing one must be forced.
    r = run_script(*args, "--chain-id", "77")
    assert r.returncode == 2 and "must not change" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert json.loads(out.read_text())["config"]["chainId"] == 2026

    r = run_script("scripts/besu_genesis.py", "--out", str(tmp_path / "g2.json"), "--validator", "0xdead")
    assert r.returncode == 2 and _is_error(r.stderr, "validator") and "Traceback" not in r.stderr
    assert not (tmp_path / "g2.json").exists()
    r = run_script("scripts/besu_genesis.py", "--out", str(tmp_path / "g3.json"))
    assert r.returncode == 2 and _is_error(r.stderr)


def test_config_template_renders_to_the_besu_settings_the_sync_relies_on():
    template = (ROOT / "chain_config" / "besu" / "config.toml.template").read_text()
    values = {
        "${MEDLEDGER_BESU_HOME}": "/var/lib/medledger/besu",
        "${MEDLEDGER_P2P_HOST}": "192.0.2.11",
        "${MEDLEDGER_BOOTNODES}": f'"enode://{enode_id("a")}@192.0.2.11:30303"',
    }
    for k, v in values.items():
        template = template.replace(k, v)
    assert "${" not in template
    config = tomllib.loads(template)
    assert config["min-gas-price"] == 0 and config["tx-pool-min-gas-price"] == 0
    assert config["rpc-http-host"] == "127.0.0.1"
    assert {"ETH", "NET", "QBFT", "PERM"} <= set(config["rpc-http-api"])
    assert config["permissions-accounts-config-file-enabled"] is True
    assert config["permissions-nodes-config-file-enabled"] is True
    permissions = "/var/lib/medledger/besu/permissions_config.toml"
    assert config["permissions-accounts-config-file"] == config["permissions-nodes-config-file"] == permissions
    assert config["genesis-file"] == "/var/lib/medledger/besu/genesis.json"
