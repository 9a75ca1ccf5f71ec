"""``medledger demo``: the one-command regional demo (see assembly.demo)."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from assembly.demo import Region, Story, show_endpoints, start_region
from clients.cli_options import cli_errors
from medledger.cli_support import console
from medledger.errors import InputError

app = typer.Typer(help="Run the regional demo: a chain, three hospital/CDC nodes and one patient's story.")


@app.callback(
    invoke_without_command=True,
    epilog="Examples:\n\n  medledger demo\n\n  medledger demo --exit\n\n  medledger demo --dir ./demo --exit",
)
@cli_errors
def demo(
    exit_: Annotated[bool, typer.Option("--exit", help="Stop the nodes and the chain once the story is told.")] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Keep the chain log, deployments, node data and the patient's wallet here (new or empty "
            "directory; kept afterwards). Default: a temporary directory, deleted at the end.",
            metavar="PATH",
        ),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary directory (printed at the end).")] = False,
    any_port: Annotated[
        bool,
        typer.Option("--any-port", help="Use free ports instead of the dev ports (Anvil 8545, nodes 8701-8703)."),
    ] = False,
) -> None:
    """Start Anvil, deploy the dev consortium, start Hospital A, Hospital B and the Regional CDC as real nodes,
    then play one patient's story over HTTP: treatment, referral grant, cross-institution reads, the access
    list, revocation and denial, break-glass, the notification and an audit from the chain alone. The nodes
    keep running (with their OpenAPI docs) until Ctrl-C, unless --exit."""
    root, temporary = _root(directory)
    region: Region | None = None
    try:
        with console.status("starting the chain and three nodes…"):
            region = start_region(root, any_port=any_port)
        facts = Story(region, console).play()
        show_endpoints(region, facts, console, staying=not exit_)
        if not exit_:
            _stop_on_sigterm()
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        if region is not None:
            region.close()
        if temporary and not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif temporary:
            console.print(f"demo data kept in {root}", highlight=False, soft_wrap=True)


def _stop_on_sigterm() -> None:
    """A service manager's stop (SIGTERM) ends the demo like Ctrl-C does: nodes and Anvil stopped cleanly,
    instead of leaving Anvil (its own session) orphaned."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _root(directory: Path | None) -> tuple[Path, bool]:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="medledger-demo-")), True
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"--dir {directory} must be a new or empty directory", code="demo_dir_not_empty")
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve(), False
