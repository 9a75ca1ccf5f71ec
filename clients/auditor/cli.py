"""``medledger audit``: rebuild the facts from the chain alone and check every access, erasure and ciphertext.

Exit codes: 0 clean (warnings allowed), 1 violations found, 2 the audit could not run (bad input, usage,
configuration, unreachable chain).
"""

from __future__ import annotations

import functools
import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from clients.auditor.audit import DEFAULT_KEY_ENV, DEFAULT_RPC, AuditSettings, run_audit
from clients.auditor.export import to_fhir_bundle, to_json
from clients.auditor.model import AuditReport, Scope, checked_address
from clients.auditor.report import render
from medledger.cli_support import console, err_console, handles_errors, print_json
from medledger.errors import InputError, MedLedgerError

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="Independent audit: re-index the chain into a private database (never a node's) and check that every "
    "access was authorized at its block, erasures were honoured and stored ciphertexts match their commitments. "
    "Exit 0 clean, 1 violations found, 2 the audit could not run.",
    no_args_is_help=True,
)

EXAMPLES = {
    "patient": (
        "Examples:\n\n"
        "  medledger audit patient 0x9a8F…c3E1\n\n"
        "  medledger audit patient 0x9a8F…c3E1 --json-out > audit.json\n\n"
        "  medledger audit patient 0x9a8F…c3E1 --fhir audit-bundle.json --key-env AUDITOR_KEY"
    ),
    "institution": (
        "Examples:\n\n"
        "  medledger audit institution 0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n\n"
        "  medledger audit institution 0x7099…79C8 --store 0x7099…79C8=/var/lib/medledger/blobs --json report.json"
    ),
    "range": (
        "Examples:\n\n"
        "  medledger audit range 1200 1500\n\n"
        "  medledger audit range 0 99999 --db sqlite:///audit.db --no-ciphertexts --format json"
    ),
}

RpcOpt = Annotated[str, typer.Option("--rpc", envvar="MEDLEDGER_RPC", help="Chain node JSON-RPC URL.")]
DirOpt = Annotated[
    Path | None,
    typer.Option("--deployments", help="Directory of deployment manifests (default chain_config/deployments)."),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Re-index database URL to keep and reuse (default: a temporary SQLite, deleted)."),
]
JsonPathOpt = Annotated[Path | None, typer.Option("--json", help="Write the report as JSON (schema v1) to PATH.")]
FhirOpt = Annotated[Path | None, typer.Option("--fhir", help="Write a FHIR R4 Bundle of AuditEvents to PATH.")]
CipherOpt = Annotated[
    bool | None,
    typer.Option(
        "--ciphertexts/--no-ciphertexts",
        help="Compare stored ciphertexts with their commitments (default: when a key or --store is available).",
        show_default=False,
    ),
]
KeyEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--key-env",
        help=f"Environment variable with the auditor institution's ledger key (hex) to sign ciphertext requests "
        f"(default {DEFAULT_KEY_ENV}, if set). The key is never printed.",
        show_default=False,
    ),
]
StoreOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--store",
        help="CUSTODIAN=PATH: read that custodian's ciphertexts from its blob store (path, file:// or Kubo URL). "
        "Repeatable.",
        show_default=False,
    ),
]
JsonOutOpt = Annotated[bool, typer.Option("--json-out", help="Print the report as JSON on stdout (= --format json).")]
FormatOpt = Annotated[Literal["table", "json"], typer.Option("--format", help="Report on stdout: rich tables or JSON.")]


class AuditFailed(MedLedgerError):
    """The audit could not run; always exit 2, so exit 1 keeps meaning "violations found"."""

    exit_code = 2


def _cannot_run(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MedLedgerError as exc:
            if exc.exit_code == 2:
                raise
            raise AuditFailed(exc.message, code=exc.code, details=exc.details) from None
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise AuditFailed(f"cannot use the re-index database: {first}", code="audit_database_error") from None
        except OSError as exc:
            raise AuditFailed(
                f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), code="audit_io_error"
            ) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception:
            # A bug keeps its traceback, but must not exit 1: scripts read 1 as "violations found".
            traceback.print_exc()
            raise typer.Exit(2) from None

    return wrapper


def parse_stores(values: list[str] | None) -> dict[str, str]:
    """``CUSTODIAN=PATH`` options as {checksummed custodian: path}."""
    out: dict[str, str] = {}
    for value in values or []:
        custodian, sep, where = value.partition("=")
        if not sep or not where.strip():
            raise InputError(f"--store must be CUSTODIAN=PATH, got {value!r}")
        out[checked_address(custodian, "--store custodian")] = where.strip()
    return out


def _progress() -> tuple[Progress, Callable[[int, int, int], None]]:
    progress = Progress(
        TextColumn("re-indexing the chain"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks, {task.fields[events]} events"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task("reindex", total=None, events=0)

    def update(done: int, total: int, events: int) -> None:
        progress.update(task, completed=done, total=max(total, 1), events=events)

    return progress, update


def _write(path: Path, data: Any) -> None:
    try:
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _audit(
    scope: Scope,
    *,
    rpc: str,
    deployments: Path | None,
    db: str | None,
    json_path: Path | None,
    fhir: Path | None,
    ciphertexts: bool | None,
    key_env: str | None,
    store: list[str] | None,
    json_out: bool,
    fmt: str,
) -> None:
    settings = AuditSettings(
        rpc_url=rpc,
        deployments_dir=deployments,
        db_url=db,
        ciphertexts=ciphertexts,
        key_env=key_env,
        stores=parse_stores(store),
    )
    progress, update = _progress()
    with progress:
        report: AuditReport = run_audit(scope, settings, on_progress=update)
    if json_path is not None:
        _write(json_path, to_json(report))
    if fhir is not None:
        _write(fhir, to_fhir_bundle(report))
    if json_out or fmt == "json":
        print_json(to_json(report))
    else:
        render(report, console)
    if not report.clean:
        raise typer.Exit(1)


@app.command(epilog=EXAMPLES["patient"])
@handles_errors
@_cannot_run
def patient(
    address: Annotated[str, typer.Argument(help="The patient's ledger address.", show_default=False)],
    rpc: RpcOpt = DEFAULT_RPC,
    deployments: DirOpt = None,
    db: DbOpt = None,
    json_path: JsonPathOpt = None,
    fhir: FhirOpt = None,
    ciphertexts: CipherOpt = None,
    key_env: KeyEnvOpt = None,
    store: StoreOpt = None,
    json_out: JsonOutOpt = False,
    fmt: FormatOpt = "table",
) -> None:
    """Audit every access to one patient's records, their grants, break-glass windows and erasures."""
    _audit(
        Scope.patient(address),
        rpc=rpc,
        deployments=deployments,
        db=db,
        json_path=json_path,
        fhir=fhir,
        ciphertexts=ciphertexts,
        key_env=key_env,
        store=store,
        json_out=json_out,
        fmt=fmt,
    )


@app.command(epilog=EXAMPLES["institution"])
@handles_errors
@_cannot_run
def institution(
    address: Annotated[str, typer.Argument(help="The institution's ledger address.", show_default=False)],
    rpc: RpcOpt = DEFAULT_RPC,
    deployments: DirOpt = None,
    db: DbOpt = None,
    json_path: JsonPathOpt = None,
    fhir: FhirOpt = None,
    ciphertexts: CipherOpt = None,
    key_env: KeyEnvOpt = None,
    store: StoreOpt = None,
    json_out: JsonOutOpt = False,
    fmt: FormatOpt = "table",
) -> None:
    """Audit an institution: its accesses as accessor, and every access to records it is custodian of."""
    _audit(
        Scope.institution(address),
        rpc=rpc,
        deployments=deployments,
        db=db,
        json_path=json_path,
        fhir=fhir,
        ciphertexts=ciphertexts,
        key_env=key_env,
        store=store,
        json_out=json_out,
        fmt=fmt,
    )


@app.command(name="range", epilog=EXAMPLES["range"])
@handles_errors
@_cannot_run
def block_range(
    from_block: Annotated[int, typer.Argument(help="First block (inclusive).", show_default=False)],
    to_block: Annotated[int, typer.Argument(help="Last block (inclusive).", show_default=False)],
    rpc: RpcOpt = DEFAULT_RPC,
    deployments: DirOpt = None,
    db: DbOpt = None,
    json_path: JsonPathOpt = None,
    fhir: FhirOpt = None,
    ciphertexts: CipherOpt = None,
    key_env: KeyEnvOpt = None,
    store: StoreOpt = None,
    json_out: JsonOutOpt = False,
    fmt: FormatOpt = "table",
) -> None:
    """Audit every access logged in blocks FROM_BLOCK..TO_BLOCK (consent is judged on the whole chain before)."""
    _audit(
        Scope.block_range(from_block, to_block),
        rpc=rpc,
        deployments=deployments,
        db=db,
        json_path=json_path,
        fhir=fhir,
        ciphertexts=ciphertexts,
        key_env=key_env,
        store=store,
        json_out=json_out,
        fmt=fmt,
    )


@app.command(
    epilog="Examples:\n\n"
    "  medledger audit serve --port 8600\n\n"
    "  MEDLEDGER_AUDITOR_KEY=… medledger audit serve --rpc http://10.0.0.5:8545 --db sqlite:///audit.db"
)
@handles_errors
@_cannot_run
def serve(
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8600,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    rpc: RpcOpt = DEFAULT_RPC,
    deployments: DirOpt = None,
    db: DbOpt = None,
    ciphertexts: CipherOpt = None,
    key_env: KeyEnvOpt = None,
    store: StoreOpt = None,
) -> None:
    """Serve the auditor's web page and audit API (POST /v1/audits, GET /v1/audits/{id}, .../auditevents).

    The page is the portal's auditor page at http://HOST:PORT/portal/auditor.html; audits run as the commands
    above do (their own re-index of the chain, never a node's database), one at a time.
    """
    from clients.auditor.web import serve as run_service

    settings = AuditSettings(
        rpc_url=rpc,
        deployments_dir=deployments,
        db_url=db,
        ciphertexts=ciphertexts,
        key_env=key_env,
        stores=parse_stores(store),
    )
    err_console.print(f"auditor: http://{host}:{port}/portal/auditor.html (chain {rpc})", highlight=False)
    run_service(settings, host=host, port=port)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "120")
    app()
