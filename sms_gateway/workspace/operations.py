"""The operations page: queues, workers, channels, failed sends and webhooks, the surge rate.

For central admins and operators. An operator (``access.OPERATOR``) runs the
gateway and reads no complaint: this page is the only one it opens, every
report page and the inbox answer 404 (the inbox sends it here), and the page
shows failed SMS by purpose, masked number and reason, never their text.

The figures are ``metrics.snapshot``: the same function ``/metrics`` reads, so
the page and a scrape taken at the same moment agree. Retry and replay call
the functions behind ``sms-gateway messages retry`` and ``sms-gateway agency
webhook replay``.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from .. import metrics, outbox
from ..agencies import push
from ..config import Settings
from ..models import OutboundMessage, OutboundState, WebhookDelivery
from ..phone import mask
from .access import OPERATOR
from .pages import _settings, blueprint, db, signed_in

log = logging.getLogger(__name__)

KANNEL_TIMEOUT = 3.0
LIST_LIMIT = 50
# What an operator may open: this page, its actions, and its own account.
OPERATOR_ENDPOINTS = frozenset({"workspace.ops_page", "workspace.ops_retry", "workspace.ops_replay",
                                "workspace.account", "workspace.logout", "workspace.login",
                                "workspace.choose_language", "workspace.set_password", "workspace.static"})


@blueprint.before_request
def _operators_see_operations_only() -> ResponseReturnValue | None:
    viewer = g.get("viewer")
    if viewer is None or viewer.role != OPERATOR or request.endpoint in OPERATOR_ENDPOINTS:
        return None
    if request.endpoint == "workspace.inbox_page":
        return redirect(url_for("workspace.ops_page"))
    abort(404)


@dataclass
class KannelStatus:
    """What Kannel's status page said (or why it said nothing)."""

    url: str
    ok: bool = False
    http_status: int | None = None
    error: str | None = None
    gateway: str | None = None  # "running, uptime 0d 1h 2m 3s"
    smscs: list[tuple[str, str]] = field(default_factory=list)  # (smsc id, status)
    text: str | None = None  # a non-XML status page, its first lines


def kannel_status(settings: Settings) -> KannelStatus | None:
    """Fetch KANNEL_STATUS_URL (None when unset); an unreachable Kannel is a status, not an error."""
    url = settings.KANNEL_STATUS_URL
    if not url:
        return None
    shown = str(url).split("?", 1)[0]  # the query holds Kannel's admin password
    status = KannelStatus(url=shown)
    try:
        response = requests.get(str(url), timeout=KANNEL_TIMEOUT)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"
        query = str(url).partition("?")[2]
        status.error = error.replace(query, "…") if query else error
        return status
    status.http_status = response.status_code
    status.ok = response.status_code == 200
    body = response.text[:200_000]
    try:
        # Our own Kannel, configured by the operator (ElementTree resolves no external entities).
        root = ElementTree.fromstring(body)  # noqa: S314 - a trusted, size-capped page; no entity expansion
    except ElementTree.ParseError:
        status.text = "\n".join(body.strip().splitlines()[:12])
        return status
    status.gateway = (root.findtext("status") or "").strip() or None
    for smsc in root.iter("smsc"):
        status.smscs.append(((smsc.findtext("id") or smsc.findtext("name") or "?").strip(),
                             (smsc.findtext("status") or "?").strip()))
    return status


def _operator_only() -> None:
    viewer = g.get("viewer")
    if viewer is None or not viewer.operates:
        abort(404)


def _failed_sends() -> list[dict[str, Any]]:
    rows = db().scalars(select(OutboundMessage)
                        .where(OutboundMessage.state.in_([OutboundState.FAILED, OutboundState.UNDELIVERED]))
                        .order_by(OutboundMessage.updated_at.desc(), OutboundMessage.id.desc()).limit(LIST_LIMIT))
    return [{"id": r.id, "channel": r.channel, "recipient": mask(r.recipient), "purpose": r.purpose,
             "state": r.state, "attempts": r.attempts, "error": r.error, "error_code": r.error_code,
             "at": r.updated_at} for r in rows]


def _failed_deliveries() -> list[WebhookDelivery]:
    return list(db().scalars(select(WebhookDelivery).where(WebhookDelivery.state == push.FAILED)
                             .order_by(WebhookDelivery.updated_at.desc(), WebhookDelivery.id.desc())
                             .limit(LIST_LIMIT)))


def surge_bars(per_minute: list[int], width: int = 300, height: int = 60) -> list[dict[str, float]]:
    """SVG bars (x, y, w, h) of the per-minute counts, the tallest filling ``height``."""
    top = max(per_minute, default=0) or 1
    step = width / max(1, len(per_minute))
    return [{"x": round(i * step, 2), "w": round(max(1.0, step - 1), 2), "h": round(n / top * height, 2),
             "y": round(height - n / top * height, 2), "n": n} for i, n in enumerate(per_minute)]


@blueprint.get("/ops")
@signed_in
def ops_page() -> ResponseReturnValue:
    """The operations page (its figures block alone for htmx's refresh every 10 s)."""
    _operator_only()
    settings = _settings()
    snap = metrics.snapshot(settings)
    values = {"snap": snap, "backlog": metrics.backlog_seconds(settings, snap) if snap.database_up else {},
              "kannel": kannel_status(settings), "failed_sends": _failed_sends(),
              "failed_deliveries": _failed_deliveries(), "bars": surge_bars(snap.per_minute),
              "lanes": outbox.LANES, "surge_minutes": metrics.SURGE_MINUTES}
    if request.headers.get("HX-Request"):
        return render_template("_ops.html", **values)
    return render_template("ops.html", **values)


@blueprint.post("/ops/sms/<int:outbound_id>/retry")
@signed_in
def ops_retry(outbound_id: int) -> ResponseReturnValue:
    """Queue a failed SMS again (``sms-gateway messages retry ID``)."""
    _operator_only()
    db().rollback()
    if outbox.retry(_settings(), outbound_id):
        flash(_("SMS #%(id)s diantrekan ulang.", id=outbound_id), "ok")
    else:
        flash(_("SMS #%(id)s tidak bisa dikirim ulang (tidak ada, sudah terkirim, atau sedang dikirim).",
                id=outbound_id), "warn")
    return redirect(url_for("workspace.ops_page") + "#failed-sends")


@blueprint.post("/ops/webhooks/<int:delivery_id>/replay")
@signed_in
def ops_replay(delivery_id: int) -> ResponseReturnValue:
    """Send a webhook delivery again (``sms-gateway agency webhook replay ID``)."""
    _operator_only()
    db().rollback()
    result = push.replay(_settings(), delivery_id)
    if result == "replayed":
        flash(_("Webhook #%(id)s dikirim ulang.", id=delivery_id), "ok")
    else:
        flash(_("Webhook #%(id)s tidak dikirim ulang: %(reason)s", id=delivery_id, reason=result), "warn")
    return redirect(url_for("workspace.ops_page") + "#failed-webhooks")
