"""Console channel: prints each outgoing SMS. The default when no provider is configured."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from .. import gsm
from ..config import Settings
from ..phone import mask
from .base import OutgoingSMS, SendResult, register


@dataclass
class ConsoleChannel:
    """Writes SMS to a stream instead of a provider (local runs, demos)."""

    name: str = "console"
    queue: str = "outbound"
    stream: TextIO | None = None

    def send(self, sms: OutgoingSMS) -> SendResult:
        """Print the SMS; it counts as delivered."""
        length = gsm.measure(sms.text)
        out = self.stream or sys.stdout
        # Masked like the logs: the console of a shared machine is read by others too.
        print(f"[SMS to {mask(sms.recipient)} · {length.segments} SMS {length.encoding}] {sms.text}",
              file=out, flush=True)
        return SendResult(provider_id=f"console-{sms.outbound_id}", status="delivered",
                          segments=length.segments)


@register("console")
def build(settings: Settings) -> ConsoleChannel:
    """Factory for the registry."""
    return ConsoleChannel()
