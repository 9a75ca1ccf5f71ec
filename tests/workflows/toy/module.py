"""The toy workflow as a node module."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from node.modules import ModuleContext, ModuleRouter, ModuleSchema, NodeModule, StaffRole, Worker
from tests.workflows.toy import errors as _errors  # noqa: F401 - declares the module's error codes
from tests.workflows.toy.api import router
from tests.workflows.toy.models import Base
from tests.workflows.toy.service import ToySettings, toy_service
from tests.workflows.toy.workers import sweeper


class ToyModule(NodeModule):
    name = "toy"
    summary = "Toy notes (tests only)."
    settings_type = ToySettings
    schema = ModuleSchema(Base.metadata, Path(__file__).resolve().parent / "migrations")

    def routers(self, ctx: ModuleContext) -> Sequence[ModuleRouter]:
        return [ModuleRouter(router, prefix="/v1/toy", tags=("toy",), roles=(StaffRole.CLINICIAN, StaffRole.REGISTRAR))]

    def workers(self, ctx: ModuleContext) -> Sequence[Worker]:
        return [Worker("toy-sweeper", sweeper(toy_service(ctx), ctx.settings.sweep_interval))]

    def cli(self) -> typer.Typer:
        from tests.workflows.toy.cli import app

        return app


module = ToyModule()
