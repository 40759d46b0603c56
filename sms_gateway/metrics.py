"""Prometheus metrics, read from the database and Redis at scrape time.

Counting rows at scrape time (instead of counters in each process) gives the
same numbers whichever gunicorn worker answers, and survives restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from . import outbox, queue, spool
from .config import Settings
from .db import session_factory
from .models import InboundMessage, OutboundMessage, OutboundState, Report, utcnow
from .outage import DATABASE_DOWN
from .pipeline import throttled_senders
from .ratelimit import PARK_PREFIX

log = logging.getLogger(__name__)


class GatewayCollector(Collector):
    """Messages by state and channel, reports by status, queue lengths."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the current values."""
        inbound = GaugeMetricFamily("sms_gateway_inbound_messages", "Inbound SMS by channel and state",
                                    labels=["channel", "state"])
        outbound = GaugeMetricFamily("sms_gateway_outbound_messages", "Outbound SMS by channel and state",
                                     labels=["channel", "state"])
        reports = GaugeMetricFamily("sms_gateway_reports", "Reports by agency and status",
                                    labels=["agency", "status"])
        database_up = GaugeMetricFamily("sms_gateway_database_up", "1 when the database answered this scrape")
        lanes: Sequence[Any] = []
        flooding: list[dict[str, Any]] = []
        try:
            with session_factory(self.settings.DATABASE_URL)() as session:
                for channel, state, n in session.execute(
                        select(InboundMessage.channel, InboundMessage.state, func.count())
                        .group_by(InboundMessage.channel, InboundMessage.state)):
                    inbound.add_metric([channel, state], n)
                for channel, state, n in session.execute(
                        select(OutboundMessage.channel, OutboundMessage.state, func.count())
                        .group_by(OutboundMessage.channel, OutboundMessage.state)):
                    outbound.add_metric([channel, state], n)
                for agency, status, n in session.execute(
                        select(Report.agency, Report.status, func.count()).group_by(Report.agency, Report.status)):
                    reports.add_metric([agency or "central", status], n)
                lanes = session.execute(
                    select(OutboundMessage.channel, OutboundMessage.lane, func.count(),
                           func.coalesce(func.sum(OutboundMessage.segments), 0), func.min(OutboundMessage.created_at))
                    .where(OutboundMessage.state == OutboundState.QUEUED)
                    .group_by(OutboundMessage.channel, OutboundMessage.lane)).all()
                flooding = throttled_senders(session, self.settings)
            database_up.add_metric([], 1)
        except DATABASE_DOWN:  # the spool depth below is what matters then
            log.debug("database counts unavailable", exc_info=True)
            database_up.add_metric([], 0)
        yield database_up
        yield inbound
        yield outbound
        yield reports
        yield from self._outbox(lanes)
        throttled = GaugeMetricFamily(
            "sms_gateway_throttled_senders", "Numbers under flood control in the current FLOOD_WINDOW (over "
            "FLOOD_MAX_MESSAGES, or not answerable); `sms-gateway messages throttled` lists them")
        throttled.add_metric([], len(flooding))
        yield throttled
        yield GaugeMetricFamily("sms_gateway_spool_messages", "Inbound SMS in this host's local spool (kept "
                                "while the database was unreachable), waiting to be stored",
                                value=spool.depth(self.settings))
        waiting = GaugeMetricFamily(
            "sms_gateway_queue_jobs", "Jobs waiting in each RQ queue: retries of failing messages (inbound), "
            "webhooks and housekeeping (default). Stored messages wait in the database: "
            "sms_gateway_inbound_messages{state=\"received\"} counts them", labels=["queue"])
        try:
            for name in queue.QUEUES:
                waiting.add_metric([name], queue.get_queue(self.settings, name).count)
        except Exception:  # Redis down: no queue metrics this scrape, /healthz says why
            log.debug("queue lengths unavailable", exc_info=True)
        yield waiting

    def _outbox(self, lanes: Sequence[Any]) -> Iterator[GaugeMetricFamily]:
        """Backpressure: what waits in the outbox per channel and lane, and how long it takes to send."""
        queued = GaugeMetricFamily("sms_gateway_outbox_queued_segments", "SMS segments waiting to be sent, "
                                   "by channel and lane (reply, notification, bulk)", labels=["channel", "lane"])
        oldest = GaugeMetricFamily("sms_gateway_outbox_oldest_seconds", "Age of the oldest SMS waiting, by "
                                   "channel and lane", labels=["channel", "lane"])
        backlog = GaugeMetricFamily("sms_gateway_outbox_backlog_seconds", "Seconds the queued segments take "
                                    "at the channel's rate (TWILIO_MPS, KANNEL_MPS, MODEM_MPM)", labels=["channel"])
        overloaded = GaugeMetricFamily("sms_gateway_outbox_overloaded", "1 when a channel's backlog is longer "
                                       "than SEND_BACKLOG_LIMIT", labels=["channel"])
        now = utcnow()
        segments_by_channel: dict[str, int] = {}
        for channel, lane, _count, segments, first in lanes:
            name = outbox.LANES.get(lane, str(lane))
            queued.add_metric([channel, name], segments)
            oldest.add_metric([channel, name], (now - first).total_seconds() if first else 0)
            segments_by_channel[channel] = segments_by_channel.get(channel, 0) + int(segments)
        for channel, segments in segments_by_channel.items():
            rate = channel_rate(self.settings, channel)
            seconds = segments / rate if rate else 0.0
            backlog.add_metric([channel], seconds)
            overloaded.add_metric([channel], float(seconds > self.settings.SEND_BACKLOG_LIMIT))
        yield from (queued, oldest, backlog, overloaded)
        parked = GaugeMetricFamily("sms_gateway_channel_parked_seconds", "Seconds a channel stays parked after "
                                   "the provider throttled us (429)", labels=["channel"])
        try:
            redis = queue.get_redis(self.settings)
            for key in redis.scan_iter(match=PARK_PREFIX + "*"):
                parked.add_metric([key.decode()[len(PARK_PREFIX):]], max(0, int(redis.pttl(key))) / 1000)
        except Exception:  # Redis down: /healthz says why
            log.debug("park state unavailable", exc_info=True)
        yield parked


def channel_rate(settings: Settings, channel: str) -> float | None:
    """Segments per second of ``channel`` (None: unlimited or unknown)."""
    from .channels.base import NotConfigured, SendError, get_channel

    try:
        return get_channel(channel, settings).rate
    except (NotConfigured, SendError):
        return None
