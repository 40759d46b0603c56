"""Wiring of the agencies' blueprints into the web app, with JSON errors under their prefixes."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import api, apidocs, open311

JSON_PREFIXES = (api.blueprint.url_prefix or "/api/v1", open311.blueprint.url_prefix or "/open311/v2")


def init_app(app: Flask) -> None:
    """Register ``/api/v1`` (with its reference page ``/api/v1/docs``) and ``/open311/v2``."""
    app.register_blueprint(api.blueprint)
    app.register_blueprint(apidocs.blueprint)
    app.register_blueprint(open311.blueprint)

    # Unknown paths and wrong methods never reach a blueprint's handlers: answer
    # them in JSON under our prefixes, and leave every other path as it was.
    def json_errors(exc: HTTPException) -> Response | HTTPException | tuple[Response, int]:
        if not request.path.startswith(JSON_PREFIXES):
            return exc
        status = exc.code or 500
        reason = exc.description or exc.name
        if request.path.startswith(JSON_PREFIXES[1]):
            return open311.rows_response("xml" if request.path.endswith(".xml") else "json", "errors", "error",
                                   [{"code": status, "description": reason}]), status
        response, status = api.error_response(status, reason)
        if exc.code == 405 and exc.response is None:
            response.headers["Allow"] = ", ".join(getattr(exc, "valid_methods", None) or [])
        return response, status

    app.register_error_handler(404, json_errors)
    app.register_error_handler(405, json_errors)
