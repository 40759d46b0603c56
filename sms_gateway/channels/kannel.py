"""Kannel: the telco short-code path (SMPP binds held by bearerbox, HTTP by smsbox).

Inbound, smsbox calls the ``get-url`` of an ``sms-service`` for every SMS to
the short code (README, "Kannel", has the whole ``kannel.conf``)::

    /sms/kannel?token=TOKEN&id=%I&from=%p&to=%P&text=%a&smsc=%i&time=%T&coding=%c&charset=%C&udh=%u

Outbound, replies go through smsbox's ``sendsms`` with a ``dlr-url`` pointing
back at ``/sms/kannel/dlr`` so delivery reports update the outbound row.

Kannel cannot sign its requests, so both endpoints check a shared secret (the
``token`` parameter, part of the URL configured in Kannel) and the TCP peer
address against ``KANNEL_ALLOWED_IPS``. ``X-Forwarded-For`` is deliberately
not consulted: any client can write it. Behind a reverse proxy the peer is the
proxy, so either list the proxy (and let it restrict who reaches these paths)
or, better, let Kannel call the web process directly on the internal network.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests
from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from requests.adapters import HTTPAdapter

from .. import gsm, ingest
from ..config import ConfigError, Settings
from ..models import parse_id
from ..outbox import DeliveryReport, record_delivery
from .base import (
    NOT_SENT,
    UNKNOWN,
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

NAME = "kannel"


# --------------------------------------------------------------------------- delivery reports

@dataclass(frozen=True)
class DlrType:
    """One of Kannel's delivery-report types (the ``%d`` of a dlr-url)."""

    code: int
    label: str  # stored as provider_status
    state: str  # our outbound state


# Kannel sends one type per report; a message usually gets 8 (or 4) first, then 1 or 2.
DLR_TYPES: dict[int, DlrType] = {t.code: t for t in (
    DlrType(1, "delivered", "delivered"),  # handset confirmed
    DlrType(2, "undelivered", "undelivered"),  # the SMSC gave up
    DlrType(4, "queued", "sent"),  # buffered at the SMSC, still on its way
    DlrType(8, "smsc-accepted", "sent"),  # SMSC took it (submit_sm_resp OK)
    DlrType(16, "smsc-rejected", "failed"),  # SMSC refused it (submit_sm_resp NACK)
)}


def dlr_outcome(code: int) -> DlrType | None:
    """What a Kannel DLR type means for our outbound message (None: unknown type)."""
    return DLR_TYPES.get(code)


# --------------------------------------------------------------------------- sending

# smsbox answers 202 "0: Accepted for delivery" or 202 "3: Queued for later
# delivery" (SMSC down, bearerbox keeps it); both mean Kannel has the message.
SENDSMS_ACCEPTED = ("0:", "3:")


def sendsms_outcome(status: int, body: str) -> None:
    """Raise ``SendError`` unless smsbox's answer means it took the message."""
    answer = body.strip()
    if 200 <= status < 300 and answer.startswith(SENDSMS_ACCEPTED):
        return
    # 503 "Temporal failure, try again later." and other 5xx pass; 403 bad
    # credentials, 400 "... rejected" and "Not routable. Do not try again."
    # fail the same way next time. A 2xx with an unknown answer is not retried:
    # Kannel may have taken the SMS, and sending it again would double it.
    raise SendError(f"Kannel sendsms answered {status}: {answer[:200] or '(empty)'}",
                    retryable=status >= 500, throttled=status == 429, code=f"http-{status}")


@dataclass
class KannelChannel:
    """Sends SMS through smsbox's sendsms HTTP interface."""

    settings: Settings
    http: requests.Session
    name: str = NAME
    rate: float | None = None
    concurrency: int | None = None

    def dlr_url(self, outbound_id: int) -> str:
        """dlr-url for one message; Kannel substitutes %d (type), %A (SMSC answer), %T (time)."""
        token = quote(str(self.settings.KANNEL_INBOUND_TOKEN or ""), safe="")
        # The escapes must reach Kannel literally; requests percent-encodes the
        # whole URL as one parameter and smsbox decodes it once.
        return self.settings.public_url(
            f"/sms/kannel/dlr?token={token}&id={outbound_id}&status=%d&answer=%A&smsc=%i&time=%T")

    def params(self, sms: OutgoingSMS) -> dict[str, str]:
        """Query parameters of the sendsms request for ``sms``."""
        length = gsm.measure(sms.text)
        params = {
            "username": str(self.settings.KANNEL_USERNAME),
            "password": str(self.settings.KANNEL_PASSWORD),
            "from": str(self.settings.SHORT_CODE),
            "to": sms.recipient,
            "text": sms.text,
            # We always hand Kannel UTF-8. coding=0 lets it pack GSM-7; anything
            # outside GSM-7 must go as UCS-2 (coding=2) or Kannel replaces it by '?'.
            "charset": "UTF-8",
            "coding": "0" if length.encoding == "gsm7" else "2",
            "dlr-mask": str(self.settings.KANNEL_DLR_MASK),
            "dlr-url": self.dlr_url(sms.outbound_id),
        }
        if self.settings.KANNEL_SMSC:
            params["smsc"] = str(self.settings.KANNEL_SMSC)
        return params

    def send(self, sms: OutgoingSMS) -> SendResult:
        """Hand ``sms`` to smsbox; classify its answer as sent, retry or failed."""
        url = str(self.settings.KANNEL_SENDSMS_URL)
        try:
            resp = self.http.get(url, params=self.params(sms), timeout=self.settings.SEND_TIMEOUT)
        except requests.RequestException as exc:
            # The exception text contains the request URL, password included:
            # name the host only, since the reason is stored and logged.
            host = urlsplit(url).netloc
            raise SendError(f"Kannel sendsms unreachable at {host}: {type(exc).__name__}",
                            retryable=True, code="network") from None
        sendsms_outcome(resp.status_code, resp.text)
        # sendsms answers without a message id; DLRs find the row by the id in dlr-url.
        return SendResult(provider_id=None, status="sent", segments=gsm.measure(sms.text).segments)

    def reconcile(self, sms: OutgoingSMS, attempt_started: datetime) -> Reconciled:
        """Decide from the DLRs carrying our id: any of them already moved the row, so none came.

        sendsms gives no id to look up. With DLR types 8 (SMSC accepted) or 16
        (rejected) asked for, the SMSC answers every submission within
        seconds; none by KANNEL_DLR_DEADLINE means Kannel never took the SMS.
        Without them nothing can tell.
        """
        deadline = attempt_started + timedelta(seconds=self.settings.KANNEL_DLR_DEADLINE)
        if datetime.now(UTC) < deadline:
            return Reconciled(WAIT, f"waiting for a Kannel DLR until {deadline:%H:%M:%S}Z")
        if int(self.settings.KANNEL_DLR_MASK) & (8 | 16):
            return Reconciled(NOT_SENT, f"no Kannel DLR (8/16) within {self.settings.KANNEL_DLR_DEADLINE} s")
        return Reconciled(UNKNOWN, "Kannel gives no message id and KANNEL_DLR_MASK asks no SMSC report (8/16)")


@register(NAME)
def build(settings: Settings) -> KannelChannel:
    """A Kannel sender, or ``NotConfigured`` when the sendsms URL or credentials are missing."""
    missing = [name for name in ("KANNEL_SENDSMS_URL", "KANNEL_USERNAME", "KANNEL_PASSWORD")
               if not settings.get(name)]
    if missing:
        raise NotConfigured(f"{', '.join(missing)} not set")
    concurrency = int(settings.KANNEL_SEND_CONCURRENCY)
    return KannelChannel(settings=settings, http=_http_session(concurrency), rate=settings.KANNEL_MPS,
                         concurrency=concurrency)


@lru_cache(maxsize=4)
def _http_session(connections: int) -> requests.Session:
    # One pooled session per process: a keep-alive connection to smsbox per
    # sender thread instead of a TCP handshake per reply.
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=max(10, connections)))
    session.mount("https://", HTTPAdapter(pool_maxsize=max(10, connections)))
    return session


# --------------------------------------------------------------------------- inbound parsing

class BadRequest(ValueError):
    """A Kannel request we cannot use; the message is the reason given with the 400."""


def query_bytes(raw: bytes) -> dict[str, bytes]:
    """Query string → raw bytes of each parameter (the first of repeated ones).

    Kannel percent-encodes the SMS's bytes as they are: UTF-8 for GSM and
    recoded text, but UTF-16BE for UCS-2 without ``mo-recode``. Decoding the
    query as UTF-8 (what Flask's ``request.args`` does) would destroy those, so
    it is read through Latin-1, which maps every byte to one code point, and
    turned back into the exact bytes.
    """
    fields: dict[str, bytes] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        fields.setdefault(key, value.encode("latin-1"))
    return fields


def decode_text(data: bytes, coding: str, charset: str) -> tuple[str, bool]:
    """The SMS text from Kannel's bytes, and whether they decoded cleanly.

    ``charset`` (Kannel's %C) wins when present. Without it, UCS-2 (coding 2)
    is UTF-16BE; anything else is tried as UTF-8, then as Latin-1, which is how
    older Kannels passed GSM text.
    """
    if charset:
        try:
            info = codecs.lookup(charset)
        except (LookupError, ValueError):  # ValueError: a NUL in the name
            raise BadRequest(f"unknown charset {charset[:40]!r}") from None
        # Python also has bytes-to-bytes codecs (hex, zlib) and str-to-str ones (rot13): not charsets.
        if not getattr(info, "_is_text_encoding", True):
            raise BadRequest(f"{charset[:40]!r} is not a character set")
        codec = info.name
    elif coding == "2":
        codec = "utf-16-be"
    else:
        try:
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            return data.decode("latin-1"), True
    try:
        return data.decode(codec), True
    except (UnicodeError, ValueError):
        # Keep the message: a citizen is waiting for an answer, and an
        # operator can read the rest. The flag goes into the stored meta.
        # Some codecs (punycode, idna) fail even with "replace": then UTF-8's.
        try:
            return data.decode(codec, "replace"), False
        except (UnicodeError, ValueError):
            return data.decode("utf-8", "replace"), False


def concatenation(udh: bytes) -> tuple[int, int] | None:
    """(part, total) from a concatenation element of a UDH, or None when there is none."""
    if len(udh) < 2:
        return None
    end = min(len(udh), 1 + udh[0])
    pos = 1
    while pos + 2 <= end:
        iei, size = udh[pos], udh[pos + 1]
        data = udh[pos + 2:pos + 2 + size]
        if iei == 0x00 and size == 3 and len(data) == 3:
            return data[2], data[1]
        if iei == 0x08 and size == 4 and len(data) == 4:
            return data[3], data[2]
        pos += 2 + size
    return None


def _text_field(fields: Mapping[str, bytes], name: str) -> str:
    return fields.get(name, b"").decode("utf-8", "replace").strip()


def dedupe_key(message_id: str, sender: str, recipient: str, text: str,
               moment: datetime, window: int) -> str:
    """The external id that makes a redelivered SMS a duplicate.

    Kannel's own id (%I, a UUID kept in its store across restarts) when the
    get-url has it. Otherwise a hash of sender, receiver, text and the
    ``window``-second slot of the message's time (Kannel's %T when given,
    which a redelivery carries unchanged; else our clock, so a redelivery that
    straddles a slot boundary is stored twice).
    """
    if message_id:
        return message_id
    slot = int(moment.timestamp()) // max(window, 1)
    digest = hashlib.sha256(f"{sender}\n{recipient}\n{text}\n{slot}".encode()).hexdigest()
    return f"sha256:{digest}"


def parse_inbound(fields: Mapping[str, bytes], *, now: datetime, window: int) -> IncomingSMS:
    """An ``IncomingSMS`` from the get-url parameters (raw bytes); ``BadRequest`` when unusable."""
    sender = _text_field(fields, "from")
    missing = [name for name in ("from", "text") if name not in fields or (name == "from" and not sender)]
    if missing:
        raise BadRequest(f"missing {', '.join(missing)} (check the get-url: from=%p&text=%a)")
    message_id = _text_field(fields, "id")
    if len(message_id) > 100:
        raise BadRequest("id is longer than 100 characters")
    coding = _text_field(fields, "coding")
    charset = _text_field(fields, "charset")
    text, clean = decode_text(fields["text"], coding, charset)
    recipient = _text_field(fields, "to")

    provider_time: datetime | None = None
    raw_time = _text_field(fields, "time")
    if raw_time:
        try:
            provider_time = datetime.fromtimestamp(int(raw_time), UTC)
        except (ValueError, OverflowError, OSError):
            # Not worth losing an SMS over: a get-url with %t instead of %T.
            log.warning("Kannel time %r is not a Unix time; ignored", raw_time[:40])

    udh = fields.get("udh", b"")
    part = concatenation(udh)
    meta: dict[str, Any] = {"smsc": _text_field(fields, "smsc") or None, "coding": coding or None,
                            "charset": charset or None}
    if message_id:
        meta["kannel_id"] = message_id
    if not clean:
        meta["decode_errors"] = True
    if udh:
        meta["udh"] = udh.hex()
    if part:
        meta["part"] = f"{part[0]}/{part[1]}"
    return IncomingSMS(
        channel=NAME,
        external_id=dedupe_key(message_id, sender, recipient, text, provider_time or now, window),
        sender=sender,
        recipient=recipient,
        text=text,
        provider_time=provider_time,
        # Kannel joins concatenated parts before calling us; a part that still
        # carries a concatenation header arrived without its siblings.
        incomplete=part is not None and part[1] > 1,
        meta={k: v for k, v in meta.items() if v is not None},
    )


# Headers smsbox sends to a post-url, for the parameters a plain post-url lacks.
_POST_HEADERS = {"from": "X-Kannel-From", "to": "X-Kannel-To", "smsc": "X-Kannel-SMSC",
                 "coding": "X-Kannel-Coding"}


def request_fields() -> dict[str, bytes]:
    """The parameters of the current request: the query string, plus body and X-Kannel headers of a POST."""
    fields = query_bytes(request.query_string)
    if request.method == "POST":
        # smsbox's post-url sends the text as the body in its own charset.
        fields.setdefault("text", request.get_data(cache=False))
        if "charset" not in fields and request.mimetype_params.get("charset"):
            fields["charset"] = request.mimetype_params["charset"].encode("latin-1")
        for name, header in _POST_HEADERS.items():
            if name not in fields and header in request.headers:
                fields[name] = request.headers[header].encode("latin-1")
    return fields


# --------------------------------------------------------------------------- authentication

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def allowed_networks(spec: str) -> tuple[Network, ...]:
    """Networks of ``KANNEL_ALLOWED_IPS``; ``ConfigError`` naming a bad entry."""
    networks = []
    for item in spec.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"KANNEL_ALLOWED_IPS: {item!r} is not an IP address or network") from None
    return tuple(networks)


def address_allowed(address: str | None, spec: str) -> bool:
    """True when ``address`` is inside one of the networks of ``spec``."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # a dual-stack listener reports 127.0.0.1 as ::ffff:127.0.0.1
    return any(ip in net for net in allowed_networks(spec))


def auth_problem(settings: Settings, address: str | None, token: bytes | None) -> str | None:
    """Why a request is not from our Kannel, or None when the address and token are right."""
    if not address_allowed(address, str(settings.KANNEL_ALLOWED_IPS)):
        return f"address {address} is not in KANNEL_ALLOWED_IPS"
    expected = settings.KANNEL_INBOUND_TOKEN
    if not expected:
        log.error("Kannel request refused: KANNEL_INBOUND_TOKEN is not set")
        return "token cannot be checked: KANNEL_INBOUND_TOKEN is not set"
    if not token:
        return "missing token"
    if not hmac.compare_digest(token, str(expected).encode()):
        return "invalid token"
    return None


# --------------------------------------------------------------------------- web endpoints

blueprint = Blueprint("kannel", __name__)


@blueprint.record_once
def _check_settings(state: BlueprintSetupState) -> None:
    # A typo in the allow-list must stop the web process at start, not turn
    # every SMS into a 500 later.
    allowed_networks(str(state.app.config["SETTINGS"].KANNEL_ALLOWED_IPS))


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def _ok() -> Response:
    # smsbox sends the body of a 200 answer to the citizen as an SMS (the
    # sms-service's max-messages = 0 stops that too, but a Kannel configured
    # otherwise must not text "OK" to anyone). Replies go out through sendsms.
    # Not 204: smsbox counts only 200 and 202 as success.
    return Response(b"", status=200, content_type="text/plain")


def _refused(settings: Settings, fields: Mapping[str, bytes], what: str) -> Response | None:
    problem = auth_problem(settings, request.remote_addr, fields.get("token"))
    if problem is None:
        return None
    log.warning("Kannel %s from %s refused: %s", what, request.remote_addr, problem)
    return _text(403, problem)


@blueprint.route("/sms/kannel", methods=["GET", "POST"])
def inbound() -> Response:
    """Store an SMS from smsbox's get-url (or post-url) and answer with an empty body."""
    settings = _settings()
    fields = request_fields()
    refused = _refused(settings, fields, "SMS")
    if refused:
        return refused
    try:
        sms = parse_inbound(fields, now=datetime.now(UTC), window=settings.KANNEL_DEDUPE_WINDOW)
    except BadRequest as exc:
        log.warning("Kannel SMS rejected: %s", exc)
        return _text(400, str(exc))
    # Database down: the message is spooled to disk (fsynced) and acknowledged;
    # the web process stores it when the database is back.
    ingest.accept_or_spool(settings, sms)
    return _ok()


@blueprint.route("/sms/kannel/dlr", methods=["GET", "POST"])
def delivery_report() -> Response:
    """Apply a Kannel delivery report to the outbound message named in the dlr-url (never backwards)."""
    settings = _settings()
    fields = query_bytes(request.query_string)
    refused = _refused(settings, fields, "DLR")
    if refused:
        return refused
    outbound_id = parse_id(_text_field(fields, "id"))
    raw_status = _text_field(fields, "status")
    if outbound_id is None or not (raw_status.isascii() and raw_status.isdigit() and len(raw_status) <= 4):
        return _text(400, "id and status must be numbers (dlr-url: ...&id=<outbound id>&status=%d)")
    code = int(raw_status)
    dlr = dlr_outcome(code)
    if dlr is None:
        log.warning("unknown Kannel DLR type %s for outbound #%s; ignored", code, outbound_id)
        return _ok()
    answer = _text_field(fields, "answer")  # %A: the SMSC's words, e.g. "NACK/0x0000000b/…"
    failed = dlr.state in ("undelivered", "failed")
    applied = record_delivery(settings, DeliveryReport(
        outbound_id, dlr.state, f"{code} {dlr.label}",
        error_code=f"dlr-{code}" if failed else None,
        error=f"Kannel DLR {code} {dlr.label}: {answer}"[:500] if failed else None,
    ))
    log.info("Kannel DLR %s (%s) for outbound #%s (%s)", code, dlr.label, outbound_id,
             "applied" if applied else "kept")
    return _ok()
