"""``medledger clinician``: what an institution's staff do through their own node: ingest, look up a
patient's timeline across custodians, read records (consent-checked and logged), open break-glass.

The staff bearer token comes from ``MEDLEDGER_STAFF_TOKEN`` (or the variable named by ``--token-env``), never
from the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients.api import NodeRefused
from clients.cli_options import (
    DEFAULT_NODE,
    JsonOpt,
    NodeOpt,
    address_arg,
    cli_errors,
    record_arg,
    staff_token,
    when,
    write_new,
)
from clients.clinician import ClinicianClient
from medledger.cli_support import console, err_console, print_json
from medledger.errors import InputError
from medledger.vocabulary import Purpose

app = typer.Typer(
    help="Clinical staff at an institution node: ingest records, see a patient's timeline across custodians, "
    "read records under consent or break-glass. Token from MEDLEDGER_STAFF_TOKEN.",
    no_args_is_help=True,
)

TokenEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--token-env",
        help="Environment variable with your staff token (default MEDLEDGER_STAFF_TOKEN).",
        metavar="NAME",
        show_default=False,
    ),
]


def _client(node: str, token_env: str | None) -> ClinicianClient:
    return ClinicianClient(node, staff_token(token_env))


def authorization_label(value: str) -> str:
    """``grant:12`` / ``break_glass:3`` / ``custodian`` for people; break-glass is loud on purpose."""
    if value.startswith("break_glass"):
        return f"[bold white on red] BREAK-GLASS {value} [/]"
    return value


@app.command(
    "patient-timeline",
    epilog="Example:\n\n  medledger clinician patient-timeline 0x9a8F…c3E1 --node http://127.0.0.1:8702",
)
@cli_errors
def patient_timeline(
    patient: Annotated[str, typer.Argument(help="The patient's ledger address.")],
    node: NodeOpt = DEFAULT_NODE,
    token_env: TokenEnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One timeline of a patient's records across every custodian (metadata from the ledger, no content)."""
    addr = address_arg(patient, "patient")
    with _client(node, token_env) as client:
        items = client.timeline(addr)
    if as_json:
        print_json(items)
        return
    table = Table(title=f"{addr}: {len(items)} record(s)")
    for col in ("time", "class", "custodian", "record id"):
        table.add_column(col, overflow="fold")
    for e in items:
        table.add_row(when(e["event_time"]), e["record_class"], e["custodian_name"] or e["custodian"], e["record_id"])
    console.print(table)


@app.command(
    "record-get",
    epilog="Example:\n\n  medledger clinician record-get 0x9a8F…c3E1 0x5f2c…e9 --purpose treatment --out lab.hl7",
)
@cli_errors
def record_get(
    patient: Annotated[str, typer.Argument(help="The patient's ledger address.")],
    record: Annotated[str, typer.Argument(help="Record id (0x + 64 hex digits).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the record.", metavar="FILE")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why you read it: treatment, referral, …")] = "treatment",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    node: NodeOpt = DEFAULT_NODE,
    token_env: TokenEnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read a record wherever it is held: locally, or from its custodian, which checks the patient's consent
    (or an open break-glass) and logs the access on chain. Prints what authorized the read."""
    addr = address_arg(patient, "patient")
    rid = record_arg(record)
    Purpose.parse(purpose)  # bad input fails here, before any request
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass --force to overwrite it", code="output_exists")
    with _client(node, token_env) as client:
        got = client.read(addr, rid, purpose=purpose)
    write_new(out, got.content, force=True)
    info = {
        "record_id": rid,
        "authorization": got.authorization,
        "break_glass": got.break_glass,
        "custodian": got.custodian,
        "media_type": got.media_type,
        "bytes": len(got.content),
        "out": str(out),
    }
    if as_json:
        print_json(info)
        return
    console.print(f"authorization: {authorization_label(got.authorization)}", soft_wrap=True, highlight=False)
    console.print(
        f"{len(got.content)} bytes ({got.media_type}) from custodian {got.custodian} written to {out}",
        soft_wrap=True,
        highlight=False,
    )


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"no such file or directory: {p}", code="input_missing")
    return files


def _ingest_file(client: ClinicianClient, path: Path) -> dict[str, Any]:
    try:
        body = path.read_bytes()
    except OSError as exc:
        return {"file": str(path), "error": {"code": "unreadable", "message": exc.strerror or str(exc)}}
    try:
        return {"file": str(path), "records": client.ingest(body)}
    except NodeRefused as exc:
        # One bad file must not stop the batch; it is reported and the exit code says so.
        return {"file": str(path), "error": {"code": exc.code, "message": exc.message}}


@app.command(epilog="Example:\n\n  medledger clinician ingest lab/oru_r01.hl7 images/ --node http://127.0.0.1:8701")
@cli_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="HL7 v2, DICOM or FHIR JSON files, or folders of them.")],
    node: NodeOpt = DEFAULT_NODE,
    token_env: TokenEnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send files to your node's ingest API (one request per file); the node encrypts, stores and anchors
    them. Exit 1 if any file or record failed."""
    files = _expand(paths)
    if not files:
        raise InputError("no files to ingest", code="input_missing")
    results: list[dict[str, Any]] = []
    with _client(node, token_env) as client:
        if len(files) == 1 or as_json:
            results = [_ingest_file(client, f) for f in files]
        else:
            progress = Progress(
                TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
            )
            with progress:
                task = progress.add_task("ingest", total=len(files))
                for f in files:
                    results.append(_ingest_file(client, f))
                    progress.advance(task)
    failed = [r for r in results if "error" in r or any(rec["status"] == "failed" for rec in r["records"])]
    if as_json:
        print_json(results)
    else:
        _ingest_table(results)
    if failed:
        raise typer.Exit(1)


def _ingest_table(results: list[dict[str, Any]]) -> None:
    table = Table(title=f"ingested {len(results)} file(s)")
    for col in ("file", "record id", "class", "type", "status"):
        table.add_column(col, overflow="fold")
    for r in results:
        if "error" in r:
            table.add_row(r["file"], "-", "-", "-", f"[red]{r['error']['code']}[/red]: {r['error']['message']}")
            continue
        for rec in r["records"]:
            status = rec["status"] if rec["status"] != "failed" else f"[red]failed: {rec['error']['code']}[/red]"
            table.add_row(r["file"], rec["record_id"], rec["record_class"], rec["type_code"], status)
    console.print(table)


@app.command(
    "break-glass",
    epilog="Example:\n\n  medledger clinician break-glass 0x9a8F…c3E1 --reason 'unconscious in ED, allergies unknown' "
    "--minutes 60",
)
@cli_errors
def break_glass(
    patient: Annotated[str, typer.Argument(help="The patient's ledger address.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (10..1000 characters; kept here, its hash on chain).")],
    minutes: Annotated[float, typer.Option("--minutes", min=1, max=1440, help="How long the window stays open.")] = 60,
    node: NodeOpt = DEFAULT_NODE,
    token_env: TokenEnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open an emergency (break-glass) window on a patient for your institution. It is on chain, the patient
    is notified, and every read under it is flagged BREAK-GLASS in every audit."""
    addr = address_arg(patient, "patient")
    if not 10 <= len(reason.strip()) <= 1000:
        raise InputError("--reason must be 10..1000 characters", code="invalid_reason")
    with _client(node, token_env) as client:
        out = client.break_glass(addr, reason, minutes=minutes)
    if as_json:
        print_json(out)
        return
    console.print(
        f"[bold white on red] BREAK-GLASS {out['break_glass_id']} [/] open on {addr} until "
        f"{when(out['expires_at'])} UTC (block {out['block_number']}); the patient is notified",
        soft_wrap=True,
        highlight=False,
    )
