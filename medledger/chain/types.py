"""Typed mirrors of the contracts' structs, with their ABI tuple conversions.

Structs read from the chain hold :class:`~medledger.addresses.Address` values. Structs a caller builds to
send (``Founder``, ``RecordAnchor``, ``GrantTerms``, ``Access``) take addresses as ``str`` in any hex case
(an Address is one): they are only encoded to 20 bytes, and anchoring and access logging build thousands
per second, where a checksum per new address would be a keccak spent for nothing.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

from medledger.addresses import Address
from medledger.vocabulary import AuthKind, Purpose, RecordClass, RecordStatus, Role


@dataclass(frozen=True)
class Founder:
    account: str
    roles: Role
    name: str
    endpoint: str
    encryption_key: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.account, int(self.roles), self.name, self.endpoint, self.encryption_key)


@dataclass(frozen=True)
class Member:
    account: Address
    roles: Role
    active: bool
    admitted_at: int
    name: str
    endpoint: str
    encryption_key: bytes

    @classmethod
    def from_tuple(cls, account: str, t: tuple[Any, ...]) -> Member:
        return cls(Address(account, "member account"), Role(t[0]), t[1], t[2], t[3], t[4], t[5])


@dataclass(frozen=True)
class Proposal:
    id: int
    kind: int
    executed: bool
    expires_at: int
    proposer: Address
    subject: Address
    roles: int
    new_threshold: int
    name: str
    endpoint: str
    encryption_key: bytes


@dataclass(frozen=True)
class Node:
    owner: Address
    port: int
    enode_id: str
    host: str

    @property
    def enode_url(self) -> str:
        return f"enode://{self.enode_id}@{self.host}:{self.port}"


@dataclass(frozen=True)
class RecordAnchor:
    record_id: bytes
    patient: str
    commitment: bytes
    record_class: RecordClass
    clinical_time: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.record_id, self.patient, self.commitment, int(self.record_class), self.clinical_time)


@dataclass(frozen=True)
class RecordState:
    custodian: Address
    anchored_block: int
    status: RecordStatus
    record_class: int


@dataclass(frozen=True)
class Digest:
    custodian: Address
    anchored_block: int
    count: int
    kind: bytes


@dataclass(frozen=True)
class GrantTerms:
    grantee: str
    classes: int
    purpose: Purpose
    valid_from: int
    valid_until: int

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.grantee, self.classes, int(self.purpose), self.valid_from, self.valid_until)


@dataclass(frozen=True)
class Grant:
    id: int
    patient: Address
    grantee: Address
    classes: int
    purpose: Purpose
    valid_from: int
    valid_until: int
    revoked: bool


@dataclass(frozen=True)
class BreakGlass:
    id: int
    patient: Address
    accessor: Address
    opened_at: int
    expires_at: int
    reason_hash: bytes


@dataclass(frozen=True)
class Access:
    patient: str
    accessor: str
    record_id: bytes
    purpose: Purpose
    auth_kind: AuthKind
    auth_id: int = 0
    staff_ref: bytes = b"\x00" * 32
    #: The block whose consent state authorized the access (0: unknown, judged at its log position); one of
    #: the last AccessLog.MAX_DECISION_AGE blocks when logged.
    decided_at: int = 0

    def as_tuple(self) -> tuple[Any, ...]:
        t = astuple(self)
        return (t[0], t[1], t[2], int(t[3]), int(t[4]), t[5], t[6], t[7])
