"""Per-agency figures for coordinators: open, overdue, escalations, median times to act."""

from __future__ import annotations

import statistics
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from ..models import Escalation, Report
from ..registry import Registry
from .scope import CENTRAL, Principal, monitored
from .statuses import OPEN, overdue_clause


def _in_scope(column: Any, codes: frozenset[str], central: bool) -> ColumnElement[bool]:
    conditions = [column.in_(sorted(codes))] if codes else []
    if central:
        conditions.append(column.is_(None))
    return or_(*conditions) if conditions else column.in_([])


def _median_hours(pairs: list[tuple[datetime, datetime]]) -> float | None:
    hours = [(end - start).total_seconds() / 3600 for start, end in pairs]
    return round(statistics.median(hours), 1) if hours else None


def figures(session: Session, registry: Registry, principal: Principal, since: datetime,
            today: date) -> list[dict[str, Any]]:
    """One row per agency in the caller's view (the central queue as PUSAT for the admin and ``*`` watchers).

    open and overdue are as of today; escalations and medians cover reports
    and escalations created since ``since``.
    """
    codes, central = monitored(registry, principal)
    keys: list[str | None] = [*sorted(codes), *([None] if central else [])]
    rows: dict[str | None, dict[str, Any]] = {
        code: {"agency": code or CENTRAL,
               "name": registry.agencies[code].name if code else registry.agency_label(None),
               "open": 0, "overdue": 0, "reports": 0, "escalations": {"level1": 0, "level2": 0},
               "median_hours_to_disposition": None, "median_hours_to_followup": None}
        for code in keys
    }
    scope = _in_scope(Report.agency, codes, central)
    for code, count in session.execute(select(Report.agency, func.count()).where(
            scope, Report.status.in_(OPEN)).group_by(Report.agency)):
        rows[code]["open"] = count
    for code, count in session.execute(select(Report.agency, func.count()).where(
            scope, overdue_clause(today)).group_by(Report.agency)):
        rows[code]["overdue"] = count
    for code, level, count in session.execute(
            select(Escalation.agency, Escalation.level, func.count())
            .where(_in_scope(Escalation.agency, codes, central), Escalation.created_at >= since)
            .group_by(Escalation.agency, Escalation.level)):
        rows[code]["escalations"][f"level{level}"] = count
    to_disposition: dict[str | None, list[tuple[datetime, datetime]]] = {k: [] for k in keys}
    to_followup: dict[str | None, list[tuple[datetime, datetime]]] = {k: [] for k in keys}
    for code, created, disposed, followed in session.execute(
            select(Report.agency, Report.created_at, Report.disposed_at, Report.followed_up_at)
            .where(scope, Report.created_at >= since)):
        rows[code]["reports"] += 1
        if disposed is not None:
            to_disposition[code].append((created, disposed))
        if followed is not None:
            to_followup[code].append((created, followed))
    for code in keys:
        rows[code]["median_hours_to_disposition"] = _median_hours(to_disposition[code])
        rows[code]["median_hours_to_followup"] = _median_hours(to_followup[code])
    return [rows[code] for code in keys]
