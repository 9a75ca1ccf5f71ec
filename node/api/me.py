"""The signed-in patient's own views: their records across custodians, who accessed them, their grants, and
their notifications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from node.api.deps import Patient, services_of
from node.api.params import Limit
from node.api.responses import errors
from node.api.schemas import AccessPage, GrantItem, NotificationItem, TimelinePage
from node.api.shaping import access_page, grant_items, notification_items, timeline_page
from node.db.models import Notification
from node.service import NodeServices

router = APIRouter()

#: At most this many notifications per call; the client pages on with ``after``.
_INBOX_PAGE = 500


@router.get(
    "/v1/me/timeline",
    tags=["patients"],
    response_model=TimelinePage,
    responses=errors(401, 422, 503),
    summary="My records across all custodians, newest first",
)
def my_timeline(request: Request, me: Patient, limit: Limit = 50, cursor: str | None = None) -> TimelinePage:
    return timeline_page(services_of(request), me.address, limit, cursor)


@router.get(
    "/v1/me/accesses",
    tags=["patients"],
    response_model=AccessPage,
    responses=errors(401, 422, 503),
    summary="Every logged access to my records: who, when, under which grant or break-glass",
)
def my_accesses(request: Request, me: Patient, limit: Limit = 50, cursor: str | None = None) -> AccessPage:
    return access_page(services_of(request), limit, cursor, patient=me.address)


@router.get(
    "/v1/me/grants",
    tags=["patients"],
    response_model=list[GrantItem],
    responses=errors(401, 503),
    summary="My grants, current and past",
)
def my_grants(request: Request, me: Patient) -> list[GrantItem]:
    return grant_items(services_of(request), me.address)


@router.get(
    "/v1/me/notifications",
    tags=["patients"],
    response_model=list[NotificationItem],
    responses=errors(401, 422),
    summary="Notifications from this node's outbox (break-glass openings and accesses)",
)
def my_notifications(request: Request, me: Patient, after: Annotated[int, Query(ge=0)] = 0) -> list[NotificationItem]:
    return notification_items(_inbox_rows(services_of(request), me.address, after))


def _inbox_rows(services: NodeServices, recipient: str, after: int) -> list[Notification]:
    """The recipient's notifications with ids above ``after``, oldest first. A stop-gap reading the outbox table
    directly until the notification service owns it (issue 14); nothing else should copy this query."""
    with services.sessions() as s:
        return list(
            s.scalars(
                select(Notification)
                .where(Notification.recipient == recipient, Notification.id > after)
                .order_by(Notification.id)
                .limit(_INBOX_PAGE)
            ).all()
        )
