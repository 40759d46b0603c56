"""The inbox's queries: queues with counts, filters and search from the URL, keyset pages, CSV rows.

Nothing here scopes: the session does (``access.scoped_sessions``), so the page,
the export and the bulk actions cannot see more than the viewer may.
Filters are plain values parsed from the query string, so a view can be
bookmarked; a value the page cannot use is reported (in the user's language)
and ignored, never a 500.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, true
from sqlalchemy.orm import Session

from .. import deadlines, phone, tracking
from ..agencies import views
from ..agencies.scope import CENTRAL, Principal, reporter_visible
from ..agencies.statuses import CLOSED, FOLLOWED_UP, OPEN, RECEIVED, STATUSES, overdue_clause
from ..models import NO_DUE_DATE, Report
from ..registry import KINDS, Registry
from .access import Viewer

ReportQuery = Select[Any]  # select(Report) with the filters (SQLAlchemy 2.0 and 2.1 type it differently)
PAGE_SIZE = 50
SEARCH_MAX = 100

# Queues (folders) in the order the page shows them; "open" is the landing view.
QUEUES = ("open", "needs_disposition", "new", "due_today", "overdue", "waiting_citizen", "done", "all")
CHANNELS = ("twilio", "kannel", "modem", "console")


@dataclass
class Filters:
    """What the URL asks for; ``problems`` are (message key, value) pairs the page reports."""

    queue: str = "open"
    statuses: list[str] = field(default_factory=list)
    kind: str | None = None
    category: str | None = None
    special: bool | None = None
    channel: str | None = None
    unit: str | None = None  # an agency code in scope, or CENTRAL
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query string of this view (for links: other queue, next page, export)."""
        values: dict[str, Any] = {
            "queue": self.queue,
            "status": ",".join(self.statuses) or None,
            "kind": self.kind, "category": self.category,
            "special": None if self.special is None else ("1" if self.special else "0"),
            "channel": self.channel, "unit": self.unit,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "q": self.q or None,
        }
        values.update(changes)
        if values["queue"] == ("all" if values["q"] else "open"):
            values["queue"] = None  # the default: a clean URL
        return {k: v for k, v in values.items() if v not in (None, "")}


def _date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def parse_filters(args: Mapping[str, str], registry: Registry, viewer: Viewer, units: list[str]) -> Filters:
    """Filters from the query string; unusable values become ``problems`` and are ignored."""
    f = Filters()
    # A search without a queue looks everywhere: a tracking number must be found whatever its status.
    queue = args.get("queue") or ("all" if (args.get("q") or "").strip() else "open")
    if queue in QUEUES:
        f.queue = queue
    else:
        f.problems.append(("queue", queue))
    for status in (s for s in (args.get("status") or "").split(",") if s):
        (f.statuses.append(status) if status in STATUSES else f.problems.append(("status", status)))
    kind = args.get("kind")
    if kind:
        (setattr(f, "kind", kind) if kind in KINDS else f.problems.append(("kind", kind)))
    category = (args.get("category") or "").strip()
    if category:
        f.category = category[:64]
    special = args.get("special")
    if special in ("1", "0"):
        f.special = special == "1"
    elif special:
        f.problems.append(("special", special))
    channel = args.get("channel")
    if channel:
        (setattr(f, "channel", channel) if channel in CHANNELS else f.problems.append(("channel", channel)))
    unit = (args.get("unit") or "").upper()
    if unit:
        allowed = units + ([CENTRAL] if viewer.central else [])
        (setattr(f, "unit", unit) if unit in allowed else f.problems.append(("unit", unit)))
    for name, attr in (("from", "date_from"), ("to", "date_to")):
        raw = args.get(name)
        if raw:
            value = _date(raw)
            (setattr(f, attr, value) if value else f.problems.append(("date", raw)))
    f.q = " ".join((args.get("q") or "").split())[:SEARCH_MAX]
    return f


def _jakarta_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), deadlines.JAKARTA).astimezone(UTC)


def queue_condition(queue: str, viewer: Viewer, today: date) -> ColumnElement[bool]:
    """Which reports a queue holds (README "Agency workspace" defines them)."""
    open_ = Report.status.in_(OPEN)
    if queue == "needs_disposition":
        # The central queue for a central admin; for an agency what it has not verified or disposed yet.
        return and_(open_, Report.agency.is_(None) if viewer.central
                    else and_(Report.agency.is_not(None), Report.disposed_at.is_(None)))
    if queue == "new":
        return Report.status == RECEIVED
    if queue == "due_today":
        return and_(open_, Report.status != FOLLOWED_UP, Report.next_due == today)
    if queue == "overdue":
        return overdue_clause(today)
    if queue == "waiting_citizen":
        return Report.status == FOLLOWED_UP
    if queue == "done":
        return Report.status.in_(CLOSED)
    if queue == "all":
        return true()
    return open_


def queue_counts(session: Session, viewer: Viewer, today: date) -> dict[str, int]:
    """How many reports each queue holds, in one scan of the viewer's reports."""
    columns = [func.count().filter(queue_condition(q, viewer, today)).label(q) for q in QUEUES]
    row = session.execute(select(*columns).select_from(Report)).one()
    return {q: int(row._mapping[q] or 0) for q in QUEUES}


def search_condition(q: str, viewer: Viewer, region: str) -> ColumnElement[bool] | None:
    """A tracking number, a reporter's number (central admins only), or words of the text."""
    if not q:
        return None
    digits = q.replace(" ", "")
    if digits.isdigit() and tracking.is_valid(digits):
        return Report.tracking_number == digits
    if viewer.central and digits.lstrip("+").isdigit() and len(digits) >= 8:
        return Report.reporter == phone.normalize(digits, region)
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return Report.text.ilike(f"%{escaped}%", escape="\\")


def filtered(f: Filters, viewer: Viewer, today: date, region: str) -> ReportQuery:
    """``SELECT reports`` for these filters (the session adds the scope)."""
    query = select(Report).where(queue_condition(f.queue, viewer, today))
    if f.statuses:
        query = query.where(Report.status.in_(f.statuses))
    if f.kind:
        query = query.where(Report.kind == f.kind)
    if f.category:
        query = query.where(Report.category == f.category)
    if f.special is not None:
        query = query.where(Report.special.is_(f.special))
    if f.channel:
        query = query.where(Report.channel == f.channel)
    if f.unit:
        query = query.where(Report.agency.is_(None) if f.unit == CENTRAL else Report.agency == f.unit)
    if f.date_from:
        query = query.where(Report.created_at >= _jakarta_midnight(f.date_from))
    if f.date_to:
        query = query.where(Report.created_at < _jakarta_midnight(f.date_to + timedelta(days=1)))
    condition = search_condition(f.q, viewer, region)
    if condition is not None:
        query = query.where(condition)
    return query


# --------------------------------------------------------------------------- keyset pages

def _newest_first(f: Filters) -> bool:
    return f.queue == "done"  # closed reports have no deadline left: newest first


def ordered(query: ReportQuery, f: Filters) -> ReportQuery:
    """The page order: nearest deadline first (then oldest), or newest first for closed reports."""
    if _newest_first(f):
        return query.order_by(Report.id.desc())
    return query.order_by(Report.next_due, Report.id)


def after(query: ReportQuery, f: Filters, cursor: str | None) -> ReportQuery:
    """Rows after ``cursor`` (from ``cursor_of``); an unreadable cursor starts at the top."""
    if not cursor:
        return query
    due_raw, _, id_raw = cursor.partition("_")
    if not id_raw.isdigit():
        return query
    last_id = int(id_raw)
    if _newest_first(f):
        return query.where(Report.id < last_id)
    due = _date(due_raw)
    if due is None:
        return query
    return query.where(or_(Report.next_due > due, and_(Report.next_due == due, Report.id > last_id)))


def cursor_of(report: Report) -> str:
    """The position after ``report`` in its page order."""
    return f"{report.next_due.isoformat()}_{report.id}"


def page(session: Session, f: Filters, viewer: Viewer, today: date, region: str,
         cursor: str | None) -> tuple[list[Report], str | None]:
    """One page of reports and the cursor of the next one (None at the end)."""
    query = after(ordered(filtered(f, viewer, today, region), f), f, cursor).limit(PAGE_SIZE + 1)
    rows: list[Report] = list(session.scalars(query))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, cursor_of(rows[-1]) if more and rows else None


# --------------------------------------------------------------------------- deadline clocks

@dataclass(frozen=True)
class Clock:
    """A row's deadline: ``state`` is ok/today/late/waiting/closed/none, ``days`` working days."""

    state: str
    days: int = 0
    due: date | None = None


def clock(report: Report, today: date) -> Clock:
    """How far the report's next deadline is, in working days from the holiday calendar."""
    if report.status in CLOSED:
        return Clock("closed")
    due = report.next_due
    if due is None or due == NO_DUE_DATE:
        return Clock("none")
    if report.status == FOLLOWED_UP:
        return Clock("waiting", deadlines.working_days_between(today, due), due)
    if due > today:
        return Clock("ok", deadlines.working_days_between(today, due), due)
    if due == today:
        return Clock("today", 0, due)
    return Clock("late", deadlines.working_days_between(due, today), due)


# --------------------------------------------------------------------------- CSV export

CSV_COLUMNS = ("tracking_number", "created_at", "status", "kind", "category", "special", "agency", "channel",
               "reporter", "text", "disposition_due", "followup_due", "next_due", "overdue")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"^\+\d{6,15}$")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting like a formula runs as one in a spreadsheet (CSV injection):
    # a citizen's SMS "=HYPERLINK(…)" must stay text. A phone number (+62…) is only a number.
    if text.startswith(_FORMULA_START) and not _PHONE.match(text):
        return "'" + text
    return text


def csv_rows(session: Session, query: ReportQuery, registry: Registry, principal: Principal,
             today: date) -> Iterator[str]:
    """The export as CSV text chunks: a header, then the rows streamed from the database."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield "\ufeff" + buffer.getvalue()  # the BOM makes spreadsheet programs read UTF-8
    report: Report
    for report in session.scalars(query.execution_options(yield_per=1000)):
        buffer.seek(0)
        buffer.truncate()
        summary = views.summary(report, registry, principal, today)
        writer.writerow([_cell(v) for v in (
            report.tracking_number,
            report.created_at.astimezone(deadlines.JAKARTA).strftime("%Y-%m-%d %H:%M"),
            report.status, report.kind, report.category, "ya" if report.special else "tidak",
            summary["agency"], report.channel,
            report.reporter if reporter_visible(principal, report) else "",
            report.text,
            views.iso(report.disposition_due), views.iso(report.followup_due),
            "" if report.next_due == NO_DUE_DATE else views.iso(report.next_due),
            ",".join(summary["deadlines"]["overdue"]),
        )])
        yield buffer.getvalue()
