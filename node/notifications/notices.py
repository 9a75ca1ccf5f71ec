"""What a notice is: its kind, its recipient, and the row it becomes in the caller's transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_utils import is_address, to_checksum_address

from medledger.errors import InputError
from node.db.models import utcnow


class RecipientKind(StrEnum):
    """Who a notice is for; ``recipient`` is an address for patients and institutions, an id otherwise."""

    PATIENT = "patient"  # a patient's wallet address
    STAFF = "staff"  # a staff member of this node (their id)
    CONTACT = "contact"  # a patient's emergency contact or family member (an id the workflow keeps)
    INSTITUTION = "institution"  # another consortium member's address


class NoticeKind(StrEnum):
    """The node's own notice kinds. A workflow uses its own kinds, namespaced ``<module>.<event>``."""

    BREAK_GLASS_OPENED = "break_glass_opened"
    BREAK_GLASS_ACCESS = "break_glass_access"


class NotificationInvalid(InputError):
    code = "notification_invalid"


_KIND = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,42}$")


@dataclass(frozen=True, slots=True)
class Recipient:
    kind: RecipientKind
    id: str

    @classmethod
    def patient(cls, address: str) -> Recipient:
        return cls(RecipientKind.PATIENT, address)

    def __post_init__(self) -> None:
        kind = RecipientKind(self.kind)
        object.__setattr__(self, "kind", kind)
        if kind in (RecipientKind.PATIENT, RecipientKind.INSTITUTION):
            if not isinstance(self.id, str) or not is_address(self.id):
                raise NotificationInvalid(f"a {kind.value} recipient is an address, not {self.id!r}")
            # The inbox is looked up by the checksummed address the node's other tables use.
            object.__setattr__(self, "id", to_checksum_address(self.id))
        elif not isinstance(self.id, str) or not _ID.match(self.id):
            raise NotificationInvalid(f"a {kind.value} recipient id is 1..42 characters of [A-Za-z0-9_.:-]")


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice. ``payload`` is JSON; it is shown in the recipient's inbox and never leaves the node except
    through a template (node.notifications.templates) that chooses what an outbound message says."""

    recipient: Recipient
    kind: str
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or len(self.kind) > 32 or not _KIND.match(self.kind):
            raise NotificationInvalid(f"notice kind {self.kind!r} is not snake_case (module.event), <= 32 chars")
        if not isinstance(self.payload, dict):
            raise NotificationInvalid("a notice payload is a JSON object")

    def row(self) -> dict[str, Any]:
        """The notifications row, for callers that insert it with their own connection (the access journal)."""
        return {
            "recipient_kind": self.recipient.kind.value,
            "recipient": self.recipient.id,
            "kind": self.kind,
            "payload": self.payload,
            "created_at": utcnow(),
        }
