"""Wiring of the agencies' blueprints into the web app, with JSON errors under their prefixes."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import api, apidocs, open311

JSON_PREFIXES = (api.blueprint.url_prefix or "/api/v1", open311.blueprint.url_prefix or "/open311/v2")


HtmlErrors = Callable[[HTTPException], Response | HTTPException]


def init_app(app: Flask, html_errors: HtmlErrors | None = None) -> None:
    """Register ``/api/v1`` (with its reference page ``/api/v1/docs``) and ``/open311/v2``.

    Other paths' 404/405 go to ``html_errors`` (the workspace's pages).
    """
    app.register_blueprint(api.blueprint)
    app.register_blueprint(apidocs.blueprint)
    app.register_blueprint(open311.blueprint)

    # Unknown paths and wrong methods never reach a blueprint's handlers: answer
    # them in JSON under our prefixes, and leave every other path as it was.
    def json_errors(exc: HTTPException) -> Response | HTTPException | tuple[Response, int]:
        if not request.path.startswith(JSON_PREFIXES):
            return html_errors(exc) if html_errors is not None else exc
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

    @app.before_request
    def refuse_control_characters() -> Response | tuple[Response, int] | None:
        """A NUL or other control character in the path (404: nothing lives there) or, under our
        prefixes, in the query (400): no tracking number, code, date or filter has one, and
        PostgreSQL refuses a NUL in any text. (The SMS webhooks keep theirs: an SMS may hold anything.)
        """
        if _CONTROL.search(request.path):
            status, reason = 404, "no such path: it contains a control character"
        elif request.path.startswith(JSON_PREFIXES) and any(
                _CONTROL.search(k) or _CONTROL.search(v) for k, v in request.args.items(multi=True)):
            status, reason = 400, "the query contains a control character"
        else:
            return None
        if not request.path.startswith(JSON_PREFIXES):
            return Response(reason + "\n", status=status, mimetype="text/plain")
        if request.path.startswith(JSON_PREFIXES[1]):
            return open311.rows_response("xml" if request.path.endswith(".xml") else "json", "errors", "error",
                                         [{"code": status, "description": reason}]), status
        return api.error_response(status, reason)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
