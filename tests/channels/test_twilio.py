"""Twilio channel: signed webhooks, deduplication, sends through the real SDK, status callbacks."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select

from sms_gateway import jobs, outbox
from sms_gateway.db import get_engine, session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN
from tests.support import twilio_signature


def sms_params(body: str = "KEMENHUB ADUAN bus masih angkut pemudik", sid: str = "SM0001",
               sender: str = "081234567890") -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "ACtest", "From": sender, "To": "1708",
            "Body": body, "NumSegments": "1", "NumMedia": "0"}


def post_signed(client, params: dict[str, str], path: str = "/sms/twilio", url: str | None = None,
                token: str = TWILIO_TOKEN):
    signature = twilio_signature(token, url or PUBLIC_BASE + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def count(settings, model) -> int:
    with session_factory(settings.DATABASE_URL)() as s:
        return s.scalar(select(func.count()).select_from(model))


def only(settings, model):
    with session_factory(settings.DATABASE_URL)() as s:
        rows = s.scalars(select(model)).all()
        assert len(rows) == 1, rows
        return rows[0]


# --------------------------------------------------------------------------- inbound

def test_signed_sms_is_stored_enqueued_and_acknowledged_with_empty_twiml(client, settings, redis_conn) -> None:
    response = post_signed(client, sms_params())
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.data.decode().endswith("<Response/>")
    msg = only(settings, InboundMessage)
    assert (msg.channel, msg.external_id, msg.sender, msg.state) == ("twilio", "SM0001", "+6281234567890", "received")
    assert msg.text == "KEMENHUB ADUAN bus masih angkut pemudik"
    assert redis_conn.llen("sms-gateway:inbound:wake") == 1  # the workers' doorbell rang
    assert count(settings, Report) == 0  # no work beyond storing in the request


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}])
def test_missing_or_invalid_signature_is_403(client, settings, headers) -> None:
    response = client.post("/sms/twilio", data=sms_params(), headers=headers)
    assert response.status_code == 403
    assert b"X-Twilio-Signature" in response.data
    assert count(settings, InboundMessage) == 0


def test_signature_is_checked_against_the_public_url_not_the_internal_one(client, settings) -> None:
    # Behind a TLS proxy Flask sees http://localhost/…; Twilio signed https://gateway…
    internal = post_signed(client, sms_params(), url="http://localhost/sms/twilio")
    assert internal.status_code == 403
    tampered = sms_params()
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/sms/twilio", tampered)
    tampered["Body"] = "KEMENHUB ADUAN something else"
    response = client.post("/sms/twilio", data=tampered, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert post_signed(client, sms_params(), token="another-token").status_code == 403


@pytest.mark.parametrize(("drop", "reason"), [("From", b"missing From"), ("Body", b"missing Body"),
                                              ("MessageSid", b"missing MessageSid")])
def test_missing_fields_are_400_with_the_reason(client, settings, drop, reason) -> None:
    params = sms_params()
    del params[drop]
    if drop == "MessageSid":
        del params["SmsSid"]
    response = post_signed(client, params)
    assert response.status_code == 400
    assert reason in response.data
    assert count(settings, InboundMessage) == 0


def test_empty_body_is_accepted_and_answered_with_help(client, settings, work, fake_twilio) -> None:
    assert post_signed(client, sms_params(body="")).status_code == 200
    work()
    assert count(settings, Report) == 0
    assert fake_twilio.messages[0].form["Body"].startswith("Format SMS 1708:")


def test_signature_check_can_be_turned_off_for_local_development(env, caplog) -> None:
    from sms_gateway.config import Settings
    from sms_gateway.web import create_app

    app = create_app(Settings({**env, "TWILIO_VALIDATE_SIGNATURE": "false"}))
    assert "TWILIO_VALIDATE_SIGNATURE is off" in caplog.text
    response = app.test_client().post("/sms/twilio", data=sms_params())
    assert response.status_code == 200


def test_twilio_retry_of_the_same_message_sid_stores_and_sends_nothing_new(client, settings, work,
                                                                           fake_twilio) -> None:
    assert post_signed(client, sms_params()).status_code == 200
    work()
    for _ in range(3):  # Twilio retries after a timeout, before and after processing
        assert post_signed(client, sms_params()).status_code == 200
        work()
    assert count(settings, InboundMessage) == 1
    assert count(settings, Report) == 1
    assert len(fake_twilio.messages) == 1


# --------------------------------------------------------------------------- sending

def test_acknowledgement_goes_through_the_twilio_rest_api(client, settings, work, fake_twilio) -> None:
    post_signed(client, sms_params())
    work()
    report = only(settings, Report)
    [call] = fake_twilio.messages
    assert call.path == "/2010-04-01/Accounts/ACtest/Messages.json"
    assert call.headers["Authorization"] == "Basic " + base64.b64encode(f"ACtest:{TWILIO_TOKEN}".encode()).decode()
    out = only(settings, OutboundMessage)
    assert call.form == {
        "To": "+6281234567890",
        "From": "1708",
        "Body": out.text,
        "StatusCallback": f"{PUBLIC_BASE}/sms/twilio/status?id={out.id}",
    }
    assert report.tracking_number in out.text and "KEMENHUB" in out.text
    assert (out.state, out.provider_id, out.attempts, out.purpose) == ("sent", "SMfake" + "0" * 25 + "1", 1, "ack")


def test_messaging_service_is_used_when_configured(env, fake_twilio, work) -> None:
    from sms_gateway.config import Settings, set_settings
    from sms_gateway.web import create_app

    settings = Settings({**env, "TWILIO_MESSAGING_SERVICE_SID": "MG123"})
    app = create_app(settings)
    post_signed(app.test_client(), sms_params())
    from tests.conftest import run_jobs

    run_jobs(settings)
    set_settings(None)
    assert fake_twilio.messages[0].form["MessagingServiceSid"] == "MG123"
    assert "From" not in fake_twilio.messages[0].form


@pytest.mark.parametrize("status", [429, 500, 503])
def test_temporary_failures_are_retried_until_sent(client, settings, work, fake_twilio, status) -> None:
    fake_twilio.fail_next(status, 20429 if status == 429 else None, "try later")
    fake_twilio.fail_next(status, None, "try later")
    post_signed(client, sms_params())
    work()
    out = only(settings, OutboundMessage)
    assert len(fake_twilio.messages) == 3
    # A 429 parks the channel (the provider's pace, not the message's fault) and costs no attempt.
    assert (out.state, out.attempts, out.error) == ("sent", 1 if status == 429 else 3, None)


def test_permanent_failure_marks_the_message_failed_with_the_reason(client, settings, work, fake_twilio) -> None:
    fake_twilio.fail_next(400, 21211, "The 'To' number +62000 is not a valid phone number.")
    post_signed(client, sms_params())
    work()
    out = only(settings, OutboundMessage)
    assert len(fake_twilio.messages) == 1  # not retried
    assert out.state == "failed"
    assert out.error_code == "21211"
    assert "not a valid phone number" in out.error


def test_retries_stop_after_send_max_attempts(env, client, fake_twilio) -> None:
    from sms_gateway.config import Settings, set_settings
    from tests.conftest import run_jobs

    settings = Settings({**env, "SEND_MAX_ATTEMPTS": "3"})
    set_settings(settings)
    for _ in range(10):
        fake_twilio.fail_next(503, None, "down")
    post_signed(client, sms_params())
    run_jobs(settings)
    out = only(settings, OutboundMessage)
    assert (out.state, out.attempts) == ("failed", 3)
    assert "503" in out.error
    # An operator puts it back once Twilio is healthy again.
    fake_twilio.failures.clear()
    assert outbox.retry(settings, out.id)
    run_jobs(settings)
    assert only(settings, OutboundMessage).state == "sent"


def test_unreachable_api_is_a_temporary_failure(env, client) -> None:
    from sms_gateway.config import Settings, set_settings
    from tests.conftest import run_jobs

    settings = Settings({**env, "TWILIO_API_BASE_URL": "http://127.0.0.1:9", "SEND_MAX_ATTEMPTS": "2"})
    set_settings(settings)
    post_signed(client, sms_params())
    run_jobs(settings)
    out = only(settings, OutboundMessage)
    assert (out.state, out.error_code, out.attempts) == ("failed", "network", 2)
    assert "Twilio unreachable" in out.error


def test_a_reply_is_sent_once_however_often_senders_look(client, settings, work, fake_twilio) -> None:
    from sms_gateway.sender import ChannelSender

    post_signed(client, sms_params())
    jobs.process_inbound(only(settings, InboundMessage).id)
    jobs.process_inbound(only(settings, InboundMessage).id)  # RQ ran the job twice
    out = only(settings, OutboundMessage)
    assert ChannelSender(settings, "twilio").drain() == 1
    assert ChannelSender(settings, "twilio").drain() == 0
    assert jobs.send_outbound(out.id) == "handed to the sender"  # a send job an earlier version queued
    work()
    assert len(fake_twilio.messages) == 1 and only(settings, OutboundMessage).state == "sent"


# --------------------------------------------------------------------------- status callbacks

def callback(client, outbound_id: int, status: str, sid: str, error_code: str | None = None):
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "ACtest", "To": "+6281234567890"}
    if error_code:
        params["ErrorCode"] = error_code
    path = f"/sms/twilio/status?id={outbound_id}"
    return client.post(path, data=params, headers={
        "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, params)})


def test_status_callbacks_never_move_a_message_backwards(client, settings, work) -> None:
    post_signed(client, sms_params())
    work()
    out = only(settings, OutboundMessage)
    assert callback(client, out.id, "delivered", out.provider_id).status_code == 204
    assert callback(client, out.id, "sent", out.provider_id).status_code == 204  # late, out of order
    out = only(settings, OutboundMessage)
    assert (out.state, out.provider_status) == ("delivered", "delivered")
    assert out.delivered_at is not None


def test_concurrent_reports_cannot_undo_each_other(client, settings, work) -> None:
    """Two delivery reports handled at once: the one that committed first must not be undone.

    Kannel sends DLR 8 and DLR 1 within a millisecond of each other, and two web
    processes may take them. The report is one conditional UPDATE with no read:
    here another transaction has marked the message delivered and not yet
    committed when an "undelivered" report comes; the report waits for it
    (PostgreSQL's row lock, SQLite's write lock) and must then find the message
    moved on and change nothing."""
    import threading

    from sqlalchemy import text

    from sms_gateway.outbox import DeliveryReport, apply_delivery_reports

    post_signed(client, sms_params())
    work()
    out_id = only(settings, OutboundMessage).id
    engine = get_engine(settings.DATABASE_URL)
    late: list[list[bool]] = []
    with engine.connect() as other:
        other.execute(text("UPDATE outbound_messages SET state = 'delivered', provider_status = 'DELIVRD' "
                           "WHERE id = :id"), {"id": out_id})
        report = threading.Thread(target=lambda: late.append(apply_delivery_reports(
            engine, [DeliveryReport(out_id, "undelivered", "UNDELIV", "30003", "Twilio error 30003")])))
        report.start()
        report.join(0.5)
        assert report.is_alive(), "the report did not wait for the other transaction"
        other.commit()
    report.join(30)
    assert late == [[False]]
    out = only(settings, OutboundMessage)
    assert (out.state, out.provider_status, out.error_code) == ("delivered", "DELIVRD", None)


def test_reports_of_one_batch_apply_in_their_order(settings, work, client) -> None:
    """A web process batches the reports of its concurrent requests: two about one
    message in one batch (Kannel's 8 then 1) apply one after the other, and a late
    "sent" after "delivered" changes nothing, as if each had come alone."""
    from sms_gateway.outbox import DeliveryReport, apply_delivery_reports

    post_signed(client, sms_params())
    post_signed(client, sms_params(sid="SM0002", sender="081200000002"))
    work()
    with session_factory(settings.DATABASE_URL)() as session:
        first, second = sorted(session.scalars(select(OutboundMessage.id)))
    applied = apply_delivery_reports(get_engine(settings.DATABASE_URL), [
        DeliveryReport(first, "sent", "8 smsc-accepted"),
        DeliveryReport(second, "delivered", "1 delivered"),
        DeliveryReport(first, "delivered", "1 delivered"),
        DeliveryReport(first, "sent", "8 smsc-accepted"),  # late, out of order
        DeliveryReport(second, "no-such-state", "?"),
        DeliveryReport(second, "delivered", "DELIVRD"),  # the same state again: only the words
    ])
    assert applied == [True, True, True, False, False, True]
    with session_factory(settings.DATABASE_URL)() as session:
        rows = {r.id: r for r in session.scalars(select(OutboundMessage))}
    assert (rows[first].state, rows[first].provider_status) == ("delivered", "1 delivered")
    assert (rows[second].state, rows[second].provider_status) == ("delivered", "DELIVRD")
    assert rows[first].delivered_at is not None and rows[first].sent_at is not None


def test_undelivered_callback_records_the_error_code(client, settings, work) -> None:
    post_signed(client, sms_params())
    work()
    out = only(settings, OutboundMessage)
    callback(client, out.id, "undelivered", out.provider_id, "30003")
    out = only(settings, OutboundMessage)
    assert (out.state, out.error_code) == ("undelivered", "30003")


def test_status_callback_needs_a_valid_signature_and_fields(client, settings, work) -> None:
    post_signed(client, sms_params())
    work()
    out = only(settings, OutboundMessage)
    response = client.post(f"/sms/twilio/status?id={out.id}",
                           data={"MessageSid": out.provider_id, "MessageStatus": "failed"})
    assert response.status_code == 403
    params = {"MessageSid": out.provider_id}
    path = f"/sms/twilio/status?id={out.id}"
    response = client.post(path, data=params,
                           headers={"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, params)})
    assert response.status_code == 400
    # A callback for another message's SID does not touch this one.
    callback(client, out.id, "failed", "SMsomebodyelse")
    assert only(settings, OutboundMessage).state == "sent"
