"""Reports as JSON for the API and webhooks, with personal data shown only to whom may see it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import CitizenResponse, Escalation, Report
from ..registry import Registry
from . import statuses
from .scope import CENTRAL, Principal, reporter_visible


def iso(value: datetime | date | None) -> str | None:
    """ISO 8601 (datetimes in UTC with offset), or None."""
    return value.isoformat() if value is not None else None


def hidden_because(report: Report) -> str | None:
    """Why the reporter's number may be hidden: confidential (RAHASIA) or anonymous (ANONIM)."""
    if report.confidential:
        return "confidential"
    if report.anonymous:
        return "anonymous"
    return None


def deadlines(report: Report, today: date) -> dict[str, Any]:
    """A report's deadlines, when they were met, and which are missed today."""
    return {
        "disposition_due": iso(report.disposition_due),
        "followup_due": iso(report.followup_due),
        "disposed_at": iso(report.disposed_at),
        "followed_up_at": iso(report.followed_up_at),
        "last_followup_at": iso(report.last_followup_at),
        "response_due": iso(report.response_due),
        "closed_at": iso(report.closed_at),
        "overdue": [name for name, _due in statuses.missed_deadlines(report, today)],
    }


def summary(report: Report, registry: Registry, principal: Principal, today: date) -> dict[str, Any]:
    """One report as listed."""
    agency = registry.agencies.get(report.agency) if report.agency else None
    show_reporter = reporter_visible(principal, report)
    return {
        "tracking_number": report.tracking_number,
        "status": report.status,
        "kind": report.kind,
        "category": report.category,
        "special": report.special,
        "agency": report.agency or CENTRAL,
        "agency_name": agency.name if agency else registry.agency_label(report.agency),
        "channel": report.channel,
        "text": report.text,
        "reporter": report.reporter if show_reporter else None,
        "reporter_hidden": None if show_reporter else hidden_because(report),
        "confidential": report.confidential,
        "anonymous": report.anonymous,
        "created_at": iso(report.created_at),
        "updated_at": iso(report.updated_at),
        "deadlines": deadlines(report, today),
    }


def detail(session: Session, report: Report, registry: Registry, principal: Principal,
           today: date) -> dict[str, Any]:
    """One report with its history, the reporter's responses and its escalations."""
    out = summary(report, registry, principal, today)
    out["history"] = [
        {"status": e.status, "action": e.action or "created", "note": e.note, "actor": e.actor,
         "agency": e.agency or CENTRAL, "at": iso(e.created_at)}
        for e in report.events
    ]
    responses = session.scalars(select(CitizenResponse).where(CitizenResponse.report_id == report.id)
                                .order_by(CitizenResponse.id))
    out["responses"] = [{"text": r.text, "at": iso(r.created_at)} for r in responses]
    escalations = session.scalars(select(Escalation).where(Escalation.report_id == report.id)
                                  .order_by(Escalation.id))
    out["escalations"] = [{"deadline": e.deadline, "level": e.level, "due": iso(e.due),
                           "agency": e.agency or CENTRAL, "at": iso(e.created_at)} for e in escalations]
    return out


def as_agency(code: str) -> Principal:
    """The view an agency's own webhook gets (no token behind it)."""
    return Principal(token_id=0, admin=False, code=code)
