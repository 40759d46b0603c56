"""Open311 GeoReport v2 (read side) under ``/open311/v2``, so civic-tech tools can read the reports.

Mapping: service = kind of report (aduan, aspirasi, info); service_request_id =
tracking number; status = open/closed (selesai and diarsipkan are closed; the
LAPOR! status is in status_notes); agency_responsible = the agency's name;
expected_datetime = the end of the follow-up due day in Jakarta. Personal data
is removed: confidential (RAHASIA) reports are left out, no reporter number is
ever given, and phone numbers, e-mail addresses and 16-digit NIK typed in a
report's text are masked. SMS carry no location, so address, lat and long are
empty. JSON and XML, as the spec asks.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any, cast
from xml.etree import ElementTree

import phonenumbers
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from .. import deadlines
from ..config import Settings
from ..db import session_factory
from ..models import Report, utcnow
from ..registry import Registry, registry_for
from . import tokens
from .api import ApiError, list_arg, parse_moment
from .scope import Principal, visible_agencies
from .statuses import CLOSED, OPEN

blueprint = Blueprint("open311", __name__, url_prefix="/open311/v2")

SERVICES: dict[str, tuple[str, str]] = {
    "aduan": ("Pengaduan", "Keluhan atas penyelenggaraan pelayanan publik."),
    "aspirasi": ("Aspirasi", "Saran atau usulan untuk perbaikan pelayanan publik."),
    "info": ("Permintaan informasi", "Pertanyaan atau permintaan informasi tentang pelayanan publik."),
}
GROUP = "SP4N-LAPOR!"
DEFAULT_WINDOW = timedelta(days=90)  # GeoReport v2: requests of the last 90 days by default
MAX_RESULTS = 1000  # GeoReport v2: at most 1000 requests per answer
FORMATS = ("json", "xml")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_NIK = re.compile(r"(?<!\d)\d{16}(?!\d)")  # Indonesian identity card number


def scrub(text: str, region: str = "ID") -> str:
    """A report's text without the phone numbers, e-mail addresses and NIK typed in it."""
    spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region)]
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + "[nomor disembunyikan]" + text[end:]
    text = _EMAIL.sub("[email disembunyikan]", text)
    return _NIK.sub("[NIK disembunyikan]", text)


def _w3c(moment: datetime) -> str:
    return moment.astimezone(deadlines.JAKARTA).isoformat(timespec="seconds")


def service_request(report: Report, registry: Registry, region: str) -> dict[str, Any]:
    """One report as a GeoReport v2 service request."""
    agency = registry.agencies.get(report.agency) if report.agency else None
    name, _ = SERVICES.get(report.kind, (report.kind, ""))
    expected = (datetime.combine(report.followup_due, time(23, 59, 59), deadlines.JAKARTA)
                if report.followup_due else None)
    return {
        "service_request_id": report.tracking_number,
        "status": "closed" if report.status in CLOSED else "open",
        "status_notes": f"Status LAPOR!: {report.status}",
        "service_name": name,
        "service_code": report.kind,
        "description": scrub(report.text, region),
        "agency_responsible": agency.name if agency else registry.agency_label(report.agency),
        "service_notice": None,
        "requested_datetime": _w3c(report.created_at),
        "updated_datetime": _w3c(report.updated_at or report.created_at),
        "expected_datetime": _w3c(expected) if expected else None,
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


# --------------------------------------------------------------------------- responses

def _xml(root: str, item: str, rows: list[dict[str, Any]]) -> Response:
    top = ElementTree.Element(root)
    for row in rows:
        node = ElementTree.SubElement(top, item)
        for key, value in row.items():
            child = ElementTree.SubElement(node, key)
            if isinstance(value, list):
                child.text = ",".join(value)
            elif isinstance(value, bool):
                child.text = "true" if value else "false"
            elif value is not None:
                child.text = str(value)
    body = ElementTree.tostring(top, encoding="unicode")
    return Response('<?xml version="1.0" encoding="utf-8"?>' + body, mimetype="text/xml")


def rows_response(fmt: str, root: str, item: str, rows: list[dict[str, Any]]) -> Response:
    """Rows as a JSON array or as GeoReport XML (``<root><item>…</item></root>``)."""
    return jsonify(rows) if fmt == "json" else _xml(root, item, rows)


def _error(fmt: str, status: int, description: str) -> tuple[Response, int]:
    return rows_response(fmt, "errors", "error", [{"code": status, "description": description}]), status


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    fmt = "xml" if request.path.endswith(".xml") else "json"
    response, status = _error(fmt, exc.status, exc.reason)
    response.headers.update(exc.headers)
    return response, status


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ApiError(404, f"format {fmt!r} is not served (use .json or .xml)")
    return fmt


def _settings() -> Settings:
    return cast(Settings, current_app.config["SETTINGS"])


def _caller(settings: Settings, registry: Registry) -> Principal | None:
    """The token holder when OPEN311_REQUIRE_KEY is on (``api_key`` or a bearer token); None when public."""
    if not settings.OPEN311_REQUIRE_KEY:
        return None
    token = request.args.get("api_key") or ""
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    if not token and scheme.lower() == "bearer":
        token = bearer.strip()
    if not token:
        raise ApiError(401, "an API key is required (api_key=… or Authorization: Bearer …)",
                       {"WWW-Authenticate": 'Bearer realm="LAPOR! 1708"'})
    with session_factory(settings.DATABASE_URL)() as session:
        row = tokens.authenticate(session, token)
        if row is None:
            raise ApiError(403, "invalid or revoked API key")
        return Principal(token_id=row.id, admin=row.admin, code=row.agency)


# --------------------------------------------------------------------------- routes

@blueprint.get("/services.<fmt>")
def services(fmt: str) -> Response:
    """The kinds of report citizens can send (GeoReport v2 service list)."""
    fmt = _format(fmt)
    settings = _settings()
    registry = registry_for(settings)
    _caller(settings, registry)
    rows = []
    for code, (name, description) in SERVICES.items():
        keywords = sorted(word.lower() for word, kind in registry.keywords.items() if kind == code)
        rows.append({"service_code": code, "service_name": name, "description": description, "metadata": False,
                     "type": "realtime", "keywords": ",".join(keywords), "group": GROUP})
    return rows_response(fmt, "services", "service", rows)


@blueprint.get("/requests.<fmt>")
def requests_list(fmt: str) -> Response:
    """Service requests, newest first: by id list, or by service, status and date window."""
    fmt = _format(fmt)
    settings = _settings()
    registry = registry_for(settings)
    caller = _caller(settings, registry)
    query = select(Report).where(Report.confidential.is_(False))
    if caller is not None:
        visible = visible_agencies(registry, caller)
        if visible is not None:
            query = query.where(Report.agency.in_(sorted(visible)))
    ids = [i.strip() for i in request.args.get("service_request_id", "").split(",") if i.strip()]
    if ids:
        # GeoReport v2: with service_request_id the other filters are ignored.
        query = query.where(Report.tracking_number.in_(ids[:MAX_RESULTS]))
    else:
        codes = list_arg("service_code", SERVICES)
        if codes:
            query = query.where(Report.kind.in_(codes))
        wanted = [s for s in request.args.get("status", "").split(",") if s]
        for status in wanted:
            if status not in ("open", "closed"):
                raise ApiError(400, "status must be open, closed or both (open,closed)")
        if wanted == ["open"]:
            query = query.where(Report.status.in_(OPEN))
        elif wanted == ["closed"]:
            query = query.where(Report.status.in_(sorted(CLOSED)))
        start_raw, end_raw = request.args.get("start_date"), request.args.get("end_date")
        end = parse_moment(end_raw, "end_date") if end_raw else None
        start = parse_moment(start_raw, "start_date") if start_raw else None
        if start is None and end is None:
            start = utcnow() - DEFAULT_WINDOW
        if start is not None:
            query = query.where(Report.created_at >= start)
        if end is not None:
            query = query.where(Report.created_at <= end)
    region = settings.DEFAULT_REGION
    with session_factory(settings.DATABASE_URL)() as session:
        rows = session.scalars(query.order_by(Report.created_at.desc(), Report.id.desc()).limit(MAX_RESULTS)).all()
        out = [service_request(r, registry, region) for r in rows]
    return rows_response(fmt, "service_requests", "request", out)


@blueprint.get("/requests/<number>.<fmt>")
def request_one(number: str, fmt: str) -> Response:
    """One service request by tracking number (a list of one, as GeoReport v2 answers)."""
    fmt = _format(fmt)
    settings = _settings()
    registry = registry_for(settings)
    caller = _caller(settings, registry)
    with session_factory(settings.DATABASE_URL)() as session:
        report = session.scalar(select(Report).where(Report.tracking_number == number,
                                                     Report.confidential.is_(False)))
        visible = visible_agencies(registry, caller) if caller is not None else None
        if report is None or (visible is not None and report.agency not in visible):
            raise ApiError(404, f"no service request {number}")
        out = [service_request(report, registry, settings.DEFAULT_REGION)]
    return rows_response(fmt, "service_requests", "request", out)
