"""The node's notification service: typed notices written in the caller's transaction, each recipient's in-app
inbox, contacts per channel, and deliveries with attempts and receipts over channels behind one interface
(e-mail over SMTP; SMS, voice and web push through an HTTP gateway)."""

from node.notifications.channels import Channel, DeliveryFailed, HttpGatewayChannel, SmtpChannel
from node.notifications.notices import Notice, NoticeKind, NotificationInvalid, Recipient, RecipientKind
from node.notifications.service import DispatchStep, NotificationService
from node.notifications.templates import Message, render

__all__ = [
    "Channel",
    "DeliveryFailed",
    "DispatchStep",
    "HttpGatewayChannel",
    "Message",
    "Notice",
    "NoticeKind",
    "NotificationInvalid",
    "NotificationService",
    "Recipient",
    "RecipientKind",
    "SmtpChannel",
    "render",
]
