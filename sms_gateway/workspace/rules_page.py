"""The rules page (``/rules``): prefixes and keyword rules as prefixes.yaml holds them, *coba teks*, backtests.

Central admins only: they run the gateway and change its rules; anybody else
(coordinators and operators included) gets 404, like a report out of scope.
*Coba teks* and the backtests call the pipeline's own decision
(``rules.backtest.decide_text``: ``parse`` then ``decide``); a backtest runs as
the RQ job ``run_backtest`` and this page polls its row. Writing the file is
allowed only with RULES_EDITABLE=1 (``rules.backtest.apply``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from redis.exceptions import RedisError
from sqlalchemy import select

from ..models import InboundMessage, RuleBacktest, RuleChange, utcnow
from ..registry import Registry
from ..rules import backtest
from ..rules.engine import engine_for
from ..yamlfile import LineDict, LineList
from .pages import _registry, _settings, blueprint, db, signed_in, viewer

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
TRY_MAX = 1600  # characters: ten SMS parts is more than any citizen sends
RULES_MAX = 2_000_000  # bytes of a pasted or uploaded file
DEFAULT_DAYS = 30
RECENT = 10


def _may_read() -> bool:
    return viewer().central


def rules_readers(view: F) -> F:
    """Central admins; anybody else gets 404."""

    @wraps(view)
    @signed_in
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _may_read():
            abort(404)
        return view(*args, **kwargs)

    return cast(F, wrapper)


# --------------------------------------------------------------------------- the registry as the file holds it

@dataclass
class RuleView:
    """One rule, as written: where, weight, keywords."""

    label: str
    name: str | None
    line: int
    weight: float
    priority: int
    keywords: list[str]
    veto: list[str]
    requires: list[str]
    local: bool


@dataclass
class OwnerView:
    """An agency (or a category, or a kind) with its names and rules."""

    code: str
    name: str
    line: int
    parent: str | None = None
    aliases: list[tuple[str, int]] = field(default_factory=list)
    rules: list[RuleView] = field(default_factory=list)


def _alias_lines(registry: Registry, code: str) -> list[tuple[str, int]]:
    spec = (registry.raw.get("agencies") or {}).get(code)
    aliases = spec.get("aliases") if isinstance(spec, LineDict) else None
    if not isinstance(aliases, LineList):
        return [(a, registry.agencies[code].line) for a in registry.agencies[code].aliases]
    return [(str(a).strip().upper(), aliases.line_of(i)) for i, a in enumerate(aliases)]


def registry_view(registry: Registry, query: str = "") -> dict[str, list[OwnerView]]:
    """Agencies, categories and kind cues with their rules, in file order; filtered by ``query`` if given."""
    ruleset = engine_for(registry).ruleset
    agencies = {code: OwnerView(code, a.name, a.line, a.parent, _alias_lines(registry, code))
                for code, a in registry.agencies.items()}
    categories = {name: OwnerView(name, "", c.line) for name, c in ruleset.categories.items()}
    kinds: dict[str, OwnerView] = {}
    for rule in ruleset.rules:
        view = RuleView(rule.label, rule.name, rule.line, rule.weight, rule.priority,
                        [p.text for p in rule.keywords], [p.text for p in rule.veto],
                        [p.text for p in rule.requires], rule.local)
        if rule.for_kind:
            kinds.setdefault(rule.owner, OwnerView(rule.owner, "", rule.line)).rules.append(view)
        elif rule.for_category:
            categories[rule.owner].rules.append(view)
        elif rule.owner in agencies:
            agencies[rule.owner].rules.append(view)
    out = {"agencies": list(agencies.values()), "categories": list(categories.values()), "kinds": list(kinds.values())}
    if query:
        out = {key: [o for o in (_filtered(owner, query) for owner in owners) if o] for key, owners in out.items()}
    return out


def _filtered(owner: OwnerView, query: str) -> OwnerView | None:
    """The owner whole when its code, name or an alias matches; else only its rules that match; else None."""
    q = query.casefold()
    if q in owner.code.casefold() or q in owner.name.casefold() or any(q in a.casefold() for a, _ in owner.aliases):
        return owner
    rules = [r for r in owner.rules
             if any(q in w.casefold() for w in (*r.keywords, *r.veto, *r.requires, r.name or ""))]
    if not rules:
        return None
    return OwnerView(owner.code, owner.name, owner.line, owner.parent, owner.aliases, rules)


# --------------------------------------------------------------------------- the page

def _page(status: int = 200, **values: Any) -> ResponseReturnValue:
    registry = _registry()
    query = request.args.get("q", "").strip()[:100]
    recent = list(db().scalars(select(RuleBacktest).order_by(RuleBacktest.id.desc()).limit(RECENT)))
    changes = list(db().scalars(select(RuleChange).order_by(RuleChange.id.desc()).limit(5)))
    values.setdefault("days", DEFAULT_DAYS)
    values.setdefault("try_text", "")
    if "rules_text" not in values:  # the file in force, to edit in place
        try:
            with open(registry.path, encoding="utf-8") as f:
                values["rules_text"] = f.read()
        except OSError:
            values["rules_text"] = ""
    return render_template("rules.html", registry=registry, view=registry_view(registry, query), q=query,
                           recent=recent, changes=changes, editable=bool(_settings().RULES_EDITABLE),
                           **values), status


@blueprint.get("/rules")
@rules_readers
def rules_page() -> ResponseReturnValue:
    """Every agency's prefixes and rules with file and line, searchable; coba teks; backtests."""
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "registry":
        registry = _registry()
        query = request.args.get("q", "").strip()[:100]
        return render_template("_rules_registry.html", registry=registry, view=registry_view(registry, query),
                               q=query)
    return _page()


@blueprint.post("/rules/try")
@rules_readers
def try_text() -> ResponseReturnValue:
    """*Coba teks*: the decision on any text, with its evidence (the pipeline's own functions)."""
    text = request.form.get("text", "")[:TRY_MAX]
    result = _decision(text, _registry()) if text.strip() else None
    if request.headers.get("HX-Request"):
        return render_template("_rules_try.html", result=result, try_text=text)
    return _page(result=result, try_text=text)


def _decision(text: str, registry: Registry) -> dict[str, Any]:
    parsed, decision = backtest.decide_text(text, registry, utcnow())
    return {"text": text, "parsed": parsed, "decision": decision, "registry": registry,
            "rules": decision.evidence["rules"] if decision else None}


@blueprint.post("/rules/backtests")
@rules_readers
def start_backtest() -> ResponseReturnValue:
    """Validate a pasted or uploaded prefixes.yaml, store it, and queue its backtest."""
    settings = _settings()
    upload = request.files.get("rules_file")
    filename = ""
    text = request.form.get("rules_text", "")
    if upload is not None and upload.filename:
        raw = upload.read(RULES_MAX + 1)
        filename = upload.filename
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _page(422, problems=[_("Berkas %(name)s bukan teks UTF-8.", name=filename)], rules_text="")
        if len(raw) > RULES_MAX:
            return _page(422, problems=[_("Berkas terlalu besar.")], rules_text="")
    try:
        days = int(request.form.get("days", DEFAULT_DAYS))
    except ValueError:
        days = 0
    if len(text) > RULES_MAX:
        return _page(422, problems=[_("Berkas terlalu besar.")], rules_text="", days=days)
    if not text.strip():
        return _page(422, problems=[_("Tempel isi prefixes.yaml yang diubah, atau unggah berkasnya.")],
                     rules_text=text, days=days)
    try:
        row = backtest.create(db(), settings, text, actor=viewer().email, days=days, filename=filename)
    except backtest.BacktestError as exc:
        db().rollback()
        problems = exc.problems or [_("Jumlah hari harus 1 sampai %(max)s.", max=backtest.MAX_DAYS)]
        return _page(422, problems=problems, rules_text=text, days=days)
    db().commit()
    try:
        backtest.enqueue(settings, row.id)
    except (RedisError, OSError) as exc:
        log.error("backtest #%s could not be queued: %s", row.id, exc)
        row.state, row.error = backtest.FAILED, f"not queued: {exc}"
        db().commit()
        flash(_("Uji belum bisa dijalankan: antrean (Redis) tidak terjangkau. Coba lagi sebentar."), "error")
    return redirect(url_for("workspace.backtest_page", backtest_id=row.id))


def _backtest(backtest_id: int) -> RuleBacktest:
    row = db().get(RuleBacktest, backtest_id) if 0 < backtest_id < 2**31 else None
    if row is None:
        abort(404)
    return row


@blueprint.get("/rules/backtests/<int:backtest_id>")
@rules_readers
def backtest_page(backtest_id: int) -> ResponseReturnValue:
    """A backtest: its progress while it runs (the page polls), then what would change."""
    return _render_backtest(_backtest(backtest_id))


def _render_backtest(row: RuleBacktest, status: int = 200) -> ResponseReturnValue:
    path = str(_settings().PREFIXES_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            current: str | None = f.read()
    except OSError:
        current = None
    return render_template("backtest.html", row=row, diff=backtest.diff(row, current), stale=current != row.base_text,
                           editable=bool(_settings().RULES_EDITABLE), prefixes_file=path), status


@blueprint.get("/rules/backtests/<int:backtest_id>/status")
@rules_readers
def backtest_status(backtest_id: int) -> ResponseReturnValue:
    """The progress fragment the page polls; once the job is finished the page reloads with the results."""
    row = _backtest(backtest_id)
    headers = {"HX-Refresh": "true"} if row.state in (backtest.DONE, backtest.FAILED) else {}
    return render_template("_backtest_status.html", row=row), 200, headers


@blueprint.post("/rules/backtests/<int:backtest_id>/run")
@rules_readers
def rerun_backtest(backtest_id: int) -> ResponseReturnValue:
    """Queue a backtest again whose job failed or was lost (Redis flushed, worker gone); a finished one stays."""
    row = _backtest(backtest_id)
    if row.state != backtest.DONE:
        try:
            backtest.enqueue(_settings(), row.id)
        except (RedisError, OSError):
            flash(_("Uji belum bisa dijalankan: antrean (Redis) tidak terjangkau. Coba lagi sebentar."), "error")
            return redirect(url_for("workspace.backtest_page", backtest_id=row.id))
        row.state, row.error = backtest.QUEUED, None
        db().commit()
    return redirect(url_for("workspace.backtest_page", backtest_id=row.id))


@blueprint.get("/rules/backtests/<int:backtest_id>/texts/<int:inbound_id>")
@rules_readers
def backtest_example(backtest_id: int, inbound_id: int) -> ResponseReturnValue:
    """One stored text decided by the rules in force then and by the proposed file, side by side."""
    row = _backtest(backtest_id)
    message = db().get(InboundMessage, inbound_id) if inbound_id < 2**31 else None
    if message is None:
        abort(404)
    from ..registry import parse_registry

    path = str(_settings().PREFIXES_FILE)
    before, after = parse_registry(path, row.base_text), parse_registry(path, row.rules_text)
    report = message.report
    return render_template("backtest_example.html", row=row, message=message, report=report,
                           before=_decision(message.text, before), after=_decision(message.text, after))


@blueprint.post("/rules/backtests/<int:backtest_id>/apply")
@rules_readers
def apply_backtest(backtest_id: int) -> ResponseReturnValue:
    """Write the backtested file to PREFIXES_FILE (RULES_EDITABLE=1 only; 403 otherwise)."""
    settings = _settings()
    if not settings.RULES_EDITABLE:
        abort(403)
    row = _backtest(backtest_id)
    try:
        change = backtest.apply(db(), settings, row, actor=viewer().email, name=viewer().display)
    except backtest.BacktestError as exc:
        db().rollback()
        reasons = {"not_done": _("Uji belum selesai."),
                   "changed": _("prefixes.yaml sudah berubah sejak uji ini dibuat: jalankan uji lagi pada "
                                "berkas yang berlaku sekarang."),
                   "invalid": _("Berkas tidak valid: %(problems)s", problems="; ".join(exc.problems)),
                   "unwritable": _("Berkas tidak bisa ditulis: %(problems)s", problems="; ".join(exc.problems))}
        flash(reasons.get(exc.reason, exc.reason), "error")
        return _render_backtest(row, exc.status)
    flash(_("prefixes.yaml ditulis (versi %(version)s); versi sebelumnya disimpan di %(backup)s. Semua proses "
            "memuatnya dalam beberapa detik.", version=change.version_after, backup=change.backup_path), "ok")
    return redirect(url_for("workspace.rules_page"))
