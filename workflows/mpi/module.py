"""The master patient index as a node module. For now it contributes only its command group (``medledger mpi``):
the index service — tables, routers, feeds, identity operations — comes next (docs/mpi.md)."""

from __future__ import annotations

import typer

from node.modules import NodeModule
from workflows.mpi import errors as _errors  # noqa: F401 - declares the module's error codes


class MpiModule(NodeModule):
    name = "mpi"
    summary = "Master patient index: link and deduplicate patient lists (clear or privacy-preserving)."

    def cli(self) -> typer.Typer:
        # Imported here: every `medledger` start mounts the module's group, and the matcher's numpy stays unloaded.
        from workflows.mpi.cli import app

        return app


module = MpiModule()
