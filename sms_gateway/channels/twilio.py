"""Twilio: inbound webhook, delivery-status callback, and sending through the REST API.

Webhooks are authenticated with the SDK's own ``RequestValidator`` against the
URL rebuilt from ``PUBLIC_BASE_URL``: behind a TLS-terminating proxy the URL
Flask sees (http://10.0.0.5:8000/…) is not the one Twilio signed.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from .. import gsm, ingest
from ..config import Settings
from ..db import session_factory
from ..models import OutboundMessage, parse_id
from ..outbox import DeliveryReport, record_delivery
from .base import (
    NOT_SENT,
    SENT,
    WAIT,
    IncomingSMS,
    NotConfigured,
    OutgoingSMS,
    Reconciled,
    SendError,
    SendResult,
    register,
)

log = logging.getLogger(__name__)

NAME = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Reconciliation reads the latest messages to the number, created from a
# little before the interrupted attempt (clocks differ) on.
RECONCILE_LOOKBACK = 50
RECONCILE_SLACK = timedelta(minutes=2)

# Twilio MessageStatus -> our outbound state.
STATUS_MAP = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

blueprint = Blueprint("twilio", __name__)


# --------------------------------------------------------------------------- sending

@dataclass
class TwilioChannel:
    """Sends SMS with the Twilio REST client (``messages.create``); one pooled HTTP session for all threads."""

    client: Client
    settings: Settings
    name: str = NAME
    rate: float | None = None
    concurrency: int | None = None

    def send(self, sms: OutgoingSMS) -> SendResult:
        """Create the message at Twilio; classify failures as retryable or not."""
        params: dict[str, Any] = {
            "to": sms.recipient,
            "body": sms.text,
            "status_callback": self.settings.public_url(f"/sms/twilio/status?id={sms.outbound_id}"),
        }
        if self.settings.TWILIO_MESSAGING_SERVICE_SID:
            params["messaging_service_sid"] = self.settings.TWILIO_MESSAGING_SERVICE_SID
        else:
            params["from_"] = self.settings.TWILIO_FROM_NUMBER
        try:
            message = self.client.messages.create(**params)
        except TwilioRestException as exc:
            # 429 (20429 "Too Many Requests") parks the channel; 5xx can pass;
            # any other 4xx (21211 invalid number, 21610 unsubscribed, 20003
            # bad credentials) will fail the same way again.
            code = str(exc.code) if exc.code else f"http-{exc.status}"
            raise SendError(f"Twilio {exc.status} {code}: {exc.msg}", retryable=exc.status >= 500,
                            throttled=exc.status == 429, code=code) from exc
        except requests.exceptions.RequestException as exc:
            raise SendError(f"Twilio unreachable: {type(exc).__name__}: {exc}", retryable=True,
                            code="network") from exc
        segments = int(message.num_segments) if message.num_segments else gsm.measure(sms.text).segments
        return SendResult(provider_id=message.sid, status=STATUS_MAP.get(str(message.status), "sent"),
                          segments=segments)

    def reconcile(self, sms: OutgoingSMS, attempt_started: datetime) -> Reconciled:
        """Look for the SMS in Twilio's Messages list: sent to the same number since the attempt, same body.

        Filtered by ``To`` at Twilio and by creation time here: ``DateSent``
        filters by day only, and a message still queued at Twilio has no
        ``date_sent`` yet. A message that another of our rows already names is
        not this one (the same help text can go to a number twice).
        """
        since = attempt_started - RECONCILE_SLACK
        try:
            found = [m for m in self.client.messages.list(to=sms.recipient, limit=RECONCILE_LOOKBACK)
                     if m.body == sms.text and m.date_created is not None and m.date_created >= since]
        except (TwilioRestException, requests.exceptions.RequestException) as exc:
            return Reconciled(WAIT, f"Twilio Messages list unavailable: {type(exc).__name__}")
        taken = self.taken(sms.outbound_id, [str(m.sid) for m in found])
        found = [m for m in found if m.sid not in taken]
        if found:
            first = min(found, key=lambda m: m.date_created)
            return Reconciled(SENT, f"found at Twilio as {first.sid} ({first.status})", provider_id=str(first.sid))
        return Reconciled(NOT_SENT, f"not in Twilio's Messages list to this number since {since:%Y-%m-%d %H:%M:%S}Z")

    def taken(self, outbound_id: int, sids: list[str]) -> set[str]:
        """The Twilio ids among ``sids`` that other outbound rows already hold."""
        if not sids:
            return set()
        with session_factory(self.settings.DATABASE_URL)() as session:
            return set(session.scalars(select(OutboundMessage.provider_id).where(
                OutboundMessage.provider_id.in_(sids), OutboundMessage.id != outbound_id)))


class PooledHttpClient(HttpClient):
    """The Twilio SDK's HTTP client interface on a urllib3 connection pool shared by the sender's threads.

    The SDK's own client goes through requests, which costs twice the CPU of
    urllib3 per call (sessions, hooks, cookie jars, environment lookups): at a
    short code's 100 SMS/s that is a tenth of a core for nothing
    (docs/BENCHMARKS.md). Network errors are raised as requests' exceptions,
    like the SDK's client does, so callers see the same errors either way.
    """

    def __init__(self, timeout: float, connections: int) -> None:
        super().__init__(logger=log, is_async=False, timeout=timeout)
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=connections, block=False, retries=False)

    def request(self, method: str, url: str, params: dict[str, object] | None = None,
                data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> TwilioResponse:
        """One request; the answer as the SDK's ``Response``."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url = f"{url}?{urlencode(query, doseq=True)}"
        body = urlencode({k: v for k, v in (data or {}).items() if v is not None}, doseq=True) if data else None
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            sent["Authorization"] = urllib3.make_headers(basic_auth=f"{auth[0]}:{auth[1]}")["authorization"]
        wait = timeout or self.timeout
        try:
            answer = self.pool.request(method.upper(), url, body=body, headers=sent,
                                       timeout=urllib3.Timeout(connect=wait, read=wait), redirect=allow_redirects)
        except urllib3.exceptions.HTTPError as exc:
            raise requests.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        return TwilioResponse(answer.status, answer.data.decode("utf-8", "replace"), answer.headers)


@register(NAME)
def build(settings: Settings) -> TwilioChannel:
    """A Twilio sender, or ``NotConfigured`` when credentials or a sender are missing."""
    missing = [name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not settings.get(name)]
    if missing:
        raise NotConfigured(f"{' and '.join(missing)} not set")
    if not (settings.TWILIO_FROM_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID):
        raise NotConfigured("set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    # The SDK waits forever by default; a hung API must not hang a sender. One
    # keep-alive connection per sender thread, not a handshake per SMS.
    http = PooledHttpClient(timeout=settings.SEND_TIMEOUT, connections=max(10, int(settings.SEND_CONCURRENCY)))
    client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http)
    if settings.TWILIO_API_BASE_URL:
        client.api.base_url = str(settings.TWILIO_API_BASE_URL).rstrip("/")
    return TwilioChannel(client=client, settings=settings, rate=settings.TWILIO_MPS)


# --------------------------------------------------------------------------- webhooks

def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _signature_problem(settings: Settings) -> str | None:
    """Why the request is not from Twilio, or None when the signature is good."""
    if not settings.TWILIO_VALIDATE_SIGNATURE:
        return None
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        log.error("Twilio webhook refused: TWILIO_AUTH_TOKEN is not set")
        return "signature cannot be checked: TWILIO_AUTH_TOKEN is not set"
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "missing X-Twilio-Signature"
    url = settings.public_url(request.full_path if request.query_string else request.path)
    # The form itself, not a dict copy: the SDK reads repeated fields from a MultiDict.
    validator, params = RequestValidator(token), request.form
    # validate() always computes two HMACs (the URL with and without a port);
    # the URL as configured is the one Twilio signs, so try it alone first.
    if not (hmac.compare_digest(validator.compute_signature(url, params).encode(), signature.encode())
            or validator.validate(url, params, signature)):
        return "invalid X-Twilio-Signature"
    return None


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@blueprint.post("/sms/twilio")
def inbound() -> Response:
    """Store an incoming SMS and acknowledge Twilio with empty TwiML."""
    settings = _settings()
    problem = _signature_problem(settings)
    if problem:
        return _text(403, problem)
    form = request.form
    sid = form.get("MessageSid") or form.get("SmsSid")
    missing = [name for name, value in (("From", form.get("From")), ("Body", form.get("Body")),
                                        ("MessageSid", sid)) if value is None or (name != "Body" and not value)]
    if missing:
        return _text(400, f"missing {', '.join(missing)}")
    assert sid is not None
    ingest.accept_or_spool(settings, IncomingSMS(
        channel=NAME,
        external_id=sid,
        sender=form["From"],
        recipient=form.get("To", ""),
        text=form["Body"],
        meta={"account_sid": form.get("AccountSid"), "num_segments": form.get("NumSegments")},
    ))
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


@blueprint.post("/sms/twilio/status")
def status_callback() -> Response:
    """Record MessageStatus/ErrorCode on the outbound message (never backwards)."""
    settings = _settings()
    problem = _signature_problem(settings)
    if problem:
        return _text(403, problem)
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    status = request.form.get("MessageStatus") or request.form.get("SmsStatus")
    outbound_id = parse_id(request.args.get("id"))
    if not sid or not status:
        return _text(400, "missing MessageSid or MessageStatus")
    if outbound_id is None:
        return _text(400, "missing or invalid id in the callback URL")
    state = STATUS_MAP.get(status.lower())
    if state is None:
        log.warning("unknown Twilio MessageStatus %r for outbound #%s", status, outbound_id)
        return _text(200, "ignored")
    error_code = request.form.get("ErrorCode") or None
    applied = record_delivery(settings, DeliveryReport(
        outbound_id, state, status, error_code, f"Twilio error {error_code}" if error_code else None, provider_id=sid))
    log.info("Twilio status %s for outbound #%s (%s)", status, outbound_id, "applied" if applied else "kept")
    return Response("", status=204)
