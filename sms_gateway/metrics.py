"""Prometheus metrics, read from the database and Redis at scrape time.

Counting rows at scrape time (instead of counters in each process) gives the
same numbers whichever gunicorn worker answers, and survives restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import outbox, queue, spool
from .config import Settings
from .db import session_factory
from .models import InboundMessage, InboundState, OutboundMessage, OutboundState, Report, WebhookDelivery, utcnow
from .outage import DATABASE_DOWN
from .pipeline import throttled_senders
from .ratelimit import PARK_PREFIX

log = logging.getLogger(__name__)


# Surge rate: inbound messages per minute over this many minutes (the operations page draws them).
SURGE_MINUTES = 60
SEND_WINDOW = timedelta(hours=1)  # the window of each channel's error rate
FINAL_SEND_STATES = (OutboundState.SENT, OutboundState.DELIVERED, OutboundState.UNDELIVERED, OutboundState.FAILED)
FAILED_SEND_STATES = (OutboundState.UNDELIVERED, OutboundState.FAILED)


@dataclass
class Snapshot:
    """Every figure of ``/metrics`` at one moment; the operations page shows the same object."""

    at: datetime
    database_up: bool = False
    inbound: list[tuple[str, str, int]] = field(default_factory=list)  # channel, state, count
    outbound: list[tuple[str, str, int]] = field(default_factory=list)
    reports: list[tuple[str, str, int]] = field(default_factory=list)  # agency (central), status, count
    # channel, lane, count, segments, oldest created_at of the queued SMS
    lanes: list[tuple[str, int, int, int, datetime | None]] = field(default_factory=list)
    flooding: int = 0
    spool: int = 0
    inbound_waiting: int = 0  # stored, not yet processed (the workers' inbound loops claim them)
    inbound_oldest: float | None = None  # seconds the oldest of them has waited
    last_processed: float | None = None  # seconds since a message (received in the last day) was processed
    per_minute: list[int] = field(default_factory=list)  # inbound per minute, SURGE_MINUTES, oldest first
    sends: dict[str, tuple[int, int]] = field(default_factory=dict)  # channel -> (finished, failed) in SEND_WINDOW
    webhooks: dict[str, int] = field(default_factory=dict)  # delivery state -> count
    queues: dict[str, tuple[int, float | None]] | None = None  # RQ queue -> (jobs, oldest age); None: Redis down
    workers: list[dict[str, Any]] | None = None  # RQ workers (their heartbeats); None: Redis down
    senders: list[dict[str, Any]] | None = None  # `sms-gateway sender` heartbeats
    modems: list[dict[str, Any]] | None = None  # what `sms-gateway modem --status` reads
    parked: dict[str, float] = field(default_factory=dict)  # channel -> seconds parked after a 429

    @property
    def inbound_last_hour(self) -> int:
        """Messages received in the last SURGE_MINUTES minutes."""
        return sum(self.per_minute)

    @property
    def inbound_last_minute(self) -> int:
        """Messages received in the last minute: the current surge rate."""
        return self.per_minute[-1] if self.per_minute else 0

    def error_rate(self, channel: str) -> float | None:
        """Failed share of ``channel``'s sends finished in SEND_WINDOW (None: none finished)."""
        finished, failed = self.sends.get(channel, (0, 0))
        return failed / finished if finished else None


def snapshot(settings: Settings, now: datetime | None = None) -> Snapshot:
    """Read every figure from the database and Redis (what a scrape and the operations page show)."""
    now = now or utcnow()
    snap = Snapshot(at=now)
    try:
        with session_factory(settings.DATABASE_URL)() as session:
            _database_figures(session, settings, snap)
        snap.database_up = True
    except DATABASE_DOWN:  # the spool depth below is what matters then
        log.debug("database counts unavailable", exc_info=True)
    snap.spool = spool.depth(settings)
    try:
        _redis_figures(settings, snap)
    except Exception:  # Redis down: no queue figures, /healthz says why
        log.debug("queue figures unavailable", exc_info=True)
    return snap


def _database_figures(session: Session, settings: Settings, snap: Snapshot) -> None:
    now = snap.at
    snap.inbound = [(c, s, n) for c, s, n in session.execute(
        select(InboundMessage.channel, InboundMessage.state, func.count())
        .group_by(InboundMessage.channel, InboundMessage.state))]
    snap.outbound = [(c, s, n) for c, s, n in session.execute(
        select(OutboundMessage.channel, OutboundMessage.state, func.count())
        .group_by(OutboundMessage.channel, OutboundMessage.state))]
    snap.reports = [(a or "central", s, n) for a, s, n in session.execute(
        select(Report.agency, Report.status, func.count()).group_by(Report.agency, Report.status))]
    snap.lanes = [(c, lane, n, int(seg or 0), first) for c, lane, n, seg, first in session.execute(
        select(OutboundMessage.channel, OutboundMessage.lane, func.count(),
               func.coalesce(func.sum(OutboundMessage.segments), 0), func.min(OutboundMessage.created_at))
        .where(OutboundMessage.state == OutboundState.QUEUED)
        .group_by(OutboundMessage.channel, OutboundMessage.lane))]
    snap.flooding = len(throttled_senders(session, settings))
    waiting, oldest = session.execute(
        select(func.count(), func.min(InboundMessage.received_at))
        .where(InboundMessage.state == InboundState.RECEIVED)).one()
    snap.inbound_waiting = int(waiting or 0)
    snap.inbound_oldest = _age(now, oldest)
    # Among the last day's messages: processed_at has no index, received_at has.
    snap.last_processed = _age(now, session.scalar(select(func.max(InboundMessage.processed_at))
                                                   .where(InboundMessage.received_at > now - timedelta(days=1))))
    # Per minute in Python over one indexed column: portable across SQLite and PostgreSQL,
    # and an hour of even a 2021-size surge is tens of thousands of timestamps.
    start = now - timedelta(minutes=SURGE_MINUTES)
    minutes = [0] * SURGE_MINUTES
    for (received,) in session.execute(select(InboundMessage.received_at)
                                       .where(InboundMessage.received_at > start, InboundMessage.received_at <= now)):
        index = SURGE_MINUTES - 1 - int((now - received).total_seconds() // 60)
        minutes[max(0, index)] += 1
    snap.per_minute = minutes
    finished = OutboundMessage.state.in_([str(s) for s in FINAL_SEND_STATES])
    failed = OutboundMessage.state.in_([str(s) for s in FAILED_SEND_STATES])
    for channel, total, bad in session.execute(
            select(OutboundMessage.channel, func.count(), func.count().filter(failed))
            .where(finished, OutboundMessage.updated_at >= now - SEND_WINDOW)
            .group_by(OutboundMessage.channel)):
        snap.sends[channel] = (int(total), int(bad))
    snap.webhooks = {state: int(n) for state, n in session.execute(
        select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state))}


def _redis_figures(settings: Settings, snap: Snapshot) -> None:
    from rq import Worker
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    from .channels import modem
    from .sender import HEARTBEAT_PREFIX

    redis = queue.get_redis(settings)
    queues: dict[str, tuple[int, float | None]] = {}
    for name in queue.QUEUES:
        q = queue.get_queue(settings, name)
        first = q.get_job_ids(0, 0)
        try:
            job = Job.fetch(first[0], connection=redis) if first else None
        except NoSuchJobError:  # taken (or expired) between the two reads
            job = None
        queues[name] = (q.count, _age(snap.at, job.enqueued_at) if job is not None else None)
    snap.queues = queues
    snap.workers = [{"name": w.name, "hostname": w.hostname, "pid": w.pid, "state": w.get_state(),
                     "queues": ", ".join(w.queue_names()),
                     "heartbeat_age": _age(snap.at, w.last_heartbeat)}
                    for w in Worker.all(connection=redis)]
    senders = []
    for key in sorted(redis.scan_iter(match=HEARTBEAT_PREFIX + "*")):
        raw = redis.get(key)
        host_pid = _text(key)[len(HEARTBEAT_PREFIX):]
        senders.append({"process": host_pid, "channels": _text(raw or b""),
                        "expires_in": max(0, int(redis.ttl(key)))})
    snap.senders = senders
    snap.modems = modem.read_status(settings)
    for key in redis.scan_iter(match=PARK_PREFIX + "*"):
        snap.parked[_text(key)[len(PARK_PREFIX):]] = max(0, int(redis.pttl(key))) / 1000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _age(now: datetime, then: datetime | None) -> float | None:
    if then is None:
        return None
    if then.tzinfo is None:  # RQ keeps naive UTC
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


class GatewayCollector(Collector):
    """Messages by state and channel, reports by status, queue lengths: ``snapshot`` as Prometheus gauges."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the current values."""
        yield from gauges(self.settings, snapshot(self.settings))


def gauges(settings: Settings, snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    """The Prometheus families of ``snap``."""
    inbound = GaugeMetricFamily("sms_gateway_inbound_messages", "Inbound SMS by channel and state",
                                labels=["channel", "state"])
    outbound = GaugeMetricFamily("sms_gateway_outbound_messages", "Outbound SMS by channel and state",
                                 labels=["channel", "state"])
    reports = GaugeMetricFamily("sms_gateway_reports", "Reports by agency and status",
                                labels=["agency", "status"])
    for channel, state, n in snap.inbound:
        inbound.add_metric([channel, state], n)
    for channel, state, n in snap.outbound:
        outbound.add_metric([channel, state], n)
    for agency, status, n in snap.reports:
        reports.add_metric([agency, status], n)
    yield GaugeMetricFamily("sms_gateway_database_up", "1 when the database answered this scrape",
                            value=int(snap.database_up))
    yield inbound
    yield outbound
    yield reports
    yield from _outbox(settings, snap)
    yield GaugeMetricFamily(
        "sms_gateway_throttled_senders", "Numbers under flood control in the current FLOOD_WINDOW (over "
        "FLOOD_MAX_MESSAGES, or not answerable); `sms-gateway messages throttled` lists them", value=snap.flooding)
    yield GaugeMetricFamily("sms_gateway_spool_messages", "Inbound SMS in this host's local spool (kept "
                            "while the database was unreachable), waiting to be stored", value=snap.spool)
    waiting = GaugeMetricFamily(
        "sms_gateway_queue_jobs", "Jobs waiting in each RQ queue: retries of failing messages (inbound), "
        "webhooks and housekeeping (default). Stored messages wait in the database: "
        "sms_gateway_inbound_messages{state=\"received\"} counts them", labels=["queue"])
    oldest_job = GaugeMetricFamily("sms_gateway_queue_oldest_seconds", "Age of the oldest job waiting in each "
                                   "RQ queue (0 when empty)", labels=["queue"])
    for name, (jobs, age) in (snap.queues or {}).items():
        waiting.add_metric([name], jobs)
        oldest_job.add_metric([name], age or 0)
    yield waiting
    yield oldest_job
    if snap.database_up:
        yield GaugeMetricFamily("sms_gateway_inbound_waiting", "Inbound SMS stored and waiting for a worker's "
                                "inbound loop", value=snap.inbound_waiting)
        yield GaugeMetricFamily("sms_gateway_inbound_oldest_seconds", "Age of the oldest inbound SMS waiting "
                                "(0 when none waits)", value=snap.inbound_oldest or 0)
        if snap.last_processed is not None:
            yield GaugeMetricFamily("sms_gateway_inbound_last_processed_seconds", "Seconds since a worker last "
                                    "processed an inbound SMS (of those received in the last day)",
                                    value=snap.last_processed)
        yield GaugeMetricFamily("sms_gateway_inbound_last_minute", "Inbound SMS received in the last minute "
                                "(the surge rate)", value=snap.inbound_last_minute)
        yield GaugeMetricFamily("sms_gateway_inbound_last_hour", "Inbound SMS received in the last 60 minutes",
                                value=snap.inbound_last_hour)
        sends = GaugeMetricFamily("sms_gateway_sends_last_hour", "Sends finished in the last hour (sent, "
                                  "delivered, undelivered, failed), by channel", labels=["channel"])
        failed = GaugeMetricFamily("sms_gateway_sends_failed_last_hour", "Sends that failed or were not "
                                   "delivered in the last hour, by channel", labels=["channel"])
        for channel, (total, bad) in snap.sends.items():
            sends.add_metric([channel], total)
            failed.add_metric([channel], bad)
        yield sends
        yield failed
        hooks = GaugeMetricFamily("sms_gateway_webhook_deliveries", "Webhook deliveries to agencies and "
                                  "coordinators by state", labels=["state"])
        for state, n in snap.webhooks.items():
            hooks.add_metric([state], n)
        yield hooks
    if snap.workers is not None:
        yield GaugeMetricFamily("sms_gateway_workers", "RQ workers registered in Redis (each runs an inbound "
                                "loop)", value=len(snap.workers))
        yield GaugeMetricFamily("sms_gateway_senders", "`sms-gateway sender` processes with a live heartbeat",
                                value=len(snap.senders or []))


def _outbox(settings: Settings, snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    """Backpressure: what waits in the outbox per channel and lane, and how long it takes to send."""
    queued = GaugeMetricFamily("sms_gateway_outbox_queued_segments", "SMS segments waiting to be sent, "
                               "by channel and lane (reply, notification, bulk)", labels=["channel", "lane"])
    oldest = GaugeMetricFamily("sms_gateway_outbox_oldest_seconds", "Age of the oldest SMS waiting, by "
                               "channel and lane", labels=["channel", "lane"])
    backlog = GaugeMetricFamily("sms_gateway_outbox_backlog_seconds", "Seconds the queued segments take "
                                "at the channel's rate (TWILIO_MPS, KANNEL_MPS, MODEM_MPM)", labels=["channel"])
    overloaded = GaugeMetricFamily("sms_gateway_outbox_overloaded", "1 when a channel's backlog is longer "
                                   "than SEND_BACKLOG_LIMIT", labels=["channel"])
    for channel, lane, _count, segments, first in snap.lanes:
        name = outbox.LANES.get(lane, str(lane))
        queued.add_metric([channel, name], segments)
        oldest.add_metric([channel, name], _age(snap.at, first) or 0)
    for channel, seconds in backlog_seconds(settings, snap).items():
        backlog.add_metric([channel], seconds)
        overloaded.add_metric([channel], float(seconds > settings.SEND_BACKLOG_LIMIT))
    yield from (queued, oldest, backlog, overloaded)
    parked = GaugeMetricFamily("sms_gateway_channel_parked_seconds", "Seconds a channel stays parked after "
                               "the provider throttled us (429)", labels=["channel"])
    for channel, seconds in snap.parked.items():
        parked.add_metric([channel], seconds)
    yield parked


def backlog_seconds(settings: Settings, snap: Snapshot) -> dict[str, float]:
    """Per channel: seconds its queued segments take at the channel's rate."""
    segments_by_channel: dict[str, int] = {}
    for channel, _lane, _count, segments, _first in snap.lanes:
        segments_by_channel[channel] = segments_by_channel.get(channel, 0) + int(segments)
    out = {}
    for channel, segments in segments_by_channel.items():
        rate = channel_rate(settings, channel)
        out[channel] = segments / rate if rate else 0.0
    return out


def channel_rate(settings: Settings, channel: str) -> float | None:
    """Segments per second of ``channel`` (None: unlimited or unknown)."""
    from .channels.base import NotConfigured, SendError, get_channel

    try:
        return get_channel(channel, settings).rate
    except (NotConfigured, SendError):
        return None
