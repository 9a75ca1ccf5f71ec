"""From the names in ``node.toml``'s ``modules = [...]`` to module objects.

A name resolves, in order, to one of the node's own modules (``ingest``, ``sharing``), to a module another
installed package registers under the ``medledger.modules`` entry-point group (how ``workflows/*`` are found, so
the node never imports them), or, written ``package.module:attribute``, to that object directly (a module under
development, or the tests' toy module). Anything else fails at start with one line naming what is known.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from medledger.errors import ConfigError
from node.config import DEFAULT_MODULES
from node.modules.base import NAME, NodeModule

ENTRY_POINT_GROUP = "medledger.modules"
_BUILTIN = {
    "ingest": "node.modules.builtin:ingest",
    "sharing": "node.modules.builtin:sharing",
    "portal": "node.modules.builtin:portal",
}


def available() -> dict[str, str]:
    """Every module name this installation knows, with the reference it loads."""
    known = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    known.update(_BUILTIN)  # the node's own cannot be shadowed by a package
    return dict(sorted(known.items()))


def load_module(spec: str, known: dict[str, str] | None = None) -> NodeModule:
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("module names must be non-empty strings")
    spec = spec.strip()
    if ":" in spec:
        reference = spec
    else:
        known = available() if known is None else known
        if spec not in known:
            raise ConfigError(f"unknown module {spec!r} (known: {', '.join(known) or 'none'})")
        reference = known[spec]
    path, _, attribute = reference.partition(":")
    try:
        obj = getattr(importlib.import_module(path), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"module {spec!r} cannot be loaded from {reference}: {exc}") from None
    module = obj() if isinstance(obj, type) and issubclass(obj, NodeModule) else obj
    if not isinstance(module, NodeModule):
        raise ConfigError(f"module {spec!r}: {reference} is not a node module (a node.modules.NodeModule)")
    name = getattr(module, "name", "")
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"module {spec!r}: its name {name!r} must match {NAME.pattern}")
    if ":" not in spec and name != spec:
        raise ConfigError(f"module {spec!r}: {reference} calls itself {name!r}")
    return module


def load_modules(names: Iterable[str]) -> list[NodeModule]:
    """The modules ``names`` lists, in order; each at most once."""
    known = available()
    modules: list[NodeModule] = []
    seen: set[str] = set()
    for spec in names:
        module = load_module(spec, known)
        if module.name in seen:
            raise ConfigError(f"module {module.name!r} is listed twice")
        seen.add(module.name)
        modules.append(module)
    return modules


__all__ = ["DEFAULT_MODULES", "ENTRY_POINT_GROUP", "available", "load_module", "load_modules"]
