"""The deadline watch: missed dispositions and follow-ups become escalations, and people are told.

A report past its disposition or follow-up deadline (working days, Jakarta)
gets a level 1 escalation (intervention) against the agency holding it, and a
level 2 (reprimand) once ESCALATION_LEVEL2_DAYS more working days have passed.
Each run tells, in one message per recipient, the agencies concerned (webhook
and/or SMS to ``admin_number``) and the coordinators watching them
(``coordinators:`` in prefixes.yaml).

Idempotent: the unique (report, deadline, level) row is the record that an
escalation happened; notifications are keyed on the escalations they carry, so
a second run (or a retry) records and sends nothing new.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import deadlines, outbox, phone
from ..channels import reply_channel
from ..config import Settings, get_settings
from ..db import session_factory
from ..models import Escalation, OutboundMessage, Report, utcnow
from ..registry import Registry, registry_for
from . import push
from .scope import CENTRAL, coordinators_for
from .statuses import missed_deadlines, overdue_clause

log = logging.getLogger(__name__)

INTERVENTION, REPRIMAND = 1, 2
BATCH = 500


def levels_due(due: date, today: date, level2_days: int) -> list[int]:
    """Escalation levels a deadline ``due`` has reached by ``today``."""
    if today <= due:
        return []
    if today > deadlines.add_working_days(due, level2_days):
        return [INTERVENTION, REPRIMAND]
    return [INTERVENTION]


def run_escalations() -> dict[str, int]:
    """Periodic job: record new escalations and notify agencies and coordinators."""
    settings = get_settings()
    registry = registry_for(settings)
    sessions = session_factory(settings.DATABASE_URL)
    today, now = deadlines.today(), utcnow()
    with sessions() as session:
        created = record(session, settings, today, now)
        messages = notify(session, settings, registry, created)
        session.commit()
    outbox.dispatch(settings, messages)
    if created:
        log.warning("escalations: %s new (%s reprimands); %s SMS to admins", len(created),
                    sum(e.level == REPRIMAND for e in created), len(messages))
    return {"escalations": len(created), "sms": len(messages)}


def record(session: Session, settings: Settings, today: date, now: datetime) -> list[Escalation]:
    """Add the escalations that are due and not recorded yet (not committed)."""
    created: list[Escalation] = []
    last_id = 0
    while True:
        batch = session.scalars(select(Report).where(overdue_clause(today), Report.id > last_id)
                                .order_by(Report.id).limit(BATCH)).all()
        if not batch:
            return created
        last_id = batch[-1].id
        done = {(row.report_id, row.deadline, row.level) for row in session.execute(
            select(Escalation.report_id, Escalation.deadline, Escalation.level)
            .where(Escalation.report_id.in_([r.id for r in batch])))}
        due_now = [dict(report_id=report.id, agency=report.agency, deadline=deadline, level=level, due=due,
                        created_at=now)
                   for report in batch
                   for deadline, due in missed_deadlines(report, today)
                   for level in levels_due(due, today, settings.ESCALATION_LEVEL2_DAYS)
                   if (report.id, deadline, level) not in done]
        if not due_now:
            continue
        try:
            with session.begin_nested():
                # One multi-row INSERT … RETURNING per batch (SQLAlchemy's ORM bulk insert).
                fresh = list(session.scalars(insert(Escalation).returning(Escalation), due_now))
        except IntegrityError:
            # A concurrent run recorded some first: keep the others, one savepoint each.
            fresh = []
            for values in due_now:
                escalation = Escalation(**values)
                try:
                    with session.begin_nested():
                        session.add(escalation)
                except IntegrityError:
                    continue
                fresh.append(escalation)
        created.extend(fresh)


def _describe(escalation: Escalation, numbers: dict[int, str]) -> dict[str, object]:
    return {"tracking_number": numbers.get(escalation.report_id), "agency": escalation.agency or CENTRAL,
            "deadline": escalation.deadline, "level": escalation.level, "due": escalation.due.isoformat(),
            "at": escalation.created_at.isoformat()}


def notify(session: Session, settings: Settings, registry: Registry,
           created: list[Escalation]) -> list[OutboundMessage]:
    """One webhook and/or SMS per agency and per coordinator concerned (not committed)."""
    if not created:
        return []
    channel = reply_channel(settings.NOTIFY_SMS_CHANNEL, settings)
    span = f"{created[0].id}-{created[-1].id}"
    messages: list[OutboundMessage] = []
    numbers: dict[int, str] = {}
    report_ids = sorted({e.report_id for e in created})
    for start in range(0, len(report_ids), BATCH):
        chunk = report_ids[start:start + BATCH]
        for report_id, tracking_number in session.execute(select(Report.id, Report.tracking_number)
                                                          .where(Report.id.in_(chunk))):
            numbers[report_id] = tracking_number
    described = {e.id: _describe(e, numbers) for e in created}
    by_agency: dict[str | None, list[Escalation]] = {}
    for escalation in created:
        by_agency.setdefault(escalation.agency, []).append(escalation)

    for code, items in by_agency.items():
        agency = registry.agencies.get(code) if code else None
        if agency is None:
            continue  # the central queue answers to the coordinators watching "*"
        listed = [described[e.id] for e in items]
        push.queue_delivery(session, settings, registry, key=f"escalation:{agency.code}:{span}",
                            recipient=agency.code, kind=push.AGENCY, event_name="report.escalated",
                            payload={"agency": agency.code, "escalations": listed})
        number = phone.normalize(str(agency.extra["admin_number"])) if agency.extra.get("admin_number") else None
        if number:
            text = registry.render("escalation_agency", agency=code, count=len(items),
                                   reprimands=sum(e.level == REPRIMAND for e in items),
                                   tracking=listed[0]["tracking_number"], short_code=settings.SHORT_CODE)
            messages.append(outbox.queue_reply(session, key=f"escalation:{code}:{span}", channel=channel,
                                             recipient=number, text=text, purpose="escalation"))

    watchers: dict[str, list[Escalation]] = {}
    for code, items in by_agency.items():
        for coordinator in coordinators_for(registry, code):
            watchers.setdefault(coordinator.code, []).extend(items)
    for code, items in watchers.items():
        coordinator = registry.coordinators[code]
        push.queue_delivery(session, settings, registry, key=f"escalation:coordinator:{code}:{span}",
                            recipient=code, kind=push.COORDINATOR, event_name="escalations",
                            payload={"coordinator": code, "escalations": [described[e.id] for e in items]})
        if coordinator.admin_number:
            busiest = Counter(e.agency or CENTRAL for e in items).most_common(1)[0][0]
            text = registry.render("escalation_coordinator", coordinator=code, agency=busiest, count=len(items),
                                   reprimands=sum(e.level == REPRIMAND for e in items),
                                   short_code=settings.SHORT_CODE)
            messages.append(outbox.queue_reply(session, key=f"escalation:coordinator:{code}:{span}",
                                             channel=channel, recipient=coordinator.admin_number, text=text,
                                             purpose="escalation"))
    return messages
