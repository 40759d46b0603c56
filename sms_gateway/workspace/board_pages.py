"""The board's pages: ``/board``, an agency's overdue reports, intervensi, teguran, answers, rosters.

Who sees what comes from ``access``: central admins and coordinators open the
board (anybody else gets 404), a coordinator reads the reports of the
agencies it watches and may post only the board's actions (``may_post``,
checked for every POST here, before any view runs).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import deadlines, outbox, reports
from ..agencies import lifecycle, rosters
from ..agencies.scope import CENTRAL, units
from ..models import MAX_ID, CoordinationAction, ReportView, RosterEntry, utcnow
from . import board, coordination
from .access import AGENCY_ADMIN, CENTRAL_ADMIN, Viewer, may_post, monitored_by
from .messages import refusal
from .pages import SAFE_METHODS, _registry, _report, _settings, blueprint, db, signed_in, viewer


@blueprint.before_request
def _coordinators_read() -> None:
    # Runs after pages._before (registered later), when g.viewer is known.
    if request.method not in SAFE_METHODS and not may_post(g.get("viewer"), request.endpoint):
        abort(404)


@blueprint.after_request
def _remember_view(response: Response) -> Response:
    # The report page itself stays as it is: a shown page is remembered here.
    v = g.get("viewer")
    if request.endpoint == "workspace.report_page" and response.status_code == 200 and v is not None:
        number = (request.view_args or {}).get("number", "")
        report = reports.find_by_tracking(db(), number)
        if report is not None:
            record_view(v, report.id)
    return response


def record_view(viewer_: Viewer, report_id: int) -> None:
    """Remember that ``viewer_`` opened the report (once per person; later views cost one index probe)."""
    session = db()
    values = {"report_id": report_id, "user_id": viewer_.user_id, "created_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = pg_insert(ReportView).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite_insert(ReportView).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - the project runs on PostgreSQL and SQLite
        statement = insert(ReportView).values(values)
    session.execute(statement)
    session.commit()


def _board_scope() -> tuple[list[str], bool]:
    v = viewer()
    if not v.monitors:
        abort(404)  # an agency's people never see the board: like a page that does not exist
    codes, central = monitored_by(_registry(), v)
    return sorted(codes), central


@blueprint.get("/board")
@signed_in
def board_page() -> ResponseReturnValue:
    """Per agency: open, due today, overdue, medians, share in time, escalations, actions, alerts."""
    codes, central = _board_scope()
    days = board.period_days(request.args.get("days"))
    today = deadlines.today()
    rows = board.figures(db(), codes, central, today, days)
    # The agencies that need a coordinator first: most overdue, then most open; PUSAT stays last.
    rows[:len(codes)] = sorted(rows[:len(codes)], key=lambda r: (-r.overdue, -r.open, r.code))
    alerts = board.recent_alerts(db(), codes, central, utcnow() - timedelta(days=1))
    return render_template("board.html", rows=rows, total=board.totals(rows), days=days, periods=board.PERIODS,
                           today=today, alerts=alerts)


def _board_agency(code: str) -> str | None:
    codes, central = _board_scope()
    code = code.upper()
    if code == CENTRAL and central:
        return None
    if code not in codes:
        abort(404)
    return code


@blueprint.get("/board/<code>")
@signed_in
def board_agency(code: str) -> ResponseReturnValue:
    """An agency's overdue reports (each links to its page), its intervensi/teguran, a teguran form."""
    agency = _board_agency(code)
    today = deadlines.today()
    rows = board.overdue_reports(db(), agency, today)
    actions = coordination.for_agency(db(), agency) if agency else []
    return render_template("board_agency.html", code=agency or CENTRAL, agency=agency, rows=rows, today=today,
                           actions=actions, limit=board.OVERDUE_LIST_MAX,
                           may_reprimand=coordination.may_coordinate(_registry(), viewer(), agency),
                           errors={}, values={})


@blueprint.post("/board/<code>/teguran")
@signed_in
def reprimand(code: str) -> ResponseReturnValue:
    """A teguran to the agency, optionally about one of its reports."""
    agency = _board_agency(code)
    number = request.form.get("report", "").strip()
    report = _report(number) if number else None
    if report is not None and report.agency != agency:
        abort(404)
    try:
        done = coordination.record(db(), _settings(), _registry(), viewer(), kind=coordination.TEGURAN,
                                   agency=agency, reason=request.form.get("reason"), report=report)
    except lifecycle.LifecycleError as exc:
        db().rollback()
        if exc.status == 404:
            abort(404)
        return render_template("board_agency.html", code=agency or CENTRAL, agency=agency,
                               rows=board.overdue_reports(db(), agency, deadlines.today()),
                               actions=coordination.for_agency(db(), agency) if agency else [],
                               limit=board.OVERDUE_LIST_MAX, today=deadlines.today(),
                               may_reprimand=coordination.may_coordinate(_registry(), viewer(), agency),
                               errors={"teguran": refusal(exc)}, values=request.form.to_dict()), 422
    db().commit()
    outbox.dispatch(_settings(), done.messages)
    flash(_("Teguran kepada %(agency)s dicatat dan dikirim.", agency=agency), "ok")
    return redirect(url_for("workspace.board_agency", code=code.upper()))


@blueprint.post("/reports/<number>/intervensi")
@signed_in
def intervene(number: str) -> ResponseReturnValue:
    """An intervensi: ask the agency holding the report to act on it, with a reason."""
    report = _report(number, lock=True)
    try:
        done = coordination.record(db(), _settings(), _registry(), viewer(), kind=coordination.INTERVENSI,
                                   agency=report.agency, reason=request.form.get("reason"), report=report)
    except lifecycle.LifecycleError as exc:
        db().rollback()
        if exc.status == 404:
            abort(404)
        flash(refusal(exc), "error")
        return redirect(url_for("workspace.report_page", number=number) + "#coordination")
    db().commit()
    outbox.dispatch(_settings(), done.messages)
    flash(_("Intervensi kepada %(agency)s dicatat dan dikirim.", agency=report.agency), "ok")
    return redirect(url_for("workspace.report_page", number=number) + "#coordination")


@blueprint.post("/coordination/<int:action_id>/answer")
@signed_in
def answer_coordination(action_id: int) -> ResponseReturnValue:
    """The agency answers an intervensi or teguran: the banner goes, the coordinator is told."""
    action = db().get(CoordinationAction, action_id) if action_id <= MAX_ID else None
    if action is None or not coordination.may_answer(_registry(), viewer(), action):
        abort(404)
    try:
        done = coordination.answer(db(), _settings(), _registry(), viewer(), action, request.form.get("text"))
    except lifecycle.LifecycleError as exc:
        db().rollback()
        flash(refusal(exc), "error")
        return redirect(_back())
    db().commit()
    outbox.dispatch(_settings(), done.messages)
    flash(_("Jawaban untuk %(kind)s dikirim ke koordinator.", kind=action.kind), "ok")
    return redirect(_back())


def _back() -> str:
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("workspace.inbox_page")


# --------------------------------------------------------------------------- what other pages show

@blueprint.app_template_global()
def coordination_banners() -> list[coordination.Shown]:
    """Unanswered intervensi/teguran for the viewer's agency and units (the inbox's banners)."""
    v = g.get("viewer")
    registry = _registry()
    if v is None or v.read_only or v.agency not in registry.agencies:
        return []
    return coordination.open_for(db(), sorted(units(registry, v.agency)))


@blueprint.app_template_global()
def report_coordination(report: Any) -> dict[str, Any]:
    """The report page's intervensi/teguran: what was sent, and whether the viewer may send one."""
    v = viewer()
    return {"actions": coordination.on_report(db(), report),
            "may_intervene": coordination.may_coordinate(_registry(), v, report.agency),
            "may_answer": v.role in ("staff", AGENCY_ADMIN)}


# --------------------------------------------------------------------------- rosters

WEEKDAY_KEYS = ("1", "2", "3", "4", "5", "6", "7")


def _roster_agencies() -> list[str]:
    v = viewer()
    registry = _registry()
    if v.role == CENTRAL_ADMIN:
        return [CENTRAL, *sorted(registry.agencies)]
    if v.role == AGENCY_ADMIN and v.agency in registry.agencies:
        return sorted(units(registry, v.agency))
    abort(404)


def _roster_page(agency: str, status: int = 200, **values: Any) -> ResponseReturnValue:
    today = deadlines.today()
    entries = rosters.entries(db(), agency)
    on_duty = {e.id for e in rosters.on_duty(db(), agency, today)}
    return render_template("admin_roster.html", agency=agency, agencies=_roster_agencies(), entries=entries,
                           on_duty=on_duty, today=today, weekdays=WEEKDAY_KEYS, errors=values.pop("errors", {}),
                           values=values.pop("form", {}), **values), status


def _chosen_agency() -> str:
    agencies = _roster_agencies()
    own = viewer().agency
    chosen = (request.values.get("agency") or (own if own in agencies else agencies[0])).upper()
    if chosen not in agencies:
        abort(404)
    return chosen


@blueprint.get("/admin/roster")
@signed_in
def roster() -> ResponseReturnValue:
    """Who is on duty for the agency (and its units) on which days."""
    return _roster_page(_chosen_agency())


@blueprint.post("/admin/roster")
@signed_in
def roster_add() -> ResponseReturnValue:
    """Add a person to the roster."""
    agency = _chosen_agency()
    form = request.form
    try:
        entry = rosters.check(name=form.get("name", ""), number=form.get("number", ""), email=form.get("email", ""),
                              weekdays=form.getlist("weekday"), dates=form.get("dates", ""),
                              region=_settings().DEFAULT_REGION)
    except rosters.RosterError as exc:
        return _roster_page(agency, 422, errors={"roster": _roster_refusal(exc)}, form=form.to_dict())
    rosters.add(db(), agency, entry, viewer().email)
    db().commit()
    flash(_("%(name)s ditambahkan ke jadwal piket.", name=entry.name), "ok")
    return redirect(url_for("workspace.roster", agency=agency))


@blueprint.post("/admin/roster/<int:entry_id>/delete")
@signed_in
def roster_delete(entry_id: int) -> ResponseReturnValue:
    """Take a person off the roster."""
    agencies = _roster_agencies()
    row = db().get(RosterEntry, entry_id) if entry_id <= MAX_ID else None
    if row is None or row.agency not in agencies:
        abort(404)
    db().delete(row)
    db().commit()
    flash(_("%(name)s dihapus dari jadwal piket.", name=row.name), "ok")
    return redirect(url_for("workspace.roster", agency=row.agency))


def _roster_refusal(exc: rosters.RosterError) -> str:
    texts = {
        "bad_number": lambda p: _("%(number)s bukan nomor telepon.", number=p["number"]),
        "bad_date": lambda p: _("%(value)s bukan tanggal (TTTT-BB-HH).", value=p["value"]),
        "too_many_dates": lambda p: _("Paling banyak %(limit)s tanggal.", limit=p["limit"]),
        "required": lambda p: _("Nama wajib diisi."),
        "no_days": lambda p: _("Pilih hari atau isi tanggal piket."),
    }
    return texts[exc.key](exc.params)
