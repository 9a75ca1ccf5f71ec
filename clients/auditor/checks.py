"""The audit's rules, applied to re-indexed facts. Each broken rule is a :class:`Finding` with a stable code.

Violations (exit 1):

- ``access_unauthorized``: the grant or break-glass window an access cites was not valid at its block (unknown,
  another patient/grantee, wrong purpose or class, made later, revoked/replaced/closed before, outside its
  validity), or a PATIENT/CUSTODIAN access was not by the patient/custodian. ``details.reason`` says which.
- ``access_unknown_record``: the accessed record was not anchored at the access's block.
- ``access_patient_mismatch``: the access names another patient than the record's.
- ``access_after_erasure``: an access to a record was logged after the record's erasure.
- ``ciphertext_mismatch``: the stored ciphertext does not hash to the on-chain commitment.
- ``ciphertext_missing``: the custodian does not hold an active record's ciphertext.
- ``erased_ciphertext_served``: the custodian still holds or serves an erased record's ciphertext.

Warnings (reported, exit code unaffected):

- ``custodian_unreachable``: a custodian's ciphertexts could not be checked (node down, no endpoint or store,
  auditor not let in). Nothing was shown to be wrong, but it is an unverified gap the report makes visible.
- ``access_logged_by_other``: an access was logged by another member than the record's custodian (the
  contract lets any custodian log; only the record's custodian can release it, so the entry is suspect).

Break-glass accesses are not violations by themselves; every view flags them (see :mod:`report`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from clients.auditor.ciphertexts import CiphertextResult, CiphertextSource, CiphertextStatus
from clients.auditor.model import (
    AuditedAccess,
    CiphertextCheck,
    CiphertextVerdict,
    ErasureFact,
    Facts,
    Finding,
    Severity,
    auth_label,
    purpose_name,
)
from indexer.queries import AccessAuthorization, TimelineEntry
from medledger.addresses import Address
from medledger.vocabulary import AuthKind, RecordStatus

#: The indexer's reason when a grant-cited record is not anchored; reported as access_unknown_record instead.
_NOT_ANCHORED = "accessed record is not anchored"
#: Parallel ciphertext fetches (network-bound against nodes; the local store is thread-safe).
_FETCH_WORKERS = 8


def _who(facts: Facts, address: Address) -> str:
    name = facts.member_name(address)
    return f"{name} ({address})" if name else address


def _short(record_id: str) -> str:
    return record_id[:10] + "…"


def _check_access(facts: Facts, auth: AccessAuthorization, erasure: ErasureFact | None) -> list[Finding]:
    a = auth.access
    pos = (a.block_number, a.log_index)
    record = facts.records_by_id.get(a.record_id.lower())
    what = (
        f"{_who(facts, a.accessor)} read record {_short(a.record_id)} of patient {a.patient} "
        f"for {purpose_name(a.purpose)} under {auth_label(a)}"
    )

    def finding(code: str, why: str, **details: object) -> Finding:
        return Finding(
            code, Severity.VIOLATION, f"{what}: {why}", a.block_number, a.log_index, a.tx_hash, a.record_id, details
        )

    out: list[Finding] = []
    reason = None if auth.valid or auth.reason == _NOT_ANCHORED else auth.reason
    if reason is None and a.auth_kind == AuthKind.CUSTODIAN and record is not None and a.accessor != record.custodian:
        # The index accepts a CUSTODIAN read when the accessor logged it itself; the rule is stricter: only
        # the record's custodian reads under its duty of care.
        reason = "accessor is not the record's custodian"
    if reason is not None:
        out.append(finding("access_unauthorized", reason, reason=reason, auth_kind=a.auth_kind, auth_id=a.auth_id))
    if record is None:
        out.append(finding("access_unknown_record", "the record was never anchored"))
    elif (record.block_number, record.log_index) > pos:
        out.append(finding("access_unknown_record", f"the record was anchored later, in block {record.block_number}"))
    elif record.patient != a.patient:
        out.append(
            finding(
                "access_patient_mismatch",
                f"the record belongs to patient {record.patient}",
                record_patient=record.patient,
            )
        )
    if record is not None and a.custodian != record.custodian:
        out.append(
            Finding(
                "access_logged_by_other",
                Severity.WARNING,
                f"{what}: logged by {_who(facts, a.custodian)}, not by the record's custodian "
                f"{_who(facts, record.custodian)}",
                a.block_number,
                a.log_index,
                a.tx_hash,
                a.record_id,
                {"logged_by": a.custodian, "record_custodian": record.custodian},
            )
        )
    if erasure is not None and (erasure.block_number, erasure.log_index) < pos:
        out.append(
            finding(
                "access_after_erasure",
                f"the record was erased in block {erasure.block_number} (tx {erasure.tx_hash})",
                erased_block=erasure.block_number,
                erasure_tx=erasure.tx_hash,
            )
        )
    return out


def check_accesses(facts: Facts) -> tuple[list[AuditedAccess], list[Finding]]:
    """The verdict on every in-scope access, and the violations found, in chain order."""
    erased = {e.record_id.lower(): e for e in facts.erasures}
    audited: list[AuditedAccess] = []
    findings: list[Finding] = []
    for auth in facts.accesses:
        problems = _check_access(facts, auth, erased.get(auth.access.record_id.lower()))
        record = facts.records_by_id.get(auth.access.record_id.lower())
        violations = tuple(f.code for f in problems if f.severity == Severity.VIOLATION)
        audited.append(AuditedAccess(auth, record, violations))
        findings += problems
    return audited, findings


# ---------------------------------------------------------------------------------------------- ciphertexts


def _verdict(record: TimelineEntry, result: CiphertextResult) -> tuple[CiphertextVerdict, str]:
    erased = record.status == RecordStatus.ERASED
    if result.status == CiphertextStatus.ERROR:
        return CiphertextVerdict.UNCHECKED, result.message
    if erased:
        if result.status in (CiphertextStatus.ERASED, CiphertextStatus.MISSING):
            return CiphertextVerdict.ERASED, result.message
        # FOUND or CORRUPT: bytes are still there under the record's name; shredding did not happen.
        return CiphertextVerdict.SERVED_AFTER_ERASURE, result.message or "ciphertext still served"
    if result.status == CiphertextStatus.FOUND:
        digest = "0x" + hashlib.sha256(result.data or b"").hexdigest()
        if digest == record.commitment.lower():
            return CiphertextVerdict.MATCH, ""
        return CiphertextVerdict.MISMATCH, f"stored ciphertext hashes to {digest}"
    if result.status == CiphertextStatus.CORRUPT:
        return CiphertextVerdict.MISMATCH, result.message
    if result.status == CiphertextStatus.ERASED:
        return CiphertextVerdict.MISSING, "custodian reports the record erased, but it was never erased on chain"
    return CiphertextVerdict.MISSING, result.message


_CODES = {
    CiphertextVerdict.MISMATCH: ("ciphertext_mismatch", "stored ciphertext does not match the on-chain commitment"),
    CiphertextVerdict.MISSING: ("ciphertext_missing", "custodian does not hold the active record's ciphertext"),
    CiphertextVerdict.SERVED_AFTER_ERASURE: ("erased_ciphertext_served", "custodian still serves an erased record"),
}


def check_ciphertexts(facts: Facts, source: CiphertextSource) -> tuple[list[CiphertextCheck], list[Finding]]:
    """Compare every in-scope active record's stored ciphertext with its commitment, and check erased records
    are no longer served. Superseded versions are not checked (a custodian may or may not keep them)."""
    todo = [r for r in facts.records if r.status in (RecordStatus.ACTIVE, RecordStatus.ERASED)]
    with ThreadPoolExecutor(max_workers=_FETCH_WORKERS) as pool:
        results = list(pool.map(lambda r: source.fetch(r.custodian, r.record_id), todo))
    checks: list[CiphertextCheck] = []
    findings: list[Finding] = []
    unreachable: dict[Address, list[str]] = defaultdict(list)
    for record, result in zip(todo, results, strict=True):
        verdict, detail = _verdict(record, result)
        checks.append(CiphertextCheck(record.record_id, record.custodian, record.commitment, verdict, detail))
        if verdict == CiphertextVerdict.UNCHECKED:
            unreachable[record.custodian].append(detail)
        elif verdict in _CODES:
            code, text = _CODES[verdict]
            findings.append(
                Finding(
                    code,
                    Severity.VIOLATION,
                    f"{_who(facts, record.custodian)}, record {_short(record.record_id)}: {text}"
                    + (f" ({detail})" if detail else ""),
                    record.block_number,
                    record.log_index,
                    record.tx_hash,
                    record.record_id,
                    {"custodian": record.custodian, "commitment": record.commitment, "detail": detail},
                )
            )
    for custodian, errors in unreachable.items():
        findings.append(
            Finding(
                "custodian_unreachable",
                Severity.WARNING,
                f"could not check {len(errors)} ciphertext(s) of {_who(facts, custodian)}: {errors[0]}",
                details={"custodian": custodian, "records": len(errors), "error": errors[0]},
            )
        )
    return checks, findings
