"""The independent auditor: rebuild the ledger's facts from the chain alone and check every access.

The auditor never reads a node's database. It re-indexes the chain into a private database with the
indexer's public API (:mod:`clients.auditor.facts`), re-checks each logged access against the consent state
at its block and each erasure against later accesses (:mod:`clients.auditor.checks`), optionally compares the
custodians' stored ciphertexts with their on-chain commitments (:mod:`clients.auditor.ciphertexts`), and
renders or exports the result (:mod:`clients.auditor.report`, :mod:`clients.auditor.export`).

Programmatic use::

    from clients.auditor import Scope, run_audit
    report = run_audit(Scope.patient("0x..."), rpc_url="http://127.0.0.1:8545")
    report.clean            # False when any violation was found
"""

from __future__ import annotations

from clients.auditor.audit import AuditSettings, run_audit
from clients.auditor.ciphertexts import (
    CiphertextResult,
    CiphertextSource,
    CiphertextStatus,
    NodeCiphertextSource,
    StoreCiphertextSource,
)
from clients.auditor.model import AuditedAccess, AuditReport, Finding, Scope, Severity

__all__ = [
    "AuditReport",
    "AuditSettings",
    "AuditedAccess",
    "CiphertextResult",
    "CiphertextSource",
    "CiphertextStatus",
    "Finding",
    "NodeCiphertextSource",
    "Scope",
    "Severity",
    "StoreCiphertextSource",
    "run_audit",
]
