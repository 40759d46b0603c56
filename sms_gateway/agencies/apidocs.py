"""The API reference page at ``/api/v1/docs``: Swagger UI rendering ``/api/v1/openapi.json``.

Swagger UI is vendored in ``static/swagger-ui/`` (its package.json says the
version, SHA256SUMS the files; ``make swagger-ui`` fetches it from the npm
registry, README "API reference page"), so the page needs no other host.
Its Content-Security-Policy allows this origin only: a bundle that tried to
reach a CDN, a font service or Swagger's online validator would be refused by
the browser, not merely not asked to.

Assets are addressed with a fingerprint of their content (``?v=…``) and cached
for a year as immutable; the page itself is revalidated on every visit, so a
new release shows new assets at once.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, render_template, request, send_from_directory, url_for
from werkzeug.exceptions import NotFound

blueprint = Blueprint("api_docs", __name__, url_prefix="/api/v1/docs", template_folder="templates")

STATIC_DIR = Path(__file__).resolve().parent / "static"
YEAR = 365 * 24 * 3600
# Python guesses types from the host's /etc/mime.types when there is one, so .js
# would be application/javascript in a slim image and text/javascript elsewhere.
MIMETYPES = {".js": "text/javascript", ".css": "text/css"}
# Only this origin, for everything. 'data:' images are the icons swagger-ui.css inlines.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",  # the document, and "Try it out" against this gateway
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))


@cache
def assets() -> frozenset[str]:
    """The page's files as URLs name them: a request for anything else never touches the disk."""
    return frozenset(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file())


@cache
def fingerprint(filename: str) -> str:
    """The first 16 hex digits of the SHA-256 of one of the page's files."""
    return hashlib.sha256((STATIC_DIR / filename).read_bytes()).hexdigest()[:16]


def asset_url(filename: str) -> str:
    """URL of a static file of the page, fingerprinted so it can be cached for good."""
    return url_for("api_docs.asset", filename=filename, v=fingerprint(filename))


@blueprint.get("")
def page() -> Response:
    """The API reference, readable in a browser (no token needed, like the document)."""
    response = Response(render_template("api_docs.html", asset=asset_url), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.cache_control.no_cache = True
    return response


@blueprint.get("/assets/<path:filename>")
def asset(filename: str) -> Response:
    """A static file of the page; cached for a year when asked for by its current fingerprint."""
    if filename not in assets():
        raise NotFound(f"no asset {filename}")
    current = request.args.get("v") == fingerprint(filename)
    response = send_from_directory(STATIC_DIR, filename, max_age=YEAR if current else None,
                                   mimetype=MIMETYPES.get(Path(filename).suffix))
    if current:
        response.cache_control.public = True
        response.cache_control.immutable = True
    else:  # an old or missing fingerprint: usable, but never cached as if it were current
        response.cache_control.no_cache = True
    return response


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
