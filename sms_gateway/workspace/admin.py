"""The agency admin's pages: staff accounts, canned answers, webhook settings and the delivery log.

An agency admin manages its own agency and its units; a central admin
everything. Anything outside that answers 404, like a report out of scope.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from ..agencies import push
from ..agencies.scope import delivery_visible
from ..agencies.statuses import STATUSES
from ..models import CannedAnswer, User, WebhookDelivery, utcnow
from . import accounts
from .access import AGENCY_ADMIN, assignable_roles, manageable_agencies, principal_for
from .messages import refusal
from .pages import _registry, _settings, blueprint, db, signed_in, viewer

F = TypeVar("F", bound=Callable[..., Any])
TITLE_MAX = 80
CANNED_MAX = 1000


def admin_only(view: F) -> F:
    """Agency admins and central admins; anybody else gets 404."""

    @wraps(view)
    @signed_in
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not viewer().manages_staff:
            abort(404)
        return view(*args, **kwargs)

    return cast(F, wrapper)


# --------------------------------------------------------------------------- staff

def _managed_user(user_id: int) -> User:
    user = db().get(User, user_id)
    agencies = manageable_agencies(_registry(), viewer())
    if user is None or (agencies is not None and user.agency not in agencies):
        abort(404)
    return user


def _staff_page(status: int = 200, **values: Any) -> ResponseReturnValue:
    agencies = manageable_agencies(_registry(), viewer())
    query = select(User).order_by(User.agency, User.email)
    if agencies is not None:
        query = query.where(User.agency.in_(agencies))
    users = list(db().scalars(query))
    return render_template("admin_staff.html", users=users, agencies=agencies or sorted(_registry().agencies),
                           roles=assignable_roles(viewer()), **values), status


@blueprint.get("/admin/staff")
@admin_only
def staff() -> ResponseReturnValue:
    """Accounts of the agency and its units."""
    return _staff_page()


@blueprint.post("/admin/staff")
@admin_only
def create_staff() -> ResponseReturnValue:
    """A new account; its one-time set-password link is shown once, to hand to the person."""
    role = request.form.get("role", "")
    agency = request.form.get("agency") or None
    agencies = manageable_agencies(_registry(), viewer())
    form = request.form.to_dict()
    if role not in assignable_roles(viewer()):
        return _staff_page(422, error=_("Peran %(role)s tidak bisa Anda berikan.", role=role), form=form)
    if role not in ("central", "operator") and agencies is not None and agency not in agencies:
        return _staff_page(422, error=_("Anda hanya mengelola akun instansi Anda dan unitnya."), form=form)
    try:
        user = accounts.create_user(db(), _registry(), email=request.form.get("email", ""),
                                    name=request.form.get("name", ""), role=role,
                                    agency=None if role in ("central", "operator") else agency,
                                    created_by=viewer().email)
    except accounts.AccountError as exc:
        db().rollback()
        return _staff_page(422, error=refusal(exc), form=form)
    secret = accounts.issue_link(db(), _settings(), user)
    db().commit()
    return _staff_page(201, new_link=accounts.link_url(_settings(), _registry(), user, secret), new_user=user)


@blueprint.post("/admin/staff/<int:user_id>/disable")
@admin_only
def disable_staff(user_id: int) -> ResponseReturnValue:
    """Disable an account: its sessions end at once."""
    user = _managed_user(user_id)
    if user.id == viewer().user_id:
        flash(_("Anda tidak bisa menonaktifkan akun Anda sendiri."), "error")
    elif accounts.disable(db(), user):
        db().commit()
        flash(_("Akun %(email)s dinonaktifkan.", email=user.email), "ok")
    return redirect(url_for("workspace.staff"))


@blueprint.post("/admin/staff/<int:user_id>/enable")
@admin_only
def enable_staff(user_id: int) -> ResponseReturnValue:
    """Enable an account again."""
    user = _managed_user(user_id)
    if accounts.enable(user):
        db().commit()
        flash(_("Akun %(email)s diaktifkan kembali.", email=user.email), "ok")
    return redirect(url_for("workspace.staff"))


@blueprint.post("/admin/staff/<int:user_id>/link")
@admin_only
def link_staff(user_id: int) -> ResponseReturnValue:
    """A new set-password link (a forgotten password); earlier links stop working."""
    user = _managed_user(user_id)
    secret = accounts.issue_link(db(), _settings(), user)
    db().commit()
    return _staff_page(new_link=accounts.link_url(_settings(), _registry(), user, secret), new_user=user)


# --------------------------------------------------------------------------- canned answers

def _own_answers() -> Any:
    agency = viewer().agency
    return CannedAnswer.agency.is_(None) if viewer().central else CannedAnswer.agency == agency


def _answers_page(status: int = 200, **values: Any) -> ResponseReturnValue:
    rows = list(db().scalars(select(CannedAnswer).where(_own_answers())
                             .order_by(CannedAnswer.status, CannedAnswer.title)))
    return render_template("admin_answers.html", answers=rows, statuses=("*", *STATUSES[1:]), **values), status


def _answer_form() -> tuple[str, str, str, str | None]:
    status = request.form.get("status", "")
    title = " ".join(request.form.get("title", "").split())
    text = " ".join(request.form.get("text", "").split())
    error = None
    if status not in ("*", *STATUSES):
        error = _("Pilih status tempat jawaban ini ditawarkan.")
    elif not title or not text:
        error = _("Judul dan teks jawaban wajib diisi.")
    elif len(title) > TITLE_MAX or len(text) > CANNED_MAX:
        error = _("Judul paling banyak %(title)s karakter, teks paling banyak %(text)s.", title=TITLE_MAX,
                  text=CANNED_MAX)
    return status, title, text, error


@blueprint.get("/admin/answers")
@admin_only
def canned_answers() -> ResponseReturnValue:
    """Canned answers per status, offered on the report page."""
    return _answers_page()


@blueprint.post("/admin/answers")
@admin_only
def add_canned_answer() -> ResponseReturnValue:
    """Add a canned answer."""
    status, title, text, error = _answer_form()
    if error:
        return _answers_page(422, error=error, form=request.form.to_dict())
    db().add(CannedAnswer(agency=viewer().agency, status=status, title=title, text=text,
                          updated_by=viewer().email, updated_at=utcnow()))
    db().commit()
    flash(_("Jawaban siap pakai disimpan."), "ok")
    return redirect(url_for("workspace.canned_answers"))


def _own_answer(answer_id: int) -> CannedAnswer:
    row = db().scalar(select(CannedAnswer).where(CannedAnswer.id == answer_id, _own_answers()))
    if row is None:
        abort(404)
    return row


@blueprint.post("/admin/answers/<int:answer_id>")
@admin_only
def edit_canned_answer(answer_id: int) -> ResponseReturnValue:
    """Change a canned answer."""
    row = _own_answer(answer_id)
    status, title, text, error = _answer_form()
    if error:
        return _answers_page(422, error=error, editing=answer_id, form=request.form.to_dict())
    row.status, row.title, row.text, row.updated_by = status, title, text, viewer().email
    db().commit()
    flash(_("Jawaban siap pakai diperbarui."), "ok")
    return redirect(url_for("workspace.canned_answers"))


@blueprint.post("/admin/answers/<int:answer_id>/delete")
@admin_only
def delete_canned_answer(answer_id: int) -> ResponseReturnValue:
    """Remove a canned answer (answers already sent stay in the reports' history)."""
    db().delete(_own_answer(answer_id))
    db().commit()
    flash(_("Jawaban siap pakai dihapus."), "ok")
    return redirect(url_for("workspace.canned_answers"))


# --------------------------------------------------------------------------- webhook

@blueprint.get("/admin/webhook")
@admin_only
def webhook() -> str:
    """The agency's webhook (set in prefixes.yaml), its signing key, and the delivery log with replay."""
    registry, settings = _registry(), _settings()
    principal = principal_for(viewer())
    agencies = manageable_agencies(registry, viewer())
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(100)
    if agencies is not None:
        query = query.where(WebhookDelivery.recipient.in_(agencies))
    state = request.args.get("state")
    if state in (push.PENDING, push.DELIVERING, push.DELIVERED, push.FAILED):
        query = query.where(WebhookDelivery.state == state)
    rows = [r for r in db().scalars(query) if delivery_visible(registry, principal, r.recipient)]
    code = viewer().agency
    show_key = viewer().role == AGENCY_ADMIN and code is not None
    return render_template("admin_webhook.html", deliveries=rows, state=state,
                           url=push.webhook_url(registry, code, push.AGENCY) if code else None,
                           key=push.signing_key(settings, code) if show_key and code else None,
                           prefixes_file=registry.path)


@blueprint.post("/admin/webhook/<int:delivery_id>/replay")
@admin_only
def replay(delivery_id: int) -> ResponseReturnValue:
    """Send a delivery again (same delivery id, fresh signature)."""
    row = db().get(WebhookDelivery, delivery_id)
    if row is None or not delivery_visible(_registry(), principal_for(viewer()), row.recipient):
        abort(404)
    db().rollback()  # push.replay updates the row in its own session
    result = push.replay(_settings(), delivery_id)
    if result == "replayed":
        flash(_("Pengiriman #%(id)s diulang.", id=delivery_id), "ok")
    elif result.startswith("still"):
        flash(_("Pengiriman #%(id)s masih berjalan; tunggu sampai selesai.", id=delivery_id), "warn")
    else:
        flash(_("Pengiriman #%(id)s menunggu Redis; penyapu akan mengirimnya.", id=delivery_id), "warn")
    return redirect(url_for("workspace.webhook"))
