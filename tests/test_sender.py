"""The senders: claims, lanes, segment rates, 429 parking, retries, and reconciling interrupted sends.

Against the real database (SQLite and PostgreSQL), the real Redis and the
Twilio SDK talking to the local fake Twilio API.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select, update

from sms_gateway import jobs, outbox
from sms_gateway import queue as q
from sms_gateway.cli import main
from sms_gateway.config import Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, utcnow
from sms_gateway.ratelimit import SegmentRate
from sms_gateway.sender import ChannelSender
from tests.channels.test_twilio import post_signed, sms_params


def queue_sms(settings, n: int, *, purpose: str = "notify", text: str = "Laporan {i} sudah ditindaklanjuti.",
              channel: str = "twilio", first: int = 0) -> list[int]:
    with session_factory(settings.DATABASE_URL)() as s:
        rows = [outbox.queue_reply(s, key=f"{purpose}:{first + i}", channel=channel,
                                   recipient=f"+62812{first + i:08d}", text=text.format(i=first + i), purpose=purpose)
                for i in range(n)]
        s.commit()
        return [r.id for r in rows]


def row(settings, outbound_id: int) -> OutboundMessage:
    with session_factory(settings.DATABASE_URL)() as s:
        return s.get(OutboundMessage, outbound_id)


def interrupt(settings, outbound_id: int, ago: timedelta) -> None:
    """What a sender SIGKILLed during the provider call leaves behind."""
    with session_factory(settings.DATABASE_URL)() as s:
        s.execute(update(OutboundMessage).where(OutboundMessage.id == outbound_id).values(
            state="sending", attempts=1, claimed_at=utcnow() - ago, updated_at=utcnow() - ago))
        s.commit()


# --------------------------------------------------------------------------- claims

def test_two_senders_claiming_at_the_same_moment_send_each_reply_once(settings, fake_twilio) -> None:
    ids = queue_sms(settings, 120)
    start = threading.Barrier(2)
    claimed: list[list[int]] = [[], []]

    def claim(slot: int) -> None:
        with session_factory(settings.DATABASE_URL)() as s:
            start.wait()  # both claim 70 of the 120 at the same moment
            claimed[slot].extend(c.id for c in outbox.claim(s, "twilio", 70))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed[0] + claimed[1]) == ids  # every reply claimed, by exactly one of them
    assert sorted(map(len, claimed)) == [50, 70]  # the second took what the first had not locked

    with session_factory(settings.DATABASE_URL)() as s:  # put them back, then send with two live senders
        s.execute(update(OutboundMessage).values(state="queued", attempts=0))
        s.commit()
    senders = [ChannelSender(settings, "twilio", concurrency=4) for _ in range(2)]
    threads = [threading.Thread(target=sender.drain) for sender in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m.form["To"] for m in fake_twilio.messages) == sorted(f"+62812{i:08d}" for i in range(120))
    assert sum(s.sent for s in senders) == 120 and all(s.sent for s in senders)
    with session_factory(settings.DATABASE_URL)() as s:
        assert set(s.scalars(select(OutboundMessage.state))) == {"sent"}
        assert set(s.scalars(select(OutboundMessage.attempts))) == {1}


def test_an_acknowledgement_goes_before_a_surge_of_notifications(env, fake_twilio) -> None:
    settings = Settings({**env, "TWILIO_MPS": "40", "SEND_CONCURRENCY": "4"})
    set_settings(settings)
    queue_sms(settings, 300)  # an agency closes 300 reports at once
    sender = ChannelSender(settings, "twilio")
    for _ in range(3):
        sender.step(idle_wait=0.1)
    [ack] = queue_sms(settings, 1, purpose="ack", text="Laporan Anda diterima. Nomor laporan: {i}.", first=900)
    deadline = time.monotonic() + 1.0
    while not row(settings, ack).sent_at and time.monotonic() < deadline:
        sender.step(idle_wait=0.05)
    sender.shutdown()
    assert row(settings, ack).state == "sent", "the citizen's acknowledgement waited behind the notifications"
    bodies = [m.form["Body"] for m in fake_twilio.messages]
    assert len(bodies) < 300 and bodies.index("Laporan Anda diterima. Nomor laporan: 900.") < len(bodies)


# --------------------------------------------------------------------------- rates, 429, retries

def test_the_rate_counts_segments_across_processes(settings, redis_conn) -> None:
    one, other = SegmentRate(redis_conn, "twilio", 10), SegmentRate(redis_conn, "twilio", 10)
    first = one.acquire([3, 3, 3, 3])  # a burst of one second: 10 segments
    assert first.granted == 3 and 0 < first.wait <= 0.3
    assert other.acquire([2]).granted == 0  # the other sender shares the one segment left
    time.sleep(first.wait + 0.05)
    assert other.acquire([3]).granted == 1
    idle = SegmentRate(redis_conn, "modem", 6 / 60)  # a modem: one segment every 10 s
    assert idle.acquire([4]).granted == 1  # an idle channel sends even a message longer than its burst
    assert idle.acquire([1]).granted == 0 and idle.acquire([1]).wait > 30


def test_a_429_parks_the_channel_and_costs_no_attempt(settings, fake_twilio) -> None:
    [outbound_id] = queue_sms(settings, 1)
    fake_twilio.fail_next(429, 20429, "Too Many Requests")
    sender = ChannelSender(settings, "twilio")
    sender.step(idle_wait=0)
    sender.close()
    out = row(settings, outbound_id)
    assert (out.state, out.attempts, out.error_code) == ("queued", 0, "20429")
    assert 0.5 < sender.rate.parked_for() <= 1.0
    sender.step(idle_wait=0)  # parked: nothing is claimed, nothing is posted
    assert len(fake_twilio.messages) == 1 and row(settings, outbound_id).state == "queued"
    time.sleep(sender.rate.parked_for() + 0.05)
    assert sender.drain() == 1
    assert row(settings, outbound_id).state == "sent" and len(fake_twilio.messages) == 2


def test_a_500_waits_its_retry_interval_then_fails_after_the_last_attempt(env, fake_twilio) -> None:
    settings = Settings({**env, "JOB_RETRY_INTERVALS": "30,60", "SEND_MAX_ATTEMPTS": "3"})
    set_settings(settings)
    [outbound_id] = queue_sms(settings, 1)
    for _ in range(3):
        fake_twilio.fail_next(500, None, "Internal Server Error")
    start = utcnow()
    with time_machine.travel(start, tick=False):
        ChannelSender(settings, "twilio").drain()
    out = row(settings, outbound_id)
    assert (out.state, out.attempts) == ("queued", 1)
    assert out.next_attempt_at == start + timedelta(seconds=30)
    with time_machine.travel(start + timedelta(seconds=29), tick=False):
        assert ChannelSender(settings, "twilio").drain() == 0  # the retry wait is respected
    with time_machine.travel(start + timedelta(seconds=31), tick=False):
        ChannelSender(settings, "twilio").drain()
    assert row(settings, outbound_id).next_attempt_at == start + timedelta(seconds=31 + 60)
    with time_machine.travel(start + timedelta(seconds=92), tick=False):
        ChannelSender(settings, "twilio").drain()
    out = row(settings, outbound_id)
    assert (out.state, out.attempts, out.error_code) == ("failed", 3, "500")
    assert len(fake_twilio.messages) == 3


# --------------------------------------------------------------------------- reconciliation

def test_an_interrupted_send_twilio_has_is_marked_sent_and_not_sent_again(settings, fake_twilio) -> None:
    [outbound_id] = queue_sms(settings, 1, text="Laporan Anda diterima. Nomor laporan: 12345674.")
    other = fake_twilio.create("+6281200000000", "Laporan Anda diterima. Nomor laporan: 12345674.")  # not ours
    theirs = fake_twilio.create("+6281200000000", "Laporan Anda diterima. Nomor laporan: 12345674.")
    with session_factory(settings.DATABASE_URL)() as s:  # another row already holds the first one
        s.add(outbox.new_message(key="x", channel="twilio", recipient="+6281200000000", text="x", purpose="ack"))
        s.flush()
        s.execute(update(OutboundMessage).where(OutboundMessage.idempotency_key == "x")
                  .values(state="sent", provider_id=other["sid"]))
        s.commit()
    interrupt(settings, outbound_id, timedelta(minutes=10))
    assert ChannelSender(settings, "twilio").reconcile() == {"sent": 1, "not-sent": 0, "unknown": 0}
    out = row(settings, outbound_id)
    assert (out.state, out.provider_id) == ("sent", theirs["sid"])
    assert ChannelSender(settings, "twilio").drain() == 0 and fake_twilio.messages == []
    lookup = [r for r in fake_twilio.requests if r.method == "GET"]
    assert lookup and "To=%2B6281200000000" in lookup[0].path


def test_an_interrupted_send_twilio_never_got_is_sent_once(settings, fake_twilio) -> None:
    [outbound_id] = queue_sms(settings, 1)
    fake_twilio.create("+6281200000000", "another text to the same number")
    interrupt(settings, outbound_id, timedelta(minutes=10))
    sender = ChannelSender(settings, "twilio")
    assert sender.reconcile()["not-sent"] == 1
    assert (row(settings, outbound_id).state, row(settings, outbound_id).attempts) == ("queued", 0)
    assert sender.drain() == 1
    out = row(settings, outbound_id)
    assert (out.state, out.attempts, out.error) == ("sent", 1, None)
    assert [m.form["To"] for m in fake_twilio.messages] == ["+6281200000000"]


def test_sends_younger_than_grace_and_timeout_are_left_to_their_sender(env, fake_twilio) -> None:
    """SWEEP_GRACE + SEND_TIMEOUT is the line between "in flight" and "interrupted"."""
    settings = Settings({**env, "SWEEP_GRACE": "120", "SEND_TIMEOUT": "10"})
    set_settings(settings)
    young, old = queue_sms(settings, 2)
    interrupt(settings, young, timedelta(seconds=125))  # 120 + 10 not reached: maybe still in flight
    interrupt(settings, old, timedelta(seconds=135))
    assert ChannelSender(settings, "twilio").reconcile() == {"sent": 0, "not-sent": 1, "unknown": 0}
    assert row(settings, young).state == "sending" and row(settings, old).state == "queued"


def test_when_the_provider_cannot_tell_the_sms_is_never_sent_twice_and_says_so(env, settings) -> None:
    kannel = Settings({**env, "KANNEL_SENDSMS_URL": "http://127.0.0.1:9/cgi-bin/sendsms", "KANNEL_USERNAME": "u",
                       "KANNEL_PASSWORD": "p", "KANNEL_DLR_MASK": "3", "KANNEL_DLR_DEADLINE": "60",
                       "SWEEP_GRACE": "0"})
    set_settings(kannel)
    waiting, lost = queue_sms(kannel, 2, channel="kannel", purpose="ack")
    interrupt(kannel, waiting, timedelta(seconds=30))  # its DLR may still come
    interrupt(kannel, lost, timedelta(minutes=5))
    assert ChannelSender(kannel, "kannel").reconcile() == {"sent": 0, "not-sent": 0, "unknown": 1}
    assert row(kannel, waiting).state == "sending"
    out = row(kannel, lost)
    assert (out.state, out.error_code) == ("failed", "interrupted")
    assert "not sent again" in out.error and "KANNEL_DLR_MASK" in out.error
    listing = CliRunner().invoke(main, ["messages", "--limit", "5"])
    assert "interrupted" in listing.output and "not sent again" in listing.output
    assert CliRunner().invoke(main, ["messages", "retry", str(lost)]).exit_code == 0
    assert (row(kannel, lost).state, row(kannel, lost).attempts) == ("queued", 0)


def test_kannel_without_a_dlr_by_the_deadline_sends_again(env) -> None:
    kannel = Settings({**env, "KANNEL_SENDSMS_URL": "http://127.0.0.1:9/cgi-bin/sendsms", "KANNEL_USERNAME": "u",
                       "KANNEL_PASSWORD": "p", "KANNEL_DLR_DEADLINE": "60", "SWEEP_GRACE": "0"})
    set_settings(kannel)
    [outbound_id] = queue_sms(kannel, 1, channel="kannel")
    interrupt(kannel, outbound_id, timedelta(seconds=61))
    assert ChannelSender(kannel, "kannel").reconcile()["not-sent"] == 1
    assert row(kannel, outbound_id).state == "queued"


# --------------------------------------------------------------------------- the inbound sweep's grace

def test_the_sweeper_retries_a_failing_message_after_sweep_grace_and_the_retry_wait(env, client,
                                                                                   redis_conn) -> None:
    """A message whose processing failed waits for its RQ retry; if Redis lost that job, the sweeper
    enqueues it again, but only after SWEEP_GRACE plus the longest retry interval."""
    settings = Settings({**env, "SWEEP_GRACE": "120", "JOB_RETRY_INTERVALS": "10,30"})
    set_settings(settings)
    post_signed(client, sms_params())
    post_signed(client, sms_params(body="PLN ADUAN mati lagi", sid="SM0002"))
    with session_factory(settings.DATABASE_URL)() as s:
        failing = s.scalars(select(InboundMessage).order_by(InboundMessage.id)).first()
        failing.error = "RuntimeError: a rule broke"  # as pipeline.process leaves it
        received = failing.received_at
        s.commit()
    redis_conn.flushdb()  # its retry job and the doorbell are gone
    with time_machine.travel(received + timedelta(seconds=119), tick=False):
        assert jobs.sweep() == {"retried": 0, "waiting": 0}  # both may still be on their way
    with time_machine.travel(received + timedelta(seconds=121), tick=False):
        assert jobs.sweep() == {"retried": 0, "waiting": 1}  # the waiting one: the workers are woken
    assert redis_conn.llen(q.INBOUND_WAKE) == 1
    with time_machine.travel(received + timedelta(seconds=149), tick=False):
        assert jobs.sweep()["retried"] == 0  # its retry may still come (30 s)
    with time_machine.travel(received + timedelta(seconds=151), tick=False):
        assert jobs.sweep()["retried"] == 1
    assert q.get_queue(settings, q.INBOUND).job_ids == [f"inbound-{failing.id}"]


@pytest.mark.parametrize("purpose,lane", [("ack", 0), ("status", 0), ("notify", 1), ("escalation", 1)])
def test_lanes(purpose, lane) -> None:
    assert outbox.lane_for(purpose, None) == lane
    assert outbox.lane_for(purpose, 7) == 0  # anything answering a citizen's message is a reply


# --------------------------------------------------------------------------- delivery reports at load

def test_batched_reports_and_send_results_never_deadlock(settings) -> None:
    """Two web processes' batches of delivery reports and a sender's results, all at once
    on the same rows in random orders: every statement locks its rows in id order, so
    none waits for another in a cycle (PostgreSQL would abort one after deadlock_timeout,
    and the provider's DLR would be answered 500; a bench run stalled a second each time)."""
    import random

    from sms_gateway.db import get_engine
    from sms_gateway.outbox import DeliveryReport, Outcome, apply_delivery_reports

    ids = queue_sms(settings, 60, channel="kannel")
    engine = get_engine(settings.DATABASE_URL)
    with session_factory(settings.DATABASE_URL)() as s:
        s.execute(update(OutboundMessage).values(state="sending"))
        s.commit()
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def reports(seed: int) -> None:
        rnd = random.Random(seed)
        start.wait()
        try:
            for _ in range(40):
                batch = rnd.sample(ids, 30)
                apply_delivery_reports(engine, [DeliveryReport(i, rnd.choice(["sent", "delivered"]), "x")
                                                for i in batch])
        except BaseException as exc:
            errors.append(exc)

    def results() -> None:
        rnd = random.Random(3)
        start.wait()
        try:
            for _ in range(40):
                with session_factory(settings.DATABASE_URL)() as s:
                    outbox.record_results(s, [Outcome(i, "sent") for i in rnd.sample(ids, 30)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reports, args=(1,)), threading.Thread(target=reports, args=(2,)),
               threading.Thread(target=results)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert time.monotonic() - began < 30
    with session_factory(settings.DATABASE_URL)() as s:
        states = set(s.scalars(select(OutboundMessage.state)))
    assert states <= {"sent", "delivered"}


def test_a_report_the_database_refuses_fails_only_its_own_request(settings) -> None:
    """A web process applies its requests' reports as one batch: when the database
    refuses the batch, each report is applied alone, and only the bad one's request
    gets the error (answered 5xx, so the provider retries it)."""
    from sms_gateway.db import get_engine
    from sms_gateway.outbox import DeliveryReport, _apply_batch

    first, second = queue_sms(settings, 2, channel="kannel")
    bad = DeliveryReport(2**40, "delivered", "1 delivered")  # no such id; beyond PostgreSQL's integer
    results = _apply_batch(get_engine(settings.DATABASE_URL), [
        DeliveryReport(first, "sent", "8 smsc-accepted"), bad, DeliveryReport(second, "sent", "8 smsc-accepted")])
    assert results[0] is True and results[2] is True
    if settings.DATABASE_URL.startswith("postgresql"):
        assert isinstance(results[1], Exception)
    else:
        assert results[1] is False  # SQLite's integers are 64-bit: no such message, nothing applied
    assert (row(settings, first).state, row(settings, second).state) == ("sent", "sent")
