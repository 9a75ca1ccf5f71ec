"""Where the project's non-Python files are: the repository root of an editable install or the working dir."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The MedLedger checkout: ``MEDLEDGER_ROOT``, else the directory above this package if it holds
    ``chain_config/``, else the current directory."""
    env = os.environ.get("MEDLEDGER_ROOT")
    if env:
        return Path(env).resolve()
    candidate = PACKAGE_DIR.parent
    if (candidate / "chain_config").is_dir():
        return candidate
    return Path.cwd()


def chain_config_dir() -> Path:
    return project_root() / "chain_config"
