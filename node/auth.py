"""Staff authentication to their own node: bearer tokens with a role.

A token is shown once when created; the node keeps only its SHA-256, so a database leak does not leak
usable tokens. Each staff member also has a stable pseudonymous reference (keyed hash of the staff id) that
goes on chain in access-log entries, so audits can tell staff apart without the chain naming anyone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from medledger.errors import InputError, MedLedgerError
from node.db.models import Staff

TOKEN_PREFIX = "mlst_"


class StaffRole(StrEnum):
    CLINICIAN = "clinician"
    REGISTRAR = "registrar"
    ADMIN = "admin"
    AUDITOR = "auditor"

    @classmethod
    def parse(cls, text: str) -> StaffRole:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InputError(f"unknown staff role {text!r}; one of: {', '.join(r.value for r in cls)}") from None


class AuthError(MedLedgerError):
    """Missing, unknown or revoked credentials (401) or a role that may not do this (403)."""

    code = "unauthenticated"


@dataclass(frozen=True)
class StaffIdentity:
    id: int
    name: str
    role: StaffRole


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_staff(session: Session, name: str, role: StaffRole) -> tuple[StaffIdentity, str]:
    """Add a staff member; returns their identity and the bearer token (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("staff name must be 1..200 characters")
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    row = Staff(name=name, role=role.value, token_hash=_hash(token), created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    return StaffIdentity(row.id, row.name, role), token


def revoke_staff(session: Session, staff_id: int) -> None:
    row = session.get(Staff, staff_id)
    if row is None:
        raise InputError(f"no staff member {staff_id}", code="not_found")
    row.revoked_at = datetime.now(UTC)


def authenticate(session: Session, authorization: str | None) -> StaffIdentity:
    """Resolve an ``Authorization: Bearer <token>`` header to a staff identity or raise :class:`AuthError`."""
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError("missing bearer token")
    token = authorization[len("Bearer ") :].strip()
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("malformed bearer token")
    row = session.scalars(select(Staff).where(Staff.token_hash == _hash(token))).first()
    if row is None or row.revoked_at is not None:
        raise AuthError("unknown or revoked token")
    return StaffIdentity(row.id, row.name, StaffRole(row.role))


def require_role(identity: StaffIdentity, *allowed: StaffRole) -> None:
    if identity.role not in allowed and identity.role is not StaffRole.ADMIN:
        raise AuthError(f"role {identity.role.value} may not do this", code="forbidden")


def staff_ref(node_secret: bytes, staff_id: int) -> bytes:
    """The pseudonymous 32-byte reference of a staff member for on-chain access logs."""
    return hmac.new(node_secret, b"medledger/staff/v1" + staff_id.to_bytes(8, "big"), hashlib.sha256).digest()
