"""Break-glass: an EMERGENCY member's staff open a short, loudly logged window on a patient who cannot consent.

The reason stays on this node (only its SHA-256 goes on chain, so the chain carries no clinical text) and the
patient is told through the notification outbox, written in the same transaction as the local note. Every
release under the window is logged as BREAK_GLASS and notifies the patient again at the custodian.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from medledger.addresses import checksummed
from medledger.chain.abi import ContractRevert
from medledger.chain.contracts import ConsentRegistryClient
from medledger.errors import InputError, MedLedgerError
from medledger.vocabulary import Role
from node.db.models import BreakGlassNote
from node.identity import Requester
from node.ledger_view import LedgerView
from node.notifications import Notice, NoticeKind, NotificationService, Recipient

MIN_REASON = 10
MAX_REASON = 1000
MAX_DURATION = 24 * 3600


class BreakGlassRefused(MedLedgerError):
    code = "break_glass_refused"


class BreakGlassService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        consent: ConsentRegistryClient,
        view: LedgerView,
        address: str,
        notices: NotificationService,
    ) -> None:
        self._sessions = sessions
        self.notices = notices
        self.consent = consent
        self.view = view
        self.address = address

    def open(self, requester: Requester, patient: str, reason: str, duration: int) -> dict[str, Any]:
        """Open a window for this institution on ``patient``; returns its id, expiry and transaction."""
        p = checksummed(patient, "patient")
        reason = reason.strip()
        if not MIN_REASON <= len(reason) <= MAX_REASON:
            raise InputError(f"reason must be {MIN_REASON}..{MAX_REASON} characters", code="invalid_reason")
        if not 60 <= duration <= MAX_DURATION:
            raise InputError(f"duration must be 60..{MAX_DURATION} seconds", code="invalid_duration")
        if not self.view.has_role(self.address, Role.EMERGENCY):
            raise BreakGlassRefused(
                "this institution is not an EMERGENCY member of the consortium", code="not_emergency_member"
            )
        try:
            bid, expires, receipt = self.consent.open_break_glass_receipt(
                p, hashlib.sha256(reason.encode()).digest(), duration
            )
        except ContractRevert as exc:
            code = {"BreakGlassAlreadyOpen": "break_glass_already_open"}.get(exc.error, "break_glass_refused")
            raise BreakGlassRefused(exc.message, code=code, details=exc.details) from None
        staff = requester.staff
        with self._sessions.begin() as s:
            s.add(
                BreakGlassNote(
                    break_glass_id=bid,
                    patient=p,
                    staff_id=staff.id if staff else None,
                    reason=reason,
                    expires_at=expires,
                    tx_hash=receipt.tx_hash,
                )
            )
            self.notices.notify(
                s,
                Notice(
                    Recipient.patient(p),
                    NoticeKind.BREAK_GLASS_OPENED,
                    {
                        "break_glass_id": bid,
                        "accessor": self.address,
                        "reason": reason,
                        "expires_at": expires,
                        "tx_hash": receipt.tx_hash,
                        "block_number": receipt.block_number,
                    },
                ),
            )
        self.view.sync()
        return {
            "break_glass_id": bid,
            "patient": p,
            "accessor": self.address,
            "expires_at": expires,
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
        }
