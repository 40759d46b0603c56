"""The web process: an application factory wiring the channels' webhooks and health."""

from __future__ import annotations

import importlib
import logging

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .. import queue, spool
from ..agencies.web import init_app as init_agencies
from ..channels import CHANNEL_MODULES, load_all
from ..config import ConfigError, Settings, get_settings, set_settings
from ..db import get_engine, pending_migrations
from ..logs import configure_logging
from ..metrics import GatewayCollector
from ..workspace import init_app as init_workspace
from ..workspace.web import error_page
from .webhooks import spare_webhooks

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app from ``settings`` (the environment when None)."""
    if settings is not None:
        set_settings(settings)
    settings = get_settings()
    configure_logging(settings.LOG_LEVEL)
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # an SMS webhook is a few hundred bytes
    if not settings.TWILIO_VALIDATE_SIGNATURE:
        log.warning("TWILIO_VALIDATE_SIGNATURE is off: anybody can post fake SMS. "
                    "Use this only for local development.")
    load_all()
    for name in CHANNEL_MODULES:
        module = importlib.import_module(f"sms_gateway.channels.{name}")
        blueprint = getattr(module, "blueprint", None)
        if blueprint is not None:
            app.register_blueprint(blueprint)
    init_workspace(app)  # the agency workspace's pages at /
    init_agencies(app, html_errors=error_page)  # /api/v1 and /open311/v2
    spare_webhooks(app)  # the workspace's sessions, sign-in, CSRF and limits are not the providers'
    for status in (400, 429):
        app.register_error_handler(status, error_page)
    if spool.depth(settings):  # messages spooled before a restart: store them when the database answers
        spool.ensure_replayer(settings)

    @app.get("/livez")
    def livez() -> Response:
        """Liveness: the process answers (no dependency checked, so an outage restarts nothing)."""
        return jsonify(status="ok")

    last_problems: list[str] = []

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Readiness: the database reachable and migrated, Redis reachable; 503 naming what is not."""
        checks: dict[str, str] = {}
        try:
            with get_engine(settings.DATABASE_URL).connect() as conn:
                pending = pending_migrations(conn)
            checks["database"] = f"error: {pending}" if pending else "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["database"] = f"error: DATABASE_URL unreachable: {type(exc).__name__}"
        try:
            queue.get_redis(settings).ping()
            checks["redis"] = "ok"
        except ConfigError as exc:
            checks["redis"] = f"error: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["redis"] = f"error: REDIS_URL unreachable: {type(exc).__name__}"
        problems = [f"{name}: {value}" for name, value in checks.items() if value != "ok"]
        if problems != last_problems:  # one line when readiness changes, not one per probe
            if problems:
                log.warning("not ready: %s", "; ".join(problems))
            else:
                log.info("ready again")
            last_problems[:] = problems
        return jsonify(status="unavailable" if problems else "ok", **checks), 503 if problems else 200

    metrics_registry = CollectorRegistry()
    metrics_registry.register(GatewayCollector(settings))

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics: messages by state, reports by status, queue lengths."""
        return Response(generate_latest(metrics_registry), mimetype=CONTENT_TYPE_LATEST)

    @app.errorhandler(413)
    def too_large(_exc: Exception) -> tuple[str, int]:
        return "request too large\n", 413

    return app
