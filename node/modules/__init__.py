"""The node's public interface for modules: everything a workflow under ``workflows/`` may use of the node.

A workflow imports from here (and from ``medledger`` and ``indexer``), never from another ``node.*`` module, so
the node's internals can change without touching the workflows (tests/test_layering.py checks it). What a
module needs at run time — the database, the chain-write outbox, the notification service, the ledger view,
the node's address and keys — it reaches through its :class:`ModuleContext` (``ctx.services``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from node.modules.base import NAME, ModuleContext, ModuleRouter, ModuleSchema, NodeModule, Worker, version_table

if TYPE_CHECKING:
    from node.api.deps import Patient, Staff, services_of
    from node.api.responses import errors
    from node.auth import StaffIdentity, StaffRole
    from node.service import NodeServices

# Resolved on first use: the API layer imports the service container, which imports this package's base, so
# importing them eagerly here would be circular.
_LAZY = {
    "Patient": "node.api.deps",
    "Staff": "node.api.deps",
    "services_of": "node.api.deps",
    "errors": "node.api.responses",
    "StaffIdentity": "node.auth",
    "StaffRole": "node.auth",
    "NodeServices": "node.service",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'node.modules' has no attribute {name!r}")


__all__ = [
    "NAME",
    "ModuleContext",
    "ModuleRouter",
    "ModuleSchema",
    "NodeModule",
    "NodeServices",
    "Patient",
    "Staff",
    "StaffIdentity",
    "StaffRole",
    "Worker",
    "errors",
    "services_of",
    "version_table",
]
