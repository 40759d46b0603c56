"""The reporter's side of a follow-up: ``BALAS <nomor> <teks>``, and closing unanswered reports.

After an agency follows up (status ditindaklanjuti) the reporter has
RESPONSE_WINDOW_DAYS working days to answer from the number that sent the
report. Every refusal says why in one SMS. A follow-up nobody answers closes
the report (selesai) once the window has passed: ``close_unanswered`` runs
periodically and can run twice.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from .. import deadlines, reports, tracking
from ..config import Settings, get_settings
from ..db import session_factory
from ..models import CitizenResponse, InboundMessage, Report, ReportEvent, utcnow
from ..parsing import ParsedSMS, original_body
from ..registry import Registry, registry_for
from . import lifecycle, push, views
from .statuses import DONE, FOLLOWED_UP

log = logging.getLogger(__name__)

# Statuses in which a response is taken, provided the window is still open.
ANSWERABLE = (FOLLOWED_UP, DONE)


def handle_reply(session: Session, settings: Settings, registry: Registry, msg: InboundMessage,
                 parsed: ParsedSMS) -> str:
    """Record the reporter's response to a follow-up (not committed); return the SMS answering it."""
    short_code = settings.SHORT_CODE
    number = parsed.tracking
    if number is None or not parsed.body.strip():
        return registry.render("reply_usage", short_code=short_code)
    if not tracking.is_valid(number):
        return registry.render("status_invalid", tracking=number[:12], short_code=short_code)
    report = reports.find_by_tracking(session, number)
    # As for CEK: a confidential report does not exist for anybody but its reporter.
    if report is None or (report.confidential and report.reporter != msg.sender):
        return registry.render("status_not_found", tracking=number, short_code=short_code)
    values = lifecycle.notify_values(settings, registry, report)
    if report.reporter != msg.sender:
        return registry.render("reply_not_reporter", tracking=number, short_code=short_code)
    if report.status not in ANSWERABLE or report.response_due is None:
        return registry.render("reply_not_yet", tracking=number, status=report.status, days=values["days"],
                               short_code=short_code)
    # The day the SMS arrived counts, not the day a busy worker got to it.
    if deadlines.local_date(msg.received_at) > report.response_due:
        return registry.render("reply_closed", tracking=number, date=values["date"], days=values["days"],
                               short_code=short_code)
    if session.scalar(select(CitizenResponse.id).where(CitizenResponse.inbound_id == msg.id)) is None:
        text = original_body(msg.text, parsed.body.strip())  # as typed, not NFKC
        session.add(CitizenResponse(report_id=report.id, inbound_id=msg.id, text=text, created_at=msg.received_at))
        report.updated_at = utcnow()
        event = ReportEvent(status=report.status, action="citizen_response", note=text, actor="reporter",
                            agency=report.agency)
        report.events.append(event)
        session.flush()
        agency = report.agency
        if agency is not None:
            push.queue_delivery(
                session, settings, registry, key=f"report.response:{report.id}:{msg.id}", recipient=agency,
                kind=push.AGENCY, event_name="report.response", report_id=report.id,
                payload=lambda: {"report": views.detail(session, report, registry, views.as_agency(agency),
                                                        deadlines.local_date(msg.received_at)),
                                 "response": {"text": text, "at": views.iso(msg.received_at)}})
    return registry.render("reply_ok", tracking=number, agency=values["agency"], date=values["date"],
                           short_code=short_code)


def close_unanswered() -> dict[str, int]:
    """Close (selesai) followed-up reports whose reporter did not answer within the window."""
    settings = get_settings()
    registry = registry_for(settings)
    sessions = session_factory(settings.DATABASE_URL)
    today, now = deadlines.today(), utcnow()
    outcomes: list[lifecycle.Outcome] = []
    answered = exists().where(CitizenResponse.report_id == Report.id,
                              CitizenResponse.created_at >= Report.last_followup_at)
    with sessions() as session:
        due = session.scalars(select(Report.id).where(Report.status == FOLLOWED_UP, Report.response_due < today,
                                                      ~answered).order_by(Report.id).limit(1000)).all()
        for report_id in due:
            # The UPDATE is the claim: a second run (or an agency acting at the
            # same moment) finds the report no longer ditindaklanjuti.
            claimed = session.execute(  # type: ignore[attr-defined]
                update(Report).where(Report.id == report_id, Report.status == FOLLOWED_UP)
                .values(status=DONE, closed_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not claimed:
                continue
            report = session.get(Report, report_id, populate_existing=True)
            assert report is not None
            event = ReportEvent(status=DONE, action="auto_close", actor="system", agency=report.agency,
                                note=f"ditutup otomatis: tidak ada tanggapan pelapor {settings.RESPONSE_WINDOW_DAYS} "
                                     f"hari kerja setelah tindak lanjut (batas {report.response_due})",
                                created_at=now)
            report.events.append(event)
            session.flush()
            outcomes.append(lifecycle.notify_reporter(session, settings, registry, report, event, "notify_closed"))
        session.commit()
    for outcome in outcomes:
        lifecycle.send(settings, outcome)
    if outcomes:
        log.info("closed %s followed-up report(s) the reporter did not answer", len(outcomes))
    return {"closed": len(outcomes)}
