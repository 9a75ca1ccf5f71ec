"""``medledger toy``: the toy workflow's command group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medledger.cli_support import console, handles_errors, print_json
from node.modules import NodeServices
from tests.workflows.toy.service import toy_service

app = typer.Typer(help="The toy workflow (tests only).", no_args_is_help=True)


@app.command()
@handles_errors
def notes(
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="MEDLEDGER_NODE_DIR")] = Path(".medledger/node"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the node's toy notes."""
    with NodeServices.open(data_dir) as services:
        rows = toy_service(services.module("toy")).notes()
    if as_json:
        print_json(rows)
        return
    for n in rows:
        console.print(f"#{n['id']} {n['text']} ({'seen' if n['seen'] else 'new'})", highlight=False)
