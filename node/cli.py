"""``medledger node``: set up an institution node, ingest records, anchor them, serve the API."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_utils import is_address, to_checksum_address
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medledger.cli_support import console, err_console, handles_errors, print_json
from medledger.errors import ConfigError, InputError, MedLedgerError
from medledger.redact import redact_url
from node.anchorer import AnchorStep
from node.auth import StaffRole, create_staff, revoke_staff
from node.config import NodeConfig
from node.db import open_node_db
from node.ingest import parse_file
from node.keystore import LocalKeystore
from node.service import NodeServices, read_password

log = logging.getLogger("medledger.node")

app = typer.Typer(help="Run an institution node: ingest, encrypt, store and anchor records.", no_args_is_help=True)
staff_app = typer.Typer(help="Manage staff API tokens.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="MEDLEDGER_NODE_DIR", help="The node's data directory (node.toml, keys, db)."),
]
DEFAULT_DIR = Path(".medledger/node")
#: Chain client settings of one-shot commands: an operator waits for them, so a chain that is down is reported
#: after seconds, not after the long-running anchorer's patient retries (records stay queued either way).
ONE_SHOT_RPC: dict[str, Any] = {"rpc_timeout": 10.0, "rpc_retries": 2}
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
    out = {"highlight": False, "soft_wrap": True}  # one line each, whatever the terminal width
    console.print(f"[bold]Node {escape(repr(name))} created[/bold] in {escape(str(data_dir))}", **out)
    console.print(f"ledger address:        {keystore.address}", **out)
    console.print(f"encryption public key: 0x{keystore.encryption_public_key.hex()}", **out)
    console.print("next: have the consortium admit this address, then `medledger node staff add`.", **out)


@app.command()
@handles_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    data_dir: DataDir = DEFAULT_DIR,
    anchor: Annotated[bool, typer.Option(help="Anchor the queued records on chain before returning.")] = True,
    as_json: AsJson = False,
) -> None:
    """Ingest HL7 v2 messages, DICOM files and FHIR JSON; the format is detected from content.

    Prints one line per file; the others still go through when one fails. Exits 2 if a file was rejected as
    bad input (its error code says why), 1 if one could not be ingested for another reason (unreadable, the store
    failed), 0 otherwise.

    Example: medledger node ingest incoming/ lab/oru.hl7 --data-dir /srv/medledger
    """
    files = _expand(paths)
    with NodeServices.open(data_dir, **ONE_SHOT_RPC) as services:
        results: list[dict[str, Any]] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True, disable=as_json) as progress:
            task = progress.add_task("ingesting", total=len(files))
            for path in files:
                results.append(_ingest_one(services, path))
                progress.advance(task)
        anchored = _anchor_now(services) if anchor else None
    failed = [r for r in results if r["status"] == "failed"]
    if as_json:
        print_json({"files": results, "anchored": anchored.confirmed if anchored else 0})
    else:
        for r in results:
            colour = {"failed": "red", "duplicate": "yellow"}.get(r["status"], "green")
            detail = r.get("error") or ", ".join(f"{n} {s}" for s, n in Counter(r["records"]).items())
            # soft_wrap: one line per file however long the path, so the output stays greppable.
            console.print(
                f"[{colour}]{r['status']:9}[/{colour}] {escape(r['file'])}  {escape(detail)}",
                highlight=False,
                soft_wrap=True,
            )
        counts = Counter(r["status"] for r in results)
        summary = ", ".join(f"{counts[s]} {s}" for s in ("ok", "duplicate", "failed") if counts[s])
        console.print(
            f"{len(results)} file(s): {summary}" + (f"; {anchored.confirmed} anchored" if anchored else ""),
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        # Bad input is exit 2 everywhere in the CLI; anything else that failed is the operation failing (1).
        raise typer.Exit(2 if all(r.get("rejected") for r in failed) else 1)


def _anchor_now(services: NodeServices, *, timeout: float = 120.0) -> AnchorStep | None:
    """Anchor what is queued (and reconcile what is submitted) before returning; None if there was nothing to
    anchor. A chain that is down or not configured only defers anchoring (records stay queued): a warning,
    not a failure, and it never blocks (``Anchorer.drain`` would keep polling a chain that is down)."""
    counts = services.pipeline.status_counts()
    if not counts.get("queued") and not counts.get("submitted"):
        return None
    total = AnchorStep()
    deadline = time.monotonic() + timeout
    try:
        anchorer = services.anchorer()
        while time.monotonic() < deadline:
            counts = anchorer.status_counts()
            if not counts.get("queued") and not counts.get("submitted"):
                break
            step = anchorer.run_once()
            for name in ("batches", "submitted", "confirmed", "requeued", "rebroadcast"):
                setattr(total, name, getattr(total, name) + getattr(step, name))
            if step.chain_down:
                total.chain_down = True
                break
            if step.idle:
                time.sleep(0.02)
    except MedLedgerError as exc:
        total.chain_down = True
        _warn(f"anchoring deferred ({exc.code}: {exc.message}); records stay queued")
        return total
    if total.chain_down:
        _warn("anchoring deferred (chain unavailable); records stay queued")
    return total


def _warn(text: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(' '.join(text.split()))}", highlight=False, soft_wrap=True)


def _ingest_one(services: NodeServices, path: Path) -> dict[str, Any]:
    try:
        records = parse_file(path, **services.config.parse_options())
        results = services.pipeline.ingest(records)
    except MedLedgerError as exc:
        failure = {"file": str(path), "status": "failed", "error": f"{exc.code}: {exc.message}", "records": []}
        return failure | ({"rejected": True} if isinstance(exc, InputError) else {})
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
    """Show the node: identity, records per status (pending_link, queued, submitted, confirmed), membership.

    Works while the chain is down: the chain error is shown instead of the membership (exit status 0).
    """
    # A status check must answer quickly: a short timeout and one retry instead of the anchorer's patience.
    with NodeServices.open(data_dir, rpc_timeout=5.0, rpc_retries=1) as services:
        counts = services.pipeline.status_counts()
        member: bool | None = None
        chain_error = ""
        try:
            member = services.contracts.consortium.is_member(services.address)
        except MedLedgerError as exc:
            chain_error = f"{exc.code}: {' '.join(exc.message.split())}"
        rpc_url = redact_url(services.config.rpc_url)
        if as_json:
            print_json({"name": services.config.name, "address": services.address, "records": counts,
                        "rpc_url": rpc_url, "member": member, "chain_error": chain_error or None})  # fmt: skip
            return
        console.print(f"[bold]{escape(services.config.name)}[/bold]  {services.address}", soft_wrap=True)
        console.print(
            f"chain: {escape(rpc_url)}  " + (escape(chain_error) or f"member: {member}"),
            highlight=False,
            soft_wrap=True,
        )
        table = Table("status", "records")
        for s, n in sorted(counts.items()):
            table.add_row(s, str(n))
        console.print(table)


@app.command("link-patient")
@handles_errors
def link_patient(
    mrn: Annotated[str, typer.Option(help="The patient's medical record number here.")],
    address: Annotated[str, typer.Option(help="The patient's ledger address (their wallet).")],
    authority: Annotated[str, typer.Option(help="Assigning authority of the MRN.")] = "",
    data_dir: DataDir = DEFAULT_DIR,
    anchor: Annotated[bool, typer.Option(help="Anchor the newly queued records before returning.")] = True,
) -> None:
    """Link a local patient (MRN) to their ledger address; their waiting records are then anchored.

    The patient's encryption key is read from the chain (the wallet registers it), so it cannot be spoofed.

    Example: medledger node link-patient --mrn MRN-4004 --authority LABCORP --address 0x... --data-dir /srv/medledger
    """
    if not is_address(address) or int(address, 16) == 0:
        raise InputError(f"not a ledger address: {address}", code="invalid_address")
    with NodeServices.open(data_dir, **ONE_SHOT_RPC) as services:
        result = services.directory.link_from_chain(mrn, authority, address, services.contracts.consortium)
        console.print(
            f"linked {escape(mrn)} → {to_checksum_address(address)}; {result.queued} record(s) queued for anchoring",
            highlight=False,
            soft_wrap=True,
        )
        if anchor and result.queued:
            step = _anchor_now(services)
            if step is not None and not step.chain_down:
                console.print(f"{step.confirmed} record(s) anchored", highlight=False)


@app.command()
@handles_errors
def anchor(data_dir: DataDir = DEFAULT_DIR) -> None:
    """Anchor every queued record now (and reconcile submitted ones), then exit.

    Exits 1 if the chain cannot be reached (the records stay queued for the next attempt).
    """
    with NodeServices.open(data_dir, **ONE_SHOT_RPC) as services:
        step = _anchor_now(services)
    if step is None:
        console.print("nothing to anchor")
        return
    console.print(f"confirmed {step.confirmed}, requeued {step.requeued}, rebroadcast {step.rebroadcast}")
    if step.chain_down:
        raise typer.Exit(1)


@app.command()
@handles_errors
def serve(
    data_dir: DataDir = DEFAULT_DIR,
    host: Annotated[str | None, typer.Option(help="Bind address (default from node.toml).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from node.toml).")] = None,
) -> None:
    """Serve the node API (OpenAPI docs at /docs) with its background work until Ctrl-C: anchoring, following
    the ledger (consent, membership), moving the access journal on chain and retrying erasure markers."""
    import uvicorn

    from node.api.app import create_app
    from node.runtime import NodeRuntime

    services = NodeServices.open(data_dir)
    runtime = NodeRuntime(services).start()
    try:
        uvicorn.run(
            create_app(services),
            host=host or services.config.api_host,
            port=port or services.config.api_port,
            log_level="warning",
        )
    finally:
        runtime.stop()
        services.close()


@app.command()
@handles_errors
def profile(data_dir: DataDir = DEFAULT_DIR) -> None:
    """Publish this node's public URL (`public_url`) and X25519 encryption key in its consortium member
    profile: other nodes find it and wrap record keys to it from there. Run once after admission and after
    changing the URL.

    Example: medledger node profile --data-dir /srv/medledger
    """
    with NodeServices.open(data_dir, rpc_timeout=10.0, rpc_retries=1) as services:
        receipt = services.publish_profile()
        console.print(
            f"profile published: {services.config.origin} (tx {receipt.tx_hash}, block {receipt.block_number})",
            highlight=False,
            soft_wrap=True,
        )


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
    console.print(
        f"staff #{identity.id} {escape(identity.name)} ({identity.role.value}); token (shown once, keep it secret):",
        highlight=False,
        soft_wrap=True,
    )
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
