"""What an audit is about and what it found: scopes, facts, findings and the report, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from indexer.queries import AccessAuthorization, AccessView, BreakGlassView, GrantView, MemberView, TimelineEntry
from medledger.addresses import Address
from medledger.errors import InputError
from medledger.vocabulary import AuthKind, Purpose

ScopeKind = Literal["patient", "institution", "range"]


def checked_address(value: str, what: str) -> Address:
    """A command-line address (surrounding blanks ignored), or :class:`InputError` (exit 2)."""
    return Address(value.strip(), what)


@dataclass(frozen=True)
class Scope:
    """Which accesses an audit covers: one patient's, one institution's (as accessor or custodian), or all
    accesses logged in a block range."""

    kind: ScopeKind
    address: Address | None = None
    from_block: int | None = None
    to_block: int | None = None

    @classmethod
    def patient(cls, address: str) -> Scope:
        return cls("patient", checked_address(address, "patient address"))

    @classmethod
    def institution(cls, address: str) -> Scope:
        return cls("institution", checked_address(address, "institution address"))

    @classmethod
    def block_range(cls, from_block: int, to_block: int) -> Scope:
        if from_block < 0 or to_block < 0:
            raise InputError(f"block numbers must be ≥ 0, got {from_block}..{to_block}")
        if from_block > to_block:
            raise InputError(f"FROM_BLOCK ({from_block}) is after TO_BLOCK ({to_block})")
        return cls("range", None, from_block, to_block)

    def describe(self) -> str:
        if self.kind == "range":
            return f"blocks {self.from_block}..{self.to_block}"
        return f"{self.kind} {self.address}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "address": self.address, "from_block": self.from_block, "to_block": self.to_block}


class Severity(StrEnum):
    """A violation breaks a rule the ledger promises (exit 1); a warning means something could not be checked."""

    VIOLATION = "violation"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem, with a stable machine-readable ``code`` and where on the chain it is (if anywhere)."""

    code: str
    severity: Severity
    message: str
    block_number: int | None = None
    log_index: int | None = None
    tx_hash: str | None = None
    record_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "block_number": self.block_number,
            "log_index": self.log_index,
            "tx_hash": self.tx_hash,
            "record_id": self.record_id,
            "details": self.details,
        }


@dataclass(frozen=True)
class ErasureFact:
    """A RecordErased event: from its position on, no access to the record may be logged."""

    record_id: str
    custodian: Address
    request_hash: str
    block_number: int
    log_index: int
    tx_hash: str
    block_time: int


@dataclass(frozen=True)
class ChainInfo:
    """Which chain and deployment the facts were read from, and how far."""

    chain_id: int
    access_log: Address
    start_block: int
    indexed_block: int
    indexed_block_hash: str | None
    indexed_block_time: int | None


@dataclass(frozen=True)
class Facts:
    """Everything in scope, as re-indexed from the chain. Lists are in chain order (oldest first)."""

    scope: Scope
    chain: ChainInfo
    from_block: int
    to_block: int
    members: dict[Address, MemberView]
    #: Each logged access with the indexer's re-check of its authorization at its block.
    accesses: list[AccessAuthorization]
    #: The anchored record each access names (None if never anchored), by lowercase record id.
    records_by_id: dict[str, TimelineEntry]
    #: Records whose ciphertext the scope covers (the patient's, the custodian's, or anchored in the range).
    records: list[TimelineEntry]
    grants: list[GrantView]
    break_glass: list[BreakGlassView]
    #: Erasures of every record an in-scope access or record names (an erasure outside the range still counts).
    erasures: list[ErasureFact]

    def member_name(self, address: Address) -> str | None:
        m = self.members.get(address)
        return m.name if m is not None else None


def purpose_name(code: int) -> str:
    return Purpose.label(code)


def auth_label(access: AccessView) -> str:
    """How the report names the authorization an access cites."""
    kind = access.auth_kind
    if kind == AuthKind.GRANT:
        return f"grant #{access.auth_id}"
    if kind == AuthKind.BREAK_GLASS:
        return f"BREAK-GLASS #{access.auth_id}"
    if kind == AuthKind.PATIENT:
        return "patient"
    if kind == AuthKind.CUSTODIAN:
        return "custodian"
    return f"kind {kind} #{access.auth_id}"


def auth_kind_name(kind: int) -> str:
    try:
        return AuthKind(kind).name.lower()
    except ValueError:
        return str(kind)


@dataclass(frozen=True)
class AuditedAccess:
    """One logged access and the audit's verdict on it."""

    authorization: AccessAuthorization
    record: TimelineEntry | None
    #: Codes of the violations this access caused (empty: the access was in order).
    violations: tuple[str, ...]

    @property
    def access(self) -> AccessView:
        return self.authorization.access

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def break_glass(self) -> bool:
        return self.access.auth_kind == AuthKind.BREAK_GLASS

    @property
    def label(self) -> str:
        return auth_label(self.access)


class CiphertextVerdict(StrEnum):
    """What comparing one record's stored ciphertext with the chain showed."""

    MATCH = "match"
    MISMATCH = "mismatch"
    MISSING = "missing"
    ERASED = "erased"  # erased on chain and no longer served: as it should be
    SERVED_AFTER_ERASURE = "served_after_erasure"
    UNCHECKED = "unchecked"  # the custodian could not be asked (see the custodian_unreachable warning)


@dataclass(frozen=True)
class CiphertextCheck:
    record_id: str
    custodian: Address
    commitment: str
    verdict: CiphertextVerdict
    detail: str = ""


@dataclass
class AuditReport:
    """The audit's outcome: the facts it rests on, the verdict per access, and every finding."""

    facts: Facts
    accesses: list[AuditedAccess]
    findings: list[Finding]
    ciphertexts_checked: bool = False
    ciphertexts: list[CiphertextCheck] = field(default_factory=list)
    generated_at: int = 0

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.VIOLATION]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.WARNING]

    @property
    def clean(self) -> bool:
        return not self.violations

    @property
    def break_glass_accesses(self) -> list[AuditedAccess]:
        return [a for a in self.accesses if a.break_glass]

    def accesses_by_kind(self) -> dict[str, int]:
        out = {k.name.lower(): 0 for k in AuthKind}
        for a in self.accesses:
            name = auth_kind_name(a.access.auth_kind)
            out[name] = out.get(name, 0) + 1
        return out
