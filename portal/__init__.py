"""The web portal's built pages (``static/``, made from ``src/`` by ``npm run build:portal`` and committed, like
the contract artifacts). An asset package on the ground floor: it imports nothing, and whoever serves pages
(the node's ``portal`` module, the auditor's own service) reads them from :data:`STATIC`."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"

__all__ = ["STATIC"]
