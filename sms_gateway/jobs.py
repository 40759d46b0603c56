"""The RQ entry points: thin functions that take ids and call the code that does the work.

RQ imports these by path (``queue.JOBS``); they read the process's settings
and may run twice, because what they call is keyed in the database:

- ``process_inbound(id)``: the inbound pipeline (``pipeline.process``) for
  one message whose processing failed, retried with RQ's backoff (stored
  messages are otherwise claimed by the workers' inbound loops);
  ``process_inbound_batch(ids)``: the same for a batch (jobs of earlier versions);
- ``deliver_webhook(id)``: one POST to an agency's webhook (``agencies.push``);
- ``sweep()``: retry failing messages whose retry job was lost (periodic);
- the other periodic jobs: ``sweep_deliveries``, ``run_escalations``,
  ``close_unanswered``.

SMS are not sent by jobs: ``sms-gateway sender`` sends them from the outbox.
Failures are never swallowed: a job that cannot do its work raises, RQ retries
it with backoff and keeps it in the failed registry, and the row's state tells
the operator what happened.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from . import outbox, pipeline, queue, readiness
from .agencies import citizen, escalation, push
from .config import get_settings
from .db import session_factory
from .models import InboundMessage, InboundState, utcnow

log = logging.getLogger(__name__)


def process_inbound(inbound_id: int) -> str:
    """Parse stored SMS ``inbound_id``, create its report or answer, and queue the reply."""
    outcomes = pipeline.process(get_settings(), [inbound_id])
    return next(iter(outcomes), "nothing")


def process_inbound_batch(inbound_ids: list[int]) -> dict[str, int]:
    """The pipeline for the messages one ingest batch stored together, in one transaction."""
    return pipeline.process(get_settings(), inbound_ids)


def deliver_webhook(delivery_id: int) -> str:
    """POST webhook delivery ``delivery_id`` (raises on a temporary failure so RQ retries)."""
    return push.deliver_webhook(delivery_id)


def send_outbound(outbound_id: int) -> str:
    """A send job queued by an earlier version: the sender sends from the outbox now; wake it."""
    settings = get_settings()
    from .models import OutboundMessage

    with session_factory(settings.DATABASE_URL)() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None:
            return "missing"
        outbox.dispatch(settings, [row])
        return "handed to the sender"


def sweep() -> dict[str, int]:
    """Re-enqueue the retry of messages whose processing failed and whose retry job was lost
    (Redis restarted empty), once ``SWEEP_GRACE`` plus the longest retry wait has passed; and
    ring the workers' doorbell for messages waiting longer than ``SWEEP_GRACE``.

    Nothing else can be lost: stored messages wait in the database for the
    workers' inbound loops, and senders read the outbox table itself and settle
    sends interrupted mid-call with the provider (``sender.ChannelSender.reconcile``).
    """
    settings = get_settings()
    now = utcnow()
    grace = timedelta(seconds=settings.SWEEP_GRACE)
    retry_wait = timedelta(seconds=max(settings.retry_intervals or [0]))
    with session_factory(settings.DATABASE_URL)() as session:
        failing = list(session.scalars(
            select(InboundMessage.id).where(InboundMessage.state == InboundState.RECEIVED,
                                            InboundMessage.error.is_not(None),
                                            InboundMessage.received_at < now - grace - retry_wait)
            .order_by(InboundMessage.id).limit(1000)))
        waiting = session.scalar(select(func.count()).where(InboundMessage.state == InboundState.RECEIVED,
                                                            InboundMessage.error.is_(None),
                                                            InboundMessage.received_at < now - grace)) or 0
    counts = {"retried": sum(queue.enqueue_retry(settings, inbound_id) for inbound_id in failing),
              "waiting": int(waiting)}
    if waiting:
        queue.enqueue_processing(settings, [])
    if any(counts.values()):
        log.warning("sweep: %(retried)s failing messages retried; %(waiting)s messages waiting longer than "
                    "SWEEP_GRACE (is a worker running? is it behind?)", counts)
    return counts


def sweep_deliveries() -> dict[str, int]:
    """Re-enqueue webhook deliveries whose job was lost (periodic)."""
    return push.sweep_deliveries()


def run_escalations() -> dict[str, int]:
    """The deadline watch (periodic)."""
    return escalation.run_escalations()


def close_unanswered() -> dict[str, int]:
    """Close followed-up reports nobody answered (periodic)."""
    return citizen.close_unanswered()


def check_readiness() -> dict[str, int]:
    """Readiness alerts to the people on duty (periodic)."""
    return readiness.check()


# Periodic jobs run by `sms-gateway scheduler` (RQ's CronScheduler): (function, seconds).
def periodic_jobs(settings: Any) -> list[tuple[Any, int]]:
    """Jobs the scheduler enqueues at intervals."""
    return [(sweep, settings.SWEEP_INTERVAL), (sweep_deliveries, settings.SWEEP_INTERVAL),
            (run_escalations, settings.ESCALATION_INTERVAL), (close_unanswered, settings.ESCALATION_INTERVAL),
            (check_readiness, settings.READINESS_INTERVAL)]


def run_backtest(backtest_id: int) -> str:
    """Backtest a proposed prefixes.yaml stored as ``rule_backtests`` row ``backtest_id`` (the rules page)."""
    from .rules import backtest

    return backtest.execute(get_settings(), backtest_id)
