"""The web process: an application factory wiring the channels' webhooks and health."""

from __future__ import annotations

import importlib
import logging

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from .. import queue
from ..agencies.web import init_app as init_agencies
from ..channels import CHANNEL_MODULES, load_all
from ..config import Settings, get_settings, set_settings
from ..db import get_engine
from ..logs import configure_logging
from ..metrics import GatewayCollector

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
    init_agencies(app)  # /api/v1 and /open311/v2

    @app.get("/livez")
    def livez() -> Response:
        """Liveness: the process answers (no dependency checked, so an outage restarts nothing)."""
        return jsonify(status="ok")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """Database and Redis reachability; 503 when either is down."""
        checks: dict[str, str] = {}
        try:
            with get_engine(settings.DATABASE_URL).connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            queue.get_redis(settings).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["redis"] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503

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
