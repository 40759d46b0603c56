"""The agencies' JSON API under ``/api/v1`` (documented in ``sms_gateway/data/openapi.yaml``).

Every endpoint but the OpenAPI document needs ``Authorization: Bearer <token>``:
401 without it, 403 for an unknown or revoked token. A report outside the
caller's scope answers 404 exactly like a report that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, wraps
from typing import Any, TypeVar, cast

import yaml
from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import deadlines, optouts, reports
from ..config import PACKAGE_DIR, Settings
from ..db import session_factory
from ..models import MAX_ID, OutboundMessage, Report, ReportEvent, WebhookDelivery, utcnow
from ..registry import Registry, registry_for
from . import lifecycle, monitoring, push, tokens, views
from .scope import CENTRAL, Principal, can_see, delivery_visible, known_code, units, visible_agencies
from .statuses import STATUSES, overdue_clause

blueprint = Blueprint("agency_api", __name__, url_prefix="/api/v1")

OPENAPI_FILE = PACKAGE_DIR / "data" / "openapi.yaml"
PER_PAGE_DEFAULT, PER_PAGE_MAX = 50, 200
MONITORING_DEFAULT_DAYS = 90
TOUCH_INTERVAL = timedelta(minutes=1)  # how stale last_used_at may get before it is written again
IDEMPOTENCY_KEY_MAX = 200

# Dates a filter may name: wide enough for any report, narrow enough for every database.
MOMENT_MIN = datetime(1970, 1, 1, tzinfo=UTC)
MOMENT_MAX = datetime(2999, 12, 31, tzinfo=UTC)

F = TypeVar("F", bound=Callable[..., Any])


class ApiError(Exception):
    """An error answered as ``{"error": reason, "status": status}``."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> tuple[Response, int]:
    """The JSON body of every API error."""
    response = jsonify(error=reason, status=status)
    response.headers.update(headers or {})
    return response, status


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    return error_response(exc.status, exc.reason, exc.headers)


@blueprint.errorhandler(lifecycle.LifecycleError)
def _lifecycle_error(exc: lifecycle.LifecycleError) -> tuple[Response, int]:
    return error_response(exc.status, exc.reason)


@blueprint.errorhandler(413)
def _too_large(_exc: Exception) -> tuple[Response, int]:
    return error_response(413, "request body too large")


NOT_FOUND = "no such report"


# --------------------------------------------------------------------------- auth

def _settings() -> Settings:
    return cast(Settings, current_app.config["SETTINGS"])


def authenticated(view: F) -> F:
    """Resolve the bearer token to ``g.principal`` and open ``g.session`` for the view."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing credentials: send Authorization: Bearer <token>",
                           {"WWW-Authenticate": 'Bearer realm="LAPOR! 1708"'})
        settings = _settings()
        with session_factory(settings.DATABASE_URL)() as session:
            row = tokens.authenticate(session, token.strip())
            if row is None:
                raise ApiError(403, "invalid or revoked token")
            registry = registry_for(settings)
            if not row.admin and (row.agency is None or not known_code(registry, row.agency)):
                raise ApiError(403, f"the token's agency {row.agency} is no longer in the registry")
            now = utcnow()
            if row.last_used_at is None or now - row.last_used_at > TOUCH_INTERVAL:
                row.last_used_at = now
                session.commit()
            g.session, g.registry, g.settings = session, registry, settings
            g.principal = Principal(token_id=row.id, admin=row.admin, code=row.agency, label=row.label)
            return view(*args, **kwargs)

    return cast(F, wrapper)


def _ctx() -> tuple[Session, Registry, Principal, Settings]:
    return g.session, g.registry, g.principal, g.settings


def _report(number: str, *, lock: bool = False) -> Report:
    """The report ``number`` if the caller may see it; 404 otherwise, whatever the reason."""
    session, registry, principal, _ = _ctx()
    report = reports.find_by_tracking(session, number, lock=lock)
    if report is None or not can_see(registry, principal, report):
        raise ApiError(404, NOT_FOUND)
    return report


def _body(allowed: set[str]) -> dict[str, Any]:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # "[[[[…" thousands deep: Python's JSON parser recurses per level
        raise ApiError(400, "JSON body nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object body (Content-Type: application/json)")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(unknown)} (expected {', '.join(sorted(allowed))})")
    return data


def _flag(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    low = raw.lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def list_arg(name: str, allowed: Iterable[str]) -> list[str]:
    """Query parameter ``name`` as a comma-separated list; 400 for a value not in ``allowed``."""
    values = [v for v in request.args.get(name, "").split(",") if v]
    allowed = list(allowed)
    for value in values:
        if value not in allowed:
            raise ApiError(400, f"unknown {name} {value!r} (expected {', '.join(allowed)})")
    return values


def parse_moment(raw: str, name: str) -> datetime:
    """An ISO date (midnight in Jakarta) or datetime (naive = Jakarta) as aware UTC."""
    try:
        if len(raw) == 10:
            moment = datetime.combine(date.fromisoformat(raw), time(), deadlines.JAKARTA)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=deadlines.JAKARTA)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01 or 9999-12-31 moved to UTC
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time, e.g. 2021-05-11 or "
                            "2021-05-11T08:00:00+07:00") from None
    if not MOMENT_MIN <= moment <= MOMENT_MAX:
        raise ApiError(400, f"{name} must be between {MOMENT_MIN.year} and {MOMENT_MAX.year}")
    return moment


def _action_result(session: Session, registry: Registry, principal: Principal, report: Report,
                   outcome: lifecycle.Outcome) -> dict[str, Any]:
    return {
        "report": views.detail(session, report, registry, principal, deadlines.today()),
        "event": _event(outcome.event),
        "sms": _sms(outcome.sms),
        "sms_skipped": outcome.sms_skipped,
    }


def _event(event: ReportEvent) -> dict[str, Any]:
    return {"status": event.status, "action": event.action, "note": event.note, "actor": event.actor,
            "agency": event.agency or CENTRAL, "at": views.iso(event.created_at)}


def _sms(sms: OutboundMessage | None) -> dict[str, Any] | None:
    if sms is None:
        return None
    return {"id": sms.id, "state": sms.state, "channel": sms.channel, "segments": sms.segments, "text": sms.text}


# --------------------------------------------------------------------------- reports

@blueprint.get("/reports")
@authenticated
def list_reports() -> Response:
    """Reports in the caller's scope, newest change first, filtered and paginated."""
    session, registry, principal, _ = _ctx()
    query = select(Report)
    visible = visible_agencies(registry, principal)
    if visible is not None:
        query = query.where(Report.agency.in_(sorted(visible)))
    statuses = list_arg("status", STATUSES)
    if statuses:
        query = query.where(Report.status.in_(statuses))
    if request.args.get("category"):
        query = query.where(Report.category == request.args["category"])
    agency = request.args.get("agency")
    if agency:
        query = query.where(Report.agency.is_(None) if agency == CENTRAL else Report.agency == agency)
    special = _flag("special")
    if special is not None:
        query = query.where(Report.special.is_(special))
    today = deadlines.today()
    overdue = _flag("overdue")
    if overdue is not None:
        query = query.where(overdue_clause(today) if overdue else ~overdue_clause(today))
    if request.args.get("since"):
        query = query.where(Report.updated_at >= parse_moment(request.args["since"], "since"))
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("per_page", PER_PAGE_DEFAULT, 1, PER_PAGE_MAX)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Report.updated_at.desc(), Report.id.desc())
                           .offset((page - 1) * per_page).limit(per_page)).all()
    return jsonify(reports=[views.summary(r, registry, principal, today) for r in rows], page=page,
                   per_page=per_page, total=total, next_page=page + 1 if page * per_page < total else None)


@blueprint.get("/reports/<number>")
@authenticated
def get_report(number: str) -> Response:
    """One report with its history, deadlines, responses and escalations."""
    session, registry, principal, _ = _ctx()
    report = _report(number)
    return jsonify(views.detail(session, report, registry, principal, deadlines.today()))


@blueprint.post("/reports/<number>/disposition")
@authenticated
def dispose_report(number: str) -> Response:
    """Dispose to an agency (admin: any; agency: its units) or return to the central queue."""
    session, registry, principal, settings = _ctx()
    data = _body({"to", "note", "return_to_central", "reason"})
    report = _report(number, lock=True)
    if data.get("return_to_central"):
        if data.get("to"):
            raise ApiError(400, "give either to or return_to_central, not both")
        reason = lifecycle.clean_note(settings, data.get("reason", data.get("note")), required=True, what="reason")
        assert reason is not None
        outcome = lifecycle.return_to_central(session, settings, registry, principal, report, reason=reason)
    else:
        to = data.get("to")
        if not isinstance(to, str) or not to.strip():
            raise ApiError(400, "to is required: the agency code to dispose to (or return_to_central: true)")
        note = lifecycle.clean_note(settings, data.get("note"))
        outcome = lifecycle.dispose(session, settings, registry, principal, report, to.strip().upper(), note=note)
    session.commit()
    lifecycle.send(settings, outcome)
    # After a return the agency no longer sees the report: it gets the event only.
    if not can_see(registry, principal, report):
        return jsonify(report=None, event=_event(outcome.event), sms=None, sms_skipped=None)
    return jsonify(_action_result(session, registry, principal, report, outcome))


@blueprint.post("/reports/<number>/status")
@authenticated
def update_status(number: str) -> Response:
    """Move the report to another status (see the transition table in the README)."""
    session, registry, principal, settings = _ctx()
    data = _body({"status", "note"})
    status = data.get("status")
    if not isinstance(status, str) or not status:
        raise ApiError(400, f"status is required (one of {', '.join(STATUSES[1:])})")
    note = lifecycle.clean_note(settings, data.get("note"))
    report = _report(number, lock=True)
    outcome = lifecycle.change_status(session, settings, registry, report, status, note=note,
                                      actor=principal.actor)
    session.commit()
    lifecycle.send(settings, outcome)
    return jsonify(_action_result(session, registry, principal, report, outcome))


@blueprint.post("/reports/<number>/reply")
@authenticated
def reply(number: str) -> Response:
    """Answer the reporter by SMS on the channel the report came in on."""
    session, registry, principal, settings = _ctx()
    data = _body({"text", "mode", "pointer"})
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= IDEMPOTENCY_KEY_MAX:
        raise ApiError(400, f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
    report = _report(number, lock=True)
    if key:
        sms = lifecycle.existing_answer(session, report, key)
        if sms is not None:
            return jsonify(duplicate=True, sms=_sms(sms),
                           report=views.detail(session, report, registry, principal, deadlines.today()))
    outcome = lifecycle.answer(session, settings, registry, report, text=data.get("text"),
                               mode=data.get("mode", "split"), pointer=data.get("pointer"), actor=principal.actor,
                               idempotency_key=key)
    session.commit()
    lifecycle.send(settings, outcome)
    return jsonify(duplicate=False, **_action_result(session, registry, principal, report, outcome))


# --------------------------------------------------------------------------- monitoring, identity

@blueprint.get("/monitoring")
@authenticated
def monitoring_view() -> Response:
    """Per-agency open, overdue, escalations and median times, for the caller's view."""
    session, registry, principal, _ = _ctx()
    since_raw = request.args.get("since")
    since = parse_moment(since_raw, "since") if since_raw else utcnow() - timedelta(days=MONITORING_DEFAULT_DAYS)
    today = deadlines.today()
    return jsonify(since=since.isoformat(), today=today.isoformat(),
                   agencies=monitoring.figures(session, registry, principal, since, today))


@blueprint.get("/me")
@authenticated
def me() -> Response:
    """Who the token belongs to and what it covers."""
    _session, registry, principal, _ = _ctx()
    coordinator = registry.coordinators.get(principal.code) if principal.code else None
    agency = registry.agencies.get(principal.code) if principal.code else None
    return jsonify(
        admin=principal.admin,
        agency=principal.code,
        name=agency.name if agency else (coordinator.name if coordinator else None),
        units=sorted(units(registry, principal.code) - {principal.code}) if agency and principal.code else [],
        watches=list(coordinator.watches) if coordinator else [],
    )


# --------------------------------------------------------------------------- webhook log

def _delivery(row: WebhookDelivery) -> dict[str, Any]:
    return {"id": row.id, "event": row.event, "recipient": row.recipient, "recipient_kind": row.recipient_kind,
            "state": row.state, "attempts": row.attempts, "response_status": row.response_status,
            "error": row.error, "url": row.url, "created_at": views.iso(row.created_at),
            "delivered_at": views.iso(row.delivered_at)}


def _own_delivery(delivery_id: int) -> WebhookDelivery:
    session, registry, principal, _ = _ctx()
    # An id past the column's range names no row (and would make the database raise).
    row = session.get(WebhookDelivery, delivery_id) if delivery_id <= MAX_ID else None
    if row is None or not delivery_visible(registry, principal, row.recipient):
        raise ApiError(404, "no such delivery")
    return row


@blueprint.get("/webhooks/deliveries")
@authenticated
def list_deliveries() -> Response:
    """The caller's webhook delivery log, newest first."""
    session, registry, principal, _ = _ctx()
    query = select(WebhookDelivery)
    if not principal.admin:
        query = query.where(WebhookDelivery.recipient.in_(sorted(units(registry, principal.code or ""))))
    state = request.args.get("state")
    if state:
        if state not in (push.PENDING, push.DELIVERING, push.DELIVERED, push.FAILED):
            raise ApiError(400, "state must be pending, delivering, delivered or failed")
        query = query.where(WebhookDelivery.state == state)
    limit = _int_arg("limit", 100, 1, 1000)
    rows = session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)).all()
    return jsonify(deliveries=[_delivery(r) for r in rows])


@blueprint.post("/webhooks/deliveries/<int:delivery_id>/replay")
@authenticated
def replay_delivery(delivery_id: int) -> tuple[Response, int]:
    """Send a delivered or failed delivery again (same id, fresh signature)."""
    session, _registry, _principal, settings = _ctx()
    _own_delivery(delivery_id)
    session.rollback()  # release the read before push.replay updates the row in its own session
    result = push.replay(settings, delivery_id)
    if result.startswith("still"):
        raise ApiError(409, f"delivery #{delivery_id} is {result[6:]}: wait for it to finish")
    session.expire_all()
    return jsonify(result=result, delivery=_delivery(_own_delivery(delivery_id))), 202


# --------------------------------------------------------------------------- opt-outs (central admin)

def _admin_only() -> None:
    if not g.principal.admin:
        raise ApiError(403, "only a central-admin token manages opt-outs")


@blueprint.get("/optouts")
@authenticated
def list_optouts() -> Response:
    """Numbers that sent BERHENTI/STOP, newest first."""
    _admin_only()
    session, _registry, _principal, settings = _ctx()
    raw = request.args.get("number", "")
    if len(raw) > 32:
        raise ApiError(400, "number: at most 32 characters")
    number = optouts.normalize(raw, settings.DEFAULT_REGION) if raw.strip() else None
    rows = optouts.listing(session, number, _int_arg("limit", 100, 1, 1000))
    return jsonify(optouts=[optouts.as_dict(r) for r in rows])


@blueprint.delete("/optouts/<phone>")
@authenticated
def remove_optout(phone: str) -> Response:
    """Lift a number's opt-out."""
    _admin_only()
    session, _registry, principal, settings = _ctx()
    number = optouts.normalize(phone[:32], settings.DEFAULT_REGION)
    if not optouts.remove(session, number, by=f"API token #{principal.token_id}"):
        raise ApiError(404, "this number has not opted out")
    session.commit()
    return jsonify(removed=number)


# --------------------------------------------------------------------------- documentation

@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API and of Open311."""
    with OPENAPI_FILE.open(encoding="utf-8") as f:
        return cast(dict[str, Any], yaml.safe_load(f))


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document (no token needed)."""
    return jsonify(openapi_document())
