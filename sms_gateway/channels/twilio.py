"""Twilio: inbound webhook, delivery-status callback, and sending through the REST API.

Webhooks are authenticated with the SDK's own ``RequestValidator`` against the
URL rebuilt from ``PUBLIC_BASE_URL``: behind a TLS-terminating proxy the URL
Flask sees (http://10.0.0.5:8000/…) is not the one Twilio signed.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

import requests
from flask import Blueprint, Response, current_app, request
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from .. import gsm, ingest
from ..config import Settings
from ..db import session_factory
from ..models import parse_id
from .base import IncomingSMS, NotConfigured, OutgoingSMS, SendError, SendResult, register

log = logging.getLogger(__name__)

NAME = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

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
    """Sends SMS with the Twilio REST client (``messages.create``)."""

    client: Client
    settings: Settings
    name: str = NAME
    queue: str = "outbound"

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
            # 429 and 5xx can pass; any other 4xx (21211 invalid number, 21610
            # unsubscribed, 20003 bad credentials) will fail the same way again.
            retryable = exc.status == 429 or exc.status >= 500
            code = str(exc.code) if exc.code else f"http-{exc.status}"
            raise SendError(f"Twilio {exc.status} {code}: {exc.msg}", retryable=retryable, code=code) from exc
        except requests.exceptions.RequestException as exc:
            raise SendError(f"Twilio unreachable: {type(exc).__name__}: {exc}", retryable=True,
                            code="network") from exc
        segments = int(message.num_segments) if message.num_segments else gsm.measure(sms.text).segments
        return SendResult(provider_id=message.sid, status=STATUS_MAP.get(str(message.status), "sent"),
                          segments=segments)


@register(NAME)
def build(settings: Settings) -> TwilioChannel:
    """A Twilio sender, or ``NotConfigured`` when credentials or a sender are missing."""
    missing = [name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not settings.get(name)]
    if missing:
        raise NotConfigured(f"{' and '.join(missing)} not set")
    if not (settings.TWILIO_FROM_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID):
        raise NotConfigured("set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    # The SDK waits forever by default; a hung API must not hang a worker.
    http = TwilioHttpClient(timeout=settings.SEND_TIMEOUT)
    client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http)
    if settings.TWILIO_API_BASE_URL:
        client.api.base_url = str(settings.TWILIO_API_BASE_URL).rstrip("/")
    return TwilioChannel(client=client, settings=settings)


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
    from ..jobs import record_delivery_status

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
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        moved = record_delivery_status(session, outbound_id, state, status, error_code,
                                       f"Twilio error {error_code}" if error_code else None, provider_id=sid)
        session.commit()
    log.info("Twilio status %s for outbound #%s (%s)", status, outbound_id, "applied" if moved else "kept")
    return Response("", status=204)
