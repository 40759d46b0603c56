"""Prometheus metrics, read from the database and Redis at scrape time.

Counting rows at scrape time (instead of counters in each process) gives the
same numbers whichever gunicorn worker answers, and survives restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from . import queue, spool
from .config import Settings
from .db import session_factory
from .models import InboundMessage, OutboundMessage, Report
from .outage import DATABASE_DOWN

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
            database_up.add_metric([], 1)
        except DATABASE_DOWN:  # the spool depth below is what matters then
            log.debug("database counts unavailable", exc_info=True)
            database_up.add_metric([], 0)
        yield database_up
        yield inbound
        yield outbound
        yield reports
        yield GaugeMetricFamily("sms_gateway_spool_messages", "Inbound SMS in this host's local spool (kept "
                                "while the database was unreachable), waiting to be stored",
                                value=spool.depth(self.settings))
        waiting = GaugeMetricFamily(
            "sms_gateway_queue_jobs", "Jobs waiting in each RQ queue (an inbound job may carry a "
            "batch of messages: sms_gateway_inbound_messages{state=\"received\"} counts those)", labels=["queue"])
        try:
            from rq import Queue

            for q in Queue.all(connection=queue.get_redis(self.settings)):
                waiting.add_metric([q.name], q.count)
        except Exception:  # Redis down: no queue metrics this scrape, /healthz says why
            log.debug("queue lengths unavailable", exc_info=True)
        yield waiting
