"""The workspace's pages: sign-in, inbox, report, export, account.

Each request: the host picks the realm (``hosts``), a scoped session opens
with nothing visible, the sign-in cookie is checked against its server-side
row, and only then does the scope widen to the viewer's (``access``). Every
POST, form or htmx, carries a CSRF token. Actions call the API's lifecycle
functions, commit, then queue the SMS.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import UserMixin, current_user, login_user, logout_user
from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from .. import deadlines, gsm, outbox, reports
from ..agencies import lifecycle, views
from ..agencies.scope import CENTRAL, can_see, units
from ..agencies.statuses import DISPOSABLE, STATUSES, TRANSITIONS, VERIFIED
from ..config import Settings
from ..models import (
    CannedAnswer,
    CitizenResponse,
    InboundMessage,
    OutboundMessage,
    Report,
    ReportNote,
    User,
    utcnow,
)
from ..registry import KINDS, Registry, registry_for
from . import accounts, actions, hosts, inbox
from .access import Viewer, principal_for, report_scope, scoped_sessions, set_scope
from .messages import refusal
from .web import LANGUAGES, csrf, language, limiter, login_manager

blueprint = Blueprint("workspace", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/assets")

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _settings() -> Settings:
    return cast(Settings, current_app.config["SETTINGS"])


def _registry() -> Registry:
    return registry_for(_settings())


def db() -> Session:
    """The request's scoped session."""
    return cast(Session, g.db)


# --------------------------------------------------------------------------- request life

class Account(UserMixin):
    """Flask-Login's user: the id it keeps in the cookie is the session secret, not the user id."""

    def __init__(self, secret: str, viewer: Viewer) -> None:
        self.secret = secret
        self.viewer = viewer

    def get_id(self) -> str:
        """The session secret (its row is what a logout revokes)."""
        return self.secret


@login_manager.user_loader
def _load(secret: str) -> Account | None:
    if "db" not in g or "realm" not in g:
        return None
    user = accounts.session_user(g.db, _settings(), secret, g.realm)
    if user is None:
        return None
    return Account(secret, accounts.viewer_of(user))


@login_manager.unauthorized_handler
def _unauthorized() -> ResponseReturnValue:
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("workspace.login", next=target))


@blueprint.before_request
def _before() -> ResponseReturnValue | None:
    if request.endpoint == "workspace.static":
        return None  # public files, on any host: even the unknown host's 404 page is styled
    settings, registry = _settings(), _registry()
    realm = hosts.resolve(registry, settings.WORKSPACE_HOST_SUFFIX, request.host)
    if realm is None:
        abort(404)
    if realm.redirect:
        query = f"?{request.query_string.decode()}" if request.query_string else ""
        # Behind the TLS proxy the request itself is http: the public scheme is PUBLIC_BASE_URL's.
        scheme = urlsplit(str(settings.PUBLIC_BASE_URL)).scheme or request.scheme
        return redirect(f"{scheme}://{realm.redirect}{request.path}{query}", 308)
    g.realm = realm.key
    if any("\x00" in key or "\x00" in value
           for params in (request.args, request.form) for key, value in params.items(multi=True)):
        abort(400)  # nobody types a NUL, and PostgreSQL refuses one in any text column
    g.db = scoped_sessions(settings.DATABASE_URL)()
    set_scope(g.db, false())  # nothing is visible until the viewer is known
    if request.method not in SAFE_METHODS:
        csrf.protect()
    g.viewer = current_user.viewer if current_user.is_authenticated else None
    if g.viewer is not None:
        set_scope(g.db, report_scope(registry, g.viewer))
    return None


@blueprint.teardown_request
def _teardown(_exc: BaseException | None) -> None:
    session_ = g.pop("db", None)
    if session_ is not None:
        session_.close()


@blueprint.after_request
def _after(response: Response) -> Response:
    response.headers.setdefault("Vary", "HX-Request")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    # Scripts only from our own files: an SMS that slipped through as HTML still could not run.
    response.headers["Content-Security-Policy"] = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                                   "img-src 'self' data:; frame-ancestors 'none'; "
                                                   "form-action 'self'; base-uri 'none'")
    if request.endpoint != "workspace.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.app_context_processor
def _template_values() -> dict[str, Any]:
    return {"viewer": g.get("viewer"), "lang": language(), "languages": LANGUAGES,
            "agency_name": _agency_name, "realm_title": _realm_title}


@blueprint.app_template_filter("jakarta")
def jakarta_time(value: datetime | str | None) -> str:
    """A moment as Jakarta wall-clock time, ``31-12-2026 14:05`` (ISO strings from the API views too)."""
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(deadlines.JAKARTA).strftime("%d-%m-%Y %H:%M")


def signed_in(view: F) -> F:
    """Only for a signed-in viewer; the others go to the sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("viewer") is None:
            return login_manager.unauthorized()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def viewer() -> Viewer:
    """The signed-in viewer (views behind ``signed_in``)."""
    return cast(Viewer, g.viewer)


def _agency_name(code: str | None) -> str:
    if code is None or code == CENTRAL:
        return _("Antrean pusat")
    agency = _registry().agencies.get(code)
    return f"{agency.name} ({code})" if agency else code


def _realm_title() -> str:
    realm = g.get("realm")
    if realm in (None, hosts.ANY):
        return _("Ruang kerja LAPOR! 1708")
    if realm == hosts.CENTRAL:
        return _("Ruang kerja pusat LAPOR! 1708")
    return _agency_name(realm)


# --------------------------------------------------------------------------- sign-in

def _failed_sign_in(response: Response) -> bool:
    return request.method == "POST" and response.status_code == 401


def _login_limit() -> str:
    return str(_settings().WORKSPACE_LOGIN_LIMIT)


def _email_key() -> str:
    # Per account too: guessing one person's password from many addresses is slowed as well.
    return "email:" + accounts.normalize_email(request.form.get("email", ""))[:254]


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("workspace.inbox_page")


@blueprint.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=lambda: "ip:" + (request.remote_addr or ""), methods=["POST"],
               deduct_when=_failed_sign_in)
@limiter.limit(_login_limit, key_func=_email_key, methods=["POST"], deduct_when=_failed_sign_in)
def login() -> ResponseReturnValue:
    """Sign in with e-mail address and password, on this agency's host."""
    if g.get("viewer") is not None:
        return redirect(_safe_next(request.args.get("next")))
    if request.method == "GET":
        return render_template("login.html", email="", next=request.args.get("next", ""))
    email = request.form.get("email", "")
    user = accounts.authenticate(db(), email, request.form.get("password", ""))
    if user is None or not hosts.admits(g.realm, _registry(), accounts.home_agency(user)):
        db().rollback()
        # The same answer whether the address is unknown, the password wrong or the
        # account belongs to another agency's host: nothing to learn by guessing.
        return render_template("login.html", email=email, next=request.form.get("next", ""),
                               error=_("E-mail atau kata sandi salah.")), 401
    secret = accounts.open_session(db(), user, g.realm)
    db().commit()
    lang = session.get("lang")
    session.clear()  # a fresh session (and CSRF token) after sign-in
    if lang:
        session["lang"] = lang
    login_user(Account(secret, accounts.viewer_of(user)))
    return redirect(_safe_next(request.form.get("next")))


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out: the session row is revoked, the cookie cleared."""
    if current_user.is_authenticated:
        accounts.end_session(db(), current_user.secret)
        db().commit()
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("workspace.login"))


@blueprint.post("/language")
def choose_language() -> ResponseReturnValue:
    """Switch between Indonesian and English (kept for the browser session)."""
    chosen = request.form.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(_safe_next(request.form.get("next")))


@blueprint.route("/password/<secret>", methods=["GET", "POST"])
def set_password(secret: str) -> ResponseReturnValue:
    """The one-time link: choose a password (then sign in)."""
    found = accounts.redeem_link(db(), secret)
    if found is None:
        return render_template("set_password.html", invalid=True), 404
    link, user = found
    if request.method == "GET":
        return render_template("set_password.html", user=user)
    try:
        accounts.set_password(db(), user, request.form.get("password", ""), request.form.get("confirm", ""), link)
    except accounts.AccountError as exc:
        db().rollback()
        return render_template("set_password.html", user=user, error=refusal(exc)), 422
    db().commit()
    flash(_("Kata sandi disimpan. Silakan masuk."), "ok")
    return redirect(url_for("workspace.login"))


@blueprint.route("/account", methods=["GET", "POST"])
@signed_in
def account() -> ResponseReturnValue:
    """Change one's own password; every other session of the account ends."""
    user = db().get(User, viewer().user_id)
    assert user is not None
    if request.method == "GET":
        return render_template("account.html", user=user)
    if not accounts.verify_password(user, request.form.get("current", "")):
        return render_template("account.html", user=user, error=_("Kata sandi saat ini salah.")), 422
    try:
        accounts.set_password(db(), user, request.form.get("password", ""), request.form.get("confirm", ""))
    except accounts.AccountError as exc:
        db().rollback()
        return render_template("account.html", user=user, error=refusal(exc)), 422
    secret = accounts.open_session(db(), user, g.realm)  # this browser stays signed in
    db().commit()
    login_user(Account(secret, accounts.viewer_of(user)))
    flash(_("Kata sandi diganti. Sesi lain akun ini sudah diakhiri."), "ok")
    return redirect(url_for("workspace.account"))


# --------------------------------------------------------------------------- inbox

def _units() -> list[str]:
    """Agency codes the viewer can filter on and dispose to."""
    registry = _registry()
    v = viewer()
    if v.central:
        return sorted(registry.agencies)
    return sorted(units(registry, v.agency)) if v.agency in registry.agencies else []


def _categories() -> list[str]:
    raw = _registry().raw.get("categories") or {}
    return sorted(str(name) for name in raw)


def _filters() -> inbox.Filters:
    return inbox.parse_filters(request.args, _registry(), viewer(), _units())


@blueprint.get("/")
@signed_in
def inbox_page() -> str:
    """The inbox: queues with counts, filters, search, the nearest deadlines first."""
    settings = _settings()
    f = _filters()
    today = deadlines.today()
    rows, next_cursor = inbox.page(db(), f, viewer(), today, settings.DEFAULT_REGION, request.args.get("after"))
    values = {"rows": rows, "next_cursor": next_cursor, "f": f, "today": today, "clock": inbox.clock,
              "principal": principal_for(viewer()), "registry": _registry()}
    if request.headers.get("HX-Request") and request.args.get("after"):
        return render_template("_rows.html", **values)
    return render_template("inbox.html", counts=inbox.queue_counts(db(), viewer(), today), queues=inbox.QUEUES,
                           statuses=STATUSES, kinds=KINDS, channels=inbox.CHANNELS, units=_units(),
                           categories=_categories(), bulk_targets=_dispose_targets(None), **values)


@blueprint.get("/export.csv")
@signed_in
def export() -> ResponseReturnValue:
    """The current filter as CSV, streamed row by row, scoped like the page."""
    settings = _settings()
    f = _filters()
    today = deadlines.today()
    query = inbox.ordered(inbox.filtered(f, viewer(), today, settings.DEFAULT_REGION), f)
    rows = inbox.csv_rows(db(), query, _registry(), principal_for(viewer()), today)
    name = f"laporan-{today.isoformat()}.csv"
    return Response(stream_with_context(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@blueprint.post("/bulk")
@signed_in
def bulk() -> ResponseReturnValue:
    """One action on the selected reports, each checked on its own; says what changed and what did not."""
    numbers = [n for n in request.form.getlist("n") if n][: actions.BULK_MAX]
    back = request.form.get("back", "")
    target = url_for("workspace.inbox_page") + (f"?{back}" if back and not back.startswith(("/", "?")) else "")
    action = request.form.get("action", "")
    if not numbers:
        flash(_("Pilih dulu laporan yang akan diubah."), "error")
        return redirect(target)
    try:
        result = actions.bulk(db(), _settings(), _registry(), viewer(), numbers, action,
                              to=request.form.get("to", ""), status=request.form.get("status", ""),
                              note=request.form.get("note", ""))
    except lifecycle.LifecycleError as exc:
        flash(refusal(exc), "error")
        return redirect(target)
    flash(_("%(done)s dari %(total)s laporan diubah.", done=len(result.done), total=len(numbers)),
          "ok" if not result.refused else "warn")
    for number, reason in result.refused:
        flash(_("%(number)s tidak diubah: %(reason)s", number=number, reason=reason), "error")
    return redirect(target)


# --------------------------------------------------------------------------- report

def _report(number: str, *, lock: bool = False) -> Report:
    """The report if the viewer may see it; 404 otherwise, whatever the reason."""
    report = reports.find_by_tracking(db(), number, lock=lock)  # in the session's scope
    if report is None:
        abort(404)
    return report


def _dispose_targets(report: Report | None) -> list[str]:
    """Where the viewer may dispose a report: any agency (central) or its own units."""
    registry = _registry()
    v = viewer()
    if v.central:
        targets = sorted(registry.agencies)
    elif v.agency in registry.agencies:
        targets = sorted(units(registry, v.agency) - {v.agency})
    else:
        targets = []
    return [t for t in targets if report is None or t != report.agency]


def _thread(report: Report) -> list[dict[str, Any]]:
    """Every SMS of the report, in and out, oldest first, with each outbound's delivery state."""
    session = db()
    inbound_ids = {report.inbound_id} if report.inbound_id else set()
    responses = session.scalars(select(CitizenResponse.inbound_id).where(CitizenResponse.report_id == report.id))
    inbound_ids |= {i for i in responses if i is not None}
    items: list[dict[str, Any]] = []
    if inbound_ids:
        for msg in session.scalars(select(InboundMessage).where(InboundMessage.id.in_(inbound_ids))):
            items.append({"direction": "in", "text": msg.text, "at": msg.received_at, "channel": msg.channel})
    conditions = [OutboundMessage.report_id == report.id]
    if report.inbound_id:
        conditions.append(OutboundMessage.inbound_id == report.inbound_id)
    for out in session.scalars(select(OutboundMessage).where(or_(*conditions))):
        items.append({"direction": "out", "text": out.text, "at": out.created_at, "state": out.state,
                      "purpose": out.purpose, "error": out.error, "id": out.id, "segments": out.segments,
                      "channel": out.channel, "retryable": out.state in ("failed", "undelivered")})
    return sorted(items, key=lambda item: (item["at"], item["direction"] == "out"))


def _names(emails: set[str]) -> dict[str, str]:
    if not emails:
        return {}
    rows = db().execute(select(User.email, User.name).where(User.email.in_(sorted(emails))))
    return {email: name for email, name in rows if name}


def _render_report(report: Report, *, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                   status: int = 200) -> tuple[str, int]:
    settings, registry = _settings(), _registry()
    v = viewer()
    principal = principal_for(v)
    today = deadlines.today()
    detail = views.detail(db(), report, registry, principal, today)
    notes = list(db().scalars(select(ReportNote).where(ReportNote.report_id == report.id).order_by(ReportNote.id)))
    names = _names({h["actor"] for h in detail["history"]} | {n.author for n in notes})
    canned = list(db().scalars(
        select(CannedAnswer).where(CannedAnswer.agency.is_(None) if v.central else CannedAnswer.agency == v.agency,
                                   CannedAnswer.status.in_((report.status, "*")))
        .order_by(CannedAnswer.title)))
    header = registry.render("answer_header", tracking=report.tracking_number,
                             agency=registry.agency_label(report.agency))
    allowed = [s for s in STATUSES if s in TRANSITIONS[report.status]]
    body = render_template(
        "report.html", report=report, detail=detail, thread=_thread(report), notes=notes, names=names,
        clock=inbox.clock(report, today), canned=canned, answer_header=header,
        answer_max=settings.ANSWER_MAX_SEGMENTS, gsm_basic="".join(sorted(gsm.GSM7_BASIC)),
        gsm_extended="".join(sorted(gsm.GSM7_EXTENDED)), statuses=allowed,
        can_verify=VERIFIED in TRANSITIONS[report.status] and report.agency is not None,
        can_dispose=report.status in DISPOSABLE, can_return=report.status in DISPOSABLE and not v.central,
        targets=_dispose_targets(report), errors=errors or {}, values=values or {},
        answer_key=secrets.token_urlsafe(16), note_max=settings.API_NOTE_MAX_LENGTH)
    return body, status


@blueprint.get("/reports/<number>")
@signed_in
def report_page(number: str) -> ResponseReturnValue:
    """One report: the SMS thread, history, notes and the actions the viewer may take."""
    return _render_report(_report(number))


def _act(number: str, form: str, action: Callable[[Report], lifecycle.Outcome | None]) -> ResponseReturnValue:
    """Run an action on a locked report; a refusal re-renders the page with the reason on its form."""
    report = _report(number, lock=True)
    try:
        outcome = action(report)
    except lifecycle.LifecycleError as exc:
        db().rollback()
        report = _report(number)
        return _render_report(report, errors={form: refusal(exc)}, values=request.form.to_dict(), status=422)
    db().commit()
    if outcome is not None:
        lifecycle.send(_settings(), outcome)
    if not can_see(_registry(), principal_for(viewer()), report):
        flash(_("Laporan %(number)s sudah dikembalikan dan tidak lagi di ruang kerja Anda.", number=number), "ok")
        return redirect(url_for("workspace.inbox_page"))
    return redirect(url_for("workspace.report_page", number=number) + f"#{form}")


@blueprint.post("/reports/<number>/verify")
@signed_in
def verify(number: str) -> ResponseReturnValue:
    """Verify the report (diverifikasi)."""
    def run(report: Report) -> lifecycle.Outcome:
        outcome = lifecycle.change_status(db(), _settings(), _registry(), report, VERIFIED, note=None,
                                          actor=principal_for(viewer()).actor)
        flash(_("Laporan diverifikasi."), "ok")
        return outcome
    return _act(number, "status", run)


@blueprint.post("/reports/<number>/status")
@signed_in
def change_status(number: str) -> ResponseReturnValue:
    """Move the report to another status; the reporter hears about it by SMS where the table says so."""
    def run(report: Report) -> lifecycle.Outcome:
        settings = _settings()
        note = lifecycle.clean_note(settings, request.form.get("note"))
        status = request.form.get("status", "")
        if not status:
            raise lifecycle.LifecycleError(400, "status is required", "required", what="status")
        outcome = lifecycle.change_status(db(), settings, _registry(), report, status, note=note,
                                          actor=principal_for(viewer()).actor)
        flash(_("Status diubah menjadi %(status)s.", status=status), "ok")
        return outcome
    return _act(number, "status", run)


@blueprint.post("/reports/<number>/dispose")
@signed_in
def dispose(number: str) -> ResponseReturnValue:
    """Dispose to an agency (central) or to one of the agency's units."""
    def run(report: Report) -> lifecycle.Outcome:
        settings = _settings()
        to = request.form.get("to", "").strip().upper()
        if not to:
            raise lifecycle.LifecycleError(400, "to is required", "required", what="to")
        note = lifecycle.clean_note(settings, request.form.get("note"))
        outcome = lifecycle.dispose(db(), settings, _registry(), principal_for(viewer()), report, to, note=note)
        flash(_("Laporan didisposisikan ke %(agency)s.", agency=to), "ok")
        return outcome
    return _act(number, "dispose", run)


@blueprint.post("/reports/<number>/return")
@signed_in
def return_to_central(number: str) -> ResponseReturnValue:
    """"Bukan wewenang": back to the central queue, with a reason."""
    def run(report: Report) -> lifecycle.Outcome:
        settings = _settings()
        reason = lifecycle.clean_note(settings, request.form.get("reason"), required=True, what="reason")
        assert reason is not None
        return lifecycle.return_to_central(db(), settings, _registry(), principal_for(viewer()), report,
                                           reason=reason)
    return _act(number, "return", run)


@blueprint.post("/reports/<number>/answer")
@signed_in
def answer(number: str) -> ResponseReturnValue:
    """Answer the reporter by SMS; a double submit sends nothing twice (the form's idempotency key)."""
    def run(report: Report) -> lifecycle.Outcome | None:
        key = request.form.get("key", "")[:100] or None
        if key and lifecycle.existing_answer(db(), report, key) is not None:
            return None
        outcome = lifecycle.answer(db(), _settings(), _registry(), report, text=request.form.get("text"),
                                   mode=request.form.get("mode", "split"), pointer=request.form.get("pointer") or None,
                                   actor=principal_for(viewer()).actor, idempotency_key=key)
        if outcome.sms_skipped == lifecycle.OPTED_OUT:
            flash(_("Jawaban disimpan, tetapi tidak dikirim: pelapor sudah berhenti berlangganan (BERHENTI)."),
                  "warn")
        else:
            flash(_("Jawaban diantrekan untuk dikirim."), "ok")
        return outcome
    return _act(number, "answer", run)


@blueprint.post("/reports/<number>/note")
@signed_in
def add_note(number: str) -> ResponseReturnValue:
    """An internal note: seen by the staff, never sent to the reporter."""
    def run(report: Report) -> None:
        text = lifecycle.clean_note(_settings(), request.form.get("text"), required=True, what="note")
        assert text is not None
        db().add(ReportNote(report_id=report.id, author=viewer().email, agency=viewer().agency, text=text,
                            created_at=utcnow()))
        flash(_("Catatan internal disimpan."), "ok")
    return _act(number, "note", run)


@blueprint.post("/reports/<number>/sms/<int:outbound_id>/retry")
@signed_in
def retry_sms(number: str, outbound_id: int) -> ResponseReturnValue:
    """Queue a failed SMS of this report again (the same function as `sms-gateway messages retry`)."""
    report = _report(number)
    row = db().get(OutboundMessage, outbound_id)
    if row is None or (row.report_id != report.id and (row.inbound_id is None or row.inbound_id != report.inbound_id)):
        abort(404)
    db().rollback()  # release the read: retry_outbound updates the row in its own session
    if outbox.retry(_settings(), outbound_id):
        flash(_("SMS diantrekan ulang."), "ok")
    else:
        flash(_("SMS ini tidak bisa dikirim ulang (sudah terkirim atau sedang dikirim)."), "warn")
    return redirect(url_for("workspace.report_page", number=number) + "#thread")


def query_string(**args: Any) -> str:
    """``?a=b`` for a dict of arguments (empty when there are none)."""
    return "?" + urlencode(args) if args else ""


blueprint.add_app_template_global(query_string)
