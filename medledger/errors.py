"""One error hierarchy for every MedLedger surface.

Each error carries a stable machine-readable ``code``; the HTTP API maps it to a 4xx/5xx body and the CLI
to a one-line message and exit code, so no surface ever shows a traceback for a known failure.
"""

from __future__ import annotations

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


class ConfigError(MedLedgerError):
    """Missing or invalid configuration (files, environment variables, keys)."""

    code = "config_error"
    exit_code = 2


class InputError(MedLedgerError):
    """A caller-supplied value is invalid."""

    code = "invalid_input"
    exit_code = 2
