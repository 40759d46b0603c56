"""Auto-reply loops and floods: every message stored, at most one reply per window when limited."""

from __future__ import annotations

import uuid

from click.testing import CliRunner
from sqlalchemy import select

from sms_gateway.cli import main
from sms_gateway.config import Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from tests.channels.test_twilio import post_signed, sms_params


def flood_settings(env, **extra) -> Settings:
    settings = Settings({**env, "FLOOD_MAX_MESSAGES": "5", "FLOOD_WINDOW": "3600", **extra})
    set_settings(settings)
    return settings


def send(client, n: int, sender: str, text: str) -> None:
    for i in range(n):
        body = text.format(i=i)
        assert post_signed(client, sms_params(body=body, sid=f"SM{uuid.uuid4().hex}", sender=sender)).status_code == 200


def test_a_flooding_number_is_answered_up_to_the_limit_then_not_in_the_window(env, client, work, fake_twilio):
    settings = flood_settings(env)
    send(client, 12, "081299990001", "KEMENHUB ADUAN bus nomor {i} ugal-ugalan")  # another auto-responder, say
    send(client, 2, "081299990002", "PLN ADUAN listrik mati blok {i}")  # a citizen meanwhile
    work()
    with session_factory(settings.DATABASE_URL)() as s:
        inbound = s.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        assert len(inbound) == 14 and all(m.state == "processed" for m in inbound)  # every message stored
        assert [m.no_reply for m in inbound[:12]] == [None] * 5 + ["flood"] * 7
        assert s.query(Report).count() == 14  # and every complaint kept
    to = [m.form["To"] for m in fake_twilio.messages]
    assert to.count("+6281299990001") == 5 and to.count("+6281299990002") == 2

    listing = CliRunner().invoke(main, ["messages", "throttled"])
    assert listing.exit_code == 0
    assert "+6281299990001" in listing.output and "12 messages" in listing.output and "7 not answered" in listing.output
    assert "+6281299990002" not in listing.output
    assert "(no reply: flood)" in CliRunner().invoke(main, ["messages", "--from", "081299990001"]).output
    assert "sms_gateway_throttled_senders 1.0" in client.get("/metrics").data.decode()


def test_the_same_text_again_within_the_window_is_one_report_with_a_repeat_count(env, client, work, fake_twilio):
    settings = flood_settings(env)
    send(client, 3, "081299990003", "PLN ADUAN  listrik mati di   blok C")
    send(client, 1, "081299990003", "pln aduan listrik mati di blok c")
    send(client, 1, "081299990004", "PLN ADUAN listrik mati di blok C")  # somebody else: a report of their own
    work()
    with session_factory(settings.DATABASE_URL)() as s:
        reports = s.scalars(select(Report).order_by(Report.id)).all()
        assert [(r.reporter, r.repeats) for r in reports] == [("+6281299990003", 3), ("+6281299990004", 0)]
        repeats = s.scalars(select(InboundMessage).where(InboundMessage.sender == "+6281299990003")
                            .order_by(InboundMessage.id)).all()
        assert [m.parsed.get("repeat_of") for m in repeats] == [None] + [reports[0].tracking_number] * 3
        replies = s.scalars(select(OutboundMessage.text).where(OutboundMessage.recipient == "+6281299990003")).all()
    # The citizen who was not sure it arrived hears the same tracking number again.
    assert len(replies) == 4 and all(reports[0].tracking_number in text for text in replies)


def test_a_sender_that_cannot_receive_replies_gets_one_per_window(env, client, work, fake_twilio):
    settings = flood_settings(env)
    send(client, 3, "TELKOMSEL", "Paket internet {i} GB aktif")
    send(client, 2, "3636", "Info promo {i}")
    work()
    to = [m.form["To"] for m in fake_twilio.messages]
    assert to.count("TELKOMSEL") == 1 and to.count("3636") == 1
    with session_factory(settings.DATABASE_URL)() as s:
        quiet = s.scalars(select(InboundMessage.no_reply).where(InboundMessage.no_reply.is_not(None))).all()
    assert quiet == ["unreplyable"] * 3


def test_a_flood_inside_one_ingest_batch_is_counted_in_order(env, settings, work, fake_twilio):
    from sms_gateway import ingest
    from sms_gateway.channels.base import IncomingSMS

    settings = flood_settings(env, FLOOD_MAX_MESSAGES="2")
    ingest._store_and_enqueue(settings, [
        IncomingSMS(channel="twilio", external_id=f"SMF{i}", sender="081299990005", text=f"KAI ADUAN kereta {i}")
        for i in range(6)])
    work()
    assert [m.form["To"] for m in fake_twilio.messages] == ["+6281299990005"] * 2
