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


@app.command()
def version() -> None:
    """Print the MedLedger version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
