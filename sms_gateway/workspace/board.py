"""The coordinators' board: per agency, what is open, due and late, and how fast it is answered.

Every figure is a SQL aggregate grouped by agency (a handful of queries
whatever the number of reports), run in the request's scoped session, so a
coordinator's board cannot count more than the reports it may read. Working
days come from the project's holiday calendar (``deadlines``): the deadline
columns are already working-day dates, so "overdue" is a date comparison and
"how late" is counted in working days from the oldest missed deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, and_, case, cast, false, func, or_, select
from sqlalchemy.orm import Session

from .. import deadlines
from ..agencies.scope import CENTRAL
from ..agencies.statuses import FOLLOWED_UP, OPEN, overdue_clause
from ..models import CoordinationAction, CoordinationAnswer, Escalation, ReadinessAlert, Report

PERIODS = (7, 30, 90)  # days a board's medians and shares look back (?days=)
DEFAULT_PERIOD = 30
OVERDUE_LIST_MAX = 500


@dataclass
class AgencyRow:
    """One line of the board."""

    code: str  # agency code, or PUSAT for the central queue
    open: int = 0
    due_today: int = 0
    overdue: int = 0
    oldest_due: date | None = None  # the oldest missed deadline among the overdue reports
    late_days: int = 0  # working days since ``oldest_due``
    reports: int = 0  # created in the period
    median_hours_to_disposition: float | None = None
    median_hours_to_followup: float | None = None
    followups_due: int = 0  # reports of the period whose follow-up deadline has passed or was met
    followups_in_time: int = 0
    escalations: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    open_actions: int = 0  # intervensi/teguran not answered yet
    alerts: int = 0  # readiness alerts in the period

    @property
    def share_in_time(self) -> float | None:
        """Share of the period's reports followed up by their deadline (None: none was due yet)."""
        return self.followups_in_time / self.followups_due if self.followups_due else None


def period_days(raw: str | None) -> int:
    """The board's period from the URL; anything else is the default."""
    return int(raw) if raw in {str(p) for p in PERIODS} else DEFAULT_PERIOD


def period_start(today: date, days: int) -> datetime:
    """Midnight in Jakarta ``days`` days before ``today``, in UTC."""
    return datetime.combine(today - timedelta(days=days), time(), deadlines.JAKARTA).astimezone(UTC)


def _agency_in(column: Any, codes: list[str], central: bool) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [column.in_(codes)] if codes else []
    if central:
        conditions.append(column.is_(None))
    return or_(*conditions) if conditions else false()


def _hours(session: Session, end: Any, start: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def _jakarta_date(session: Session, moment: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(deadlines.JAKARTA.key, moment), Date)
    return func.date(moment, "+7 hours")  # WIB has no daylight saving time


def _medians(session: Session, scope: ColumnElement[bool], end: Any) -> dict[str | None, float]:
    """Median hours from creation to ``end`` per agency, over the reports in ``scope`` that reached it.

    SQLite has no percentile_cont: the middle row(s) of each agency by a window function.
    """
    hours = _hours(session, end, Report.created_at)
    where = and_(scope, end.is_not(None))
    ranked = select(Report.agency.label("agency"), hours.label("hours"),
                    func.row_number().over(partition_by=Report.agency, order_by=hours).label("n"),
                    func.count().over(partition_by=Report.agency).label("total")).where(where).subquery()
    middle = select(ranked.c.agency, func.avg(ranked.c.hours)).where(
        ranked.c.n.in_([(ranked.c.total + 1) // 2, (ranked.c.total + 2) // 2])).group_by(ranked.c.agency)
    return {code: float(value) for code, value in session.execute(middle) if value is not None}


def figures(session: Session, codes: list[str], central: bool, today: date, days: int) -> list[AgencyRow]:
    """The board's rows: ``codes`` in order, then the central queue (PUSAT) when ``central``."""
    keys: list[str | None] = [*codes, *([None] if central else [])]
    rows: dict[str | None, AgencyRow] = {key: AgencyRow(key or CENTRAL) for key in keys}
    if not keys:
        return []
    scope = _agency_in(Report.agency, codes, central)
    since = period_start(today, days)
    overdue = overdue_clause(today)

    # Two scans, each of what it needs: the open reports (few, once a surge is answered) for
    # today's state, the period's reports (an index on created_at) for how fast they were answered.
    current = select(
        Report.agency, func.count(),
        func.sum(case((and_(Report.status != FOLLOWED_UP, Report.next_due == today), 1), else_=0)),
        func.sum(case((overdue, 1), else_=0)),
        func.min(case((overdue, Report.next_due), else_=None)),
    ).where(scope, Report.status.in_(OPEN)).group_by(Report.agency)
    for code, open_, due_today, late, oldest in session.execute(current):
        row = rows[code]
        row.open, row.due_today, row.overdue = int(open_ or 0), int(due_today or 0), int(late or 0)
        row.oldest_due = date.fromisoformat(oldest) if isinstance(oldest, str) else oldest  # SQLite: text
        if row.oldest_due is not None:
            row.late_days = late_days(row.oldest_due, today)

    in_period = and_(scope, Report.created_at >= since)
    followed_local = _jakarta_date(session, Report.followed_up_at)
    decided = or_(Report.followed_up_at.is_not(None), Report.followup_due < today)
    in_time = and_(Report.followed_up_at.is_not(None), followed_local <= Report.followup_due)
    columns: list[Any] = [func.count(), func.sum(case((decided, 1), else_=0)), func.sum(case((in_time, 1), else_=0))]
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # percentile_cont skips the NULLs: reports not disposed / followed up yet
        columns += [func.percentile_cont(0.5).within_group(_hours(session, end, Report.created_at))
                    for end in (Report.disposed_at, Report.followed_up_at)]
    for code, count, due, met, *medians in session.execute(
            select(Report.agency, *columns).where(in_period).group_by(Report.agency)):
        row = rows[code]
        row.reports, row.followups_due, row.followups_in_time = int(count or 0), int(due or 0), int(met or 0)
        if medians:
            to_disposition, to_followup = medians
            row.median_hours_to_disposition = None if to_disposition is None else round(float(to_disposition), 1)
            row.median_hours_to_followup = None if to_followup is None else round(float(to_followup), 1)
    if not postgres:
        for code, value in _medians(session, in_period, Report.disposed_at).items():
            rows[code].median_hours_to_disposition = round(value, 1)
        for code, value in _medians(session, in_period, Report.followed_up_at).items():
            rows[code].median_hours_to_followup = round(value, 1)

    for code, level, count in session.execute(
            select(Escalation.agency, Escalation.level, func.count())
            .where(_agency_in(Escalation.agency, codes, central), Escalation.created_at >= since)
            .group_by(Escalation.agency, Escalation.level)):
        rows[code].escalations[level] = count
    for code, count in session.execute(
            select(CoordinationAction.agency, func.count())
            .outerjoin(CoordinationAnswer, CoordinationAnswer.action_id == CoordinationAction.id)
            .where(CoordinationAction.agency.in_(codes), CoordinationAnswer.id.is_(None))
            .group_by(CoordinationAction.agency)):
        rows[code].open_actions = count
    for code, count in session.execute(
            select(ReadinessAlert.agency, func.count())
            .where(_agency_in(ReadinessAlert.agency, codes, central), ReadinessAlert.created_at >= since)
            .group_by(ReadinessAlert.agency)):
        if code in rows:
            rows[code].alerts = count
    return [rows[key] for key in keys]


def totals(rows: list[AgencyRow]) -> AgencyRow:
    """The board's last line: counts added up (medians are not additive and stay empty)."""
    total = AgencyRow("")
    for row in rows:
        total.open += row.open
        total.due_today += row.due_today
        total.overdue += row.overdue
        total.reports += row.reports
        total.followups_due += row.followups_due
        total.followups_in_time += row.followups_in_time
        total.open_actions += row.open_actions
        total.alerts += row.alerts
        for level, count in row.escalations.items():
            total.escalations[level] = total.escalations.get(level, 0) + count
        if row.oldest_due and (total.oldest_due is None or row.oldest_due < total.oldest_due):
            total.oldest_due, total.late_days = row.oldest_due, row.late_days
    return total


@dataclass
class OverdueReport:
    """A line of the drill-down: an overdue report, how late, and the escalation it reached."""

    report: Report
    late_days: int
    level: int


def overdue_reports(session: Session, code: str | None, today: date) -> list[OverdueReport]:
    """An agency's (None: the central queue's) overdue reports, the latest deadline missed longest ago first."""
    reports = list(session.scalars(
        select(Report).where(Report.agency.is_(None) if code is None else Report.agency == code,
                             overdue_clause(today))
        .order_by(Report.next_due, Report.id).limit(OVERDUE_LIST_MAX)))
    levels: dict[int, int] = {}
    if reports:
        levels = dict(session.execute(
            select(Escalation.report_id, func.max(Escalation.level))
            .where(Escalation.report_id.in_([r.id for r in reports])).group_by(Escalation.report_id)).all())
    return [OverdueReport(r, late_days(r.next_due, today), levels.get(r.id, 0)) for r in reports]


def late_days(due: date, today: date) -> int:
    """Working days from ``due`` to ``today``, computed once per pair (a list shares a few due dates)."""
    key = (due, today, id(deadlines.overrides()))
    value = _LATE.get(key)
    if value is None:
        if len(_LATE) > 10_000:
            _LATE.clear()
        value = _LATE[key] = deadlines.working_days_between(due, today)
    return value


_LATE: dict[tuple[date, date, int], int] = {}


def recent_alerts(session: Session, codes: list[str], central: bool, since: datetime,
                  limit: int = 20) -> list[ReadinessAlert]:
    """Readiness alerts raised since ``since`` for the board's agencies (and the gateway's, for central)."""
    return list(session.scalars(
        select(ReadinessAlert).where(_agency_in(ReadinessAlert.agency, codes, central),
                                     ReadinessAlert.created_at >= since)
        .order_by(ReadinessAlert.id.desc()).limit(limit)))
