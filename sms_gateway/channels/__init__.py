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
    from .base import _FACTORIES, NotConfigured

    load_all()
    factory = _FACTORIES.get(inbound_channel)
    if factory is None:
        return "console"
    try:
        factory(settings)  # type: ignore[arg-type]
    except NotConfigured:
        return "console"
    return inbound_channel
