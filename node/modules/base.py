"""What a node module is: the one small protocol through which a workflow (or the node's own ingest and sharing
APIs) plugs into a node.

A module contributes, each optionally:

* API routers, each with its prefix, tags and the staff roles every route of it requires;
* background workers, started and stopped with the node's runtime (supervised: restarted with back-off);
* its own tables: a SQLAlchemy ``MetaData`` with its own Alembic migrations in the node's database, under its own
  version table (``alembic_version_<name>``), so modules evolve their schemas independently of each other;
* a command group, mounted by the assembly as ``medledger <name> ...``;
* a settings dataclass, filled from the ``[<name>]`` section of ``node.toml``.

A node enables modules by name in ``node.toml`` (``modules = ["ingest", "sharing", ...]``); see
:mod:`node.modules.loader` for how names resolve.
"""

from __future__ import annotations

import re
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fastapi import APIRouter
from sqlalchemy import MetaData

from medledger.errors import ConfigError

if TYPE_CHECKING:
    import typer

    from node.auth import StaffRole
    from node.service import NodeServices

#: Module names: what ``modules = [...]`` lists and what prefixes their version tables and commands.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class ModuleRouter:
    """An API router as a module mounts it."""

    router: APIRouter
    prefix: str = ""
    tags: tuple[str, ...] = ()
    #: Staff roles every route of the router requires (checked before the route runs). Empty: the routes
    #: authenticate themselves (patients, signed institution requests, public endpoints).
    roles: tuple[StaffRole, ...] = ()


@dataclass(frozen=True)
class Worker:
    """A background loop: ``run(stop)`` returns when ``stop`` is set. ``wake`` (if any) is called on stop so a
    worker asleep on a doorbell sees the stop at once."""

    name: str
    run: Callable[[threading.Event], None]
    wake: Callable[[], None] | None = None


@dataclass(frozen=True)
class ModuleSchema:
    """A module's tables: its own metadata and the Alembic script directory that creates and migrates them."""

    metadata: MetaData
    migrations: Path


@dataclass
class ModuleContext:
    """What a module gets from the node it runs in: the node's services (database, chain, keys, outboxes) and its
    own validated settings. ``state`` holds what the module builds once per node (its services)."""

    module: NodeModule
    services: NodeServices
    settings: Any
    state: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """The module's ``key`` service, built on first use (once per node)."""
        if key not in self.state:
            self.state[key] = build()
        return self.state[key]


class NodeModule:
    """Base of every module. Subclasses set ``name`` and override what they contribute; the defaults contribute
    nothing, so a module states only what it has."""

    name: ClassVar[str]
    #: One line for ``medledger node modules`` and error messages.
    summary: ClassVar[str] = ""
    #: A dataclass for the module's ``[<name>]`` section of node.toml (None: the module takes no settings).
    settings_type: ClassVar[type | None] = None
    schema: ClassVar[ModuleSchema | None] = None

    def routers(self, ctx: ModuleContext) -> Sequence[ModuleRouter]:
        return ()

    def workers(self, ctx: ModuleContext) -> Sequence[Worker]:
        return ()

    def cli(self) -> typer.Typer | None:
        """The module's command group (built without a node: commands open one from ``--data-dir``)."""
        return None

    def close(self, ctx: ModuleContext) -> None:
        """Release what the module holds (called when the node closes, modules in reverse order)."""
        for value in reversed(list(ctx.state.values())):
            closer = getattr(value, "close", None)
            if callable(closer):
                closer()

    # ------------------------------------------------------------------ settings

    def parse_settings(self, raw: dict[str, Any], where: str) -> Any:
        """The module's settings from its node.toml section (``ConfigError`` naming ``where`` if invalid)."""
        kind = self.settings_type
        if kind is None:
            if raw:
                raise ConfigError(f"{where}: module {self.name!r} takes no settings")
            return None
        if not is_dataclass(kind):
            raise ConfigError(f"module {self.name!r}: settings_type must be a dataclass")
        known = {f.name for f in fields(kind)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        hints = typing.get_type_hints(kind)
        for key, value in raw.items():
            expected = hints.get(key)
            if isinstance(expected, type) and expected in _TYPE_WORDS and not _is(value, expected):
                raise ConfigError(f"{where}: {key} must be {_TYPE_WORDS[expected]}, not {value!r}")
        try:
            settings = kind(**raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        check = getattr(settings, "validate", None)
        if callable(check):
            try:
                check()
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return settings

    def __repr__(self) -> str:
        return f"<node module {getattr(self, 'name', '?')}>"


_TYPE_WORDS: dict[Any, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _is(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def version_table(module: NodeModule) -> str:
    return f"alembic_version_{module.name}"


__all__ = ["NAME", "ModuleContext", "ModuleRouter", "ModuleSchema", "NodeModule", "Worker", "version_table"]
