"""`medledger audit` against a real chain: the audit finds exactly the planted violations, and only them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from assembly.cli import app as root_app
from clients.auditor import AuditSettings, Scope, run_audit
from clients.auditor.cli import app

from .conftest import Scenario

runner = CliRunner()


def _settings(chain, s: Scenario, **kw) -> AuditSettings:
    return AuditSettings(rpc_url=chain.rpc.url, deployments_dir=s.deployments, **kw)


def _common(chain, s: Scenario) -> list[str]:
    return ["--rpc", chain.rpc.url, "--deployments", str(s.deployments)]


def _violations(report) -> list[tuple[str, int, int]]:
    return sorted((f.code, f.block_number, f.log_index) for f in report.violations)


def test_patient_audit_finds_exactly_the_planted_violations(chain, scenario):
    s = scenario
    report = run_audit(Scope.patient(s.patient.address), _settings(chain, s))
    assert _violations(report) == sorted((c, b, i) for c, b, i, _ in s.expected)
    by_pos = {(f.block_number, f.log_index): f for f in report.violations}
    for code, block, index, reason in s.expected:
        assert reason in by_pos[(block, index)].message
        if code == "access_unauthorized":
            assert reason in by_pos[(block, index)].details["reason"]
    assert not report.warnings and not report.ciphertexts_checked

    # 3 valid + 1 break-glass + 2 wrong + 1 revoked + 1 after erasure; the clean patient's access is out of scope.
    assert len(report.accesses) == 8
    assert report.accesses_by_kind() == {"grant": 4, "break_glass": 1, "patient": 1, "custodian": 2}
    assert [a.access.block_number for a in report.accesses] == sorted(a.access.block_number for a in report.accesses)
    bg = report.break_glass_accesses
    assert len(bg) == 1 and bg[0].ok and bg[0].access.block_number == s.break_glass_block
    assert bg[0].label == f"BREAK-GLASS #{s.break_glass_id}"
    assert [w.break_glass_id for w in report.facts.break_glass] == [s.break_glass_id]
    assert [g.grant_id for g in report.facts.grants] == [s.grant_id]
    assert [e.record_id for e in report.facts.erasures] == [s.records["erased"][0]]
    assert len(report.facts.records) == 4
    assert report.facts.member_name(chain.hospital_b.address) == "Hospital B"


def test_clean_scopes_and_institution_scopes(chain, scenario):
    s = scenario
    clean = run_audit(Scope.patient(s.clean_patient.address), _settings(chain, s))
    assert clean.clean and len(clean.accesses) == 1 and clean.accesses[0].ok

    # Hospital B as accessor: its grant, break-glass, wrong purpose/class and revoked reads (not the erasure read).
    b = run_audit(Scope.institution(chain.hospital_b.address), _settings(chain, s))
    assert sorted(f.code for f in b.violations) == ["access_unauthorized"] * 3
    assert len(b.accesses) == 6 and len(b.break_glass_accesses) == 1
    assert [w.break_glass_id for w in b.facts.break_glass] == [s.break_glass_id]
    # Hospital A as custodian of every record: all accesses, all four violations.
    a = run_audit(Scope.institution(chain.hospital_a.address), _settings(chain, s))
    assert len(a.accesses) == 9 and len(a.violations) == 4
    # The CDC neither read nor holds anything.
    cdc = run_audit(Scope.institution(chain.cdc.address), _settings(chain, s))
    assert cdc.clean and not cdc.accesses

    first, second = s.valid_blocks
    r = run_audit(Scope.block_range(first, second), _settings(chain, s))
    assert r.clean and len(r.accesses) == 4 and (r.facts.from_block, r.facts.to_block) == (first, second)
    last = s.expected[-1][1]
    r = run_audit(Scope.block_range(last, last), _settings(chain, s))
    assert [f.code for f in r.violations] == ["access_after_erasure"] and len(r.accesses) == 1


def test_cli_exit_codes_and_json(chain, scenario, tmp_path):
    s = scenario
    r = runner.invoke(app, ["patient", s.clean_patient.address, *_common(chain, s)])
    assert r.exit_code == 0, r.output
    assert "CLEAN" in r.stdout

    report_path = tmp_path / "report.json"
    r = runner.invoke(app, ["patient", s.patient.address, *_common(chain, s), "--json", str(report_path)])
    assert r.exit_code == 1, r.output
    out = r.stdout
    assert "4 VIOLATION(S)" in out and "BREAK-GLASS" in out and "access_after_erasure" in out
    assert "Hospital B" in out

    data = json.loads(report_path.read_text())
    assert data["schema"] == "medledger-audit" and data["version"] == 1 and data["result"] == "violations"
    assert data["scope"]["kind"] == "patient" and data["scope"]["address"] == s.patient.address
    assert data["summary"]["violations"] == 4 and data["summary"]["break_glass_accesses"] == 1
    assert data["summary"]["accesses_by_kind"]["break_glass"] == 1
    assert sorted(f["code"] for f in data["findings"]) == sorted(c for c, *_ in s.expected)
    bg = [a for a in data["accesses"] if a["break_glass"]]
    assert len(bg) == 1 and bg[0]["verdict"] == "ok" and bg[0]["authorization"]["kind"] == "break_glass"
    assert data["chain"]["chain_id"] == chain.manifest.chain_id

    # --json-out and --format json print the same document on stdout (the progress bar is on stderr).
    r = runner.invoke(app, ["range", "0", str(s.valid_blocks[-1]), *_common(chain, s), "--json-out"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["result"] == "clean" and doc["summary"]["accesses"] == 4
    r = runner.invoke(app, ["range", "0", str(s.valid_blocks[-1]), *_common(chain, s), "--format", "json"])
    assert json.loads(r.stdout)["summary"] == doc["summary"]

    # Mounted on the root CLI.
    r = runner.invoke(root_app, ["audit", "institution", chain.cdc.address, *_common(chain, s)])
    assert r.exit_code == 0, r.output


def test_reused_database_is_caught_up(chain, scenario, tmp_path):
    s = scenario
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    first = run_audit(Scope.patient(s.patient.address), _settings(chain, s, db_url=db))
    chain.advance(10)
    again = run_audit(Scope.patient(s.patient.address), _settings(chain, s, db_url=db))
    assert again.facts.chain.indexed_block == first.facts.chain.indexed_block + 1
    assert _violations(again) == _violations(first)


def test_bad_input_exits_2_with_one_line(chain, scenario, tmp_path, monkeypatch):
    s = scenario
    common = _common(chain, s)
    cases = [
        (["patient", "0x1234", *common], "patient address must be 0x"),
        (["range", "9", "3", *common], "FROM_BLOCK (9) is after TO_BLOCK (3)"),
        (["range", "0", "99999999", *common], "beyond the chain head"),
        (
            ["patient", s.patient.address, "--deployments", str(tmp_path / "none"), "--rpc", chain.rpc.url],
            "no deployment",
        ),
        (["patient", s.patient.address, "--rpc", "http://127.0.0.1:9", "--deployments", str(s.deployments)], "error"),
        (["patient", s.patient.address, *common, "--db", "nonsense"], "not a database URL"),
        (
            ["patient", s.patient.address, *common, "--db", "postgresql://auditor@127.0.0.1:1/none"],
            "cannot use the re-index database",
        ),
        (["patient", s.patient.address, *common, "--store", "nothing"], "--store must be CUSTODIAN=PATH"),
        (["patient", s.patient.address, *common, "--ciphertexts"], "--ciphertexts needs the auditor's key"),
        (
            ["patient", s.patient.address, *common, "--store", f"{chain.hospital_a.address}={tmp_path / 'typo'}"],
            "no blob store directory there",
        ),
        (["patient", s.patient.address, *common, "--key-env", "MEDLEDGER_TEST_NO_SUCH_VAR"], "is not set"),
    ]
    monkeypatch.delenv("MEDLEDGER_AUDITOR_KEY", raising=False)
    monkeypatch.setenv("MEDLEDGER_TEST_BAD_KEY", "not-a-key-0123")
    cases.append((["patient", s.patient.address, *common, "--key-env", "MEDLEDGER_TEST_BAD_KEY"], "valid private key"))
    for args, text in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert text in r.output and "Traceback" not in r.output, (args, r.output)
        assert "not-a-key-0123" not in r.output


def test_custodian_reads_only_by_the_records_custodian(chain, scenario):
    """The index accepts a CUSTODIAN read logged by the accessor itself; the audit requires the accessor to be
    the record's custodian, and warns when someone other than the custodian logged the access."""
    from medledger.chain.types import Access
    from medledger.vocabulary import AuthKind, Purpose

    s = scenario
    record = bytes.fromhex(s.records["lab1"][0][2:])
    r = chain.as_(chain.hospital_b).access_log.log_accesses(
        [Access(s.patient.address, chain.hospital_b.address, record, Purpose.TREATMENT, AuthKind.CUSTODIAN, 0)]
    )
    report = run_audit(Scope.block_range(r.block_number, r.block_number), _settings(chain, s))
    [access] = report.accesses
    assert access.authorization.valid  # the indexer's own verdict
    assert access.violations == ("access_unauthorized",)
    [v] = report.violations
    assert v.details["reason"] == "accessor is not the record's custodian"
    [w] = report.warnings
    assert w.code == "access_logged_by_other" and w.details["record_custodian"] == chain.hospital_a.address
