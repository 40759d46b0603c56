"""Property tests of the provider webhooks and Open311: whatever arrives, the answer is never 5xx.

Each test runs a derandomized, fixed number of hypothesis examples (``tests.fuzzing``)
plus, as explicit examples, every input an earlier fuzzing session found answering 5xx
(issue 13): out-of-range dates, NUL in paths and queries, charsets that are not
charsets, fields longer than their columns, ids above 2^31, non-ASCII digits.
A Twilio message with a valid signature and the fields Twilio always sends is
stored, exactly once, whatever its contents.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote_from_bytes, urlencode

from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from sms_gateway import ingest
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage
from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN
from tests.fuzzing import FUZZ, server_error
from tests.support import twilio_signature

KANNEL_TOKEN = "kannel-fuzz-token"
# Anything a form field may carry: every code point but surrogates (a form is UTF-8), NUL included.
field = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
digits = st.one_of(st.integers(-2**70, 2**70).map(str), st.text("0123456789²٣", max_size=25))


def kannel_env(env):  # type: ignore[no-untyped-def]
    return {**env, "KANNEL_INBOUND_TOKEN": KANNEL_TOKEN}


@given(sid=field, sender=field, to=field, body=field, account=field)
@example(sid="SM" + "1" * 200, sender="+62812" + "3" * 40, to="1708" * 10, body="PLN ADUAN mati", account="AC")
@example(sid="SM\x00nul", sender="0812\x0034567890", to="17\x0008", body="x\x00y", account="AC\x00")
@example(sid="SMemoji", sender="😡" * 20, to="", body="\ud7ff\ue000", account="")
@FUZZ
def test_twilio_inbound_stores_every_signed_message_once(client, settings, sid, sender, to, body,
                                                          account) -> None:  # type: ignore[no-untyped-def]
    params = {"MessageSid": sid, "From": sender, "To": to, "Body": body, "AccountSid": account}
    headers = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/sms/twilio", params)}
    first = client.post("/sms/twilio", data=params, headers=headers)
    assert server_error(first) is None, server_error(first)
    if not sid or not sender.strip():
        assert first.status_code == 400
        return
    assert first.status_code == 200, first.get_data(as_text=True)
    again = client.post("/sms/twilio", data=params, headers=headers)  # Twilio's retry
    assert again.status_code == 200
    key = ingest._storable(sid)  # the key as stored: NUL marked, an over-long id hashed
    if len(key) > ingest.EXTERNAL_ID_LIMIT:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    with session_factory(settings.DATABASE_URL)() as session:
        n = session.scalar(select(func.count()).select_from(InboundMessage).where(
            InboundMessage.channel == "twilio", InboundMessage.external_id == key))
    assert n == 1


@given(sid=field, status=field, error=field, outbound_id=digits)
@example(sid="SM1", status="delivered", error="", outbound_id=str(2**31))
@example(sid="SM1", status="delivered", error="", outbound_id="99999999999999999999999")
@example(sid="SM1", status="failed", error="\x00", outbound_id="²")
@FUZZ
def test_twilio_status_callback_never_5xx(client, sid, status, error, outbound_id) -> None:  # type: ignore[no-untyped-def]
    path = f"/sms/twilio/status?{urlencode({'id': outbound_id})}"
    params = {"MessageSid": sid, "MessageStatus": status, "ErrorCode": error}
    headers = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, params)}
    response = client.post(path, data=params, headers=headers)
    assert server_error(response) is None, server_error(response)


raw = st.binary(max_size=200)
charset = st.one_of(st.sampled_from(["", "UTF-8", "UTF-16BE", "ISO-8859-1", "rot13", "hex", "zlib", "undefined",
                                     "punycode", "idna", "base64", "UTF-8\x00", "utf_32"]),
                    st.text(max_size=20)).map(lambda s: s.encode("utf-8", "surrogatepass"))


@given(message_id=raw, sender=raw, to=raw, text=raw, coding=raw, charset=charset, udh=raw, moment=raw)
@example(message_id=b"x" * 150, sender=b"0812" * 20, to=b"1708", text=b"PLN ADUAN", coding=b"0", charset=b"rot13",
         udh=b"", moment=b"")
@example(message_id=b"k\x00", sender=b"0812\x0034", to=b"17\x00", text=b"\x00", coding=b"2", charset=b"punycode",
         udh=b"\x05\x00\x03", moment=b"99999999999999999999")
@example(message_id=b"", sender=b"081234567890", to=b"1708", text=b"\xff\xfe", coding=b"", charset=b"UTF-8\x00",
         udh=b"", moment=b"-1")
@FUZZ
def test_kannel_inbound_never_5xx(app, env, message_id, sender, to, text, coding, charset, udh,
                                  moment) -> None:  # type: ignore[no-untyped-def]
    app.config["SETTINGS"] = _with_kannel(app, env)
    query = "&".join(f"{name}={quote_from_bytes(value)}" for name, value in (
        ("token", KANNEL_TOKEN.encode()), ("id", message_id), ("from", sender), ("to", to), ("text", text),
        ("coding", coding), ("charset", charset), ("udh", udh), ("time", moment)))
    response = app.test_client().get(f"/sms/kannel?{query}")
    assert server_error(response) is None, server_error(response)
    if sender.strip(b" \t\r\n\x0b\x0c") and response.status_code != 200:
        assert response.status_code == 400, response.status_code  # a reason, never a silent drop


@given(outbound_id=st.one_of(digits, field), status=st.one_of(digits, field), answer=field)
@example(outbound_id="²", status="1", answer="")
@example(outbound_id=str(2**31), status="1", answer="")
@example(outbound_id="1", status="99999999999999999999", answer="\x00")
@FUZZ
def test_kannel_dlr_never_5xx(app, env, outbound_id, status, answer) -> None:  # type: ignore[no-untyped-def]
    app.config["SETTINGS"] = _with_kannel(app, env)
    query = urlencode({"token": KANNEL_TOKEN, "id": outbound_id, "status": status, "answer": answer})
    response = app.test_client().get(f"/sms/kannel/dlr?{query}")
    assert server_error(response) is None, server_error(response)


def _with_kannel(app, env):  # type: ignore[no-untyped-def]
    from sms_gateway.config import Settings

    current = app.config["SETTINGS"]
    if current.KANNEL_INBOUND_TOKEN == KANNEL_TOKEN:
        return current
    return Settings(kannel_env(env))


moment = st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat()), field)


@given(number=field, fmt=st.sampled_from(["json", "xml", "html"]), start=moment, end=moment, ids=field,
       service=field, status=field)
@example(number="12345678\x00", fmt="json", start="0001-01-01", end="9999-12-31", ids="", service="", status="")
@example(number="12345678", fmt="xml", start="9999-12-31T23:59:59-12:00", end="0001-01-01T00:00:00+14:00",
         ids="1\x00", service="aduan", status="open")
@example(number="1", fmt="json", start="", end="", ids="", service="\x00", status="closed\x00")
@FUZZ
def test_open311_never_5xx(client, number, fmt, start, end, ids, service, status) -> None:  # type: ignore[no-untyped-def]
    one = client.get(f"/open311/v2/requests/{quote_from_bytes(number.encode())}.{fmt}")
    assert server_error(one) is None, server_error(one)
    params = {k: v for k, v in (("start_date", start), ("end_date", end), ("service_request_id", ids),
                                ("service_code", service), ("status", status)) if v}
    listing = client.get(f"/open311/v2/requests.{fmt}", query_string=params)
    assert server_error(listing) is None, server_error(listing)
    services = client.get(f"/open311/v2/services.{fmt}", query_string={"jurisdiction_id": status})
    assert server_error(services) is None, server_error(services)
