"""Reports: creation with a tracking number, lookup, status history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import tracking
from .models import Report, ReportEvent, utcnow

STATUS_RECEIVED = "diterima"


def new_tracking_number(session: Session) -> str:
    """A tracking number not used yet (random, so collisions are rare; checked anyway)."""
    for _ in range(20):
        number = tracking.generate()
        if session.scalar(select(Report.id).where(Report.tracking_number == number)) is None:
            return number
    raise RuntimeError("could not find a free tracking number in 20 tries")


def create_report(
    session: Session,
    *,
    inbound_id: int | None,
    channel: str,
    reporter: str,
    text: str,
    kind: str,
    agency: str | None,
    confidential: bool = False,
    anonymous: bool = False,
    category: str | None = None,
    special: bool = False,
    disposition_due: Any = None,
    followup_due: Any = None,
    evidence: dict[str, Any] | None = None,
    received_at: datetime | None = None,
) -> Report:
    """Add a report in status ``diterima`` with its first history entry (not committed)."""
    report = Report(
        tracking_number=new_tracking_number(session),
        inbound_id=inbound_id,
        channel=channel,
        reporter=reporter,
        text=text,
        kind=kind,
        agency=agency,
        confidential=confidential,
        anonymous=anonymous,
        category=category,
        special=special,
        disposition_due=disposition_due,
        followup_due=followup_due,
        evidence=evidence,
        status=STATUS_RECEIVED,
        created_at=received_at or utcnow(),
    )
    report.events.append(ReportEvent(status=STATUS_RECEIVED, agency=agency, actor="sms",
                                     note="diterima melalui SMS"))
    session.add(report)
    session.flush()
    return report


def find_by_tracking(session: Session, number: str, *, lock: bool = False) -> Report | None:
    """The report with this tracking number, if any (None for a malformed number, without a query).

    ``lock`` takes the row for the rest of the transaction (PostgreSQL), so two
    actions on one report run one after the other.
    """
    if not tracking.is_valid(number):
        return None
    query = select(Report).where(Report.tracking_number == number)
    return session.scalar(query.with_for_update() if lock else query)


def last_update(report: Report) -> datetime:
    """When the report last changed status."""
    if report.events:
        return max(e.created_at for e in report.events)
    return report.updated_at or report.created_at
