"""The auditor service's own error codes (clients.auditor.web), in the registry (medledger.errors). They never
cross a node's API (``api=False``); the service answers with the status each is declared with."""

from __future__ import annotations

from medledger.errors import define

define("audit_not_found", 404, "no audit with this id on this auditor service (it keeps the last 50)", api=False)
define("audit_failed", 500, "the audit could not run (its error says why)", api=False)
