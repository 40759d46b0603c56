"""Wiring of the workspace into the Flask app: secret key, cookies, CSRF, languages, sign-in, rate limits."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any, cast

from flask import Flask, Response, current_app, g, render_template, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .. import queue
from ..config import VAR_DIR, ConfigError, Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
LOCAL_SECRET_FILE = VAR_DIR / "secret-key"

csrf = CSRFProtect()
login_manager = LoginManager()
# Counted in the project's Redis (storage set in init_app), so every web
# process shares the same counts; only failed sign-ins are counted.
limiter = Limiter(key_func=get_remote_address, strategy="moving-window", headers_enabled=False)


@limiter.request_filter
def _outside_the_workspace() -> bool:
    # Only sign-in has limits: webhooks and the API skip the limiter's checks altogether.
    return request.blueprint != "workspace"


def secret_key(settings: Settings) -> str:
    """SECRET_KEY, or a random key kept in var/ for a single-machine install."""
    if settings.SECRET_KEY:
        return str(settings.SECRET_KEY)
    path = Path(LOCAL_SECRET_FILE)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # two web workers starting together: the first one writes, the other reads
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    log.warning("SECRET_KEY is not set: the workspace signs its cookies with a key kept in %s "
                "(set SECRET_KEY when more than one machine serves the workspace)", path)
    return key


def language() -> str:
    """The chosen language (a session setting), Indonesian unless English was picked."""
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def init_app(app: Flask) -> None:
    """Add the workspace to ``app`` (the application factory calls this)."""
    # The views register themselves on the blueprint.
    from . import admin, board_pages, desk_pages, operations, pages, rules_page  # noqa: F401
    from .pages import blueprint

    settings = cast(Settings, app.config["SETTINGS"])
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="lapor_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=str(settings.PUBLIC_BASE_URL).startswith("https://"),
        # SESSION_COOKIE_DOMAIN stays unset: host-only cookies, so an agency's
        # host never sends its session to another agency's host.
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the workspace blueprint itself (pages.before_request)
        WTF_CSRF_TIME_LIMIT=None,  # valid while the session is: an answer may take an hour to write
        WTF_CSRF_SSL_STRICT=False,  # the Referer check breaks behind some proxies; the token is the check
    )
    csrf.init_app(app)
    Babel(app, locale_selector=language, default_locale=DEFAULT_LANGUAGE,
          default_translation_directories=str(HERE / "translations"))
    login_manager.init_app(app)
    try:
        storage: dict[str, Any] = {"storage_uri": limiter_storage_uri(queue.redis_url(settings))}
    except ConfigError:
        storage = {"storage_uri": "memory://"}
        log.warning("no Redis for the workspace's sign-in limits: counting in this process only")
    app.config["RATELIMIT_STORAGE_URI"] = storage["storage_uri"]
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": 5}
    limiter.init_app(app)
    app.register_blueprint(blueprint)


def limiter_storage_uri(redis_url: str) -> str:
    """``redis_url`` as Flask-Limiter's storage (limits) names it: a Unix socket is
    ``redis+unix://`` there (``unix://`` in redis-py; ``sms-gateway run``'s private Redis is one)."""
    return "redis+unix://" + redis_url.removeprefix("unix://") if redis_url.startswith("unix://") else redis_url


def error_page(exc: HTTPException) -> Response | HTTPException:
    """The workspace's page for an HTTP error (404 looks the same whatever the reason)."""
    status = exc.code or 500
    if status not in (404, 405) and request.blueprint != "workspace":
        return exc  # a webhook's 400 keeps its plain reason for the provider
    if isinstance(exc, CSRFError):
        kind = "csrf"
    elif status in (404, 405, 429):
        kind = str(status)
    else:
        kind = "other"
    try:
        body = render_template("error.html", kind=kind, status=status, viewer=g.get("viewer"))
    except Exception:
        log.exception("error page failed")
        return exc
    response = current_app.response_class(body, status=status, mimetype="text/html")
    if status == 429 and request.path.startswith("/login"):
        response.headers["Retry-After"] = "60"
    return response
