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
    from clients.clinician_cli import app as clinician_app
    from clients.demo_cli import app as demo_app
    from clients.patient_cli import app as patient_app
    from clients.wallet_cli import app as wallet_app
    from indexer.cli import app as indexer_app
    from node.cli import app as node_app

    app.add_typer(node_app, name="node")
    app.add_typer(indexer_app, name="indexer")
    app.add_typer(audit_app, name="audit")
    app.add_typer(wallet_app, name="wallet")
    app.add_typer(patient_app, name="patient")
    app.add_typer(clinician_app, name="clinician")
    app.add_typer(demo_app, name="demo")


_add_component_commands()


@app.command()
def version() -> None:
    """Print the MedLedger version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
