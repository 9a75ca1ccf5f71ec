"""Outbound delivery channels behind one interface: e-mail over SMTP, and SMS / voice / web push through an HTTP
gateway (the operator's SMS provider, a SIP bridge, a push service). The in-app inbox is not a channel: every
notice is in its recipient's inbox the moment its transaction commits.

A channel sends one message and returns a receipt (the provider's id), or raises :class:`DeliveryFailed`,
``permanent`` when sending it again cannot succeed (a 5xx SMTP reply, a 4xx from the gateway). Every send
carries a stable id (``Message-ID``, ``Idempotency-Key``) derived from the delivery, so a message sent again
after a crash between sending and recording it can be recognised as the same one by its receiver.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from abc import ABC, abstractmethod
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from medledger.errors import ConfigError
from medledger.redact import redact_url
from node.notifications.notices import NotificationInvalid
from node.notifications.templates import Message


class DeliveryFailed(Exception):
    """A channel could not deliver; ``permanent``: retrying cannot help. ``reason`` is for the operator and never
    contains the message or the destination."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason[:200]
        self.permanent = permanent


class Channel(ABC):
    """One way of reaching a person outside the node."""

    #: The channel's name in contacts and deliveries (``email``, ``sms``, ``voice``, ``push``).
    name: str

    @abstractmethod
    def check_destination(self, destination: str) -> str:
        """``destination`` normalized, or :class:`NotificationInvalid` naming what is wrong."""

    @abstractmethod
    def send(self, delivery_id: str, destination: str, message: Message) -> str:
        """Deliver ``message``; the receipt, or :class:`DeliveryFailed`."""

    def close(self) -> None:  # noqa: B027 - most channels hold nothing open
        """Release what the channel holds."""


_EMAIL = re.compile(r"^[^@\s<>\"(),;:]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SmtpChannel(Channel):
    """E-mail over SMTP. ``url``: ``smtp://[user@]host[:port]`` (STARTTLS when the server offers it),
    ``smtp+plain://`` (never TLS: a local relay), or ``smtps://`` (TLS from the start); the password, if any,
    comes from the environment (node.toml holds no secrets)."""

    name = "email"

    def __init__(self, url: str, sender: str, *, password: str | None = None, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+plain") or not parts.hostname:
            raise ConfigError("notifications.smtp_url must be smtp://host:port, smtp+plain:// or smtps://")
        if not _EMAIL.match(sender or ""):
            raise ConfigError("notifications.smtp_from must be an e-mail address")
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.scheme = parts.scheme
        self.user = unquote(parts.username) if parts.username else None
        self.password = password
        self.sender = sender
        self.timeout = timeout
        self._where = redact_url(url)
        self._domain = sender.rsplit("@", 1)[1]

    def check_destination(self, destination: str) -> str:
        value = destination.strip() if isinstance(destination, str) else ""
        if len(value) > 254 or not _EMAIL.match(value):
            raise NotificationInvalid("an e-mail contact is one address such as name@example.org")
        return value

    def send(self, delivery_id: str, destination: str, message: Message) -> str:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = destination
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        message_id = f"<{delivery_id}@{self._domain}>"
        mail["Message-ID"] = message_id
        mail.set_content(message.text, charset="utf-8")
        try:
            with self._connect() as smtp:
                code, reply = smtp.mail(self.sender)
                if code != 250:
                    raise _refused("MAIL FROM", code, reply)
                code, reply = smtp.rcpt(destination)
                if code not in (250, 251):
                    raise _refused("RCPT TO", code, reply)
                code, reply = smtp.data(mail.as_bytes())
                if code != 250:
                    raise _refused("DATA", code, reply)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"SMTP authentication failed ({exc.smtp_code})", permanent=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"SMTP server {self._where} unreachable: {type(exc).__name__}"
            raise DeliveryFailed(reason, permanent=False) from None
        return f"{message_id} {reply.decode('utf-8', 'replace')[:150]}"

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        smtp.ehlo()
        if self.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if self.user:
            smtp.login(self.user, self.password or "")
        return smtp


def _refused(step: str, code: int, reply: bytes) -> DeliveryFailed:
    # 5xx: the server will never take this message; 4xx: try again later (RFC 5321 section 4.2.1).
    text = reply.decode("utf-8", "replace")[:120]
    return DeliveryFailed(f"SMTP {step} refused: {code} {text}", permanent=500 <= code < 600)


class HttpGatewayChannel(Channel):
    """SMS, voice or web push through an HTTP gateway the operator runs or rents: one JSON POST per message,
    ``{"id", "channel", "to", "subject", "text"}`` with ``Idempotency-Key: <id>``; a 2xx answer's ``id`` (or the
    delivery's own id) is the receipt. 4xx other than 408 and 429 are permanent; 5xx and network errors retry."""

    def __init__(self, name: str, url: str, *, token: str | None = None, timeout: float = 10.0) -> None:
        if name not in ("sms", "voice", "push"):
            raise ConfigError(f"gateway channel {name!r} must be sms, voice or push")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("notifications.gateway_url must be an http(s):// URL")
        self.name = name
        self.url = url
        self._where = redact_url(url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def check_destination(self, destination: str) -> str:
        value = destination.strip() if isinstance(destination, str) else ""
        if self.name == "push":
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname or len(value) > 320:
                raise NotificationInvalid("a push contact is the subscription's https:// endpoint")
            return value
        value = re.sub(r"[\s()-]", "", value)
        if not _E164.match(value):
            raise NotificationInvalid(f"an {self.name} contact is a phone number in E.164 form, e.g. +8613800138000")
        return value

    def send(self, delivery_id: str, destination: str, message: Message) -> str:
        body: dict[str, Any] = {
            "id": delivery_id,
            "channel": self.name,
            "to": destination,
            "subject": message.subject,
            "text": message.text,
        }
        try:
            r = self._client.post(self.url, json=body, headers={"Idempotency-Key": delivery_id})
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"gateway {self._where} unreachable: {type(exc).__name__}", permanent=False) from None
        if r.is_success:
            try:
                answer = r.json()
            except ValueError:
                answer = None
            receipt = answer.get("id") if isinstance(answer, dict) else None
            return str(receipt or delivery_id)[:256]
        permanent = 400 <= r.status_code < 500 and r.status_code not in (408, 429)
        raise DeliveryFailed(f"gateway answered {r.status_code}", permanent=permanent)

    def close(self) -> None:
        self._client.close()
