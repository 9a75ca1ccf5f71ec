"""``medledger patient`` and ``medledger clinician`` against two real nodes on the session's Anvil: the
sharing story through the CLIs, with their JSON output, tables, one-line errors and exit codes."""

# ruff: noqa: F811  (the imported `network` fixture is, as pytest intends, redefined as each test's argument)

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from assembly.cli import app
from clients.wallet import PatientWallet, save_wallet
from node.access_logger import AccessLogger
from tests.sharing.conftest import Network, network, wait_until  # noqa: F401 (the fixture)

PASSWORD = "patient-cli-test"
HL7 = Path(__file__).resolve().parents[1] / "node" / "data" / "hl7" / "oru_r01.hl7"
runner = CliRunner()


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("clients.wallet.KEYSTORE_SCRYPT_N", 2**12)
    yield


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env={"MEDLEDGER_WALLET_PASSWORD": PASSWORD, **(env or {})})


def ok_json(*args: str, env: dict[str, str] | None = None) -> Any:
    result = run(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def wallet_file(tmp_path: Path, wallet: PatientWallet) -> str:
    path = tmp_path / f"{wallet.address}.json"
    save_wallet(wallet, path, PASSWORD)
    return str(path)


def settle(network: Network) -> None:
    """Wait until every release Hospital A made is logged on chain and both nodes indexed it."""
    logger = AccessLogger(network.a.services.sessions, network.a.services.contracts.access_log)
    wait_until(lambda: logger.pending() == 0, what="accesses logged on chain")
    network.sync()


def test_wallet_register_relays_the_key(network: Network, tmp_path: Path) -> None:
    wallet = PatientWallet.create()
    path = wallet_file(tmp_path, wallet)
    out = ok_json("wallet", "register", "--node", network.b.url, "--wallet", path)
    assert out["address"] == wallet.address and out["block_number"] > 0
    again = run("wallet", "register", "--node", network.b.url, "--wallet", path)
    # The same key twice: either accepted as a no-op or refused by the node; never a traceback.
    assert again.exception is None or isinstance(again.exception, SystemExit)


def test_patient_and_clinician_story(network: Network, tmp_path: Path) -> None:
    client, ids = network.patient(records=2)
    me = client.wallet.address
    b = network.b
    pat = ["--node", b.url, "--wallet", wallet_file(tmp_path, client.wallet)]
    staff = {"MEDLEDGER_STAFF_TOKEN": b.tokens["clinician"]}
    doc = ["--node", b.url]

    timeline = ok_json("patient", "timeline", *pat)
    assert {e["record_id"] for e in timeline} == set(ids)
    assert ok_json("clinician", "patient-timeline", me, *doc, env=staff)[0]["custodian_name"] == "Hospital A"

    # Before consent: B is refused, one line with the node's code, exit 1.
    denied = run("clinician", "record-get", me, ids[0], "--out", str(tmp_path / "r0"), *doc, env=staff)
    assert denied.exit_code == 1
    assert denied.stderr.startswith("error [consent_denied]: ") and denied.stderr.count("\n") == 1

    grant = ok_json(
        "patient", "grant", "--to", b.address, "--classes", "lab,imaging", "--purpose", "treatment", "--days", "30",
        *pat,
    )  # fmt: skip
    gid = grant["grant_id"]
    grants = ok_json("patient", "grants", *pat)
    assert [(g["grant_id"], g["revoked"], sorted(g["classes"])) for g in grants] == [(gid, False, ["imaging", "lab"])]

    read = ok_json("clinician", "record-get", me, ids[0], "--out", str(tmp_path / "r0"), *doc, env=staff)
    assert read["authorization"] == f"grant:{gid}" and read["custodian"] == network.a.address
    assert b'"resourceType": "Observation"' in (tmp_path / "r0").read_bytes()
    human = run("clinician", "record-get", me, ids[0], "--out", str(tmp_path / "r0"), "--force", *doc, env=staff)
    assert human.exit_code == 0 and f"authorization: grant:{gid}" in human.stdout

    settle(network)
    accesses = ok_json("patient", "accesses", *pat)
    assert {(x["accessor"], x["authorization"], x["auth_id"]) for x in accesses} == {(b.address, "grant", gid)}

    revoked = ok_json("patient", "revoke", str(gid), *pat)
    assert revoked["grant_id"] == gid
    after = run("clinician", "record-get", me, ids[1], "--out", str(tmp_path / "r1"), *doc, env=staff)
    assert after.exit_code == 1 and after.stderr.startswith("error [consent_denied]: ")
    assert not (tmp_path / "r1").exists()

    glass = run("clinician", "break-glass", me, "--reason", "unconscious patient in the ED", "--minutes", "60", *doc,
                env=staff)  # fmt: skip
    assert glass.exit_code == 0, glass.output
    assert "BREAK-GLASS" in glass.stdout
    emergency = ok_json(
        "clinician", "record-get", me, ids[1], "--purpose", "emergency", "--out", str(tmp_path / "r1"), *doc, env=staff
    )
    assert emergency["break_glass"] and emergency["authorization"].startswith("break_glass:")

    settle(network)
    table = run("patient", "accesses", *pat)
    assert table.exit_code == 0 and "BREAK-GLASS" in table.stdout
    notes = ok_json("patient", "notifications", *pat, "--from", network.a.url)
    assert "break_glass_opened" in {n["kind"] for n in notes}


def test_download_and_erase(network: Network, tmp_path: Path) -> None:
    client, ids = network.patient(records=2)
    pat = ["--node", network.b.url, "--wallet", wallet_file(tmp_path, client.wallet)]
    out = tmp_path / "record.json"
    got = ok_json("patient", "download", ids[0], "--out", str(out), *pat)
    assert got["verified"] and got["custodian"] == network.a.address
    assert b'"resourceType": "Observation"' in out.read_bytes()
    exists = run("patient", "download", ids[0], "--out", str(out), *pat)
    assert exists.exit_code == 2 and "error [output_exists]" in exists.stderr

    unconfirmed = run("patient", "erase", ids[1], *pat)
    assert unconfirmed.exit_code == 2 and "error [confirmation_required]" in unconfirmed.stderr
    erased = ok_json("patient", "erase", ids[1], "--yes", *pat)
    assert erased["record_id"] == ids[1]
    gone = run("patient", "download", ids[1], "--out", str(tmp_path / "gone"), *pat)
    assert gone.exit_code == 1 and gone.stderr.startswith("error [")


def test_bad_input_exits_2_and_refusals_exit_1(network: Network, tmp_path: Path) -> None:
    client, _ = network.patient(records=1)
    pat = ["--node", network.b.url, "--wallet", wallet_file(tmp_path, client.wallet)]
    bad_class = run("patient", "grant", "--to", network.b.address, "--classes", "lab,bogus", *pat)
    assert bad_class.exit_code == 2 and "error [invalid_input]" in bad_class.stderr
    bad_addr = run("patient", "grant", "--to", "0x1234", "--classes", "lab", *pat)
    assert bad_addr.exit_code == 2 and "error [invalid_address]" in bad_addr.stderr
    bad_record = run("patient", "download", "0xabc", "--out", str(tmp_path / "x"), *pat)
    assert bad_record.exit_code == 2 and "error [invalid_record_id]" in bad_record.stderr
    unknown_grant = run("patient", "revoke", "999999", *pat)
    assert unknown_grant.exit_code == 1 and unknown_grant.stderr.startswith("error [")
    no_token = run("clinician", "patient-timeline", client.wallet.address, "--node", network.b.url,
                   env={"MEDLEDGER_STAFF_TOKEN": ""})  # fmt: skip
    assert no_token.exit_code == 2 and "error [staff_token_missing]" in no_token.stderr
    wrong_token = run("clinician", "patient-timeline", client.wallet.address, "--node", network.b.url,
                      env={"MEDLEDGER_STAFF_TOKEN": "mlst_not-a-token"})  # fmt: skip
    assert wrong_token.exit_code == 1 and wrong_token.stderr.startswith("error [")


def test_clinician_ingest_files(network: Network, tmp_path: Path) -> None:
    token = {"MEDLEDGER_STAFF_TOKEN": network.a.tokens["clinician"]}
    junk = tmp_path / "junk.txt"
    junk.write_text("not a clinical record")
    ok = ok_json("clinician", "ingest", str(HL7), "--node", network.a.url, env=token)
    rec = ok[0]["records"][0]
    assert rec["record_class"] == "lab" and rec["status"] in {"pending_link", "queued", "duplicate"}
    mixed = run("clinician", "ingest", str(HL7), str(junk), "--node", network.a.url, env=token)
    assert mixed.exit_code == 1
    assert "junk.txt" in mixed.stdout


def test_contacts_add_list_remove(network: Network, tmp_path: Path) -> None:
    from node.embedded import free_port
    from node.notifications import SmtpChannel

    channels = network.b.services.notifications.channels
    channels["email"] = SmtpChannel(f"smtp+plain://127.0.0.1:{free_port()}", "noreply@b.example")
    try:
        client, _ = network.patient(records=0)
        pat = ["--node", network.b.url, "--wallet", wallet_file(tmp_path, client.wallet)]
        added = ok_json("patient", "contacts", "--add", "email:me@example.org", *pat)
        assert [(c["channel"], c["destination"]) for c in added] == [("email", "me@example.org")]
        table = run("patient", "contacts", *pat)
        assert table.exit_code == 0 and "me@example.org" in table.stdout
        usage = run("patient", "contacts", "--add", "me@example.org", *pat)
        assert usage.exit_code == 2 and usage.stderr.startswith("error [usage]: --add takes CHANNEL:DESTINATION")
        off = run("patient", "contacts", "--add", "sms:+8613800138000", *pat)
        assert off.exit_code != 0 and off.stderr.startswith("error [channel_unavailable]: ")
        assert ok_json("patient", "contacts", "--remove", str(added[0]["id"]), *pat) == []
    finally:
        channels.pop("email", None)
