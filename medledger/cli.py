"""``medledger``: the one command-line entry point. Each area adds its sub-commands here."""

from __future__ import annotations

import typer

from medledger import __version__
from medledger.chain.cli import app as chain_app

app = typer.Typer(
    help="MedLedger: patient-controlled health-record sharing on a permissioned chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(chain_app, name="chain")


def _add_component_commands() -> None:
    # The node and indexer are separate packages; the root CLI only mounts their typer apps.
    from clients.auditor.cli import app as audit_app
    from indexer.cli import app as indexer_app
    from node.cli import app as node_app

    app.add_typer(node_app, name="node")
    app.add_typer(indexer_app, name="indexer")
    app.add_typer(audit_app, name="audit")


_add_component_commands()


@app.command()
def version() -> None:
    """Print the MedLedger version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
