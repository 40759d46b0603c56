"""The disposition desk's pages (the desk itself: ``desk.py``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from .. import deadlines, reports
from ..agencies import lifecycle
from ..models import Report
from . import desk
from .access import Viewer
from .messages import refusal
from .pages import _registry, _settings, blueprint, db, signed_in, viewer

UNDO_TEXTS = {
    "unknown": lambda p: _("Tidak ada disposisi Anda yang bisa dibatalkan di laporan ini."),
    "changed": lambda p: _("Laporan sudah diubah lagi sejak disposisi itu; batalkan tidak bisa lagi."),
    "too_late": lambda p: _("Batas %(seconds)s detik untuk membatalkan sudah lewat; pemberitahuan sudah "
                            "dikirim. Disposisikan ulang dari halaman laporan bila perlu.",
                            seconds=p.get("seconds")),
    "already_sent": lambda p: _("Pemberitahuan disposisi sudah dikirim; pembatalan tidak bisa lagi."),
}


# The engine's reasons (rules/engine.py, English in the stored evidence), said in the page's language.
_TIE = re.compile(r"^tie at score (?P<score>\S+) between (?P<agencies>.+)$")
_LOW = re.compile(r"^best score (?P<score>\S+) \((?P<agency>[^)]+)\) is below min_score (?P<min>\S+)$")


def reason_text(rules: dict[str, Any]) -> str:
    """Why the engine did not decide, as a sentence for the desk."""
    reason = str(rules.get("reason") or "")
    if match := _TIE.match(reason):
        return _("Seri: %(agencies)s sama-sama mendapat skor %(score)s.", **match.groupdict())
    if match := _LOW.match(reason):
        return _("Skor tertinggi %(score)s (%(agency)s) di bawah ambang %(min)s.", **match.groupdict())
    if reason == "no rule matched":
        return _("Tidak ada aturan yang cocok.")
    if reason.startswith("every rule found was vetoed"):
        return _("Setiap aturan yang ditemukan dibatalkan oleh pengecualian atau tidak punya konteks yang disyaratkan.")
    if reason == "confident":
        return _("Aturan memilih %(agency)s.", agency=rules.get("agency") or "?")
    return reason


@blueprint.app_context_processor
def _desk_values() -> dict[str, Any]:
    return {"desk_allowed": lambda: desk.may_use(_registry(), g.get("viewer")), "desk_reason": reason_text}


def _desk_viewer() -> Viewer:
    if not desk.may_use(_registry(), g.get("viewer")):
        abort(404)
    return viewer()


def _on_desk(number: str) -> Report:
    report = reports.find_by_tracking(db(), number, lock=True)  # the session's scope applies
    if report is None:
        abort(404)
    return report


@blueprint.get("/desk")
@signed_in
def desk_page() -> ResponseReturnValue:
    """The disposition desk: what no rule routed, oldest deadline first, one key per guess."""
    v = _desk_viewer()
    registry = _registry()
    today = deadlines.today()
    last = session.get("desk_undo")
    undo_left = 0.0
    if last and last.get("user") == v.user_id:
        undo_left = (datetime.fromisoformat(last["until"]) - desk.now()).total_seconds()
    targets = desk.desk_units(registry, v)
    return render_template(
        "desk.html", rows=desk.rows(db(), registry, v, today), total=desk.count(db(), registry, v),
        targets=sorted(registry.agencies) if targets is None else targets,
        last=last if undo_left > 0 else None, undo_left=max(0.0, undo_left), undo_seconds=desk.UNDO_SECONDS)


@blueprint.post("/desk/dispose")
@signed_in
def desk_dispose() -> ResponseReturnValue:
    """Dispose one report from the desk; its notifications wait for the undo window."""
    v = _desk_viewer()
    registry, settings = _registry(), _settings()
    number = request.form.get("n", "")
    to = request.form.get("to", "").strip().upper()
    report = _on_desk(number)
    if db().scalar(select(Report.id).where(Report.id == report.id, desk.waiting(registry, v))) is None:
        db().rollback()
        flash(_("Laporan %(number)s sudah tidak di meja disposisi.", number=number), "warn")
        return redirect(url_for("workspace.desk_page"))
    try:
        if not to:
            raise lifecycle.LifecycleError(400, "to is required", "required", what="to")
        held = desk.dispose(db(), settings, registry, v, report, to, at=desk.now())
    except lifecycle.LifecycleError as exc:
        db().rollback()
        flash(refusal(exc), "error")
        return redirect(url_for("workspace.desk_page"))
    db().commit()
    desk.release(settings, held)
    session["desk_undo"] = {"user": v.user_id, "n": held.number, "event": held.event_id, "to": held.to,
                            "until": held.until.isoformat()}
    return redirect(url_for("workspace.desk_page"))


@blueprint.post("/desk/undo")
@signed_in
def desk_undo() -> ResponseReturnValue:
    """Take back a desk disposition within its window: nobody was told."""
    v = _desk_viewer()
    number = request.form.get("n", "")
    try:
        event_id = int(request.form.get("event", ""))
    except ValueError:
        abort(400)
    report = _on_desk(number)
    try:
        desk.undo(db(), v, report, event_id, at=desk.now())
    except desk.UndoRefused as exc:
        db().rollback()
        flash(UNDO_TEXTS[exc.key](exc.params), "error")
        return redirect(url_for("workspace.desk_page")), 409
    db().commit()
    session.pop("desk_undo", None)
    flash(_("Disposisi %(number)s dibatalkan: laporan kembali di meja, tidak ada pemberitahuan yang terkirim.",
            number=number), "ok")
    return redirect(url_for("workspace.desk_page"))
