"""Machine-readable exports of an audit: the report as JSON (schema ``medledger-audit`` version 1) and the
accesses as a FHIR R4 ``Bundle`` of ``AuditEvent`` resources in the style of IHE BALP.

Both are documented in docs/auditor.md. The JSON schema only grows: new fields may be added within a version,
removing or changing the meaning of one bumps ``version``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from clients.auditor.model import AuditedAccess, AuditReport, Severity, auth_kind_name, purpose_name
from indexer.queries import BreakGlassView, GrantView
from medledger.vocabulary import AuthKind, Purpose, RecordClass

SCHEMA = "medledger-audit"
VERSION = 1


def iso(ts: int | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC instant (``2025-01-31T12:00:00Z``)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _class_name(code: int | None) -> str | None:
    return None if code is None else RecordClass.label(code)


# ---------------------------------------------------------------------------------------------- JSON


def _access(report: AuditReport, a: AuditedAccess) -> dict[str, Any]:
    v = a.access
    names = report.facts.member_name
    return {
        "block_number": v.block_number,
        "log_index": v.log_index,
        "tx_hash": v.tx_hash,
        "sequence": v.sequence,
        "time": iso(v.block_time),
        "block_time": v.block_time,
        "patient": v.patient,
        "accessor": v.accessor,
        "accessor_name": names(v.accessor),
        "custodian": v.custodian,
        "custodian_name": names(v.custodian),
        "record_id": v.record_id,
        "record_class": _class_name(a.record.record_class if a.record else None),
        "purpose": purpose_name(v.purpose),
        "staff_ref": v.staff_ref,
        "authorization": {"kind": auth_kind_name(v.auth_kind), "id": v.auth_id, "label": a.label},
        "decided_block": v.decided_block,
        "authorization_valid": a.authorization.valid,
        "authorization_reason": a.authorization.reason,
        "break_glass": a.break_glass,
        "verdict": "ok" if a.ok else "violation",
        "violations": list(a.violations),
    }


def _grant(g: GrantView) -> dict[str, Any]:
    return {
        "grant_id": g.grant_id,
        "patient": g.patient,
        "grantee": g.grantee,
        "purpose": purpose_name(g.purpose),
        "classes": g.class_names,
        "valid_from": iso(g.valid_from),
        "valid_until": iso(g.valid_until),
        "block_number": g.block_number,
        "granted_at": iso(g.granted_at),
        "revoked_block": g.revoked_block,
        "revoked_at": iso(g.revoked_at),
        "replaced": g.replaced,
    }


def _window(report: AuditReport, w: BreakGlassView) -> dict[str, Any]:
    return {
        "break_glass_id": w.break_glass_id,
        "patient": w.patient,
        "accessor": w.accessor,
        "accessor_name": report.facts.member_name(w.accessor),
        "reason_hash": w.reason_hash,
        "opened_at": iso(w.opened_at),
        "expires_at": iso(w.expires_at),
        "closed_at": iso(w.closed_at),
        "block_number": w.block_number,
        "accesses": sum(1 for a in report.break_glass_accesses if a.access.auth_id == w.break_glass_id),
    }


def summary(report: AuditReport) -> dict[str, Any]:
    f = report.facts
    return {
        "accesses": len(report.accesses),
        "accesses_by_kind": report.accesses_by_kind(),
        "break_glass_accesses": len(report.break_glass_accesses),
        "grants": len(f.grants),
        "break_glass_windows": len(f.break_glass),
        "erasures": len(f.erasures),
        "records": len(f.records),
        "violations": len(report.violations),
        "warnings": len(report.warnings),
        "ciphertexts_checked": report.ciphertexts_checked,
        "ciphertexts": {
            verdict: sum(1 for c in report.ciphertexts if c.verdict == verdict)
            for verdict in sorted({c.verdict.value for c in report.ciphertexts})
        },
    }


def to_json(report: AuditReport) -> dict[str, Any]:
    """The report as a JSON-ready dict (see docs/auditor.md, "JSON export")."""
    f = report.facts
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "generated_at": iso(report.generated_at),
        "result": "clean" if report.clean else "violations",
        "chain": {
            "chain_id": f.chain.chain_id,
            "access_log": f.chain.access_log,
            "start_block": f.chain.start_block,
            "indexed_block": f.chain.indexed_block,
            "indexed_block_hash": f.chain.indexed_block_hash,
            "indexed_block_time": iso(f.chain.indexed_block_time),
        },
        "scope": {**f.scope.as_dict(), "from_block": f.from_block, "to_block": f.to_block},
        "summary": summary(report),
        "accesses": [_access(report, a) for a in report.accesses],
        "grants": [_grant(g) for g in f.grants],
        "break_glass_windows": [_window(report, w) for w in f.break_glass],
        "erasures": [
            {
                "record_id": e.record_id,
                "custodian": e.custodian,
                "request_hash": e.request_hash,
                "block_number": e.block_number,
                "log_index": e.log_index,
                "tx_hash": e.tx_hash,
                "time": iso(e.block_time),
            }
            for e in f.erasures
        ],
        "ciphertexts": [
            {
                "record_id": c.record_id,
                "custodian": c.custodian,
                "commitment": c.commitment,
                "verdict": c.verdict.value,
                "detail": c.detail,
            }
            for c in report.ciphertexts
        ],
        "findings": [x.as_dict() for x in report.findings],
    }


# ---------------------------------------------------------------------------------------------- FHIR

URI = "urn:ietf:rfc:3986"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
RECORD_ID_SYSTEM = "urn:medledger:record-id"
TX_SYSTEM = "urn:medledger:tx-hash"

#: MedLedger purpose → v3-ActReason (referral is treatment by the receiving institution).
PURPOSE_OF_USE: dict[int, tuple[str, str]] = {
    Purpose.TREATMENT: ("TREAT", "treatment"),
    Purpose.REFERRAL: ("TREAT", "treatment"),
    Purpose.RESEARCH: ("HRESCH", "healthcare research"),
    Purpose.EMERGENCY: ("ETREAT", "Emergency Treatment"),
    Purpose.FAMILY: ("FAMRQT", "family requested"),
    Purpose.PUBLIC_HEALTH: ("PUBHLTH", "public health"),
    Purpose.PAYMENT: ("HPAYMT", "healthcare payment"),
}
BREAK_GLASS = ("BTG", "break the glass")
#: Namespace of the deterministic AuditEvent ids: the same access always gets the same id.
_NS = uuid.UUID("3f1d6a52-8a53-4c5e-9b0e-5d1f1b6f4a10")


def ethereum_uri(address: str, chain_id: int) -> str:
    """An account as a chain-qualified URI (EIP-681 form, ``ethereum:<address>@<chain id>``)."""
    return f"ethereum:{address}@{chain_id}"


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def audit_event(report: AuditReport, a: AuditedAccess) -> dict[str, Any]:
    """One access as a BALP-style AuditEvent (a RESTful read of the record by the accessor)."""
    v = a.access
    f = report.facts
    chain_id = f.chain.chain_id
    purposes = []
    if v.purpose in PURPOSE_OF_USE:
        code, display = PURPOSE_OF_USE[Purpose(v.purpose)]
        purposes.append({"coding": [_coding(ACT_REASON, code, display)], "text": purpose_name(v.purpose)})
    if v.auth_kind == AuthKind.BREAK_GLASS:
        purposes.append({"coding": [_coding(ACT_REASON, *BREAK_GLASS)], "text": f"break-glass #{v.auth_id}"})
    here = [x for x in report.findings if (x.block_number, x.log_index) == (v.block_number, v.log_index)]
    reasons = [x.message for x in here if x.severity == Severity.VIOLATION]
    notes = [f"warning: {x.message}" for x in here if x.severity == Severity.WARNING]
    accessor: dict[str, Any] = {
        "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
        "who": {
            "identifier": {"system": URI, "value": ethereum_uri(v.accessor, chain_id)},
            "display": f.member_name(v.accessor) or v.accessor,
        },
        "requestor": True,
        "policy": [f"urn:medledger:authorization:{auth_kind_name(v.auth_kind)}:{v.auth_id}"],
    }
    if int(v.staff_ref, 16):
        accessor["altId"] = v.staff_ref  # pseudonymous staff reference, as logged on chain
    record_class = _class_name(a.record.record_class) if a.record else None
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid5(_NS, f"{chain_id}:{v.tx_hash}:{v.log_index}")),
        "type": _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(RESTFUL_INTERACTION, "read", "read")],
        "action": "R",
        "recorded": iso(v.block_time),
        "outcome": "0" if a.ok else "8",
        "outcomeDesc": "; ".join((reasons or [f"authorized by {a.label}"]) + notes),
        "purposeOfEvent": purposes,
        "agent": [
            accessor,
            {
                "type": {"coding": [_coding(PARTICIPATION, "CST", "custodian")]},
                "who": {
                    "identifier": {"system": URI, "value": ethereum_uri(v.custodian, chain_id)},
                    "display": f.member_name(v.custodian) or v.custodian,
                },
                "requestor": False,
            },
        ],
        "source": {
            "site": f"MedLedger chain {chain_id}",
            "observer": {
                "identifier": {"system": URI, "value": ethereum_uri(f.chain.access_log, chain_id)},
                "display": "MedLedger AccessLog contract",
            },
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": [
            {
                "what": {"identifier": {"system": URI, "value": ethereum_uri(v.patient, chain_id)}},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            },
            {
                "what": {"identifier": {"system": RECORD_ID_SYSTEM, "value": v.record_id}},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
                **({"description": f"record class {record_class}"} if record_class else {}),
            },
            {
                "what": {"identifier": {"system": TX_SYSTEM, "value": v.tx_hash}},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "description": "ledger transaction that logged the access",
                "detail": [
                    {"type": "block_number", "valueString": str(v.block_number)},
                    {"type": "log_index", "valueString": str(v.log_index)},
                    {"type": "sequence", "valueString": str(v.sequence)},
                    {"type": "decided_block", "valueString": str(v.decided_block)},
                ],
            },
        ],
    }


def to_fhir_bundle(report: AuditReport) -> dict[str, Any]:
    """Every in-scope access as an R4 ``Bundle`` (type ``collection``) of ``AuditEvent`` resources."""
    events = [audit_event(report, a) for a in report.accesses]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso(report.generated_at),
        "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in events],
    }
