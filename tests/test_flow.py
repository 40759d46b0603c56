"""End to end: an SMS becomes a report and the citizen gets the right answer, whatever crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from sms_gateway import jobs, tracking
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OptOut, OutboundMessage, Report, utcnow
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


def test_sweeper_recovers_messages_whose_job_was_lost(env, client, redis_conn, fake_twilio) -> None:
    settings = Settings({**env, "SWEEP_GRACE": "0", "JOB_RETRY_INTERVALS": "0"})
    set_settings(settings)
    post_signed(client, sms_params())
    redis_conn.flushdb()  # Redis lost the job (crash, flush, failover) after the commit
    run_jobs(settings)
    assert len(fake_twilio.messages) == 0
    time.sleep(0.01)
    assert jobs.sweep()["inbound"] == 1
    run_jobs(settings)
    assert len(fake_twilio.messages) == 1
    assert only(settings, InboundMessage).state == "processed"


def test_sweeper_leaves_a_backlog_alone_and_recovers_what_was_lost_before_it(env, settings, redis_conn) -> None:
    """A surge: the worker is minutes behind. Queued messages are not lost; one whose job was is."""
    import time_machine
    from rq import Queue

    from sms_gateway import ingest
    from sms_gateway.channels.base import IncomingSMS

    def sms(sid: str) -> IncomingSMS:
        return IncomingSMS(channel="twilio", external_id=sid, sender="081234567890", text="PLN ADUAN mati")

    start = utcnow()
    with time_machine.travel(start, tick=False):
        lost = ingest.accept(Settings({**env, "REDIS_URL": "redis://127.0.0.1:9/0"}), sms("SML"))
    assert not lost.enqueued  # stored while Redis was unreachable
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        queued = [ingest.accept(settings, sms(f"SMQ{i}")).inbound_id for i in range(3)]
    inbound = Queue("inbound", connection=redis_conn)
    assert len(inbound.job_ids) == 3
    with time_machine.travel(start + timedelta(minutes=30), tick=False):  # nobody has worked the queue
        assert jobs.sweep()["inbound"] == 1
    assert inbound.job_ids[-1] == f"inbound-{lost.inbound_id}"  # only the lost one, behind the backlog
    assert len(inbound.job_ids) == 4 and lost.inbound_id not in queued


def test_sweeper_marks_sends_interrupted_mid_call_failed_and_visible(env, client, fake_twilio) -> None:
    settings = Settings({**env, "SWEEP_GRACE": "0"})
    set_settings(settings)
    post_signed(client, sms_params())
    jobs.process_inbound(only(settings, InboundMessage).id)
    out = only(settings, OutboundMessage)
    with session_factory(settings.DATABASE_URL)() as s:  # the worker died during the provider call
        s.execute(update(OutboundMessage).values(state="sending", updated_at=utcnow() - timedelta(minutes=5)))
        s.commit()
    assert jobs.sweep()["interrupted"] == 1
    out = only(settings, OutboundMessage)
    assert (out.state, out.error_code) == ("failed", "interrupted")
    from click.testing import CliRunner

    from sms_gateway.cli import main

    listing = CliRunner().invoke(main, ["messages", "--from", "081234567890"])
    assert "failed" in listing.output and "interrupted" in listing.output
    assert "+62812*****90" in listing.output or "+6281234567890" in listing.output
    assert CliRunner().invoke(main, ["messages", "retry", str(out.id)]).exit_code == 0
    run_jobs(settings)
    assert only(settings, OutboundMessage).state == "sent"
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
    jobs._HOLDERS.clear()
    jobs.process_inbound(msg.id)
    assert only(settings, InboundMessage).state == "processed"


def test_healthz(client, env) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok", "redis": "ok"}
    from sms_gateway.web import create_app

    down = create_app(Settings({**env, "REDIS_URL": "redis://127.0.0.1:9/0"})).test_client().get("/healthz")
    assert down.status_code == 503
    assert down.get_json()["redis"].startswith("error")


@pytest.mark.slow
def test_real_worker_process_answers_a_signed_webhook(client, settings, env, fake_twilio) -> None:
    """worker.py as operators run it: a separate process with the RQ scheduler."""
    proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT,
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
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output


def test_metrics_show_messages_reports_and_queues(client, settings, work) -> None:
    text_sms(client, work, "KEMENHUB ADUAN bus masih angkut pemudik")
    body = client.get("/metrics").data.decode()
    assert 'sms_gateway_reports{agency="KEMENHUB",status="diterima"} 1.0' in body
    assert 'sms_gateway_inbound_messages{channel="twilio",state="processed"} 1.0' in body
    assert 'sms_gateway_outbound_messages{channel="twilio",state="sent"} 1.0' in body
    assert 'sms_gateway_queue_jobs{queue="inbound"} 0.0' in body


def test_a_batch_job_hands_a_failing_message_to_its_own_job(settings, redis_conn, fake_twilio, monkeypatch,
                                                            work) -> None:
    """One stored batch, one RQ job; a message that raises is retried alone, the others go on."""
    from rq import Queue

    from sms_gateway import ingest
    from sms_gateway.channels.base import IncomingSMS

    texts = ["PLN ADUAN listrik mati sejak pagi", "KAI ADUAN kereta terlambat 2 jam", "CEK 12345678"]
    stored = ingest._store_and_enqueue(settings, [
        IncomingSMS(channel="twilio", external_id=f"SMB{i}", sender=f"08123456780{i}", text=text)
        for i, text in enumerate(texts)])
    ids = [r.inbound_id for r in stored]  # type: ignore[union-attr]
    assert Queue("inbound", connection=redis_conn).job_ids == [f"inbound-batch-{ids[0]}"]

    real = jobs._process_inbound

    def database_hiccup(settings_: Settings, inbound_id: int) -> str:
        if inbound_id == ids[1]:
            raise RuntimeError("server closed the connection unexpectedly")
        return real(settings_, inbound_id)

    monkeypatch.setattr(jobs, "_process_inbound", database_hiccup)
    assert jobs.process_inbound_batch(ids) == {"ack": 1, "retrying": 1, "status": 1}
    with session_factory(settings.DATABASE_URL)() as s:
        failed = s.get(InboundMessage, ids[1])
        assert (failed.state, failed.error) == ("received", "RuntimeError: server closed the connection unexpectedly")
    assert f"inbound-{ids[1]}" in Queue("inbound", connection=redis_conn).job_ids

    monkeypatch.setattr(jobs, "_process_inbound", real)
    run_jobs(settings)  # the batch job again (idempotent), then the retry on its own
    with session_factory(settings.DATABASE_URL)() as s:
        assert [s.get(InboundMessage, i).state for i in ids] == ["processed"] * 3
    assert sorted(m.form["To"] for m in fake_twilio.messages) == ["+6281234567800", "+6281234567801",
                                                                  "+6281234567802"]
