"""End to end: an SMS becomes a report and the citizen gets the right answer, whatever crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from sms_gateway import jobs, pipeline, tracking
from sms_gateway import queue as q
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OptOut, OutboundMessage, Report
from sms_gateway.registry import forget_registries
from tests.channels.test_twilio import count, only, post_signed, sms_params
from tests.conftest import run_jobs


def text_sms(client, work, body: str, sender: str = "081234567890", sid: str | None = None) -> str:
    """Send one SMS through the webhook and the worker; return the reply text."""
    sid = sid or f"SM{abs(hash((body, sender, time.monotonic_ns()))):030d}"
    assert post_signed(client, sms_params(body=body, sid=sid, sender=sender)).status_code == 200
    work()
    return last_reply_to(client.application.config["SETTINGS"], sender)


def last_reply_to(settings, sender: str) -> str:
    from sms_gateway.phone import normalize

    with session_factory(settings.DATABASE_URL)() as s:
        return s.scalars(select(OutboundMessage.text).where(OutboundMessage.recipient == normalize(sender))
                         .order_by(OutboundMessage.id.desc())).first()


def test_report_has_tracking_number_agency_kind_reporter_and_history(client, settings, work) -> None:
    reply = text_sms(client, work, "BPJS KES info cara pindah faskes 1 gmn ya min?", sender="+62 812-3456-7890")
    with session_factory(settings.DATABASE_URL)() as s:
        report = s.scalars(select(Report)).one()
        assert tracking.is_valid(report.tracking_number)
        assert (report.agency, report.kind, report.status, report.reporter, report.channel) == \
            ("BPJSKES", "info", "diterima", "+6281234567890", "twilio")
        assert report.text == "cara pindah faskes 1 gmn ya min?"
        assert [e.status for e in report.events] == ["diterima"]
        assert report.evidence["prefix_match"] == "exact"
        assert report.disposition_due is not None
    assert report.tracking_number in reply and "BPJSKES" in reply
    assert len(reply) <= 160


def test_unknown_prefix_keeps_the_text_for_the_central_queue(client, settings, work) -> None:
    reply = text_sms(client, work, "XYZABC aduan lampu jalan mati sudah sebulan")
    report = only(settings, Report)
    assert (report.agency, report.text) == (None, "XYZABC aduan lampu jalan mati sudah sebulan")
    assert report.tracking_number in reply and "LAPOR! pusat" in reply


def test_cek_answers_status_agency_and_date_but_never_the_text(client, settings, work) -> None:
    text_sms(client, work, "POLRI ADUAN oknum minta uang 100rb di pos penyekatan")
    number = only(settings, Report).tracking_number
    for command in (f"CEK {number}", f"cek #{number}", f"status laporan {number}", f"Status: {number} gmn?"):
        reply = text_sms(client, work, command, sender="0811111111")
        assert number in reply and "diterima" in reply and "POLRI" in reply
        assert time.strftime("%Y") in reply
        assert "oknum" not in reply
    assert count(settings, Report) == 1  # commands create no report


def test_cek_with_a_mistyped_number_is_invalid_not_somebody_elses_report(client, settings, work) -> None:
    text_sms(client, work, "PLN ADUAN listrik mati dari jam 5 sore")
    number = only(settings, Report).tracking_number
    typo = number[:-1] + str((int(number[-1]) + 1) % 10)
    reply = text_sms(client, work, f"CEK {typo}")
    assert "tidak valid" in reply and typo in reply
    missing = tracking.generate()
    reply = text_sms(client, work, f"CEK {missing}")
    assert "tidak ditemukan" in reply
    assert "CEK <nomor laporan>" in text_sms(client, work, "CEK")


def test_confidential_report_is_not_found_from_another_number(client, settings, work) -> None:
    text_sms(client, work, "POLRI ADUAN oknum minta uang. RAHASIA", sender="081200000001")
    report = only(settings, Report)
    assert report.confidential
    assert "tidak ditemukan" in text_sms(client, work, f"CEK {report.tracking_number}", sender="081200000002")
    assert "diterima" in text_sms(client, work, f"CEK {report.tracking_number}", sender="081200000001")


def test_help_texts_and_stop(client, settings, work) -> None:
    assert text_sms(client, work, "BANTUAN").startswith("Format SMS 1708:")
    assert "?" not in text_sms(client, work, "?")[:5]
    reply = text_sms(client, work, "kemenhub")
    assert "KEMENHUB ADUAN <isi laporan>" in reply
    reply = text_sms(client, work, "BERHENTI", sender="0813000000")
    assert "tidak akan menerima" in reply
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.get(OptOut, "+62813000000") is not None
    assert count(settings, Report) == 0


def test_every_reply_fits_one_gsm7_sms(client, settings, work) -> None:
    from sms_gateway import gsm

    texts = ["SATPOLPPBEKASI aduan pedagang di trotoar", "CEK 1234567", "CEK", "?", "KEMENPANRB",
             "zzz lampu mati", "STOP", f"CEK {tracking.generate()}"]
    for body in texts:
        text_sms(client, work, body)
    with session_factory(settings.DATABASE_URL)() as s:
        for reply in s.scalars(select(OutboundMessage.text)):
            assert gsm.measure(reply).segments == 1, reply
            assert gsm.is_gsm7(reply), reply


def test_processing_twice_creates_one_report_and_one_reply(client, settings, work, fake_twilio) -> None:
    post_signed(client, sms_params())
    inbound_id = only(settings, InboundMessage).id
    jobs.process_inbound(inbound_id)
    jobs.process_inbound(inbound_id)
    work()
    assert count(settings, Report) == 1
    assert count(settings, OutboundMessage) == 1
    assert len(fake_twilio.messages) == 1


def test_reply_committed_but_never_enqueued_is_sent_on_rerun(client, settings, redis_conn, fake_twilio) -> None:
    post_signed(client, sms_params())
    inbound_id = only(settings, InboundMessage).id
    jobs.process_inbound(inbound_id)
    redis_conn.flushdb()  # the worker died between commit and enqueue of the send
    jobs.process_inbound(inbound_id)  # RQ re-runs the job: it only re-enqueues the waiting reply
    run_jobs(settings)
    assert len(fake_twilio.messages) == 1


def test_a_message_stored_while_redis_was_down_is_found_by_the_inbound_loop(env, client, redis_conn,
                                                                           fake_twilio) -> None:
    """No doorbell rang (Redis was down when it was stored): a worker's loop finds it anyway."""
    import threading

    from sms_gateway import ingest, pipeline
    from sms_gateway.channels.base import IncomingSMS

    settings = Settings(env)
    set_settings(settings)
    stored = ingest.accept(Settings({**env, "REDIS_URL": "redis://127.0.0.1:9/0"}), IncomingSMS(
        channel="twilio", external_id="SMlost", sender="081234567890", text="PLN ADUAN listrik mati"))
    assert stored.created and not stored.enqueued and redis_conn.llen(q.INBOUND_WAKE) == 0
    stop = threading.Event()
    loop = threading.Thread(target=pipeline.run_inbound, args=(settings, stop))
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while only(settings, InboundMessage).state != "processed" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(5)
    assert only(settings, InboundMessage).state == "processed"
    run_jobs(settings)
    assert len(fake_twilio.messages) == 1


def test_processing_failure_is_recorded_and_retried(env, client, monkeypatch) -> None:
    settings = Settings({**env, "PREFIXES_FILE": "/nonexistent/prefixes.yaml"})
    set_settings(settings)
    post_signed(client, sms_params())
    run_jobs(settings)  # every attempt fails: no registry to read
    msg = only(settings, InboundMessage)
    assert msg.state == "received"
    assert "cannot read" in msg.error
    set_settings(Settings(env))
    forget_registries()
    jobs.process_inbound(msg.id)
    assert only(settings, InboundMessage).state == "processed"


def test_healthz(client, env) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    from sms_gateway.web import create_app

    down = create_app(Settings({**env, "REDIS_URL": "redis://127.0.0.1:9/0"})).test_client().get("/healthz")
    assert down.status_code == 503
    assert down.get_json()["redis"].startswith("error")


@pytest.mark.slow
def test_real_worker_and_sender_processes_answer_a_signed_webhook(client, settings, env, fake_twilio) -> None:
    """worker.py and `sms-gateway sender` as operators run them: separate processes."""
    proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sender = subprocess.Popen([sys.executable, "-m", "sms_gateway", "sender"], cwd=PROJECT_ROOT,
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        post_signed(client, sms_params(body="KEMENKES ADUAN klinik minta bayar antigen 300rb"))
        deadline = time.monotonic() + 30
        while not fake_twilio.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake_twilio.messages, "worker.py sent no acknowledgement"
        number = only(settings, Report).tracking_number
        assert number in fake_twilio.messages[0].form["Body"]
        post_signed(client, sms_params(body=f"CEK {number}", sid="SM0002"))
        while len(fake_twilio.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "diterima" in fake_twilio.messages[1].form["Body"]
    finally:
        proc.send_signal(signal.SIGTERM)
        sender.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
        sender_output = sender.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert sender.returncode == 0, sender_output
    assert "sender: stopped (console: sent 0, failed 0, twilio: sent 2, failed 0" in sender_output


def test_metrics_show_messages_reports_and_queues(client, settings, work) -> None:
    text_sms(client, work, "KEMENHUB ADUAN bus masih angkut pemudik")
    body = client.get("/metrics").data.decode()
    assert 'sms_gateway_reports{agency="KEMENHUB",status="diterima"} 1.0' in body
    assert 'sms_gateway_inbound_messages{channel="twilio",state="processed"} 1.0' in body
    assert 'sms_gateway_outbound_messages{channel="twilio",state="sent"} 1.0' in body
    assert 'sms_gateway_queue_jobs{queue="inbound"} 0.0' in body


def test_a_failing_message_is_retried_on_its_own_and_its_batch_goes_on(settings, redis_conn, fake_twilio,
                                                                      monkeypatch, work) -> None:
    """One batch, one transaction; a message that raises is retried alone by an RQ job, the others go on."""
    from rq import Queue

    from sms_gateway import ingest
    from sms_gateway.channels.base import IncomingSMS

    texts = ["PLN ADUAN listrik mati sejak pagi", "KAI ADUAN kereta terlambat 2 jam", "CEK 12345678"]
    stored = ingest._store_and_enqueue(settings, [
        IncomingSMS(channel="twilio", external_id=f"SMB{i}", sender=f"08123456780{i}", text=text)
        for i, text in enumerate(texts)])
    ids = [r.inbound_id for r in stored]  # type: ignore[union-attr]
    assert Queue("inbound", connection=redis_conn).job_ids == []  # the workers' loop claims them

    real = pipeline.respond

    def broken_rule(session, settings_, registry, msg, *args):
        if msg.id == ids[1]:
            raise RuntimeError("a rule of prefixes.yaml broke on this text")
        return real(session, settings_, registry, msg, *args)

    monkeypatch.setattr(pipeline, "respond", broken_rule)
    assert pipeline.process(settings, []) == {"ack": 1, "retrying": 1, "status": 1}
    with session_factory(settings.DATABASE_URL)() as s:
        failed = s.get(InboundMessage, ids[1])
        assert (failed.state, failed.error) == ("received", "RuntimeError: a rule of prefixes.yaml broke on this text")
    assert Queue("inbound", connection=redis_conn).job_ids == [f"inbound-{ids[1]}"]
    assert pipeline.process(settings, []) == {}  # the loop leaves it to its job and its backoff

    monkeypatch.setattr(pipeline, "respond", real)
    run_jobs(settings)  # the retry on its own
    with session_factory(settings.DATABASE_URL)() as s:
        assert [s.get(InboundMessage, i).state for i in ids] == ["processed"] * 3
    assert sorted(m.form["To"] for m in fake_twilio.messages) == ["+6281234567800", "+6281234567801",
                                                                  "+6281234567802"]
