"""``medledger mpi``: bootstrap a region's index by linking exported patient lists (the index service follows).

Both commands read UTF-8 CSVs, map their columns with ``--columns`` (see
:class:`workflows.mpi.linkage.table.ColumnMap`), run the matcher and write ``left_id,right_id,match_probability``
for every pair at or above ``--threshold``. The default mode is the privacy-preserving one: the list is encoded
under the consortium's linkage key (``--key-file`` or ``MEDLEDGER_MPI_KEY``, hex) before matching, exactly as a
node will encode its feed for the regional index.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from medledger.cli_support import console, err_console, handles_errors
from medledger.errors import InputError
from workflows.mpi.errors import KeyInvalid, OutputUnwritable

if TYPE_CHECKING:
    from workflows.mpi.linkage.encode import LinkageKey, Mode

app = typer.Typer(help="The master patient index: link and deduplicate patient lists.", no_args_is_help=True)

Columns = Annotated[
    str,
    typer.Option(
        "--columns",
        help="FIELD=COLUMN,... with fields id, family, given, name, sex, birth_date, address (col+col+...), city, "
        "state, postcode, resident_id, mrn, mrn_authority, insurance.",
    ),
]
ModeOption = Annotated[str, typer.Option("--mode", help="pprl (keyed Bloom-filter encodings, default) or clear.")]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", help="File holding the consortium's linkage key in hex (else $MEDLEDGER_MPI_KEY)."),
]
Out = Annotated[Path, typer.Option("--out", help="Where to write left_id,right_id,match_probability.")]
Threshold = Annotated[
    float | None, typer.Option("--threshold", help="Lowest probability written (default: the match threshold).")
]


def _key(mode: str, key_file: Path | None) -> LinkageKey | None:
    from workflows.mpi.linkage.encode import LinkageKey

    if mode == "clear":
        return None
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyInvalid(f"{key_file}: cannot read the linkage key ({exc.__class__.__name__})") from None
        return LinkageKey.from_hex(text)
    env = os.environ.get("MEDLEDGER_MPI_KEY", "")
    if not env.strip():
        raise KeyInvalid("pprl mode needs the consortium's linkage key: --key-file or MEDLEDGER_MPI_KEY")
    return LinkageKey.from_hex(env)


def _check(mode: str, threshold: float | None) -> float:
    from workflows.mpi.linkage.match import MATCH_THRESHOLD

    if mode not in ("pprl", "clear"):
        raise InputError(f"--mode must be pprl or clear, not {mode!r}")
    value = MATCH_THRESHOLD if threshold is None else threshold
    if not 0.0 <= value <= 1.0:
        raise InputError(f"--threshold must be between 0 and 1, not {value}")
    return value


@contextmanager
def _stages(total: int) -> Iterator[tuple[Progress, TaskID]]:
    columns = (TextColumn("{task.description:12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # Only on a terminal: piped or logged, a transient bar leaves blank lines before the summary or error line.
    with Progress(*columns, console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        yield progress, progress.add_task("reading", total=total)


def _run(
    paths: list[Path], specs: list[str], mode: str, key_file: Path | None, out: Path, threshold: float | None
) -> None:
    from workflows.mpi.linkage.encode import encode
    from workflows.mpi.linkage.match import link
    from workflows.mpi.linkage.normalize import normalize_row
    from workflows.mpi.linkage.table import ColumnMap, load

    cut = _check(mode, threshold)
    maps = [ColumnMap.parse(s) for s in specs]
    key = _key(mode, key_file)
    # Seven steps: read, normalize (per record), encode, block, compare, estimate, write.
    with _stages(7) as (progress, task):
        lists = [load(p, m) for p, m in zip(paths, maps, strict=True)]
        progress.advance(task)
        total = sum(len(rows) for rows in lists)
        normalizing = progress.add_task("normalizing", total=total)
        fields = []
        for rows in lists:
            out_rows = []
            for row in rows:
                out_rows.append(normalize_row(row))
                progress.advance(normalizing)
            fields.append(out_rows)
        progress.update(task, description="encoding", advance=1)
        encoded = [encode(f, cast("Mode", mode), key) for f in fields]
        progress.update(task, description="encoded", advance=1)

        def step(stage: str) -> None:
            progress.update(task, description=stage, advance=1)

        links, _model = link(encoded[0], encoded[1] if len(encoded) > 1 else None, progress=step)
        kept = links.at_least(cut)
        step("writing")
        left_ids, right_ids = encoded[0].ids, encoded[-1].ids
        try:
            with out.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["left_id", "right_id", "match_probability"])
                for i, j, p in zip(kept.left.tolist(), kept.right.tolist(), kept.probability.tolist(), strict=True):
                    writer.writerow([left_ids[i], right_ids[j], f"{p:.6f}"])
        except OSError as exc:
            raise OutputUnwritable(f"{out}: {exc.strerror or exc}") from None
    console.print(
        f"{len(kept.left)} pair(s) with probability >= {cut:g} written to {out} "
        f"({len(links.left)} candidate pairs, {int(kept.rule.sum())} by a shared identifier; {mode} mode)",
        highlight=False,
        soft_wrap=True,
    )


@app.command("link")
@handles_errors
def link_cmd(
    left: Annotated[Path, typer.Argument(help="The first patient list (CSV).")],
    right: Annotated[Path, typer.Argument(help="The second patient list (CSV).")],
    columns: Columns,
    out: Out,
    right_columns: Annotated[
        str | None, typer.Option("--right-columns", help="The second list's mapping if its columns differ.")
    ] = None,
    mode: ModeOption = "pprl",
    key_file: KeyFile = None,
    threshold: Threshold = None,
) -> None:
    """Link two patient lists: which record of LEFT is which of RIGHT.

    Example: medledger mpi link a.csv b.csv --columns id=mrn,name=姓名,sex=性别,birth_date=出生日期 --out pairs.csv
    """
    _run([left, right], [columns, right_columns or columns], mode, key_file, out, threshold)


@app.command("dedupe")
@handles_errors
def dedupe_cmd(
    path: Annotated[Path, typer.Argument(help="The patient list (CSV).")],
    columns: Columns,
    out: Out,
    mode: ModeOption = "pprl",
    key_file: KeyFile = None,
    threshold: Threshold = None,
) -> None:
    """Find the records of one patient list that are the same person (each pair once).

    Example: medledger mpi dedupe patients.csv --columns id=mrn,family=surname,given=given --mode clear --out d.csv
    """
    _run([path], [columns], mode, key_file, out, threshold)
