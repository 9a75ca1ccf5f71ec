"""The notification service: the one owner of the notifications tables.

* :meth:`NotificationService.notify` writes a notice in the CALLER's transaction, so a notice exists exactly
  when the event it reports committed (a break-glass window, an access, later a referral or an alert); the
  access journal, which group-commits on its own connection, inserts :meth:`Notice.row` instead.
* Every notice is in its recipient's inbox at once (:meth:`inbox`).
* The dispatcher (:meth:`dispatch_once`, the runtime's ``notifications`` worker) fans each new notice out to
  one delivery per contact of its recipient (unique per notice, channel and destination, so fanning out twice
  delivers once) and sends due deliveries through their channel, recording each attempt: ``sent`` with the
  channel's receipt, retried with exponential back-off after a transient failure, ``failed`` after a permanent
  one or ``max_attempts``. Delivery is at least once: a crash between a send and its record sends it again,
  with the same Message-ID / Idempotency-Key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Table, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from node.db.fast_insert import insert_ignoring_conflicts
from node.db.models import (
    DeliveryState,
    Notification,
    NotificationContact,
    NotificationDelivery,
    as_utc,
    utcnow,
)
from node.doorbell import Doorbell, run_steps
from node.notifications.channels import Channel, DeliveryFailed
from node.notifications.notices import Notice, NotificationInvalid, Recipient
from node.notifications.templates import render

log = logging.getLogger(__name__)

_deliveries: Table = NotificationDelivery.__table__  # type: ignore[assignment]  # a declarative model's table

#: Notices fanned out and deliveries sent per step (a step is one short transaction per batch).
BATCH = 100
#: Contacts a recipient may have (per node): enough for a family, not a mailing list.
MAX_CONTACTS = 10


@dataclass
class DispatchStep:
    """What one :meth:`NotificationService.dispatch_once` did."""

    fanned_out: int = 0  # notices whose deliveries were created
    sent: int = 0
    retried: int = 0
    failed: int = 0
    chain_down: bool = False  # the dispatcher never waits for the chain (run_steps' protocol)
    in_flight: int = 0
    due_in: float | None = None  # seconds until the next queued delivery is due

    @property
    def idle(self) -> bool:
        return not (self.fanned_out or self.sent or self.retried or self.failed)


class NotificationService:
    """Notices, inboxes, contacts and deliveries of one node.

    Args:
        sessions: The node database.
        channels: The configured outbound channels by name (``email``, ``sms``, ...); contacts on other channels
            are refused when added, and their deliveries fail with a reason the operator can read.
        node_name: Named in outbound messages, so a person knows which institution wrote.
        max_attempts: Sends of one delivery before it fails.
        retry_base: Seconds before the first retry; doubled per attempt, at most ``retry_max``.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel] | None = None,
        *,
        node_name: str = "MedLedger",
        max_attempts: int = 8,
        retry_base: float = 5.0,
        retry_max: float = 3600.0,
    ) -> None:
        self._sessions = sessions
        self.channels = dict(channels or {})
        self.node_name = node_name
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        #: Rung when a transaction that wrote a notice commits (wakes the dispatcher).
        self.bell = Doorbell()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing

    def notify(self, session: Session, notice: Notice) -> Notification:
        """Add ``notice`` in the caller's transaction ``session``; the dispatcher wakes when it commits."""
        row = Notification(**notice.row())
        session.add(row)
        event.listen(session, "after_commit", lambda _s: self.bell.ring(), once=True)
        return row

    # ------------------------------------------------------------------ reading

    def inbox(self, recipient: Recipient, *, after: int = 0, limit: int = 100) -> list[Notification]:
        """The recipient's notices with id > ``after``, oldest first."""
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(Notification)
                    .where(
                        Notification.recipient_kind == recipient.kind.value,
                        Notification.recipient == recipient.id,
                        Notification.id > after,
                    )
                    .order_by(Notification.id)
                    .limit(limit)
                )
            )

    def deliveries(self, notification_id: int) -> list[NotificationDelivery]:
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(NotificationDelivery)
                    .where(NotificationDelivery.notification_id == notification_id)
                    .order_by(NotificationDelivery.id)
                )
            )

    # ------------------------------------------------------------------ contacts

    def add_contact(self, recipient: Recipient, channel: str, destination: str) -> NotificationContact:
        """Deliver the recipient's later notices to ``destination`` over ``channel`` too (idempotent)."""
        chan = self.channels.get(channel)
        if chan is None:
            raise NotificationInvalid(
                f"this node does not deliver over {channel!r}",
                code="channel_unavailable",
                details={"channels": sorted(self.channels)},
            )
        value = chan.check_destination(destination)
        with self._sessions.begin() as s:
            where = (
                NotificationContact.recipient_kind == recipient.kind.value,
                NotificationContact.recipient == recipient.id,
            )
            existing = s.scalar(
                select(NotificationContact).where(
                    *where, NotificationContact.channel == channel, NotificationContact.destination == value
                )
            )
            if existing is not None:
                return existing
            if (s.scalar(select(func.count()).where(*where)) or 0) >= MAX_CONTACTS:
                raise NotificationInvalid(f"at most {MAX_CONTACTS} contacts per recipient", code="too_many_contacts")
            contact = NotificationContact(
                recipient_kind=recipient.kind.value, recipient=recipient.id, channel=channel, destination=value
            )
            s.add(contact)
            s.flush()
            return contact

    def contacts(self, recipient: Recipient) -> list[NotificationContact]:
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(NotificationContact)
                    .where(
                        NotificationContact.recipient_kind == recipient.kind.value,
                        NotificationContact.recipient == recipient.id,
                    )
                    .order_by(NotificationContact.id)
                )
            )

    def remove_contact(self, recipient: Recipient, contact_id: int) -> bool:
        """Stop delivering to one contact; False if the recipient has no such contact. Deliveries already
        queued to it are dropped too: the person asked not to be reached there."""
        with self._sessions.begin() as s:
            contact = s.get(NotificationContact, contact_id)
            if contact is None or (contact.recipient_kind, contact.recipient) != (recipient.kind.value, recipient.id):
                return False
            mine = select(Notification.id).where(
                Notification.recipient_kind == recipient.kind.value, Notification.recipient == recipient.id
            )
            s.execute(
                delete(NotificationDelivery).where(
                    NotificationDelivery.status == DeliveryState.QUEUED,
                    NotificationDelivery.channel == contact.channel,
                    NotificationDelivery.destination == contact.destination,
                    NotificationDelivery.notification_id.in_(mine),
                )
            )
            s.delete(contact)
            return True

    # ------------------------------------------------------------------ dispatching

    def dispatch_once(self) -> DispatchStep:
        """Fan new notices out to deliveries, then send the due deliveries (one dispatcher per node)."""
        step = DispatchStep()
        with self._lock:
            step.fanned_out = self._fan_out()
            for delivery_id in self._due():
                self._send(delivery_id, step)
            step.due_in = self._next_due_in()
        return step

    def run(self, stop: threading.Event, *, poll_interval: float = 0.05, idle_interval: float = 1.0) -> None:
        """Dispatch until ``stop``; asleep until a notice commits or a retry is due. Notices the access journal
        inserts on its own connection are found within ``idle_interval``."""
        run_steps(
            self.dispatch_once,
            stop,
            wake=self.bell,
            poll_interval=poll_interval,
            idle_interval=idle_interval,
            max_backoff=idle_interval,
        )

    def drain(self, *, max_steps: int = 1000) -> DispatchStep:
        """Dispatch until nothing is due now (tests, the CLI); returns the summed counts."""
        total = DispatchStep()
        for _ in range(max_steps):
            step = self.dispatch_once()
            for name in ("fanned_out", "sent", "retried", "failed"):
                setattr(total, name, getattr(total, name) + getattr(step, name))
            total.due_in = step.due_in
            if step.idle:
                break
        return total

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def _fan_out(self) -> int:
        with self._sessions.begin() as s:
            notices: Sequence[Notification] = s.scalars(
                select(Notification).where(Notification.dispatched_at.is_(None)).order_by(Notification.id).limit(BATCH)
            ).all()
            if not notices:
                return 0
            now = utcnow()
            rows = []
            for n in notices:
                contacts = s.scalars(
                    select(NotificationContact).where(
                        NotificationContact.recipient_kind == n.recipient_kind,
                        NotificationContact.recipient == n.recipient,
                    )
                ).all()
                for c in contacts:
                    known = c.channel in self.channels
                    rows.append(
                        {
                            "notification_id": n.id,
                            "channel": c.channel,
                            "destination": c.destination,
                            "status": (DeliveryState.QUEUED if known else DeliveryState.FAILED).value,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "error": None if known else f"this node has no {c.channel} channel configured",
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            if rows:
                insert_ignoring_conflicts(
                    s.connection(),
                    _deliveries,
                    rows,
                    ["notification_id", "channel", "destination"],
                )
            s.execute(
                update(Notification).where(Notification.id.in_([n.id for n in notices])).values(dispatched_at=now)
            )
            return len(notices)

    def _due(self) -> list[int]:
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(NotificationDelivery.id)
                    .where(
                        NotificationDelivery.status == DeliveryState.QUEUED,
                        NotificationDelivery.next_attempt_at <= utcnow(),
                    )
                    .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
                    .limit(BATCH)
                )
            )

    def _next_due_in(self) -> float | None:
        with self._sessions() as s:
            due = s.scalar(
                select(func.min(NotificationDelivery.next_attempt_at)).where(
                    NotificationDelivery.status == DeliveryState.QUEUED
                )
            )
        if due is None:
            return None
        return max(0.0, (as_utc(due) - utcnow()).total_seconds())

    def _send(self, delivery_id: int, step: DispatchStep) -> None:
        with self._sessions() as s:
            delivery = s.get(NotificationDelivery, delivery_id)
            if delivery is None or delivery.status != DeliveryState.QUEUED:
                return  # removed with its contact meanwhile
            notification = s.get(Notification, delivery.notification_id)
            assert notification is not None  # the foreign key cascades
            channel = self.channels.get(delivery.channel)
            message = render(notification, self.node_name)
            destination, attempts = delivery.destination, delivery.attempts
        receipt: str | None = None
        failure: DeliveryFailed | None = None
        if channel is None:
            failure = DeliveryFailed(f"this node has no {delivery.channel} channel configured", permanent=True)
        else:
            try:
                receipt = channel.send(f"ml-delivery-{delivery_id}", destination, message)
            except DeliveryFailed as exc:
                failure = exc
        attempts += 1
        values: dict[str, object] = {"attempts": attempts, "updated_at": utcnow()}
        if failure is None:
            values |= {"status": DeliveryState.SENT.value, "receipt": receipt, "error": None}
            step.sent += 1
        elif failure.permanent or attempts >= self.max_attempts:
            values |= {"status": DeliveryState.FAILED.value, "error": failure.reason}
            step.failed += 1
            log.warning("delivery %s over %s failed for good: %s", delivery_id, delivery.channel, failure.reason)
        else:
            delay = min(self.retry_base * 2 ** (attempts - 1), self.retry_max)
            values |= {"next_attempt_at": utcnow() + timedelta(seconds=delay), "error": failure.reason}
            step.retried += 1
            log.info("delivery %s over %s retries in %.0f s: %s", delivery_id, delivery.channel, delay, failure.reason)
        with self._sessions.begin() as s:
            s.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.id == delivery_id, NotificationDelivery.status == DeliveryState.QUEUED)
                .values(**values)
            )
