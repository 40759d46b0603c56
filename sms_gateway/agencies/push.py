"""Webhook push to agencies and coordinators: signed JSON POSTs, retried, logged, replayable.

A delivery is a row (``WebhookDelivery``) added in the same transaction as the
change it reports and enqueued once that transaction commits; the job POSTs it
and records the outcome on the row, which is the delivery log. The receiver
checks two headers::

    X-Lapor-Timestamp: 1700000000
    X-Lapor-Signature: sha256=<hex HMAC-SHA256(key, timestamp + "." + body)>

with its own key, printed by ``sms-gateway agency webhook secret CODE``. Keys
are derived from ``AGENCY_WEBHOOK_SECRET`` per agency, so no agency can sign
as another and no key is ever written in prefixes.yaml. Delivery is at least
once: a retry or a replay carries the same ``X-Lapor-Delivery`` id, by which a
receiver drops duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, SessionTransaction

from .. import queue
from ..config import Settings, get_settings
from ..db import session_factory
from ..models import WebhookDelivery, utcnow
from ..registry import Registry, registry_for

log = logging.getLogger(__name__)

AGENCY, COORDINATOR = "agency", "coordinator"
PENDING, DELIVERING, DELIVERED, FAILED = "pending", "delivering", "delivered", "failed"
CANCELLED = "cancelled"  # withdrawn before it was sent (a disposition undone on the desk)

SIGNATURE_HEADER = "X-Lapor-Signature"
TIMESTAMP_HEADER = "X-Lapor-Timestamp"
DELIVERY_HEADER = "X-Lapor-Delivery"
EVENT_HEADER = "X-Lapor-Event"

# Statuses worth another attempt: the receiver is down, overloaded or slow.
# Any other 4xx means the request itself is refused (wrong key, URL gone):
# retrying cannot help, so the delivery fails at once, visible and replayable.
RETRYABLE_STATUS = {408, 425, 429}


class WebhookError(Exception):
    """A delivery that failed temporarily; raised so RQ retries it with backoff."""


def signing_key(settings: Settings, code: str) -> str | None:
    """The HMAC key of ``code``'s webhook (hex), derived from AGENCY_WEBHOOK_SECRET; None if unset."""
    master = settings.AGENCY_WEBHOOK_SECRET
    if not master:
        return None
    return hmac.new(str(master).encode(), f"webhook:{code}".encode(), hashlib.sha256).hexdigest()


def sign(key: str, timestamp: str, body: bytes) -> str:
    """``X-Lapor-Signature`` of ``body`` sent at ``timestamp``."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_url(registry: Registry, recipient: str, kind: str) -> str | None:
    """The URL configured for an agency or coordinator in prefixes.yaml, if any."""
    if kind == AGENCY:
        agency = registry.agencies.get(recipient)
        url = agency.extra.get("webhook_url") if agency else None
        return str(url) if url else None
    coordinator = registry.coordinators.get(recipient)
    return coordinator.webhook_url if coordinator else None


def envelope(row: WebhookDelivery) -> dict[str, Any]:
    """The JSON body of a delivery."""
    return {"delivery_id": row.id, "event": row.event, "created_at": row.created_at.isoformat(),
            "data": row.payload}


# --------------------------------------------------------------------------- creating deliveries

def queue_delivery(
    session: Session,
    settings: Settings,
    registry: Registry,
    *,
    key: str,
    recipient: str,
    kind: str,
    event_name: str,
    payload: dict[str, Any] | Callable[[], dict[str, Any]],
    report_id: int | None = None,
) -> WebhookDelivery | None:
    """Add a delivery when the recipient has a webhook (None otherwise); enqueued after commit.

    A callable ``payload`` is called only then: most agencies have no webhook,
    and the inbound job should not build a report's JSON for nobody.
    Idempotent by ``key``: a re-run returns the existing row.
    """
    if not webhook_url(registry, recipient, kind):
        return None
    existing = session.scalar(select(WebhookDelivery).where(WebhookDelivery.idempotency_key == key))
    if existing is not None:
        return existing
    row = WebhookDelivery(idempotency_key=key, recipient=recipient, recipient_kind=kind, event=event_name,
                          report_id=report_id, payload=payload() if callable(payload) else payload,
                          state=PENDING, attempts=0)
    session.add(row)
    session.flush()
    _enqueue_after_commit(session, settings, row.id)
    return row


_PENDING = "agency_webhooks_to_enqueue"
_LISTENING = "agency_webhooks_listening"


def _enqueue_after_commit(session: Session, settings: Settings, delivery_id: int) -> None:
    # Commit before enqueue, wherever the delivery was added (an API call, the
    # inbound job, the escalation job): the job must find its row.
    session.info.setdefault(_PENDING, []).append((settings, delivery_id))
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    for settings, delivery_id in session.info.pop(_PENDING, []):
        enqueue_delivery(settings, delivery_id)


def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)


def hold(session: Session, delivery_id: int) -> bool:
    """Keep a delivery added in this transaction from being enqueued at commit; True if it was waiting.

    The desk's undo window: the caller enqueues it later with ``enqueue_delivery(…, at=…)``.
    """
    waiting = session.info.get(_PENDING, [])
    kept = [(s, i) for s, i in waiting if i != delivery_id]
    session.info[_PENDING] = kept
    return len(kept) != len(waiting)


def enqueue_delivery(settings: Settings, delivery_id: int, at: datetime | None = None) -> bool:
    """Enqueue ``deliver_webhook`` (at ``at``, or now); False (logged) when Redis is down: the sweeper retries."""
    try:
        queue.enqueue(settings, queue.DEFAULT, queue.JOBS + "deliver_webhook", delivery_id,
                      job_id=f"webhook-{delivery_id}-{secrets.token_hex(4)}", at=at)
    except Exception:
        log.exception("could not enqueue webhook delivery #%s; the sweeper will retry", delivery_id)
        return False
    return True


# --------------------------------------------------------------------------- jobs

def deliver_webhook(delivery_id: int) -> str:
    """POST delivery ``delivery_id`` once per claim; raise on temporary failure so RQ retries."""
    settings = get_settings()
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        claimed = session.execute(  # type: ignore[attr-defined]
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == PENDING)
            .values(state=DELIVERING, attempts=WebhookDelivery.attempts + 1, updated_at=utcnow())
        ).rowcount
        session.commit()
        if not claimed:
            return "not pending"  # delivered, failed, or another run has it
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        registry = registry_for(settings)
        url = webhook_url(registry, row.recipient, row.recipient_kind)
        key = signing_key(settings, row.recipient)
        if not url or not key:
            why = (f"no webhook_url for {row.recipient_kind} {row.recipient} in prefixes.yaml" if not url
                   else "AGENCY_WEBHOOK_SECRET is not set: refusing to send an unsigned webhook")
            return _finish(session, row, FAILED, None, why)
        body = json.dumps(envelope(row), ensure_ascii=False, sort_keys=True).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "lapor-1708-sms-gateway",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(key, timestamp, body),
            DELIVERY_HEADER: str(row.id),
            EVENT_HEADER: row.event,
        }
        row.url = url
        try:
            response = requests.post(url, data=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT,
                                     allow_redirects=False)
        except requests.RequestException as exc:
            return _retry_or_fail(session, settings, row, None, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            row.delivered_at = utcnow()
            return _finish(session, row, DELIVERED, response.status_code, None)
        reason = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            return _retry_or_fail(session, settings, row, response.status_code, reason)
        return _finish(session, row, FAILED, response.status_code, reason)


def _finish(session: Session, row: WebhookDelivery, state: str, status: int | None, error: str | None) -> str:
    row.state, row.response_status, row.error = state, status, error
    session.commit()
    if state == FAILED:
        log.warning("webhook #%s (%s to %s) failed after %s attempt(s): %s", row.id, row.event, row.recipient,
                    row.attempts, error)
    else:
        log.info("webhook #%s (%s) delivered to %s", row.id, row.event, row.recipient)
    return state


def _retry_or_fail(session: Session, settings: Settings, row: WebhookDelivery, status: int | None,
                   reason: str) -> str:
    if row.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        return _finish(session, row, FAILED, status, reason)
    row.state, row.response_status, row.error = PENDING, status, reason
    session.commit()
    log.warning("webhook #%s to %s failed (attempt %s, will retry): %s", row.id, row.recipient, row.attempts,
                reason)
    raise WebhookError(reason)


def replay(settings: Settings, delivery_id: int) -> str:
    """Send a delivered or failed delivery again; returns "replayed" or why not."""
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:
            return "not found"
        if row.state not in (DELIVERED, FAILED):
            return f"still {row.state}"
        row.state, row.attempts, row.error, row.response_status = PENDING, 0, None, None
        session.commit()
        if not enqueue_delivery(settings, delivery_id):
            return "queued for the sweeper (Redis unreachable)"
        return "replayed"


def sweep_deliveries() -> dict[str, int]:
    """Re-enqueue deliveries whose job was lost; put back those a dead worker left mid-POST."""
    settings = get_settings()
    sessions = session_factory(settings.DATABASE_URL)
    now = utcnow()
    grace = timedelta(seconds=settings.SWEEP_GRACE)
    retry_wait = timedelta(seconds=max(settings.retry_intervals or [0]))
    with sessions() as session:
        stuck = session.execute(  # type: ignore[attr-defined]
            update(WebhookDelivery)
            .where(WebhookDelivery.state == DELIVERING,
                   WebhookDelivery.updated_at < now - grace - timedelta(seconds=settings.WEBHOOK_TIMEOUT))
            .values(state=PENDING, updated_at=now - grace - retry_wait - timedelta(seconds=1))
        ).rowcount
        stale = list(session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.state == PENDING,
                                          WebhookDelivery.updated_at < now - grace - retry_wait).limit(1000)))
        for row in stale:
            row.updated_at = now  # not picked again by the next sweep
        session.commit()
        for row in stale:
            enqueue_delivery(settings, row.id)
    counts = {"requeued": len(stale), "interrupted": stuck}
    if len(stale) or stuck:
        log.warning("webhook sweep: %(requeued)s re-enqueued, %(interrupted)s interrupted", counts)
    return counts
