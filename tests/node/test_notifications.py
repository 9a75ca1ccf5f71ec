"""The notification service (node.notifications) against a real SMTP server (aiosmtpd), a real HTTP gateway
(a local HTTP server) and both databases: a notice exists exactly when its transaction commits, is in the
recipient's inbox at once, fans out to one delivery per contact (once, however often it is fanned out), and each
delivery is sent, retried with back-off after a transient failure, or failed after a permanent one, with its
attempts and receipt recorded. Outbound messages carry no PHI. Also the node's runtime delivering, and
migration 0006 up and down."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, inspect, select, text, update

from medledger.db import current_revision, make_engine, upgrade
from node.config import NodeConfig
from node.db import MIGRATIONS
from node.db.models import DeliveryState, Notification, NotificationDelivery
from node.embedded import free_port
from node.notifications import (
    HttpGatewayChannel,
    Notice,
    NoticeKind,
    NotificationInvalid,
    NotificationService,
    Recipient,
    SmtpChannel,
)
from node.runtime import NodeRuntime
from node.service import NodeServices
from tests.node.test_cli import PASSWORD, make_node
from tests.sharing.conftest import wait_until

PATIENT = "0x" + "ab" * 20
SECRET_REASON = "unconscious after a car accident, suspected head injury"


class Gateway(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, Any], str | None]]
    answer: int = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((body, self.headers.get("Idempotency-Key")))
        self.send_response(self.answer)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"id": f"gw-{len(self.received)}"}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[type[Gateway], str]]:
    handler = type("Handler", (Gateway,), {"received": [], "answer": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}/send"
    finally:
        server.shutdown()
        server.server_close()


def _service(node_db, port: int | None = None, gateway_url: str | None = None, **kw: Any) -> NotificationService:
    channels: dict[str, Any] = {}
    if port is not None:
        channels["email"] = SmtpChannel(f"smtp://127.0.0.1:{port}", "noreply@hospital-a.example")
    if gateway_url is not None:
        channels["sms"] = HttpGatewayChannel("sms", gateway_url)
    return NotificationService(node_db.sessions, channels, node_name="Hospital A", **kw)


def _notice(recipient: str = PATIENT) -> Notice:
    return Notice(
        Recipient.patient(recipient),
        NoticeKind.BREAK_GLASS_OPENED,
        {"break_glass_id": 7, "reason": SECRET_REASON},
    )


def _deliveries(node_db) -> list[NotificationDelivery]:
    with node_db.sessions() as s:
        return list(s.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def _subject(envelope: Envelope) -> str:
    return str(make_header(decode_header(message_from_bytes(envelope.content)["Subject"])))


# ---------------------------------------------------------------------------------------------- notices


def test_a_notice_exists_exactly_when_its_transaction_commits(node_db) -> None:
    service = _service(node_db)
    me = Recipient.patient(PATIENT)
    with pytest.raises(RuntimeError), node_db.sessions.begin() as s:
        service.notify(s, _notice())
        raise RuntimeError("the event's transaction fails")
    assert service.inbox(me) == []
    assert not service.bell.wait(0)

    with node_db.sessions.begin() as s:
        service.notify(s, _notice())
    assert service.bell.wait(0)  # the dispatcher is woken by the commit
    [n] = service.inbox(me)
    assert (n.kind, n.recipient_kind, n.payload["reason"]) == ("break_glass_opened", "patient", SECRET_REASON)
    assert service.inbox(me, after=n.id) == []
    assert service.inbox(Recipient.patient("0x" + "cd" * 20)) == []


@pytest.mark.parametrize(
    ("recipient", "kind", "payload"),
    [
        (("patient", "not-an-address"), "break_glass_opened", {}),
        (("staff", "x" * 43), "break_glass_opened", {}),
        (("staff", "7"), "Has Spaces", {}),
        (("staff", "7"), "a" * 33, {}),
        (("staff", "7"), "referrals.closed", ["not", "an", "object"]),
    ],
)
def test_malformed_notices_are_refused(recipient: tuple[str, str], kind: str, payload: Any) -> None:
    with pytest.raises(NotificationInvalid) as err:
        Notice(Recipient(*recipient), kind, payload)  # type: ignore[arg-type]
    assert err.value.code == "notification_invalid"


def test_contacts_are_checked_per_channel_and_limited(node_db, gateway) -> None:
    _, url = gateway
    service = _service(node_db, port=free_port(), gateway_url=url)
    me = Recipient.patient(PATIENT)
    with pytest.raises(NotificationInvalid) as err:
        service.add_contact(me, "email", "not an address")
    assert err.value.code == "notification_invalid"
    with pytest.raises(NotificationInvalid) as err:
        service.add_contact(me, "sms", "13800138000")  # no country code
    assert err.value.code == "notification_invalid"
    with pytest.raises(NotificationInvalid) as err:
        service.add_contact(me, "voice", "+8613800138000")
    assert err.value.code == "channel_unavailable" and err.value.details["channels"] == ["email", "sms"]

    sms = service.add_contact(me, "sms", "+86 138-0013-8000")
    assert sms.destination == "+8613800138000"
    assert service.add_contact(me, "sms", "+8613800138000").id == sms.id  # idempotent
    for i in range(9):
        service.add_contact(me, "email", f"family{i}@example.org")
    with pytest.raises(NotificationInvalid) as err:
        service.add_contact(me, "email", "one-too-many@example.org")
    assert err.value.code == "too_many_contacts"
    assert len(service.contacts(me)) == 10
    assert service.remove_contact(Recipient.patient("0x" + "cd" * 20), sms.id) is False  # not theirs
    assert service.remove_contact(me, sms.id) is True
    assert len(service.contacts(me)) == 9


# ---------------------------------------------------------------------------------------------- delivery


def test_email_is_delivered_once_with_a_receipt_and_no_phi(node_db, smtp) -> None:
    box, port = smtp
    service = _service(node_db, port=port)
    me = Recipient.patient(PATIENT)
    service.add_contact(me, "email", "patient@example.org")
    with node_db.sessions.begin() as s:
        notice = service.notify(s, _notice())
    total = service.drain()
    assert (total.fanned_out, total.sent, total.failed) == (1, 1, 0)

    [envelope] = box.messages
    assert envelope.rcpt_tos == ["patient@example.org"]
    assert envelope.mail_from == "noreply@hospital-a.example"
    mail = message_from_bytes(envelope.content)
    [delivery] = _deliveries(node_db)
    assert mail["Message-ID"] == f"<ml-delivery-{delivery.id}@hospital-a.example>"
    assert "Emergency access to your records was opened" in _subject(envelope)
    text = mail.get_payload(decode=True).decode()
    assert "Hospital A" in text and f"#{notice.id}" in text and "紧急访问" in text
    assert SECRET_REASON not in envelope.content.decode("utf-8", "replace")  # the reason stays on the node
    assert delivery.status == DeliveryState.SENT and delivery.attempts == 1
    assert delivery.receipt.startswith(mail["Message-ID"]) and "accepted" in delivery.receipt

    # Fanning the same notice out again (e.g. a crash before dispatched_at was recorded) delivers nothing new.
    with node_db.sessions.begin() as s:
        s.execute(update(Notification).values(dispatched_at=None))
    again = service.drain()
    assert (again.fanned_out, again.sent) == (1, 0)
    assert len(box.messages) == 1 and len(_deliveries(node_db)) == 1


def test_a_transient_failure_is_retried_with_back_off_then_sent(node_db, smtp) -> None:
    box, port = smtp
    down = free_port()  # nothing listens here
    service = _service(node_db, port=down, retry_base=0.2)
    service.add_contact(Recipient.patient(PATIENT), "email", "patient@example.org")
    with node_db.sessions.begin() as s:
        service.notify(s, _notice())
    step = service.dispatch_once()
    assert (step.sent, step.retried, step.failed) == (0, 1, 0)
    [d] = _deliveries(node_db)
    assert d.status == DeliveryState.QUEUED and d.attempts == 1 and "unreachable" in d.error
    assert step.due_in is not None and 0 < step.due_in <= 0.2
    assert service.dispatch_once().idle  # not due yet: nothing is sent again at once

    service.channels["email"] = SmtpChannel(f"smtp://127.0.0.1:{port}", "noreply@hospital-a.example")
    time.sleep(0.25)
    step = service.dispatch_once()
    assert step.sent == 1
    [d] = _deliveries(node_db)
    assert d.status == DeliveryState.SENT and d.attempts == 2 and d.error is None
    assert len(box.messages) == 1


def test_a_permanent_refusal_fails_at_once_and_max_attempts_ends_retries(node_db, smtp) -> None:
    box, port = smtp
    box.refuse = "550 5.1.1 mailbox unavailable"
    service = _service(node_db, port=port)
    me = Recipient.patient(PATIENT)
    service.add_contact(me, "email", "gone@example.org")
    with node_db.sessions.begin() as s:
        service.notify(s, _notice())
    assert service.drain().failed == 1
    [d] = _deliveries(node_db)
    assert d.status == DeliveryState.FAILED and d.attempts == 1 and "550" in d.error
    assert "gone@example.org" not in d.error  # reasons name the failure, not the person

    flaky = _service(node_db, port=free_port(), max_attempts=2, retry_base=0.01)
    other = "0x" + "cd" * 20
    flaky.add_contact(Recipient.patient(other), "email", "other@example.org")
    with node_db.sessions.begin() as s:
        flaky.notify(s, _notice(other))
    flaky.dispatch_once()
    time.sleep(0.05)
    assert flaky.dispatch_once().failed == 1
    assert [(d.status, d.attempts) for d in _deliveries(node_db)][-1] == ("failed", 2)


def test_sms_goes_through_the_http_gateway_with_an_idempotency_key(node_db, gateway) -> None:
    handler, url = gateway
    service = _service(node_db, gateway_url=url, retry_base=0.01)
    service.add_contact(Recipient.patient(PATIENT), "sms", "+8613800138000")
    handler.answer = 503
    with node_db.sessions.begin() as s:
        service.notify(s, _notice())
    assert service.dispatch_once().retried == 1
    handler.answer = 200
    time.sleep(0.02)
    assert service.dispatch_once().sent == 1
    [d] = _deliveries(node_db)
    assert (d.status, d.attempts, d.receipt) == ("sent", 2, "gw-2")
    (_, key1), (second, key2) = handler.received
    assert key1 == key2 == f"ml-delivery-{d.id}" == second["id"]  # the same message, recognisable as such
    assert (second["channel"], second["to"]) == ("sms", "+8613800138000")
    assert SECRET_REASON not in json.dumps(second)

    handler.answer = 400
    with node_db.sessions.begin() as s:
        service.notify(s, _notice())
    assert service.drain().failed == 1  # a 4xx is permanent


def test_notices_inserted_on_another_connection_are_fanned_out_and_removed_contacts_are_not_reached(
    node_db, smtp
) -> None:
    box, port = smtp
    service = _service(node_db, port=port)
    me = Recipient.patient(PATIENT)
    contact = service.add_contact(me, "email", "patient@example.org")
    with node_db.engine.begin() as conn:  # as the access journal's group commit does
        conn.execute(insert(Notification.__table__), [_notice().row(), _notice().row()])
    with node_db.sessions.begin() as s:
        s.execute(update(Notification).where(Notification.id == 2).values(dispatched_at=None))
    assert service._fan_out() == 2
    assert service.remove_contact(me, contact.id)
    assert service.drain().sent == 0 and box.messages == []
    assert _deliveries(node_db) == []  # the queued deliveries to that contact went with it


def test_the_node_runtime_delivers_with_the_channels_node_toml_sets(tmp_path: Path, smtp) -> None:
    box, port = smtp
    data_dir = make_node(tmp_path)
    config = NodeConfig.load(data_dir)
    config.notifications.smtp_url = f"smtp+plain://127.0.0.1:{port}"
    config.notifications.smtp_from = "noreply@test-hospital.example"
    config.save()
    assert NodeConfig.load(data_dir).notifications.smtp_url.endswith(str(port))
    services = NodeServices.open(data_dir, password=PASSWORD)
    try:
        patient = "0x" + secrets.token_hex(20)
        services.notifications.add_contact(Recipient.patient(patient), "email", "patient@example.org")
        with NodeRuntime(services):
            with services.sessions.begin() as s:
                services.notifications.notify(s, _notice(patient))
            wait_until(lambda: len(box.messages) == 1, timeout=10, what="the e-mail delivered by the runtime")
        assert "Test Hospital" in message_from_bytes(box.messages[0].content).get_payload(decode=True).decode()
    finally:
        services.close()


def test_migration_0006_adds_and_drops_the_notification_tables_keeping_notices(db_url) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, MIGRATIONS, "0005")
        with engine.begin() as conn:  # a notice written before the upgrade
            conn.execute(
                text("INSERT INTO notifications (recipient, kind, payload, created_at) VALUES (:r, :k, :p, :c)"),
                {"r": PATIENT, "k": "break_glass_opened", "p": "{}", "c": datetime.now(UTC)},
            )
        upgrade(engine, MIGRATIONS, "0006")
        assert current_revision(engine) == "0006"
        assert {"notification_contacts", "notification_deliveries"} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT recipient_kind, recipient, dispatched_at FROM notifications")).all()
        assert [tuple(r) for r in rows] == [("patient", PATIENT, None)]  # dispatched by the service's next step
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        assert current_revision(engine) == "0005"
        assert "notification_deliveries" not in inspect(engine).get_table_names()
        assert "recipient_kind" not in {c["name"] for c in inspect(engine).get_columns("notifications")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM notifications")).scalar() == 1
    finally:
        engine.dispose()
