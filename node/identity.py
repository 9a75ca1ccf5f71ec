"""Who is asking: patients (Sign-In with Ethereum → short-lived token), other institutions (signed HTTP
requests from a current consortium member) and this node's own staff (bearer tokens, node.auth).

Everything that authenticates here ends as a :class:`Requester`, the one identity type the services see.

Patient tokens are stateless (``mlpt_<payload>.<mac>``, HMAC-SHA256 under a node secret derived from the
KEK), so verifying one costs no database round trip; they live ``PATIENT_TOKEN_TTL`` seconds. SIWE nonces are
issued and consumed through the database, so a signed sign-in message works once, on this node, in time.
Institution request nonces are claimed in the database too (replays are refused across restarts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from medledger.addresses import Address, eip55
from medledger.auth.httpsig import MemoryNonceStore, SignedRequest, verify_request
from medledger.auth.siwe import SiweMessage, new_nonce, verify_siwe
from medledger.errors import MedLedgerError
from medledger.vocabulary import Role
from node.access_journal import AccessJournal
from node.auth import StaffIdentity, staff_ref
from node.db.models import SeenNonce, SiweNonce
from node.keystore import KeyEncryptionKey
from node.ledger_view import LedgerView

PATIENT_TOKEN_PREFIX = "mlpt_"
PATIENT_TOKEN_TTL = 15 * 60
SIWE_NONCE_TTL = 10 * 60
ZERO_REF = b"\x00" * 32


class RequesterKind(StrEnum):
    PATIENT = "patient"
    INSTITUTION = "institution"
    STAFF = "staff"


@dataclass(frozen=True)
class Requester:
    """An authenticated caller. ``address`` is the ledger identity the access is logged under: the patient,
    the requesting institution, or (for staff) this node's own institution."""

    kind: RequesterKind
    address: Address
    staff_ref: bytes = ZERO_REF
    staff: StaffIdentity | None = None


class IdentityError(MedLedgerError):
    code = "unauthenticated"


def node_secret(kek: KeyEncryptionKey, label: str) -> bytes:
    """A 32-byte secret for ``label``, derived from the KEK through its wrap operation (AES-KW is
    deterministic), so it works the same when the KEK lives in an HSM that never exports it."""
    return hashlib.sha256(kek.wrap(hashlib.sha256(label.encode()).digest())).digest()


class DurableNonceStore:
    """Replay protection for signed institution requests that survives restarts.

    Claims are decided in memory (atomic, no database round trip on the request path) and persisted through
    the access journal's group commit, in the same or an earlier transaction than the access they
    authorize; on start the unexpired nonces are loaded back. The memory is the final word, so a node database
    serves one API process (`medledger node serve`); several would each accept a nonce once.
    """

    def __init__(self, sessions: sessionmaker[Session], journal: AccessJournal) -> None:
        self._journal = journal
        self._memory = MemoryNonceStore()
        now = int(time.time())
        with sessions.begin() as s:
            s.execute(delete(SeenNonce).where(SeenNonce.expires_at < now))
            for signer, nonce, expires in s.execute(select(SeenNonce.signer, SeenNonce.nonce, SeenNonce.expires_at)):
                # The table keeps the lowercase hex; the memory is keyed by the Address a request's signer is.
                self._memory.claim(eip55(signer), nonce, int(expires))

    def claim(self, signer: Address, nonce: str, expires: int) -> bool:
        if not self._memory.claim(signer, nonce, expires):
            return False
        self._journal.remember_nonce(signer, nonce, expires)
        return True


class Identities:
    """Authenticates patients, institutions and staff for one node.

    Args:
        sessions: Node database sessions.
        kek: The node's key-encryption key (secrets for tokens and staff references derive from it).
        view: The ledger view (membership and roles of requesting institutions).
        chain_id: This chain, for SIWE.
        public_url: The node's public base URL: the SIWE domain/URI and the authority signed requests must name.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        kek: KeyEncryptionKey,
        view: LedgerView,
        journal: AccessJournal,
        *,
        chain_id: int,
        public_url: str,
    ) -> None:
        self._sessions = sessions
        self._view = view
        self.chain_id = chain_id
        self.public_url = public_url.rstrip("/")
        parts = urlsplit(self.public_url)
        self.authority = parts.netloc.lower()
        self._token_key = node_secret(kek, "medledger/patient-token/v1")
        self._staff_key = node_secret(kek, "medledger/staff-ref/v1")
        self.nonces = DurableNonceStore(sessions, journal)

    # ------------------------------------------------------------------ staff

    def staff(self, identity: StaffIdentity, institution: Address) -> Requester:
        return Requester(RequesterKind.STAFF, institution, staff_ref(self._staff_key, identity.id), identity)

    def staff_ref(self, identity: StaffIdentity) -> bytes:
        return staff_ref(self._staff_key, identity.id)

    # ------------------------------------------------------------------ patients (SIWE)

    def siwe_nonce(self) -> tuple[str, int]:
        """Issue a sign-in nonce; returns it and its expiry (Unix time)."""
        nonce = new_nonce()
        expires = int(time.time()) + SIWE_NONCE_TTL
        with self._sessions.begin() as s:
            s.execute(delete(SiweNonce).where(SiweNonce.expires_at < int(time.time())))
            s.execute(insert(SiweNonce).values(nonce=nonce, expires_at=expires))
        return nonce, expires

    def siwe_login(self, message: str, signature: bytes) -> tuple[str, SiweMessage, int]:
        """Verify a signed SIWE message and consume its nonce; returns (token, message, token expiry)."""
        parsed = verify_siwe(
            message, signature, domain=self.authority, uri=self.public_url, chain_id=self.chain_id, nonce=None
        )
        now = int(time.time())
        with self._sessions.begin() as s:
            result = s.execute(
                update(SiweNonce)
                .where(SiweNonce.nonce == parsed.nonce, SiweNonce.used_at.is_(None), SiweNonce.expires_at >= now)
                .values(used_at=now)
            )
            used = cast(CursorResult[Any], result).rowcount
        if used != 1:
            raise IdentityError(
                "sign-in nonce unknown, already used or expired: ask for a new one", code="siwe_nonce_invalid"
            )
        expires = now + PATIENT_TOKEN_TTL
        if parsed.expiration_time is not None:
            expires = min(expires, int(parsed.expiration_time.timestamp()))
        return self._mint(parsed.address, expires), parsed, expires

    def _mint(self, address: Address, expires: int) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"a": address, "e": expires}).encode()).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.new(self._token_key, payload, hashlib.sha256).digest()).rstrip(b"=")
        return PATIENT_TOKEN_PREFIX + payload.decode() + "." + mac.decode()

    def patient(self, token: str) -> Requester:
        """The patient behind a ``mlpt_`` token (401 ``unauthenticated`` if invalid or expired)."""
        body = token.removeprefix(PATIENT_TOKEN_PREFIX)
        payload, _, mac = body.partition(".")
        expected = base64.urlsafe_b64encode(
            hmac.new(self._token_key, payload.encode(), hashlib.sha256).digest()
        ).rstrip(b"=")
        if not mac or not hmac.compare_digest(expected, mac.encode()):
            raise IdentityError("invalid patient token")
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            # Minted from a verified SIWE address and MACed since, so trusted: only its type is made here.
            address, expires = eip55(str(claims["a"])), int(claims["e"])
        except (ValueError, KeyError, TypeError):
            raise IdentityError("invalid patient token") from None
        if expires < time.time():
            raise IdentityError("patient token expired: sign in again", code="token_expired")
        return Requester(RequesterKind.PATIENT, address)

    # ------------------------------------------------------------------ institutions

    def institution(
        self,
        method: str,
        path: str | bytes,
        query: str | bytes,
        headers: Mapping[str, str],
        body: bytes,
        *,
        roles: Role | None = None,
    ) -> tuple[Requester, SignedRequest]:
        """Verify a signed request and that its signer is a current member (with one of ``roles`` if given)."""
        signed = verify_request(method, path, query, headers, body, authority=self.authority, nonces=None)
        member = self._view.member(signed.signer)
        if member is None:
            raise IdentityError(
                f"{signed.signer} is not a current consortium member",
                code="not_a_member",
                details={"signer": signed.signer},
            )
        if roles is not None and not member.roles & int(roles):
            raise IdentityError(
                f"{member.name} lacks the role for this request",
                code="role_required",
                details={"signer": signed.signer, "required": [r.name.lower() for r in Role if r.name and r & roles]},
            )
        # Claim the nonce last: a request refused above must not burn it, and one accepted can never run twice.
        if not self.nonces.claim(signed.signer, signed.nonce, signed.expires):
            raise IdentityError("request replayed (nonce already used)", code="sig_replayed")
        return Requester(RequesterKind.INSTITUTION, signed.signer), signed
