"""What an outbound message says about a notice. The inbox shows the whole payload to its owner; a message
that leaves the node (e-mail, SMS, a gateway) says only that something happened and where to look, in Chinese
and English: no reasons, record classes or names, which may be PHI, cross the wire to a mail provider."""

from __future__ import annotations

from dataclasses import dataclass

from node.db.models import Notification


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str


_SUBJECTS = {
    "break_glass_opened": ("紧急访问已开启", "Emergency access to your records was opened"),
    "break_glass_access": ("您的记录被紧急访问", "Your records were read under emergency access"),
}
_DEFAULT = ("您有一条新通知", "You have a new notification")


def render(notification: Notification, node_name: str) -> Message:
    zh, en = _SUBJECTS.get(notification.kind, _DEFAULT)
    text = (
        f"{zh}。请打开 MedLedger 钱包查看详情（{node_name}，通知 #{notification.id}）。\n"  # noqa: RUF001
        f"{en}. Open your MedLedger wallet for the details ({node_name}, notice #{notification.id}).\n"
    )
    return Message(f"MedLedger: {en} / {zh}", text)
