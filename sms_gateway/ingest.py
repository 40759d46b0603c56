"""The one path every inbound SMS takes: store, commit, then enqueue its id.

The provider is acknowledged only after the commit. Enqueueing happens after
the commit so the worker never looks for a row that is not there yet; if Redis
is down at that moment the message is still stored and the sweeper enqueues it
later. A provider retry of the same message hits the unique
(channel, external_id) key and is answered as a duplicate: nothing new is
stored and nothing new is sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import phone
from .channels.base import IncomingSMS
from .config import Settings
from .db import session_factory
from .models import InboundMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """Result of ``accept``: the stored row and whether this call created it."""

    inbound_id: int
    created: bool
    enqueued: bool


def accept(settings: Settings, sms: IncomingSMS) -> Accepted:
    """Store ``sms`` exactly once and enqueue its processing. Raises if it could not be stored."""
    sender = phone.normalize(sms.sender, settings.DEFAULT_REGION)
    row = InboundMessage(
        channel=sms.channel,
        external_id=sms.external_id,
        sender=sender,
        recipient=sms.recipient,
        text=sms.text,
        provider_time=sms.provider_time,
        incomplete=sms.incomplete,
        meta=sms.meta or None,
    )
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            existing = session.scalar(
                select(InboundMessage.id).where(
                    InboundMessage.channel == sms.channel,
                    InboundMessage.external_id == sms.external_id,
                )
            )
            if existing is None:
                raise
            log.info("duplicate %s message %s from %s ignored (stored as #%s)",
                     sms.channel, sms.external_id, phone.mask(sender), existing)
            return Accepted(existing, created=False, enqueued=False)
        inbound_id = row.id
    log.info("stored %s message #%s from %s", sms.channel, inbound_id, phone.mask(sender))
    from .jobs import enqueue_processing

    return Accepted(inbound_id, created=True, enqueued=enqueue_processing(settings, inbound_id))
