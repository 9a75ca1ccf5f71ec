"""``medledger mpi link`` / ``dedupe`` end to end on CSV files, through the console script's app (the module's
group mounted from its entry point), with the one-line errors and exit codes of bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assembly.cli import app
from medledger.demographics import resident_id_check_char
from node.modules.loader import available, load_module

KEY_HEX = "00112233445566778899aabbccddeeff" * 2
COLUMNS = "id=病历号,name=姓名,sex=性别,birth_date=出生日期,address=地址,resident_id=身份证号"
RID = "31010419600120003" + resident_id_check_char("31010419600120003")

A = [
    ("A1", "王小东", "男", "1975-03-12", "北京市朝阳区建国路88号", ""),
    ("A2", "王丽", "女", "1978-06-01", "北京市朝阳区建国路88号", ""),
    ("A3", "张伟", "男", "1960-01-20", "上海市徐汇区漕溪北路1号", RID),
    ("A4", "陈晓东", "男", "1990-02-28", "广州市天河区体育西路5号", ""),
]
B = [
    ("B1", "王小东", "男", "19750312", "北京市朝阳区建国路88号", ""),
    ("B2", "张卫", "男", "1960-01-02", "", RID),
    ("B3", "陳曉東", "男", "1990-02-28", "廣州市天河區體育西路5號", ""),
    ("B4", "李娜", "女", "1988-08-08", "成都市武侯区人民南路9号", ""),
]
HEADER = ("病历号", "姓名", "性别", "出生日期", "地址", "身份证号")


def write(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def pairs(path: Path) -> dict[tuple[str, str], float]:
    with path.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["left_id", "right_id", "match_probability"]
        return {(r["left_id"], r["right_id"]): float(r["match_probability"]) for r in reader}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MEDLEDGER_MPI_KEY", KEY_HEX)
    return CliRunner()


def test_the_module_is_installed_under_its_entry_point() -> None:
    assert available()["mpi"] == "workflows.mpi.module:module"
    module = load_module("mpi")
    assert module.name == "mpi" and module.cli() is not None
    assert module.schema is None and list(module.routers(None)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["pprl", "clear"])
def test_link_writes_the_pairs_at_or_above_the_threshold(tmp_path: Path, runner: CliRunner, mode: str) -> None:
    a, b, out = write(tmp_path / "a.csv", A), write(tmp_path / "b.csv", B), tmp_path / "pairs.csv"
    args = ["mpi", "link", str(a), str(b), "--columns", COLUMNS, "--out", str(out), "--mode", mode]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{mode} mode" in result.stdout
    found = pairs(out)
    assert {("A1", "B1"), ("A3", "B2"), ("A4", "B3")} <= set(found)
    assert found[("A3", "B2")] == 1.0  # the shared resident ID
    assert all(p >= 0.99 for p in found.values())
    # A lower threshold writes at least as many pairs.
    low = tmp_path / "low.csv"
    result = runner.invoke(app, [*args[:-4], "--out", str(low), "--mode", mode, "--threshold", "0"])
    assert result.exit_code == 0 and set(found) <= set(pairs(low))


def test_link_with_a_key_file_and_differently_named_columns(tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "key").write_text(KEY_HEX + "\n")
    a = write(tmp_path / "a.csv", A)
    b = write(tmp_path / "b.csv", B, ("mrn", "name", "sex", "dob", "addr", "rid"))
    out = tmp_path / "pairs.csv"
    result = runner.invoke(
        app,
        [
            "mpi",
            "link",
            str(a),
            str(b),
            "--columns",
            COLUMNS,
            "--out",
            str(out),
            "--key-file",
            str(tmp_path / "key"),
            "--right-columns",
            "id=mrn,name=name,sex=sex,birth_date=dob,address=addr,resident_id=rid",
        ],
    )
    assert result.exit_code == 0, result.output
    assert ("A1", "B1") in pairs(out)


def test_dedupe_finds_each_duplicate_pair_once(tmp_path: Path, runner: CliRunner) -> None:
    rows = [
        *A,
        ("A5", "王 小东", "M", "1975/03/12", "北京市朝阳区建国路88号", ""),
        ("A6", "張偉", "男", "1960-01-20", "", RID),
    ]
    path, out = write(tmp_path / "p.csv", rows), tmp_path / "d.csv"
    result = runner.invoke(app, ["mpi", "dedupe", str(path), "--columns", COLUMNS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert set(pairs(out)) == {("A1", "A5"), ("A3", "A6")}


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["--columns", "id=病历号,name=nope"], "mpi_columns_invalid", 2),
        (["--columns", "name=姓名"], "mpi_columns_invalid", 2),
        (["--columns", "id=病历号,colour=姓名"], "mpi_columns_invalid", 2),
        (["--columns", "id=病历号,name=姓名+地址"], "mpi_columns_invalid", 2),
        (["--mode", "fuzzy"], "invalid_input", 2),
        (["--threshold", "1.5"], "invalid_input", 2),
        (["--key-file", "/nonexistent/key"], "mpi_key_invalid", 2),
    ],
)
def test_bad_input_fails_with_one_line(
    tmp_path: Path, runner: CliRunner, args: list[str], code: str, exit_code: int
) -> None:
    a, b = write(tmp_path / "a.csv", A), write(tmp_path / "b.csv", B)
    base = ["mpi", "link", str(a), str(b), "--out", str(tmp_path / "o.csv")]
    if "--columns" not in args:
        base += ["--columns", COLUMNS]
    result = runner.invoke(app, base + args)
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error [{code}]: "), result.stderr


def test_key_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path / "a.csv", A)
    base = ["mpi", "dedupe", str(a), "--columns", COLUMNS, "--out", str(tmp_path / "o.csv")]
    runner = CliRunner()
    monkeypatch.delenv("MEDLEDGER_MPI_KEY", raising=False)
    for env, needle in (
        (None, "needs the consortium's linkage key"),
        ("abcd", "at least 16 bytes"),
        ("zz" * 16, "hex"),
    ):
        if env is not None:
            monkeypatch.setenv("MEDLEDGER_MPI_KEY", env)
        result = runner.invoke(app, base)
        assert result.exit_code == 2 and result.stderr.startswith("error [mpi_key_invalid]: "), result.stderr
        assert needle in result.stderr
    # Clear mode needs no key.
    monkeypatch.delenv("MEDLEDGER_MPI_KEY")
    assert runner.invoke(app, [*base, "--mode", "clear"]).exit_code == 0


def test_unreadable_lists_and_unwritable_output(tmp_path: Path, runner: CliRunner) -> None:
    good = write(tmp_path / "a.csv", A)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("病历号,姓名\nA1,Müller\n".encode()[:-8] + "Müller\n".encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("病历号,姓名\nA1,王,extra\n", encoding="utf-8")
    cases = [
        (tmp_path / "missing.csv", "no such file"),
        (latin1, "not UTF-8"),
        (empty, "empty file"),
        (ragged, "more fields than the header"),
        (tmp_path, "is a directory"),
    ]
    for path, needle in cases:
        result = runner.invoke(
            app, ["mpi", "link", str(good), str(path), "--columns", "id=病历号,name=姓名", "--out", str(tmp_path / "o")]
        )
        assert result.exit_code == 2, (path, result.output)
        assert result.stderr.startswith("error [mpi_csv_unreadable]: ") and needle in result.stderr, result.stderr
    dup = write(tmp_path / "dup.csv", [A[0], A[0]])
    result = runner.invoke(app, ["mpi", "dedupe", str(dup), "--columns", COLUMNS, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "appears twice" in result.stderr
    result = runner.invoke(app, ["mpi", "dedupe", str(good), "--columns", COLUMNS, "--out", str(tmp_path / "no/o.csv")])
    assert result.exit_code == 1 and result.stderr.startswith("error [mpi_output_unwritable]: ")
