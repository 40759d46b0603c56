"""Readiness alerts ("SDM"): is somebody there to answer before the deadlines pass?

Three conditions, each a function of the database and the clock:

- ``at_risk``: an agency holds reports whose next deadline falls by the end of
  the next working day and that nobody on duty has opened (a page view by a
  workspace account on today's roster; when the roster names no account, by
  any account of the agency);
- ``central_backlog``: the central queue holds more than READINESS_CENTRAL_BACKLOG open reports;
- ``workers_stalled``: messages wait while no message has been processed for
  READINESS_STALL_MINUTES (no worker, or every worker stuck).

``check`` raises each that holds at most once per READINESS_ALERT_PERIOD: the
alert's key (condition, agency, period) is unique, so a second run (or two
schedulers) sends nothing new. An alert goes by SMS to the people on duty
(the agency's, or PUSAT's for the gateway-wide ones) in the bulk lane, and as
a webhook event ``readiness.alert`` to the agency, or to the coordinators
watching every agency; it shows on the board.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import deadlines, gsm, outbox
from .agencies import push, rosters
from .agencies.scope import CENTRAL, coordinators_for, units
from .agencies.statuses import FOLLOWED_UP, OPEN
from .channels import reply_channel
from .config import Settings, get_settings
from .db import session_factory
from .models import (
    InboundMessage,
    InboundState,
    OutboundMessage,
    ReadinessAlert,
    Report,
    ReportView,
    User,
    utcnow,
)
from .registry import Registry, registry_for

log = logging.getLogger(__name__)

AT_RISK, CENTRAL_BACKLOG, WORKERS_STALLED = "at_risk", "central_backlog", "workers_stalled"
BATCH = 500


@dataclass(frozen=True)
class Finding:
    """A condition that holds now: for ``agency`` (None: the gateway as a whole), with its figures."""

    condition: str
    agency: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def at_risk(session: Session, registry: Registry, now: datetime) -> list[Finding]:
    """Agencies with reports due by the end of the next working day that nobody on duty has opened."""
    today = deadlines.local_date(now)
    horizon = deadlines.add_working_days(today, 1)
    candidates: dict[str, list[tuple[int, str]]] = {}
    for report_id, agency, number in session.execute(
            select(Report.id, Report.agency, Report.tracking_number)
            .where(Report.status.in_(OPEN), Report.status != FOLLOWED_UP, Report.agency.is_not(None),
                   Report.next_due <= horizon).order_by(Report.next_due, Report.id)):
        if agency is not None:  # the query says so; mypy cannot know
            candidates.setdefault(agency, []).append((report_id, number))
    findings = []
    for agency, reports in sorted(candidates.items()):
        on_duty = {e.email for e in rosters.on_duty(session, agency, today) if e.email}
        viewers = _viewers(session, [report_id for report_id, _ in reports])
        unopened = [number for report_id, number in reports
                    if not any(_counts(registry, agency, on_duty, email, user_agency)
                               for email, user_agency in viewers.get(report_id, ()))]
        if unopened:
            findings.append(Finding(AT_RISK, agency, {"count": len(unopened), "example": unopened[0],
                                                      "by": horizon.isoformat()}))
    return findings


def _viewers(session: Session, report_ids: list[int]) -> dict[int, list[tuple[str, str | None]]]:
    found: dict[int, list[tuple[str, str | None]]] = {}
    for start in range(0, len(report_ids), BATCH):
        for report_id, email, agency in session.execute(
                select(ReportView.report_id, User.email, User.agency).join(User, User.id == ReportView.user_id)
                .where(ReportView.report_id.in_(report_ids[start:start + BATCH]))):
            found.setdefault(report_id, []).append((email, agency))
    return found


def _counts(registry: Registry, agency: str, on_duty: set[str], email: str, user_agency: str | None) -> bool:
    # A view counts when the viewer is on today's roster; a roster naming no
    # account falls back to anybody of the agency (or of a parent holding it).
    if on_duty:
        return email in on_duty
    return user_agency in registry.agencies and agency in units(registry, user_agency)


def central_backlog(session: Session, limit: int) -> list[Finding]:
    """The central queue, when it holds more than ``limit`` open reports."""
    count = session.scalar(select(func.count()).where(Report.agency.is_(None), Report.status.in_(OPEN))) or 0
    return [Finding(CENTRAL_BACKLOG, None, {"count": count, "limit": limit})] if count > limit else []


def workers_stalled(session: Session, now: datetime, minutes: int) -> list[Finding]:
    """Messages waiting longer than ``minutes`` while none has been processed for as long."""
    since = now - timedelta(minutes=minutes)
    waiting, oldest = session.execute(
        select(func.count(), func.min(InboundMessage.received_at))
        .where(InboundMessage.state == InboundState.RECEIVED)).one()
    if not waiting or oldest is None:
        return []
    if isinstance(oldest, str):  # SQLite's MIN of a date-time column
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    if oldest > since:
        return []
    last = session.scalar(select(InboundMessage.processed_at).where(InboundMessage.processed_at.is_not(None))
                          .order_by(InboundMessage.processed_at.desc()).limit(1))
    if last is not None and last > since:
        return []
    return [Finding(WORKERS_STALLED, None, {"count": int(waiting), "minutes": minutes,
                                            "last_processed": last.isoformat() if last else None})]


def findings(session: Session, settings: Settings, registry: Registry, now: datetime) -> list[Finding]:
    """Every condition that holds now."""
    return [*at_risk(session, registry, now),
            *central_backlog(session, settings.READINESS_CENTRAL_BACKLOG),
            *workers_stalled(session, now, settings.READINESS_STALL_MINUTES)]


def alert_key(finding: Finding, now: datetime, period: int) -> str:
    """The alert's unique key: the same condition in the same period is one alert."""
    return f"{finding.condition}:{finding.agency or '*'}:{int(now.timestamp()) // max(period, 1)}"


def text(finding: Finding, settings: Settings) -> str:
    """The SMS to the people on duty (one GSM-7 segment)."""
    short = settings.SHORT_CODE
    d = finding.detail
    if finding.condition == AT_RISK:
        due = date.fromisoformat(d["by"]).strftime("%d-%m")
        body = (f"LAPOR! {short} SIAGA {finding.agency}: {d['count']} laporan tenggat s.d. {due} belum dibuka "
                f"petugas piket. Contoh: {d['example']}")
    elif finding.condition == CENTRAL_BACKLOG:
        body = f"LAPOR! {short} SIAGA: antrean pusat {d['count']} laporan (batas {d['limit']}). Mohon disposisi."
    else:
        body = (f"LAPOR! {short} SIAGA: tak ada SMS diproses {d['minutes']} menit, {d['count']} pesan menunggu. "
                "Periksa worker.")
    return gsm.fit_one_segment(body)


def raise_alerts(session: Session, settings: Settings, registry: Registry, found: list[Finding],
                 now: datetime) -> tuple[int, list[OutboundMessage]]:
    """Record the findings not alerted in this period yet and queue their SMS and webhooks (not committed):
    (how many alerts were raised, their SMS)."""
    raised = 0
    messages: list[OutboundMessage] = []
    channel: str | None = None
    for finding in found:
        row = ReadinessAlert(key=alert_key(finding, now, settings.READINESS_ALERT_PERIOD),
                             condition=finding.condition, agency=finding.agency, detail=finding.detail,
                             created_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue  # told already in this period (or by a concurrent run)
        raised += 1
        payload = {"id": row.id, "condition": finding.condition, "agency": finding.agency or CENTRAL,
                   **finding.detail, "at": now.isoformat()}
        if finding.agency is not None:
            push.queue_delivery(session, settings, registry, key=f"readiness:{row.id}", recipient=finding.agency,
                                kind=push.AGENCY, event_name="readiness.alert", payload=payload)
        else:
            for coordinator in coordinators_for(registry, None):
                push.queue_delivery(session, settings, registry, key=f"readiness:{row.id}:{coordinator.code}",
                                    recipient=coordinator.code, kind=push.COORDINATOR,
                                    event_name="readiness.alert", payload=payload)
        people = rosters.on_duty(session, finding.agency or CENTRAL, deadlines.local_date(now))
        if people and channel is None:
            channel = reply_channel(settings.NOTIFY_SMS_CHANNEL, settings)
        for person in people:
            assert channel is not None
            messages.append(outbox.queue_reply(session, key=f"readiness:{row.id}:{person.number}", channel=channel,
                                               recipient=person.number, text=text(finding, settings),
                                               purpose="readiness", lane=outbox.BULK))
    return raised, messages


def check() -> dict[str, int]:
    """Periodic job: find what holds, alert once per period, ring the senders."""
    settings = get_settings()
    registry = registry_for(settings)
    now = utcnow()
    with session_factory(settings.DATABASE_URL)() as session:
        found = findings(session, settings, registry, now)
        raised, messages = raise_alerts(session, settings, registry, found, now)
        session.commit()
    outbox.dispatch(settings, messages)
    if raised:
        log.warning("readiness: %s new alert(s) (%s); %s SMS to people on duty", raised,
                    ", ".join(sorted({f.condition for f in found})), len(messages))
    return {"holding": len(found), "alerts": raised, "sms": len(messages)}
