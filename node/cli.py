"""``medledger node``: set up an institution node, ingest records, anchor them, serve the API."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medledger.cli_support import console, err_console, handles_errors, print_json
from medledger.errors import ConfigError, InputError, MedLedgerError
from node.auth import StaffRole, create_staff, revoke_staff
from node.config import NodeConfig
from node.db import open_node_db
from node.ingest import parse_file
from node.keystore import LocalKeystore
from node.service import NodeServices, read_password

app = typer.Typer(help="Run an institution node: ingest, encrypt, store and anchor records.", no_args_is_help=True)
staff_app = typer.Typer(help="Manage staff API tokens.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="MEDLEDGER_NODE_DIR", help="The node's data directory (node.toml, keys, db)."),
]
DEFAULT_DIR = Path(".medledger/node")
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
@handles_errors
def init(
    name: Annotated[str, typer.Option(help="Institution name, as admitted to the consortium.")],
    data_dir: DataDir = DEFAULT_DIR,
    rpc_url: Annotated[str, typer.Option("--rpc", help="Chain JSON-RPC URL.")] = "http://127.0.0.1:8545",
    database_url: Annotated[str, typer.Option("--db", help="Database URL (default: SQLite in the data dir).")] = "",
    store_url: Annotated[str, typer.Option("--store", help="Blob store: a path or a Kubo RPC URL.")] = "",
    api_port: Annotated[int, typer.Option(help="Port of the node API.")] = 8701,
    import_key_env: Annotated[
        str, typer.Option(help="Environment variable holding an existing ledger private key to import.")
    ] = "",
) -> None:
    """Create a node: keystore (ledger key, encryption key, key-encryption key), config and database.

    The keystore password comes from MEDLEDGER_NODE_PASSWORD or a prompt. Without --import-key-env a new
    ledger key is generated: give its address to the consortium to be admitted.

    Example: MEDLEDGER_NODE_PASSWORD=... medledger node init --name "Hospital A" --data-dir /srv/medledger
    """
    if (data_dir / "node.toml").exists():
        raise ConfigError(f"{data_dir} already holds a node (node.toml exists)")
    config = NodeConfig(
        name=name, data_dir=data_dir, rpc_url=rpc_url, database_url=database_url, store_url=store_url,
        api_port=api_port,
    )  # fmt: skip
    private_key: bytes | None = None
    if import_key_env:
        raw = os.environ.get(import_key_env, "")
        try:
            private_key = bytes.fromhex(raw.removeprefix("0x"))
        except ValueError:
            private_key = b""
        if len(private_key) != 32:
            # Never echo the value: it is (meant to be) a private key.
            raise ConfigError(f"{import_key_env} must hold a 32-byte hex private key to import")
    password = read_password(config.password_env, confirm=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    keystore = LocalKeystore.create(config.keystore_path, password, private_key=private_key)
    config.save()
    engine, _ = open_node_db(config.db_url)
    engine.dispose()
    console.print(f"[bold]Node {name!r} created[/bold] in {data_dir}")
    console.print(f"ledger address:        {keystore.address}")
    console.print(f"encryption public key: 0x{keystore.encryption_public_key.hex()}")
    console.print("next: have the consortium admit this address, then `medledger node staff add`.")


@app.command()
@handles_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    data_dir: DataDir = DEFAULT_DIR,
    anchor: Annotated[bool, typer.Option(help="Anchor the queued records on chain before returning.")] = True,
    as_json: AsJson = False,
) -> None:
    """Ingest HL7 v2 messages, DICOM files and FHIR JSON; the format is detected from content.

    Prints one line per file; exits 1 if any file failed (the others still go through).

    Example: medledger node ingest incoming/ lab/oru.hl7 --data-dir /srv/medledger
    """
    files = _expand(paths)
    services = NodeServices.open(data_dir)
    results: list[dict] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("ingesting", total=len(files))
        for path in files:
            results.append(_ingest_one(services, path))
            progress.advance(task)
    failed = [r for r in results if r["status"] == "failed"]
    anchored = None
    if anchor and len(failed) < len(results):
        try:
            anchored = services.anchorer().drain()
        except MedLedgerError as exc:
            err_console.print(f"[yellow]warning:[/yellow] anchoring deferred ({exc.code}): records stay queued")
    if as_json:
        print_json({"files": results, "anchored": anchored.confirmed if anchored else 0})
    else:
        for r in results:
            colour = {"failed": "red", "duplicate": "yellow"}.get(r["status"], "green")
            detail = r.get("error") or ", ".join(f"{n} {s}" for s, n in Counter(r["records"]).items())
            console.print(f"[{colour}]{r['status']:9}[/{colour}] {r['file']}  {detail}", highlight=False)
        counts = Counter(r["status"] for r in results)
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        console.print(f"{len(results)} file(s): {summary}" + (f"; {anchored.confirmed} anchored" if anchored else ""))
    services.close()
    if failed:
        raise typer.Exit(1)


def _ingest_one(services: NodeServices, path: Path) -> dict:
    try:
        records = parse_file(path, **services.config.parse_options())
        results = services.pipeline.ingest(records)
    except MedLedgerError as exc:
        return {"file": str(path), "status": "failed", "error": f"{exc.code}: {exc.message}", "records": []}
    except OSError as exc:
        return {"file": str(path), "status": "failed", "error": f"unreadable: {exc.strerror}", "records": []}
    statuses = [r.status for r in results]
    errors = [f"{r.error}: {r.message}" for r in results if r.status == "failed"]
    if errors:
        return {"file": str(path), "status": "failed", "error": "; ".join(errors), "records": statuses}
    status = "duplicate" if statuses and all(s == "duplicate" for s in statuses) else "ok"
    return {"file": str(path), "status": status, "records": statuses}


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"no such file or folder: {p}")
    if not files:
        raise InputError("nothing to ingest: the given folders are empty")
    return files


@app.command()
@handles_errors
def status(data_dir: DataDir = DEFAULT_DIR, as_json: AsJson = False) -> None:
    """Show the node: identity, records per status (pending_link, queued, submitted, confirmed), membership."""
    services = NodeServices.open(data_dir)
    counts = services.pipeline.status_counts()
    member: bool | None = None
    chain_error = ""
    try:
        member = services.contracts.consortium.is_member(services.address)
    except MedLedgerError as exc:
        chain_error = f"{exc.code}: {exc.message}"
    if as_json:
        print_json({"name": services.config.name, "address": services.address, "records": counts,
                    "member": member, "chain_error": chain_error or None})  # fmt: skip
    else:
        console.print(f"[bold]{services.config.name}[/bold]  {services.address}")
        console.print(f"chain: {services.config.rpc_url}  " + (chain_error or f"member: {member}"))
        table = Table("status", "records")
        for s, n in sorted(counts.items()):
            table.add_row(s, str(n))
        console.print(table)
    services.close()


@app.command("link-patient")
@handles_errors
def link_patient(
    mrn: Annotated[str, typer.Option(help="The patient's medical record number here.")],
    address: Annotated[str, typer.Option(help="The patient's ledger address (their wallet).")],
    authority: Annotated[str, typer.Option(help="Assigning authority of the MRN.")] = "",
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Link a local patient (MRN) to their ledger address; their waiting records are then anchored.

    The patient's encryption key is read from the chain (the wallet registers it), so it cannot be spoofed.
    """
    services = NodeServices.open(data_dir)
    result = services.directory.link_from_chain(mrn, authority, address, services.contracts.consortium)
    console.print(f"linked {mrn} → {address}; {result.queued} record(s) queued for anchoring")
    services.close()


@app.command()
@handles_errors
def anchor(data_dir: DataDir = DEFAULT_DIR) -> None:
    """Anchor every queued record now (and reconcile submitted ones), then exit."""
    services = NodeServices.open(data_dir)
    step = services.anchorer().drain()
    console.print(f"confirmed {step.confirmed}, requeued {step.requeued}, rebroadcast {step.rebroadcast}")
    services.close()


@app.command()
@handles_errors
def serve(
    data_dir: DataDir = DEFAULT_DIR,
    host: Annotated[str | None, typer.Option(help="Bind address (default from node.toml).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from node.toml).")] = None,
) -> None:
    """Serve the node API (OpenAPI docs at /docs) and run the anchorer until Ctrl-C."""
    import uvicorn

    from node.api.app import create_app

    services = NodeServices.open(data_dir)
    stop = threading.Event()
    anchorer = threading.Thread(target=services.anchorer().run, args=(stop,), name="anchorer", daemon=True)
    anchorer.start()
    try:
        uvicorn.run(
            create_app(services),
            host=host or services.config.api_host,
            port=port or services.config.api_port,
            log_level="warning",
        )
    finally:
        stop.set()
        anchorer.join(timeout=10)
        services.close()


@staff_app.command("add")
@handles_errors
def staff_add(
    name: Annotated[str, typer.Option(help="Staff member's name (stays on this node).")],
    role: Annotated[str, typer.Option(help="clinician, registrar, admin or auditor.")],
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Create a staff API token. The token is printed once and stored only as a hash."""
    config = NodeConfig.load(data_dir)
    engine, sessions = open_node_db(config.db_url)
    with sessions.begin() as session:
        identity, token = create_staff(session, name, StaffRole.parse(role))
    engine.dispose()
    console.print(f"staff #{identity.id} {identity.name} ({identity.role.value})")
    typer.echo(token)


@staff_app.command("revoke")
@handles_errors
def staff_revoke(staff_id: Annotated[int, typer.Argument(help="Staff id.")], data_dir: DataDir = DEFAULT_DIR) -> None:
    """Revoke a staff member's token."""
    config = NodeConfig.load(data_dir)
    engine, sessions = open_node_db(config.db_url)
    with sessions.begin() as session:
        revoke_staff(session, staff_id)
    engine.dispose()
    console.print(f"revoked staff #{staff_id}")


__all__ = ["app", "read_password"]
