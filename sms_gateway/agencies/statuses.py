"""A report's statuses, the transitions allowed between them, and its deadlines.

Transitions (``POST …/status``)::

    diterima         -> diverifikasi, didisposisikan, diarsipkan
    diverifikasi     -> didisposisikan, ditindaklanjuti, diarsipkan
    didisposisikan   -> ditindaklanjuti, diarsipkan
    ditindaklanjuti  -> ditindaklanjuti (a further follow-up), selesai, diarsipkan
    selesai          -> diarsipkan
    diarsipkan       -> (final)

Disposition (``POST …/disposition``) moves a report that is diterima,
diverifikasi or didisposisikan to an agency (status didisposisikan), or back
to the central queue as "bukan wewenang" (status diterima, no agency).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, and_, or_

from ..models import Report

RECEIVED = "diterima"
VERIFIED = "diverifikasi"
DISPOSED = "didisposisikan"
FOLLOWED_UP = "ditindaklanjuti"
DONE = "selesai"
ARCHIVED = "diarsipkan"

STATUSES = (RECEIVED, VERIFIED, DISPOSED, FOLLOWED_UP, DONE, ARCHIVED)
CLOSED = frozenset({DONE, ARCHIVED})
OPEN = tuple(s for s in STATUSES if s not in CLOSED)

TRANSITIONS: dict[str, frozenset[str]] = {
    RECEIVED: frozenset({VERIFIED, DISPOSED, ARCHIVED}),
    VERIFIED: frozenset({DISPOSED, FOLLOWED_UP, ARCHIVED}),
    DISPOSED: frozenset({FOLLOWED_UP, ARCHIVED}),
    FOLLOWED_UP: frozenset({FOLLOWED_UP, DONE, ARCHIVED}),
    DONE: frozenset({ARCHIVED}),
    ARCHIVED: frozenset(),
}
# Statuses only an agency can give: a report in the central queue must be disposed first.
NEEDS_AGENCY = frozenset({DISPOSED, FOLLOWED_UP, DONE})
# From these a report may be disposed (again) or returned to the central queue.
DISPOSABLE = frozenset({RECEIVED, VERIFIED, DISPOSED})
# An agency holding the report and reaching one of these has met the disposition deadline.
MEETS_DISPOSITION = frozenset({VERIFIED, DISPOSED, FOLLOWED_UP, DONE})

DISPOSITION, FOLLOWUP = "disposition", "followup"


def missed_deadlines(report: Report, today: date) -> list[tuple[str, date]]:
    """(deadline, due date) of each deadline an open report has let pass, as of ``today`` (Jakarta)."""
    if report.status in CLOSED:
        return []
    missed = []
    if report.disposed_at is None and report.disposition_due is not None and today > report.disposition_due:
        missed.append((DISPOSITION, report.disposition_due))
    if report.followed_up_at is None and report.followup_due is not None and today > report.followup_due:
        missed.append((FOLLOWUP, report.followup_due))
    return missed


def overdue_clause(today: date) -> ColumnElement[bool]:
    """SQL condition equivalent to ``missed_deadlines(report, today)`` being non-empty."""
    return and_(
        Report.status.in_(OPEN),
        or_(and_(Report.disposed_at.is_(None), Report.disposition_due < today),
            and_(Report.followed_up_at.is_(None), Report.followup_due < today)),
    )
