"""From the ledger's and the services' results to the API's reply documents (node.api.schemas): member names
and endpoints joined in, codes turned into their names."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from medledger.addresses import Address
from medledger.vocabulary import AuthKind, Purpose
from node.api.schemas import AccessItem, AccessPage, GrantItem, NotificationItem, TimelineItem, TimelinePage
from node.db.models import Notification
from node.release import Release
from node.service import NodeServices


def timeline_page(
    services: NodeServices,
    patient: Address,
    limit: int,
    cursor: str | None,
    *,
    classes: list[int] | None = None,
    since: int | None = None,
    until: int | None = None,
) -> TimelinePage:
    members = services.ledger.members()
    page = services.ledger.queries.timeline(
        patient, classes=classes, since=since, until=until, limit=limit, cursor=cursor
    )
    return TimelinePage(
        items=[
            TimelineItem(
                record_id=e.record_id,
                custodian=e.custodian,
                custodian_name=(m.name if (m := members.get(e.custodian)) else None),
                custodian_endpoint=m.endpoint if m else None,
                record_class=e.record_class_name,
                event_time=e.event_time,
                commitment=e.commitment,
                status=e.status.name.lower(),
                block_number=e.block_number,
                tx_hash=e.tx_hash,
            )
            for e in page.items
        ],
        next_cursor=page.next_cursor,
    )


def access_page(
    services: NodeServices,
    limit: int,
    cursor: str | None,
    *,
    patient: str | None = None,
    accessor: str | None = None,
    record_id: str | None = None,
) -> AccessPage:
    members = services.ledger.members()
    page = services.ledger.queries.accesses(
        patient=patient, accessor=accessor, record_id=record_id, limit=limit, cursor=cursor
    )
    return AccessPage(
        items=[
            AccessItem(
                record_id=a.record_id,
                accessor=a.accessor,
                accessor_name=(m.name if (m := members.get(a.accessor)) else None),
                custodian=a.custodian,
                purpose=Purpose.label(a.purpose),
                authorization=AuthKind.label(a.auth_kind),
                auth_id=a.auth_id,
                break_glass=a.auth_kind == AuthKind.BREAK_GLASS,
                staff_ref=a.staff_ref,
                decided_block=a.decided_block,
                block_number=a.block_number,
                block_time=a.block_time,
                tx_hash=a.tx_hash,
            )
            for a in page.items
        ],
        next_cursor=page.next_cursor,
    )


def grant_items(services: NodeServices, patient: Address) -> list[GrantItem]:
    members = services.ledger.members()
    return [
        GrantItem(
            grant_id=g.grant_id,
            grantee=g.grantee,
            grantee_name=(m.name if (m := members.get(g.grantee)) else None),
            classes=g.class_names,
            purpose=Purpose.label(g.purpose),
            valid_from=g.valid_from,
            valid_until=g.valid_until,
            block_number=g.block_number,
            revoked=g.revoked_block is not None,
        )
        for g in services.ledger.queries.grant_history(patient)
    ]


def notification_items(rows: Sequence[Notification]) -> list[NotificationItem]:
    return [
        NotificationItem(id=n.id, kind=n.kind, payload=n.payload, created_at=n.created_at.isoformat()) for n in rows
    ]


def release_reply(out: Release) -> dict[str, Any]:
    """The reply of a release as the JSON document ReleaseReply describes, built without the model: on the API's
    hot path validating it through the model cost more than the release's own work (tests check it against
    the model)."""
    return {
        "record": out.record.meta(),
        "custodian": out.custodian,
        "ciphertext": base64.b64encode(out.ciphertext).decode(),
        "wrapped_key": base64.b64encode(out.wrapped_key).decode(),
        "authorization": {
            "kind": AuthKind.label(out.decision.kind),
            "id": out.decision.auth_id,
            "block_number": out.decision.block_number,
        },
    }
