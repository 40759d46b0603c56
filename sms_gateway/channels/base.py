"""The contract every channel implements, the errors it raises, and the registry.

A channel is one way SMS reach us and leave us: Twilio, Kannel, a GSM modem,
the console. Inbound, a channel turns a provider's request into an
``IncomingSMS`` and hands it to ``sms_gateway.ingest.accept`` (store, commit,
enqueue); its delivery reports go to ``sms_gateway.outbox.record_delivery``.
Outbound, a sender (``sms_gateway.sender``) calls ``Channel.send``, from
several threads at once; the channel either returns the provider's id or
raises ``SendError`` saying whether trying again later could help (connection
failed, throttled, provider 5xx) or not (number invalid, configuration wrong).
When a sender died during ``send``, ``Channel.reconcile`` asks the provider
whether the SMS arrived before anything is decided.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..config import Settings


@dataclass(frozen=True)
class IncomingSMS:
    """An SMS as a channel received it, before it is stored."""

    channel: str
    external_id: str  # provider's message id: the key that deduplicates retries
    sender: str
    text: str
    recipient: str = ""
    provider_time: datetime | None = None
    incomplete: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here, in the channel's own request, not later in a shared ingest batch.
        if self.provider_time is not None and self.provider_time.tzinfo is None:
            raise ValueError("provider_time must be an aware datetime (UTC)")


@dataclass(frozen=True)
class OutgoingSMS:
    """An SMS for a channel to send; ``outbound_id`` is our row id."""

    outbound_id: int
    recipient: str
    text: str


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message."""

    provider_id: str | None
    status: str = "sent"  # our state after the call: sent (or delivered for the console)
    segments: int | None = None


class SendError(Exception):
    """A send that did not go through. ``retryable`` says whether a later attempt can succeed;
    ``throttled`` that the provider asks the whole channel to slow down (HTTP 429)."""

    def __init__(self, reason: str, *, retryable: bool, code: str | None = None, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable or throttled
        self.code = code
        self.throttled = throttled


SENT, NOT_SENT, UNKNOWN, WAIT = "sent", "not-sent", "unknown", "wait"


@dataclass(frozen=True)
class Reconciled:
    """What the provider says about a send that was cut short.

    ``sent``: it has the SMS (``provider_id`` when it says which); ``not-sent``:
    it certainly does not, so sending again is safe; ``unknown``: it cannot
    tell, so the SMS is not sent again (never twice) and the row says why;
    ``wait``: ask again later (a report that may still come).
    """

    outcome: str
    detail: str
    provider_id: str | None = None


class NotConfigured(Exception):
    """A channel's factory was asked for a sender whose settings are missing."""


class Channel(Protocol):
    """Sends SMS through one provider."""

    name: str
    rate: float | None  # segments per second all senders together may send (None: unlimited)
    concurrency: int | None  # calls a sender keeps in flight (None: SEND_CONCURRENCY)

    def send(self, sms: OutgoingSMS) -> SendResult:
        """Hand ``sms`` to the provider; raise ``SendError`` if it was not accepted. Thread-safe."""
        ...

    def reconcile(self, sms: OutgoingSMS, attempt_started: datetime) -> Reconciled:
        """Whether the provider got ``sms`` from an attempt started at ``attempt_started`` and cut short."""
        ...


ChannelFactory = Callable[[Settings], Channel]
_FACTORIES: dict[str, ChannelFactory] = {}


def register(name: str) -> Callable[[ChannelFactory], ChannelFactory]:
    """Decorator registering a channel factory under ``name``."""

    def wrap(factory: ChannelFactory) -> ChannelFactory:
        _FACTORIES[name] = factory
        return factory

    return wrap


def registered() -> list[str]:
    """Names of the registered channels."""
    return sorted(_FACTORIES)


def get_channel(name: str, settings: Settings) -> Channel:
    """The sending side of channel ``name``, configured from ``settings``.

    Built once per settings object: a provider client (HTTP session, pool) is
    reused by every send instead of being set up per message.
    """
    from . import load_all

    built = _INSTANCES.setdefault(settings, {})
    channel = built.get(name)
    if channel is None:
        load_all()
        try:
            factory = _FACTORIES[name]
        except KeyError:
            raise SendError(f"no channel named {name!r}", retryable=False, code="no-channel") from None
        try:
            channel = built[name] = factory(settings)
        except NotConfigured as exc:
            raise SendError(f"channel {name} is not configured: {exc}", retryable=False,
                            code="not-configured") from None
    return channel


_INSTANCES: weakref.WeakKeyDictionary[Settings, dict[str, Channel]] = weakref.WeakKeyDictionary()
