"""What every ``medledger`` command shares: consoles and the one place that turns errors into exit codes."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from medledger.errors import MedLedgerError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Report a :class:`MedLedgerError` as ``error: <message>`` on stderr and exit with its code; Ctrl-C
    exits 130. Anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MedLedgerError as exc:
            err_console.print(f"[red]error:[/red] {exc.message} [dim]({exc.code})[/dim]", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
