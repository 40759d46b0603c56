"""GSM modem channel: the modem loop against Gammu's dummy phone, real database and Redis."""

from __future__ import annotations

import json
import os
import signal
import time

import gammu
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text

from sms_gateway import cli, gsm, outbox, pipeline
from sms_gateway.channels import modem as modem_channel
from sms_gateway.channels import reply_channel
from sms_gateway.channels.base import OutgoingSMS, SendError, get_channel
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from tests.channels.modem_dummy import SIM_INBOX, Clock, DummyPhone, Spy, encode

SENDER = "081234567890"
SENDER_E164 = "+6281234567890"


@pytest.fixture
def phone(tmp_path):
    dummy = DummyPhone(tmp_path)
    dummy.create_folders()
    dummy.write_config()
    return dummy


@pytest.fixture
def modem_env(env):
    return {**env, "MODEM_POLL_INTERVAL": "0", "MODEM_MULTIPART_TIMEOUT": "60",
            "MODEM_STATUS_INTERVAL": "60", "MODEM_RECONNECT_MAX_DELAY": "4", "SEND_MAX_ATTEMPTS": "3"}


@pytest.fixture
def make_service(modem_env, phone):
    """Build (and afterwards close) modem services on the dummy phone; ``overrides`` change settings."""
    services = []

    def make(spy=None, clock=None, **overrides):
        settings = Settings({**modem_env, **{k: str(v) for k, v in overrides.items()}})
        set_settings(settings)
        service = modem_channel.ModemService(settings, str(phone.gammurc), 0,
                                             state_machine=(spy or Spy()).factory, clock=clock or Clock(),
                                             journal_path=phone.root / f"send-{len(services)}.journal")
        services.append(service.open())
        return service

    yield make
    for service in services:
        service.close()
    set_settings(None)


def db(service):
    return session_factory(service.settings.DATABASE_URL)()


def run_inbound(settings):
    """Process the stored messages (report, reply) the way a general worker's inbound loop does."""
    pipeline.drain(settings)


def waiting(settings):
    """Replies due for the modem in the outbox."""
    return modem_channel.queued_replies(settings)["queued"]


# --------------------------------------------------------------------------- inbound

def test_single_sms_is_stored_reported_answered_and_deleted(make_service, phone):
    spy = Spy()
    service = make_service(spy)
    path = phone.deliver(SENDER, "KEMENHUB ADUAN bus masih angkut pemudik di terminal")

    service.tick()

    assert not path.exists()
    with db(service) as session:
        inbound = session.scalars(select(InboundMessage)).one()
    assert (inbound.channel, inbound.sender) == ("modem", SENDER_E164)
    assert inbound.text == "KEMENHUB ADUAN bus masih angkut pemudik di terminal"
    assert inbound.external_id.startswith("gsm-") and not inbound.incomplete
    assert inbound.provider_time is not None and inbound.provider_time.isoformat() == "2026-05-04T08:00:00+00:00"
    assert service.counters.received == 1

    run_inbound(service.settings)
    with db(service) as session:
        report = session.scalars(select(Report)).one()
        reply = session.scalars(select(OutboundMessage)).one()
    assert report.agency == "KEMENHUB" and report.channel == "modem"
    assert report.text == "bus masih angkut pemudik di terminal"
    assert (reply.channel, reply.state) == ("modem", "queued")
    assert waiting(service.settings) == 1  # waiting for the modem process

    service.tick()

    [(message, reference)] = spy.sends
    assert message["Number"] == SENDER_E164 and message["SMSC"] == {"Location": 1}
    assert reference == 255
    assert spy.sent_texts() == [(SENDER_E164, reply.text)]
    assert report.tracking_number in reply.text
    with db(service) as session:
        reply = session.get(OutboundMessage, reply.id)
    assert (reply.state, reply.provider_id, reply.segments, reply.attempts) == ("sent", "gammu:255", 1, 1)
    assert service.counters.sent == 1 and waiting(service.settings) == 0


def test_multipart_in_reverse_order_is_joined(make_service, phone):
    service = make_service()
    body = ("KEMENKES ADUAN klinik dekat stasiun bekasi minta bayar tes antigen 300 ribu tanpa kwitansi, "
            "petugasnya bilang itu tarif resmi padahal di papan pengumuman tertulis gratis untuk warga ber-KTP "
            "bekasi. Sudah tiga kali saya lihat warga lain juga ditarik biaya yang sama di loket pendaftaran. "
            "Mohon segera diperiksa karena banyak lansia yang akhirnya tidak jadi tes dan pulang.")
    paths = phone.deliver_parts(SENDER, body, order=[3, 2, 1])
    assert len(paths) == 3

    service.tick()

    assert not any(p.exists() for p in paths)
    with db(service) as session:
        inbound = session.scalars(select(InboundMessage)).one()
    assert inbound.text == body and not inbound.incomplete
    assert inbound.meta["parts"] == 3 and inbound.meta["total"] == 3
    run_inbound(service.settings)
    with db(service) as session:
        assert session.scalars(select(Report.agency)).one() == "KEMENKES"


def test_ucs2_multipart_and_single(make_service, phone):
    service = make_service()
    body = ("KEMENAG ADUAN pengurus masjid menarik “infaq wajib” Rp 50.000 per keluarga 🙏 untuk "
            "pembangunan, yang tidak bayar diumumkan namanya. Mohon ditindak, warga takut melapor ke RT 😟")
    assert gsm.measure(body).encoding == "ucs2"
    paths = phone.deliver_parts("+6285712345678", body, unicode=True, order=[2, 3, 1], folder=SIM_INBOX)
    single = phone.deliver("+6285799990000", "Kemenkes info vaksin lansia di Bekasi? “segera”", unicode=True)

    service.tick()

    assert not any(p.exists() for p in [*paths, single])
    with db(service) as session:
        texts = dict(session.execute(select(InboundMessage.sender, InboundMessage.text)).all())
    assert texts == {"+6285712345678": body, "+6285799990000": "Kemenkes info vaksin lansia di Bekasi? “segera”"}


def test_incomplete_multipart_waits_then_is_stored_incomplete(make_service, phone):
    clock = Clock()
    service = make_service(clock=clock)
    body = "POLRI ADUAN " + "oknum di pos penyekatan minta uang seratus ribu biar boleh lewat. " * 5
    paths = phone.deliver_parts(SENDER, body, order=[1, 3])  # part 2 never arrives

    service.tick()
    clock.advance(59)
    service.tick()

    assert all(p.exists() for p in paths)  # held, not stored, not dropped
    assert service.status()["waiting_multipart"] == 1
    with db(service) as session:
        assert session.scalar(select(func.count(InboundMessage.id))) == 0

    clock.advance(2)  # past MODEM_MULTIPART_TIMEOUT=60
    service.tick()

    assert not any(p.exists() for p in paths)
    with db(service) as session:
        inbound = session.scalars(select(InboundMessage)).one()
    parts = modem_channel.encode(body)
    assert inbound.incomplete and inbound.meta["missing_parts"] == [2]
    assert inbound.text == parts[0]["Text"] + parts[2]["Text"]
    run_inbound(service.settings)
    with db(service) as session:
        assert session.scalars(select(Report.agency)).one() == "POLRI"
    assert service.status()["waiting_multipart"] == 0


def test_missing_part_arriving_in_time_completes_the_sms(make_service, phone):
    clock = Clock()
    service = make_service(clock=clock)
    body = "PLN ADUAN " + "listrik mati dari jam lima sore di kelurahan margahayu, belum ada petugas. " * 5
    parts = encode(body, unicode=False)
    first = phone.deliver_parts(SENDER, body, order=[1, 3], parts=parts)
    service.tick()
    assert all(p.exists() for p in first)

    clock.advance(30)
    late = phone.deliver_parts(SENDER, body, order=[2], parts=parts)
    service.tick()

    assert not any(p.exists() for p in [*first, *late])
    with db(service) as session:
        inbound = session.scalars(select(InboundMessage)).one()
    assert inbound.text == body and not inbound.incomplete


def test_sms_is_deleted_only_after_the_store_committed(make_service, phone, db_url):
    spy = Spy()
    seen_at_delete = []
    engine = create_engine(db_url)

    def check_committed(location):
        # Another connection: sees the row only if it was committed.
        with engine.connect() as conn:
            seen_at_delete.append(conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar())

    spy.on_delete = check_committed
    service = make_service(spy)
    phone.deliver(SENDER, "BEKASI ADUAN jalan berlubang di jl. kh noer alie")
    phone.deliver_parts("+6281311112222", "KEMENSOS ADUAN " + "bansos belum diterima padahal terdaftar. " * 5)

    service.tick()
    engine.dispose()

    assert len(spy.deletes) == 3  # one plain SMS and two parts
    assert seen_at_delete == [1, 2, 2]  # each message committed before any of its parts was deleted


def test_nothing_is_deleted_when_the_database_is_down(make_service, phone):
    spy = Spy()
    service = make_service(spy, DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/unreachable")
    path = phone.deliver(SENDER, "KEMENHUB ADUAN bus")

    service.tick()

    assert path.exists() and spy.deletes == []
    assert service.last_error.startswith("database")
    assert service.machine is not None  # the modem stays connected; the SMS is read again next time


def test_database_down_with_multipart_on_the_modem(make_service, phone):
    spy = Spy()
    service = make_service(spy, DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/unreachable")
    paths = phone.deliver_parts(SENDER, "KEMENSOS ADUAN " + "bansos belum diterima padahal terdaftar. " * 5)

    service.tick()  # the crash-safety lookup cannot reach the database either

    assert all(p.exists() for p in paths) and spy.deletes == []
    assert service.machine is not None and service.last_error.startswith("database")


def test_redis_down_keeps_receiving_and_replies_wait(make_service, phone):
    service = make_service(REDIS_URL="redis://127.0.0.1:1/0")
    path = phone.deliver(SENDER, "KEMENHUB ADUAN bus")
    outbound_id = _queue_reply(service.settings, SENDER_E164)  # the doorbell is not heard: no matter

    service.tick()

    assert not path.exists()  # stored (the sweeper enqueues it later), so deleted
    with db(service) as session:
        assert session.scalars(select(InboundMessage.state)).one() == "received"
        # The shared send rate lives in Redis: the reply waits, unclaimed, for it to come back.
        assert (session.get(OutboundMessage, outbound_id).state, session.get(OutboundMessage, outbound_id).attempts) \
            == ("queued", 0)
    assert service.machine is not None and service.last_error.startswith("redis")


class Crash(BaseException):  # a BaseException: nothing in the gateway may survive it
    """The process dies (power cut, kill -9) at this point."""


def test_crash_between_store_and_delete_creates_no_second_report(make_service, phone):
    spy = Spy()

    def die(location):
        raise Crash

    spy.on_delete = die
    first = make_service(spy)
    path = phone.deliver(SENDER, "KEMENHUB ADUAN travel gelap angkut pemudik tiap malam")
    with pytest.raises(Crash):
        first.tick()
    assert path.exists()
    first.close()

    second = make_service(Spy())  # the restarted process reads the same SMS again
    second.tick()

    assert not path.exists()
    assert second.counters.received == 0  # recognised as already stored
    run_inbound(second.settings)
    with db(second) as session:
        assert session.scalar(select(func.count(InboundMessage.id))) == 1
        assert session.scalar(select(func.count(Report.id))) == 1
        assert session.scalar(select(func.count(OutboundMessage.id))) == 1


def test_crash_between_deleting_parts_leaves_no_partial_duplicate(make_service, phone):
    spy = Spy()
    deleted = []

    def die_after_first(location):
        if deleted:
            raise Crash
        deleted.append(location)

    spy.on_delete = die_after_first
    clock = Clock()
    first = make_service(spy, clock=clock)
    body = "KEMENDIKBUD ADUAN " + "sekolah negeri minta uang seragam satu setengah juta, katanya wajib. " * 5
    paths = phone.deliver_parts(SENDER, body, order=[2, 1, 3])
    with pytest.raises(Crash):
        first.tick()
    assert sum(p.exists() for p in paths) == 2  # one part deleted, two left behind
    first.close()

    second = make_service(Spy(), clock=clock)
    second.tick()

    assert not any(p.exists() for p in paths)  # the leftovers are recognised and deleted at once
    with db(second) as session:
        rows = session.scalars(select(InboundMessage)).all()
    assert [(r.text, r.incomplete) for r in rows] == [(body, False)]


def test_sigterm_finishes_the_current_message_then_exits(make_service, phone):
    spy = Spy()
    spy.on_delete = lambda location: os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-message
    service = make_service(spy)
    first = phone.deliver(SENDER, "KEMENHUB ADUAN bus")
    second = phone.deliver("+6281399998888", "PLN ADUAN listrik mati")
    handler_before = signal.getsignal(signal.SIGTERM)

    assert service.run() == 0

    assert not first.exists() and second.exists()  # the first one finished, the second waits on the modem
    with db(service) as session:
        assert session.scalars(select(InboundMessage.text)).all() == ["KEMENHUB ADUAN bus"]
    assert service.machine is None and signal.getsignal(signal.SIGTERM) is handler_before


def test_outbox_and_templates_are_left_alone(make_service, phone):
    service = make_service()
    outgoing = phone.device / "sms" / "2" / "7"
    gammu.SaveSMSBackup(str(outgoing), [{"Type": "Submit", "Folder": 2, "State": "UnSent", "Number": "+62811",
                                          "Text": "draft", "SMSC": {"Location": 1}}])
    service.tick()
    assert outgoing.exists()
    with db(service) as session:
        assert session.scalar(select(func.count(InboundMessage.id))) == 0


# --------------------------------------------------------------------------- outbound

def test_channel_is_registered_and_answers_modem_messages(settings):
    channel = get_channel("modem", settings)
    assert channel.rate == 1000  # MODEM_MPM, per second
    assert reply_channel("modem", settings) == "modem"
    with pytest.raises(SendError) as exc:  # no modem in this process
        channel.send(OutgoingSMS(outbound_id=1, recipient=SENDER_E164, text="x"))
    assert exc.value.retryable and exc.value.code == "ERR_NOTCONNECTED"


@pytest.mark.parametrize("text", [
    "Laporan Anda diterima.",
    "x" * 160,
    "x" * 161,
    "kurung {siku} ~ " * 11,
    "“kutip” " * 8,
    "“kutip” " * 9,
    "emoji 😀 " * 10,
])
def test_encoding_matches_our_segment_count(text):
    parts = modem_channel.encode(text)
    length = gsm.measure(text)
    assert len(parts) == length.segments
    expected = "Unicode_No_Compression" if length.encoding == "ucs2" else "Default_No_Compression"
    assert {p["Coding"] for p in parts} == {expected}
    decoded = gammu.DecodeSMS(parts)
    assert (decoded["Entries"][0]["Buffer"] if decoded else parts[0]["Text"]) == text


def test_long_ucs2_reply_goes_out_concatenated(make_service):
    spy = Spy()
    service = make_service(spy)
    service.tick()
    reply = "Laporan Anda “diterima” 🙏 " * 6
    result = get_channel("modem", service.settings).send(OutgoingSMS(outbound_id=9, recipient=SENDER_E164,
                                                                     text=reply))
    sent = [m for m, _ in spy.sends]
    assert result.segments == len(sent) == gsm.measure(reply).segments > 1
    assert all(m["UDH"]["Type"] == "ConcatenatedMessages" and m["Coding"] == "Unicode_No_Compression"
               for m in sent)
    assert spy.sent_texts() == [(SENDER_E164, reply)]
    assert result.provider_id == "gammu:" + ",".join(["255"] * len(sent))


def _queue_reply(settings, recipient, key="r1"):
    with session_factory(settings.DATABASE_URL)() as session:
        row = outbox.queue_reply(session, key=key, channel="modem", recipient=recipient, text="Terima kasih.",
                                 purpose="ack")
        session.commit()
        outbox.dispatch(settings, [row])
        return row.id


def test_send_error_is_retried_then_failed_with_gammus_error_name(make_service):
    spy = Spy()
    # No SMSC stored at SIM location 7 of the dummy phone: every SendSMS fails.
    service = make_service(spy, MODEM_SMSC_LOCATION=7)
    outbound_id = _queue_reply(service.settings, SENDER_E164)

    service.tick()

    assert [type(ref).__name__ for _, ref in spy.sends] == ["ERR_GETTING_SMSC"] * 3  # SEND_MAX_ATTEMPTS
    with db(service) as session:
        row = session.get(OutboundMessage, outbound_id)
    assert (row.state, row.attempts, row.error_code) == ("failed", 3, "ERR_GETTING_SMSC")
    assert row.error == "ERR_GETTING_SMSC: Failed to get SMSC number from phone."
    assert service.counters.failed == 3 and service.counters.sent == 0
    assert service.machine is not None  # not a connection problem: no reconnect
    assert waiting(service.settings) == 0


def test_retries_wait_their_interval_in_the_outbox(make_service):
    spy = Spy()
    clock = Clock()
    service = make_service(spy, clock=clock, MODEM_SMSC_LOCATION=7, JOB_RETRY_INTERVALS="1",
                           SEND_MAX_ATTEMPTS=2)
    outbound_id = _queue_reply(service.settings, SENDER_E164)

    service.tick()

    assert len(spy.sends) == 1
    assert modem_channel.queued_replies(service.settings) == {"queued": 0, "retry_scheduled": 1}  # its time

    deadline = time.monotonic() + 10
    while len(spy.sends) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        clock.advance(1)
        service.tick()  # the modem process claims the retry once it is due

    assert len(spy.sends) == 2
    with db(service) as session:
        row = session.get(OutboundMessage, outbound_id)
    assert (row.state, row.attempts, row.error_code) == ("failed", 2, "ERR_GETTING_SMSC")


def test_number_the_modem_refuses_fails_at_once(make_service):
    spy = Spy()
    service = make_service(spy)
    outbound_id = _queue_reply(service.settings, "1" * 25)
    service.tick()
    assert len(spy.sends) == 1
    with db(service) as session:
        row = session.get(OutboundMessage, outbound_id)
    assert (row.state, row.attempts, row.error_code) == ("failed", 1, "ERR_INVALIDDATA")


def test_modem_going_away_mid_send_reconnects_and_retries(make_service):
    spy = Spy()
    clock = Clock()
    service = make_service(spy, clock=clock, MODEM_POLL_INTERVAL=60)  # no inbox read in the next tick
    service.tick()
    service.machine.Terminate()  # the modem is unplugged behind the gateway's back
    outbound_id = _queue_reply(service.settings, SENDER_E164)

    service.tick()

    assert [type(ref).__name__ for _, ref in spy.sends] == ["ERR_NOTCONNECTED"]
    assert service.machine is None and service.last_error.startswith("ERR_NOTCONNECTED")
    with db(service) as session:
        row = session.get(OutboundMessage, outbound_id)
    assert (row.state, row.attempts, row.error_code) == ("queued", 1, "ERR_NOTCONNECTED")
    assert waiting(service.settings) == 1  # the retry waits for the modem

    clock.advance(1)
    service.tick()

    assert spy.inits == 2 and service.counters.reconnects == 1
    with db(service) as session:
        row = session.get(OutboundMessage, outbound_id)
    assert (row.state, row.attempts, row.error_code) == ("sent", 2, None)


def test_modem_going_away_while_reading_reconnects(make_service, phone):
    spy = Spy()
    clock = Clock()
    service = make_service(spy, clock=clock)
    service.tick()
    service.machine.Terminate()
    path = phone.deliver(SENDER, "KEMENHUB ADUAN bus")

    service.tick()

    assert service.machine is None and service.last_error.startswith("ERR_NOTCONNECTED")
    assert path.exists()
    clock.advance(1)
    service.tick()
    assert not path.exists() and service.counters.received == 1 and spy.inits == 2


def test_reconnect_backs_off_and_queued_replies_wait(make_service, phone):
    spy = Spy()
    clock = Clock()
    phone.write_config(device=phone.root / "unplugged")
    service = make_service(spy, clock=clock)
    outbound_id = _queue_reply(service.settings, SENDER_E164)

    attempts_at = []
    for _ in range(32):
        before = spy.inits
        service.tick()
        if spy.inits > before:
            attempts_at.append(clock.now - 1000)
        clock.advance(0.5)

    assert attempts_at == [0, 1, 3, 7, 11, 15]  # waits 1, 2, 4, then MODEM_RECONNECT_MAX_DELAY=4
    assert service.machine is None and "ERR_DEVICE" in service.last_error
    assert waiting(service.settings) == 1 and spy.sends == []
    with db(service) as session:
        assert session.get(OutboundMessage, outbound_id).state == "queued"

    phone.write_config()  # plugged back in
    clock.advance(4)
    service.tick()

    assert service.machine is not None and service.counters.reconnects == 0  # its first connection
    with db(service) as session:
        assert session.get(OutboundMessage, outbound_id).state == "sent"


# --------------------------------------------------------------------------- status

def test_status_is_readable_from_another_process(make_service, phone):
    service = make_service()
    phone.deliver(SENDER, "KEMENHUB ADUAN bus")
    service.tick()
    run_inbound(service.settings)
    service.tick()
    service.report_status()

    runner = CliRunner()
    result = runner.invoke(cli.main, ["modem", "--status"])
    assert result.exit_code == 0, result.output
    assert "connected" in result.output and "signal 42%, battery 100%" in result.output
    assert "received 1, sent 1, failed 0" in result.output
    assert "Dummy" in result.output

    as_json = json.loads(runner.invoke(cli.main, ["modem", "--status", "--json"]).output)
    [record] = as_json["modems"]
    assert (record["received"], record["sent"], record["signal_percent"]) == (1, 1, 42)
    assert as_json["replies"] == {"queued": 0, "retry_scheduled": 0}

    service.close()
    stopped = runner.invoke(cli.main, ["modem", "--status"])
    assert stopped.exit_code == 1 and "stopped" in stopped.output


def test_status_without_a_modem_process(settings):
    result = CliRunner().invoke(cli.main, ["modem", "--status"])
    assert result.exit_code == 1
    assert "no modem process has reported" in result.output


def test_bad_gammurc_section_is_a_clear_error(phone, settings):
    result = CliRunner().invoke(cli.main, ["modem", "--config", str(phone.gammurc), "--section", "3"])
    assert result.exit_code == 1
    assert "section 3: ERR_NONE_SECTION" in result.output


def test_shipped_gammurc_example_is_valid():
    config = modem_channel.check_config(str(PROJECT_ROOT / "deploy" / "gammurc.example"), 0)
    assert config["Connection"] == "at" and config["Device"].startswith("/dev/serial/by-id/")


def test_sends_cut_short_by_a_crash_are_settled_from_the_modems_journal(make_service, tmp_path):
    from datetime import timedelta

    from sqlalchemy import update

    from sms_gateway.models import utcnow

    spy = Spy()
    service = make_service(spy, SWEEP_GRACE=0)
    ids = [_queue_reply(service.settings, SENDER_E164, key=f"r{i}") for i in range(3)]
    with db(service) as session:  # the previous modem process died with all three "sending"
        session.execute(update(OutboundMessage).values(state="sending", attempts=1,
                                                       claimed_at=utcnow() - timedelta(minutes=1),
                                                       updated_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    service.journal.start(ids[0])
    service.journal.sent(ids[0], "gammu:255")  # sent, then killed before the database heard of it
    service.journal.start(ids[1])  # killed during SendSMS
    # ids[2]: claimed, killed before SendSMS started

    service.tick()

    with db(service) as session:
        rows = [session.get(OutboundMessage, i) for i in ids]
    assert [(r.state, r.provider_id) for r in rows[:1]] == [("sent", "gammu:255")]
    assert (rows[1].state, rows[1].error_code) == ("failed", "interrupted")
    assert "keeps no sent record" in rows[1].error and "not sent again" in rows[1].error
    assert (rows[2].state, rows[2].attempts) == ("sent", 1)
    assert spy.sent_texts() == [(SENDER_E164, "Terima kasih.")]  # only the one that never started
