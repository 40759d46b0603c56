"""Channels: one module per way an SMS comes in and goes out (see ``base``)."""

from __future__ import annotations

import importlib

# Each module registers its sender with ``base.register`` and, for webhook
# channels, exposes a Flask ``blueprint``. Adding a channel = adding a module
# here (see README, "Adding a channel").
CHANNEL_MODULES = ("console", "twilio", "kannel", "modem")


def load_all() -> None:
    """Import every channel module so their registrations run."""
    for name in CHANNEL_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def reply_channel(inbound_channel: str, settings: object) -> str:
    """Channel that answers a message received on ``inbound_channel``.

    Replies leave the way the message came in. A channel whose sending side is
    not configured (Twilio without credentials on a developer machine) answers
    through the console instead, so a local run still shows every reply.
    """
    from .base import NotConfigured, SendError, get_channel

    try:
        get_channel(inbound_channel, settings)  # type: ignore[arg-type]
    except (NotConfigured, SendError):
        return "console"
    return inbound_channel
