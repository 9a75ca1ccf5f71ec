"""What every ``medledger`` command shares: consoles and the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from medledger.errors import MedLedgerError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def error_line(code: str, message: str) -> str:
    """The one error format of every command and script: ``error [code]: message`` on one line."""
    return f"error [{code}]: {' '.join(message.split())}"


def report_error(exc: MedLedgerError) -> None:
    """Print ``exc`` on stderr as :func:`error_line` (the prefix in red on a terminal)."""
    # Escaped: an error text may contain brackets that rich would read as markup.
    err_console.print(f"[red]{escape(error_line(exc.code, exc.message))}[/red]", highlight=False, soft_wrap=True)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Report a :class:`MedLedgerError` as ``error [code]: message`` on stderr and exit with its code; Ctrl-C
    exits 130. Anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MedLedgerError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def script_main(run: Callable[[], int]) -> int:
    """Run a plain (argparse) script's body with the same error contract as ``medledger`` commands: a known
    failure prints ``error [code]: message`` on one line and returns its exit code; a file error returns 1."""
    try:
        return run()
    except MedLedgerError as exc:
        print(error_line(exc.code, exc.message), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(error_line("file_error", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


class ScriptArgumentParser(argparse.ArgumentParser):
    """``argparse`` for the plain scripts, with usage errors as one :func:`error_line` (exit 2) instead of
    argparse's usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, error_line("usage", f"{message} (see --help)") + "\n")
