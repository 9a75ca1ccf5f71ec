"""One error hierarchy for every MedLedger surface, and the registry of its codes.

Each error carries a stable machine-readable ``code``; the HTTP API maps it to a 4xx/5xx body and the CLI
to a one-line message and exit code, so no surface ever shows a traceback for a known failure.

Every code is declared once with :func:`define`, by the package that raises it: its HTTP status and a line for
the docs. The node's API takes statuses and its OpenAPI document from the registry, so a package (a workflow
under ``workflows/*`` included) adds codes without editing the node.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class MedLedgerError(Exception):
    """Base of all expected failures. ``code`` is stable API; ``message`` is for people."""

    code: str = "medledger_error"
    #: Exit status for the CLI; 1 = operation failed, 2 = bad usage/input (as typer/click use).
    exit_code: int = 1

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """How an error looks on the wire of every MedLedger HTTP service: ``{"error": {code, message, details}}``."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class ConfigError(MedLedgerError):
    """Missing or invalid configuration (files, environment variables, keys)."""

    code = "config_error"
    exit_code = 2


class InputError(MedLedgerError):
    """A caller-supplied value is invalid."""

    code = "invalid_input"
    exit_code = 2


# ------------------------------------------------------------------------------------------ the code registry


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One stable error code: the HTTP status it answers with and a one-line description for the docs.

    ``api`` is False for codes that never cross the node's HTTP API (failures of a CLI, a client or a library no
    route uses): they keep a status, so every surface maps a code the same way, but the API documents only the rest.
    ``owner`` is the module that declared the code.
    """

    code: str
    status: int
    description: str
    api: bool = True
    owner: str = ""


_CODE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


class ErrorRegistry:
    """Every error code of the system, each declared exactly once, by the package that raises it."""

    def __init__(self) -> None:
        self._entries: dict[str, ErrorCode] = {}
        self._lock = threading.Lock()

    def define(self, code: str, status: int, description: str, *, api: bool = True, owner: str = "") -> ErrorCode:
        if not _CODE.match(code):
            raise ValueError(f"error code {code!r} must be snake_case ASCII")
        if not 400 <= status <= 599:
            raise ValueError(f"error code {code!r}: {status} is not an HTTP error status")
        if not description.strip() or "\n" in description:
            raise ValueError(f"error code {code!r} needs a one-line description")
        entry = ErrorCode(code, status, description.strip(), api, owner)
        with self._lock:
            existing = self._entries.get(code)
            # The same module may run its declarations again (importlib.reload); another module may not.
            if existing is not None and existing.owner != owner:
                raise ValueError(f"error code {code!r} is already defined by {existing.owner or 'another module'}")
            self._entries[code] = entry
        return entry

    def get(self, code: str) -> ErrorCode | None:
        return self._entries.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._entries

    def __iter__(self) -> Iterator[ErrorCode]:
        return iter(sorted(self._entries.values(), key=lambda e: e.code))

    def __len__(self) -> int:
        return len(self._entries)

    def with_status(self, status: int, *, api_only: bool = True) -> list[ErrorCode]:
        """The codes answered with ``status``, by code."""
        return [e for e in self if e.status == status and (e.api or not api_only)]


#: The registry every package declares its codes in (see :func:`define`).
CODES = ErrorRegistry()


def define(code: str, status: int, description: str, *, api: bool = True) -> ErrorCode:
    """Declare ``code``: the HTTP status it answers with and one line for the docs. Call it once per code, at the
    top level of the module that owns the code (a package's ``errors.py`` or ``error_codes.py``)."""
    # The caller's module owns the code, so a second module declaring it fails at import, naming the first.
    owner = sys._getframe(1).f_globals.get("__name__", "")
    return CODES.define(code, status, description, api=api, owner=owner)


def lookup(code: str) -> ErrorCode | None:
    """The registry entry of ``code``; None if no module declared it (a programming error)."""
    return CODES.get(code)


define("medledger_error", 500, "an unclassified failure (details are in the log)")
define("config_error", 500, "missing or invalid configuration (files, environment variables, keys)")
define("invalid_input", 422, "a supplied value is invalid")
