"""``medledger node ...`` end to end: real keystore, database, blob store and (where needed) the session Anvil.

Nodes are created by :func:`make_node` with a cheap scrypt cost (recorded in the keystore files, so every later
open is fast too); ``node init`` itself, at production cost, is exercised once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from assembly.cli import app
from medledger.chain.anvil import free_port
from medledger.crypto import x25519_from_seed, x25519_public_key
from node.config import NodeConfig
from node.db import open_node_db
from node.db.models import RecordState
from node.keystore import LocalKeystore
from tests.conftest import ROOT, Chain

DATA = Path(__file__).parent / "data"
PASSWORD = "correct horse battery staple"
ENV = {"MEDLEDGER_NODE_PASSWORD": PASSWORD}
runner = CliRunner()
NO_RECORDS = {state.value: 0 for state in RecordState}


def ct_small() -> Path:
    return Path(str(get_testdata_file("CT_small.dcm", download=False)))


def closed_rpc() -> str:
    """An RPC URL nothing listens on: the chain is down."""
    return f"http://127.0.0.1:{free_port()}"


def make_node(
    root: Path,
    *,
    name: str = "Test Hospital",
    rpc_url: str | None = None,
    deployments_dir: str = "",
    private_key: bytes | None = None,
    max_payload_bytes: int | None = None,
) -> Path:
    """A node data directory as ``node init`` leaves it, with a fast (test-cost) keystore."""
    data_dir = root / "node"
    data_dir.mkdir(parents=True)
    config = NodeConfig(name=name, data_dir=data_dir, rpc_url=rpc_url or closed_rpc(), deployments_dir=deployments_dir)
    if max_payload_bytes is not None:
        config.max_payload_bytes = max_payload_bytes
    LocalKeystore.create(config.keystore_path, PASSWORD, n=2**12, private_key=private_key)
    config.save()
    engine, _ = open_node_db(config.db_url)
    engine.dispose()
    return data_dir


def node(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``medledger node ARGS`` in process; (exit code, stdout, stderr)."""
    result = runner.invoke(app, ["node", *map(str, args)], env={**ENV, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def status_counts(data_dir: Path) -> dict[str, int]:
    code, out, err = node("status", "--data-dir", data_dir, "--json")
    assert code == 0, err
    return json.loads(out)["records"]


def assert_one_line_error(err: str, code: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error [{code}]: "), err
    assert "Traceback" not in err


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return make_node(tmp_path)


# ---------------------------------------------------------------------------------------------- init


def test_init_creates_node_prints_identity_and_refuses_a_second_init(tmp_path: Path) -> None:
    target = tmp_path / "n"
    code, out, err = node("init", "--name", "Hospital [Z]", "--data-dir", target)
    assert code == 0, err
    assert (target / "node.toml").is_file() and (target / "node.db").is_file()
    assert {p.name for p in (target / "keystore").iterdir()} == {"account.json", "secrets.json"}
    assert oct((target / "keystore" / "secrets.json").stat().st_mode & 0o777) == "0o600"
    config = NodeConfig.load(target)
    assert config.name == "Hospital [Z]"
    keystore = LocalKeystore.open(config.keystore_path, PASSWORD)
    lines = out.splitlines()
    assert f"ledger address:        {keystore.address}" in lines
    assert f"encryption public key: 0x{keystore.encryption_public_key.hex()}" in lines
    assert PASSWORD not in out + err

    code, out, err = node("init", "--name", "Again", "--data-dir", target)
    assert code == 2
    assert_one_line_error(err, "config_error")
    assert "already holds a node" in err
    assert NodeConfig.load(target).name == "Hospital [Z]"


@pytest.mark.parametrize("value", ["0xdeadbeef", "not-hex-" + "ab" * 28, ""])
def test_init_rejects_a_bad_import_key_without_echoing_it(tmp_path: Path, value: str) -> None:
    code, out, err = node(
        "init", "--name", "X", "--data-dir", tmp_path / "n", "--import-key-env", "IMPORT_KEY", env={"IMPORT_KEY": value}
    )
    assert code == 2
    assert_one_line_error(err, "config_error")
    assert "IMPORT_KEY" in err
    if value:
        assert value not in out + err and value.removeprefix("0x") not in out + err
    assert not (tmp_path / "n" / "node.toml").exists()


def test_init_without_password_and_terminal_is_a_one_line_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MEDLEDGER_NODE_PASSWORD"}
    proc = subprocess.run(
        [sys.executable, "-m", "assembly.cli", "node", "init", "--name", "X", "--data-dir", str(tmp_path / "n")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, "config_error")
    assert "MEDLEDGER_NODE_PASSWORD" in proc.stderr
    assert not (tmp_path / "n" / "keystore").exists()


def test_wrong_password_is_a_one_line_error(data_dir: Path) -> None:
    code, _, err = node("status", "--data-dir", data_dir, env={"MEDLEDGER_NODE_PASSWORD": "wrong"})
    assert code == 2
    assert_one_line_error(err, "keystore_bad_password")
    assert "wrong" in err and PASSWORD not in err


def test_commands_on_a_missing_node_say_how_to_create_it(tmp_path: Path) -> None:
    code, _, err = node("status", "--data-dir", tmp_path / "none")
    assert code == 2
    assert_one_line_error(err, "config_error")
    assert "medledger node init" in err


# ---------------------------------------------------------------------------------------------- ingest

GOOD = {
    "oru_r01.hl7": DATA / "hl7" / "oru_r01.hl7",  # 1 record
    "mdm_t02.hl7": DATA / "hl7" / "mdm_t02.hl7",  # 1 record
    "ct.dcm": ct_small(),  # 1 record
    "bundle.json": DATA / "fhir" / "r5_bundle_transaction.json",  # 10 records
    "obs.json": DATA / "fhir" / "r5_observation_vitals.json",  # 1 record
}
GOOD_RECORDS = 14
BAD = {
    "truncated.dcm": ("dicom_truncated", lambda: ct_small().read_bytes()[:5000]),
    "no_pid.hl7": (
        "hl7_missing_patient_id",
        lambda: b"\r".join(
            seg for seg in (DATA / "hl7" / "oru_r01.hl7").read_bytes().split(b"\r") if not seg.startswith(b"PID")
        ),
    ),
    "no_msh.hl7": ("hl7_missing_msh", lambda: b"PID|1||X\rOBX|1\r"),
    "wrong_type.json": ("fhir_wrong_type", lambda: b'{"resourceType": "Observation", "status": 5}'),
    "broken.json": ("fhir_invalid_json", lambda: b'{"resourceType": "Observation",'),
    "notes.txt": ("unknown_format", lambda: b"hello world\n"),
}


def mixed_folder(root: Path) -> Path:
    folder = root / "incoming"
    (folder / "sub").mkdir(parents=True)
    for name, src in GOOD.items():
        (folder / "sub" / name if name.endswith(".dcm") else folder / name).write_bytes(src.read_bytes())
    for name, (_, make) in BAD.items():
        (folder / name).write_bytes(make())
    (folder / ".hidden").write_bytes(b"ignored")
    return folder


def test_ingest_mixed_folder_reports_each_file_and_stores_only_the_good_ones(data_dir: Path, tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path)
    code, out, err = node("ingest", folder, "--data-dir", data_dir)
    assert code == 2, err  # the bad files are bad input
    lines = out.strip().splitlines()
    per_file = {Path(line.split()[1]).name: line for line in lines[:-1]}
    assert set(per_file) == set(GOOD) | set(BAD), out
    for name in GOOD:
        assert per_file[name].startswith("ok "), per_file[name]
    for name, (error_code, _) in BAD.items():
        assert per_file[name].startswith("failed "), per_file[name]
        assert f"{error_code}: " in per_file[name]
    assert lines[-1] == f"{len(GOOD) + len(BAD)} file(s): {len(GOOD)} ok, {len(BAD)} failed"
    assert "Traceback" not in out + err
    # No patient is linked yet: every good record waits for its link; nothing at all of the bad files.
    counts = status_counts(data_dir)
    assert counts["pending_link"] == GOOD_RECORDS
    assert sum(counts.values()) == GOOD_RECORDS

    # Re-ingest: the good files are duplicates (nothing new), the bad ones fail again.
    code, out, _ = node("ingest", *[folder / n for n in GOOD if not n.endswith(".dcm")], "--data-dir", data_dir)
    assert code == 0
    assert all(line.startswith("duplicate ") for line in out.strip().splitlines()[:-1]), out
    code, out, _ = node("ingest", folder / "sub", "--data-dir", data_dir, "--json")
    assert code == 0
    report = json.loads(out)
    assert report == {
        "anchored": 0,
        "files": [{"file": str(folder / "sub" / "ct.dcm"), "records": ["duplicate"], "status": "duplicate"}],
    }
    assert status_counts(data_dir) == counts


def test_ingest_json_output_parses_and_carries_error_codes(data_dir: Path, tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path)
    code, out, _ = node("ingest", folder, "--data-dir", data_dir, "--json")
    assert code == 2
    report = json.loads(out)
    by_name = {Path(f["file"]).name: f for f in report["files"]}
    assert by_name["bundle.json"] == {
        "file": str(folder / "bundle.json"),
        "status": "ok",
        "records": ["pending_link"] * 10,
    }
    for name, (error_code, _) in BAD.items():
        assert by_name[name]["status"] == "failed" and by_name[name]["error"].startswith(error_code + ": ")
        assert by_name[name]["records"] == [] and by_name[name]["rejected"] is True


def test_ingest_of_a_missing_path_fails_before_touching_the_node(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = node("ingest", tmp_path / "nope.hl7", "--data-dir", data_dir)
    assert code == 2
    assert_one_line_error(err, "invalid_input")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = node("ingest", empty, "--data-dir", data_dir)
    assert code == 2
    assert_one_line_error(err, "invalid_input")


def test_ingest_lines_stay_one_per_file_with_long_paths(data_dir: Path, tmp_path: Path) -> None:
    deep = tmp_path / ("a-very-long-folder-name-" * 4) / ("and-another-one-" * 4)
    deep.mkdir(parents=True)
    (deep / "lab-result-from-the-reference-laboratory.hl7").write_bytes((DATA / "hl7" / "oru_r01.hl7").read_bytes())
    (deep / "garbage-file-with-a-long-name.bin").write_bytes(b"\x00\x01garbage")
    code, out, _ = node("ingest", deep, "--data-dir", data_dir)
    assert code == 2
    assert len(out.strip().splitlines()) == 3, out


# ---------------------------------------------------------------------------------------------- staff


def test_staff_add_prints_the_token_once_and_stores_only_its_hash(data_dir: Path) -> None:
    code, out, err = node("staff", "add", "--name", "Dr. Who", "--role", "clinician", "--data-dir", data_dir)
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert token.startswith("mlst_") and out.count(token) == 1
    assert token.encode() not in (data_dir / "node.db").read_bytes()

    code, _, err = node("staff", "add", "--name", "X", "--role", "janitor", "--data-dir", data_dir)
    assert code == 2
    assert_one_line_error(err, "invalid_input")
    code, out, _ = node("staff", "revoke", "1", "--data-dir", data_dir)
    assert code == 0 and "revoked staff #1" in out
    code, _, err = node("staff", "revoke", "99", "--data-dir", data_dir)
    assert code == 2
    assert_one_line_error(err, "not_found")


# ---------------------------------------------------------------------------------------------- chain


def test_status_with_the_chain_down_shows_the_chain_error(data_dir: Path) -> None:
    code, out, err = node("status", "--data-dir", data_dir)
    assert code == 0, err
    assert "chain_unavailable" in out and "Test Hospital" in out
    code, out, _ = node("status", "--data-dir", data_dir, "--json")
    report = json.loads(out)
    assert report["member"] is None and report["chain_error"].startswith("chain_unavailable: ")
    assert report["records"] == NO_RECORDS


def test_ingest_with_the_chain_down_keeps_records_queued(chain: Chain, tmp_path: Path) -> None:
    """A linked patient's records are queued; with the chain down, anchoring is deferred (warning, exit 0)."""
    data_dir = node_on_chain(chain, tmp_path)
    patient = registered_patient(chain)
    code, _, err = node("link-patient", "--mrn", "MRN-4004", "--authority", "LABCORP", "--address", patient,
                        "--data-dir", data_dir)  # fmt: skip
    assert code == 0, err
    config = NodeConfig.load(data_dir)
    config.rpc_url = closed_rpc()
    config.save()
    code, out, err = node("ingest", DATA / "hl7" / "oru_r01.hl7", "--data-dir", data_dir)
    assert code == 0, err
    assert out.startswith("ok ") and "1 queued" in out
    assert "anchoring deferred" in err and len(err.strip().splitlines()) == 1
    assert status_counts(data_dir)["queued"] == 1
    code, _, err = node("anchor", "--data-dir", data_dir)
    assert code == 1 and "anchoring deferred" in err


def node_on_chain(chain: Chain, root: Path) -> Path:
    """A node whose ledger key is Hospital A's (an admitted HOSPITAL member) on the session Anvil."""
    deployments = root / "deployments"
    deployments.mkdir()
    chain.manifest.save(deployments / f"{chain.rpc.chain_id()}.json")
    return make_node(
        root,
        name="Hospital A",
        rpc_url=chain.rpc.url,
        deployments_dir=str(deployments),
        private_key=bytes(chain.hospital_a.key),
    )


def registered_patient(chain: Chain) -> str:
    """A patient wallet that registered its X25519 encryption key on chain."""
    patient = chain.new_patient()
    pub = x25519_public_key(x25519_from_seed(os.urandom(32)))
    chain.as_(patient).consortium.register_patient_key(pub)
    return patient.address


def test_on_chain_ingest_anchors_and_link_patient_releases_waiting_records(chain: Chain, tmp_path: Path) -> None:
    data_dir = node_on_chain(chain, tmp_path)
    code, out, _ = node("status", "--data-dir", data_dir, "--json")
    assert json.loads(out)["member"] is True

    # Lab patient linked first: their record is anchored during ingest.
    lab_patient = registered_patient(chain)
    code, out, err = node("link-patient", "--mrn", "MRN-4004", "--authority", "LABCORP", "--address", lab_patient,
                          "--data-dir", data_dir)  # fmt: skip
    assert code == 0, err
    assert "0 record(s) queued" in out
    code, out, err = node("ingest", DATA / "hl7" / "oru_r01.hl7", ct_small(), "--data-dir", data_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [f["records"] for f in report["files"]] == [["queued"], ["pending_link"]]
    assert report["anchored"] == 1
    assert status_counts(data_dir) == {**NO_RECORDS, "pending_link": 1, "confirmed": 1}

    # The CT's patient links afterwards: the waiting record is queued and anchored by link-patient.
    ct_patient = registered_patient(chain)
    code, out, err = node("link-patient", "--mrn", "1CT1", "--address", ct_patient.lower(), "--data-dir", data_dir)
    assert code == 0, err
    assert f"linked 1CT1 → {ct_patient}; 1 record(s) queued" in out
    assert "1 record(s) anchored" in out
    assert status_counts(data_dir) == {**NO_RECORDS, "confirmed": 2}

    # On chain, Hospital A is the custodian of both records.
    code, out, _ = node("status", "--data-dir", data_dir)
    assert "member: True" in out


def test_link_patient_errors_are_precise(chain: Chain, tmp_path: Path) -> None:
    data_dir = node_on_chain(chain, tmp_path)
    unregistered = chain.new_patient().address
    code, _, err = node("link-patient", "--mrn", "M1", "--address", unregistered, "--data-dir", data_dir)
    assert code == 1
    assert_one_line_error(err, "patient_key_not_registered")
    assert unregistered in err
    code, _, err = node("link-patient", "--mrn", "M1", "--address", "0x1234", "--data-dir", data_dir)
    assert code == 2
    assert_one_line_error(err, "invalid_address")

    first, second = registered_patient(chain), registered_patient(chain)
    code, _, err = node("link-patient", "--mrn", "M1", "--address", first, "--data-dir", data_dir)
    assert code == 0, err
    code, _, err = node("link-patient", "--mrn", "M1", "--address", first, "--data-dir", data_dir)
    assert code == 0, err  # idempotent
    code, _, err = node("link-patient", "--mrn", "M1", "--address", second, "--data-dir", data_dir)
    assert code == 1
    assert_one_line_error(err, "patient_link_conflict")
