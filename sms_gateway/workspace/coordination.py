"""Intervensi and teguran: a coordinator (or central admin) asks an agency to act, or reprimands it.

Each action is a row (append-only) with the coordinator's name and a required
reason; an intervensi is about one report and adds an entry to its history, a
teguran is about the agency and may name a report. The agency hears of it at
once, in the action's transaction (delivered after commit): a webhook event
(``coordination.intervensi`` / ``coordination.teguran``, signed like every
delivery) and an SMS to each person on duty for it today (the roster), or to its
``admin_number`` when nobody is on the roster; the SMS goes in the notification lane.
The action stays as a banner in the agency's inbox until somebody of the
agency answers it with a text; the answer clears the banner, is added to the
report's history, and goes back to the coordinator (webhook
``coordination.answered`` and an SMS to its ``admin_number``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import deadlines, gsm, outbox, phone
from ..agencies import push, rosters
from ..agencies.lifecycle import LifecycleError, clean_note
from ..agencies.scope import units
from ..channels import reply_channel
from ..config import Settings
from ..models import CoordinationAction, CoordinationAnswer, OutboundMessage, Report, ReportEvent, utcnow
from ..registry import Registry
from .access import AGENCY_ROLES, Viewer, monitored_by

INTERVENSI, TEGURAN = "intervensi", "teguran"
KINDS = (INTERVENSI, TEGURAN)


@dataclass
class Done:
    """What an action or answer wrote: the row and the SMS to dispatch after commit."""

    row: CoordinationAction | CoordinationAnswer
    messages: list[OutboundMessage]


def may_coordinate(registry: Registry, viewer: Viewer, agency: str | None) -> bool:
    """True when ``viewer`` may send intervensi/teguran to ``agency`` (on its board; not the central queue)."""
    if agency is None or not viewer.monitors:
        return False
    codes, _central = monitored_by(registry, viewer)
    return agency in codes


def may_answer(registry: Registry, viewer: Viewer, action: CoordinationAction) -> bool:
    """True when ``viewer`` works for the agency the action is addressed to (or for its parent)."""
    return (viewer.role in AGENCY_ROLES and viewer.agency in registry.agencies
            and action.agency in units(registry, viewer.agency))


def _sender(viewer: Viewer) -> str:
    return viewer.coordinator or "LAPOR! pusat"


def record(session: Session, settings: Settings, registry: Registry, viewer: Viewer, *, kind: str,
           agency: str | None, reason: object, report: Report | None = None) -> Done:
    """Record an intervensi (``report`` required) or teguran and queue its notifications (not committed)."""
    if kind not in KINDS:
        raise LifecycleError(400, f"unknown action {kind!r}")
    if kind == INTERVENSI:
        if report is None:
            raise LifecycleError(400, "an intervensi is about a report", "required", what="report")
        agency = report.agency
    if agency is None:
        raise LifecycleError(422, "the report is in the central queue: dispose it first", "central_queue")
    if not may_coordinate(registry, viewer, agency):
        raise LifecycleError(404, f"{agency} is not on your board", "not_watched", agency=agency)
    text = clean_note(settings, reason, required=True, what="reason")
    assert text is not None
    now = utcnow()
    action = CoordinationAction(kind=kind, agency=agency, report_id=report.id if report else None,
                                coordinator=viewer.coordinator, author=viewer.email, author_name=viewer.name,
                                reason=text, created_at=now)
    session.add(action)
    session.flush()
    if report is not None:
        session.add(ReportEvent(report_id=report.id, status=report.status, action=kind, note=text,
                                actor=viewer.email, agency=report.agency, created_at=now))
    payload = describe(action, report)
    push.queue_delivery(session, settings, registry, key=f"coordination:{action.id}", recipient=agency,
                        kind=push.AGENCY, event_name=f"coordination.{kind}", payload=payload,
                        report_id=action.report_id)
    label = "INTERVENSI" if kind == INTERVENSI else "TEGURAN"
    about = f" lap. {report.tracking_number}" if report else ""
    sms = gsm.fit_one_segment(f"LAPOR! {settings.SHORT_CODE} {label} dr {_sender(viewer)} utk {agency}{about}: "
                              f"{text}", " Jawab di ruang kerja.")
    numbers = [entry.number for entry in rosters.on_duty(session, agency, deadlines.local_date(now))]
    if not numbers:
        fallback = registry.agencies[agency].extra.get("admin_number") if agency in registry.agencies else None
        numbers = [phone.normalize(str(fallback))] if fallback else []
    channel = reply_channel(settings.NOTIFY_SMS_CHANNEL, settings)
    messages = [outbox.queue_reply(session, key=f"coordination:{action.id}:{number}", channel=channel,
                                   recipient=number, text=sms, purpose=kind, report_id=action.report_id,
                                   lane=outbox.NOTIFICATION)
                for number in numbers]
    return Done(action, messages)


def answer(session: Session, settings: Settings, registry: Registry, viewer: Viewer, action: CoordinationAction,
           text: object) -> Done:
    """The agency's answer (once per action) and its notification to the coordinator (not committed)."""
    if not may_answer(registry, viewer, action):
        raise LifecycleError(404, "not your agency's", "not_watched", agency=action.agency)
    body = clean_note(settings, text, required=True, what="answer")
    assert body is not None
    now = utcnow()
    row = CoordinationAnswer(action_id=action.id, author=viewer.email, author_name=viewer.name, text=body,
                             created_at=now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise LifecycleError(422, "this has been answered already", "answered") from None
    report = session.get(Report, action.report_id) if action.report_id else None
    if report is not None:
        session.add(ReportEvent(report_id=report.id, status=report.status, action=f"{action.kind}_answer",
                                note=body, actor=viewer.email, agency=report.agency, created_at=now))
    messages: list[OutboundMessage] = []
    coordinator = registry.coordinators.get(action.coordinator) if action.coordinator else None
    if coordinator is not None:
        payload = {**describe(action, report), "answer": {"text": body, "by": viewer.name or viewer.email,
                                                          "at": now.isoformat()}}
        push.queue_delivery(session, settings, registry, key=f"coordination:{action.id}:answer",
                            recipient=coordinator.code, kind=push.COORDINATOR, event_name="coordination.answered",
                            payload=payload, report_id=action.report_id)
        if coordinator.admin_number:
            sms = gsm.fit_one_segment(f"LAPOR! {settings.SHORT_CODE}: {action.agency} menjawab {action.kind} "
                                      f"#{action.id}: {body}")
            channel = reply_channel(settings.NOTIFY_SMS_CHANNEL, settings)
            messages.append(outbox.queue_reply(session, key=f"coordination:{action.id}:answer", channel=channel,
                                               recipient=coordinator.admin_number, text=sms,
                                               purpose="coordination", report_id=action.report_id,
                                               lane=outbox.NOTIFICATION))
    return Done(row, messages)


def describe(action: CoordinationAction, report: Report | None) -> dict[str, Any]:
    """The action as webhooks carry it."""
    return {"id": action.id, "kind": action.kind, "agency": action.agency,
            "tracking_number": report.tracking_number if report else None,
            "coordinator": action.coordinator, "by": action.author_name or action.author,
            "reason": action.reason, "at": action.created_at.isoformat()}


@dataclass
class Shown:
    """An action with its answer, as the pages show it."""

    action: CoordinationAction
    answer: CoordinationAnswer | None
    tracking_number: str | None


def _with_answers(session: Session, actions: list[CoordinationAction]) -> list[Shown]:
    ids = [a.id for a in actions]
    answers = {a.action_id: a for a in session.scalars(
        select(CoordinationAnswer).where(CoordinationAnswer.action_id.in_(ids)))} if ids else {}
    report_ids = sorted({a.report_id for a in actions if a.report_id})
    numbers = dict(session.execute(select(Report.id, Report.tracking_number)
                                   .where(Report.id.in_(report_ids))).all()) if report_ids else {}
    return [Shown(a, answers.get(a.id), numbers.get(a.report_id) if a.report_id else None) for a in actions]


def open_for(session: Session, agencies: list[str]) -> list[Shown]:
    """Unanswered actions addressed to ``agencies``, newest first: the inbox's banners."""
    if not agencies:
        return []
    actions = list(session.scalars(
        select(CoordinationAction)
        .outerjoin(CoordinationAnswer, CoordinationAnswer.action_id == CoordinationAction.id)
        .where(CoordinationAction.agency.in_(agencies), CoordinationAnswer.id.is_(None))
        .order_by(CoordinationAction.id.desc()).limit(50)))
    return _with_answers(session, actions)


def on_report(session: Session, report: Report) -> list[Shown]:
    """Every action about ``report``, oldest first."""
    return _with_answers(session, list(session.scalars(
        select(CoordinationAction).where(CoordinationAction.report_id == report.id)
        .order_by(CoordinationAction.id))))


def for_agency(session: Session, agency: str, limit: int = 50) -> list[Shown]:
    """The latest actions addressed to ``agency`` (answered or not), newest first: the drill-down's list."""
    return _with_answers(session, list(session.scalars(
        select(CoordinationAction).where(CoordinationAction.agency == agency)
        .order_by(CoordinationAction.id.desc()).limit(limit))))
