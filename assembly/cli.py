"""``medledger``: the one command-line entry point. Each component's command group is mounted here, and so is
the command group of every node module this installation provides (``medledger <module> ...``)."""

from __future__ import annotations

import typer

from assembly.demo_cli import app as demo_app
from clients.auditor.cli import app as audit_app
from clients.clinician_cli import app as clinician_app
from clients.patient_cli import app as patient_app
from clients.wallet_cli import app as wallet_app
from indexer.cli import app as indexer_app
from medledger import __version__
from medledger.chain.cli import app as chain_app
from medledger.errors import ConfigError
from node.cli import app as node_app
from node.modules.loader import available, load_module

app = typer.Typer(
    help="MedLedger: patient-controlled health-record sharing on a permissioned chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_GROUPS: dict[str, typer.Typer] = {
    "chain": chain_app,
    "node": node_app,
    "indexer": indexer_app,
    "audit": audit_app,
    "wallet": wallet_app,
    "patient": patient_app,
    "clinician": clinician_app,
    "demo": demo_app,
}
for _name, _group in _GROUPS.items():
    app.add_typer(_group, name=_name)


def mount_module_commands(root: typer.Typer, names: list[str] | None = None) -> list[str]:
    """Mount the command group of each module in ``names`` (default: every installed module) under its name;
    returns the names mounted. A module that cannot be loaded is left out here (``medledger node modules`` says
    why); a module named like a component's group is refused."""
    mounted = []
    for name in available() if names is None else names:
        try:
            module = load_module(name)
        except ConfigError:
            continue
        group = module.cli()
        if group is None:
            continue
        if module.name in _GROUPS or module.name == "version":
            raise ConfigError(f"module {module.name!r} cannot take the name of the `medledger {module.name}` group")
        root.add_typer(group, name=module.name, help=module.summary or None)
        mounted.append(module.name)
    return mounted


mount_module_commands(app)


@app.command()
def version() -> None:
    """Print the MedLedger version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
