"""Channels: one module per way an SMS comes in and goes out (see ``base``)."""

from __future__ import annotations

import importlib

from ..config import Settings, channel_list

# Each module registers its sender with ``base.register`` and, for webhook
# channels, exposes a Flask ``blueprint``. Adding a channel = adding a module
# here (see README, "Adding a channel").
CHANNEL_MODULES = ("console", "twilio", "kannel", "modem")


def load_all() -> None:
    """Import every channel module so their registrations run."""
    for name in CHANNEL_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def reply_channel(inbound_channel: str, settings: Settings) -> str:
    """Channel that answers a message received on ``inbound_channel``.

    Replies leave the way the message came in, or through the console when the
    operator listed that channel in CONSOLE_CHANNELS (local runs, demos). Never a
    silent fallback: a channel without its sending settings is a start-up error
    (``preflight``), and a send on it fails visibly.
    """
    listed = channel_list(settings.CONSOLE_CHANNELS)
    return "console" if inbound_channel in listed or "*" in listed else inbound_channel
