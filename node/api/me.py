"""The signed-in patient's own views: their records across custodians, who accessed them, their grants, and
their notifications and where else to send them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from node.api.deps import Patient, services_of
from node.api.errors import ApiError
from node.api.params import ClassesQuery, Cursor, Limit, RowIdPath, SinceQuery, UntilQuery, classes_of
from node.api.responses import errors
from node.api.schemas import AccessPage, ContactItem, ContactRequest, GrantItem, NotificationItem, TimelinePage
from node.api.shaping import access_page, grant_items, notification_items, timeline_page
from node.db.models import NotificationContact
from node.notifications import Recipient

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
def my_timeline(
    request: Request,
    me: Patient,
    limit: Limit = 50,
    cursor: Cursor = None,
    record_class: ClassesQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> TimelinePage:
    services = services_of(request)
    classes = classes_of(record_class)
    return timeline_page(services, me.address, limit, cursor, classes=classes, since=since, until=until)


@router.get(
    "/v1/me/accesses",
    tags=["patients"],
    response_model=AccessPage,
    responses=errors(401, 422, 503),
    summary="Every logged access to my records: who, when, under which grant or break-glass",
)
def my_accesses(request: Request, me: Patient, limit: Limit = 50, cursor: Cursor = None) -> AccessPage:
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
    summary="My notifications at this node (break-glass openings and accesses; later referrals, alerts, results)",
)
def my_notifications(request: Request, me: Patient, after: Annotated[int, Query(ge=0)] = 0) -> list[NotificationItem]:
    inbox = services_of(request).notifications.inbox(Recipient.patient(me.address), after=after, limit=_INBOX_PAGE)
    return notification_items(inbox)


@router.get(
    "/v1/me/notification-contacts",
    tags=["patients"],
    response_model=list[ContactItem],
    responses=errors(401),
    summary="Where this node also sends my notifications (e-mail, SMS, voice, push)",
)
def my_contacts(request: Request, me: Patient) -> list[ContactItem]:
    return [_contact(c) for c in services_of(request).notifications.contacts(Recipient.patient(me.address))]


@router.post(
    "/v1/me/notification-contacts",
    tags=["patients"],
    status_code=201,
    response_model=ContactItem,
    responses=errors(401, 409, 422),
    summary="Also send my notifications to this e-mail address, phone number or push endpoint",
    description="Idempotent: adding the same contact again returns it. Outbound messages say only that "
    "something happened and where to look; the details stay in the inbox.",
)
def add_my_contact(request: Request, me: Patient, body: ContactRequest) -> ContactItem:
    service = services_of(request).notifications
    return _contact(service.add_contact(Recipient.patient(me.address), body.channel, body.destination))


@router.delete(
    "/v1/me/notification-contacts/{contact_id}",
    tags=["patients"],
    status_code=204,
    responses=errors(401, 404, 422),
    summary="Stop sending my notifications to this contact (queued messages to it are dropped)",
)
def remove_my_contact(request: Request, me: Patient, contact_id: RowIdPath) -> Response:
    if not services_of(request).notifications.remove_contact(Recipient.patient(me.address), contact_id):
        raise ApiError(404, "contact_not_found", f"no notification contact {contact_id}")
    return Response(status_code=204)


def _contact(c: NotificationContact) -> ContactItem:
    return ContactItem(id=c.id, channel=c.channel, destination=c.destination, created_at=c.created_at.isoformat())
