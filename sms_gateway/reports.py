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
    return new_tracking_numbers(session, 1)[0]


def new_tracking_numbers(session: Session, count: int) -> list[str]:
    """``count`` distinct tracking numbers not used yet, checked with one query per round."""
    numbers: list[str] = []
    for _ in range(20):
        wanted = count - len(numbers)
        if wanted <= 0:
            return numbers
        candidates = {tracking.generate() for _ in range(wanted)} - set(numbers)
        taken = set(session.scalars(select(Report.tracking_number).where(Report.tracking_number.in_(candidates))))
        numbers.extend(c for c in candidates if c not in taken)
    if len(numbers) >= count:
        return numbers[:count]
    raise RuntimeError("could not find free tracking numbers in 20 tries")


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
    """Add a report in status ``diterima`` with its first history entry (flushed, not committed)."""
    report = build_report(
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
        received_at=received_at,
    )
    session.add(report)
    session.flush()
    return report


def build_report(*, tracking_number: str, received_at: datetime | None = None, agency: str | None,
                 **fields: Any) -> Report:
    """A new report in status ``diterima`` with its first history entry, in no session yet
    (the pipeline adds a batch of them with one flush)."""
    report = Report(tracking_number=tracking_number, agency=agency, status=STATUS_RECEIVED,
                    created_at=received_at or utcnow(), repeats=0, **fields)
    report.events.append(ReportEvent(status=STATUS_RECEIVED, agency=agency, actor="sms",
                                     note="diterima melalui SMS"))
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


def report_row(*, tracking_number: str, received_at: datetime, **fields: Any) -> dict[str, Any]:
    """The columns of a new report for a batch insert (``db.insert_rows``); see ``create_report``."""
    return {"tracking_number": tracking_number, "status": STATUS_RECEIVED, "repeats": 0, "created_at": received_at,
            "updated_at": utcnow(), **fields}


def first_event_row(report_id: int, row: dict[str, Any]) -> dict[str, Any]:
    """The first history entry of a report inserted from ``row``."""
    return {"report_id": report_id, "status": STATUS_RECEIVED, "action": None, "note": "diterima melalui SMS",
            "actor": "sms", "agency": row["agency"], "created_at": utcnow()}
