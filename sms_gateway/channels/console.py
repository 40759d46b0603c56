"""Console channel: prints each outgoing SMS. The default when no provider is configured."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from .. import gsm
from ..config import Settings
from ..phone import mask
from .base import NOT_SENT, OutgoingSMS, Reconciled, SendResult, register


@dataclass
class ConsoleChannel:
    """Writes SMS to a stream instead of a provider (local runs, demos)."""

    name: str = "console"
    rate: float | None = None
    concurrency: int | None = None
    stream: TextIO | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, sms: OutgoingSMS) -> SendResult:
        """Print the SMS; it counts as delivered."""
        length = gsm.measure(sms.text)
        out = self.stream or sys.stdout
        # Masked like the logs: the console of a shared machine is read by others too.
        with self._lock:  # one line per SMS, whichever sender thread prints
            print(f"[SMS to {mask(sms.recipient)} · {length.segments} SMS {length.encoding}] {sms.text}",
                  file=out, flush=True)
        return SendResult(provider_id=f"console-{sms.outbound_id}", status="delivered",
                          segments=length.segments)

    def reconcile(self, sms: OutgoingSMS, attempt_started: datetime) -> Reconciled:
        """A line on a terminal: printing it again is harmless."""
        return Reconciled(NOT_SENT, "console: printed again")


@register("console")
def build(settings: Settings) -> ConsoleChannel:
    """Factory for the registry."""
    return ConsoleChannel()
