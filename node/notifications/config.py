"""The channels a node's ``[notifications]`` settings switch on; secrets come from the environment."""

from __future__ import annotations

import os

from medledger.errors import ConfigError
from node.config import NotificationSettings
from node.notifications.channels import Channel, HttpGatewayChannel, SmtpChannel


def notification_channels(settings: NotificationSettings) -> dict[str, Channel]:
    """``email`` when ``smtp_url`` is set, and each of ``gateway_channels`` when ``gateway_url`` is set."""
    if not isinstance(settings.max_attempts, int) or settings.max_attempts < 1:
        raise ConfigError("notifications.max_attempts must be at least 1")
    if not isinstance(settings.retry_base_s, int | float) or not 0 < settings.retry_base_s <= 3600:
        raise ConfigError("notifications.retry_base_s must be in (0, 3600] seconds")
    channels: dict[str, Channel] = {}
    if settings.smtp_url:
        password = os.environ.get(settings.smtp_password_env) or None
        channels["email"] = SmtpChannel(settings.smtp_url, settings.smtp_from, password=password)
    if settings.gateway_url:
        token = os.environ.get(settings.gateway_token_env) or None
        for name in settings.gateway_channels:
            channels[name] = HttpGatewayChannel(name, settings.gateway_url, token=token)
    return channels
