"""The reporter answers a follow-up with BALAS, within the window and from their number; silence closes it."""

from __future__ import annotations

import itertools
from datetime import date

import time_machine
from sqlalchemy import select

from sms_gateway import jobs, tracking
from sms_gateway.agencies.citizen import close_unanswered
from sms_gateway.db import session_factory
from sms_gateway.models import CitizenResponse, InboundMessage, Report
from sms_gateway.parsing import parse
from sms_gateway.registry import parse_registry
from tests.channels.test_twilio import post_signed, sms_params

REPORTER = "+6281234567890"
_sids = itertools.count(1)

# Follow-up on Tuesday 1 June 2021 (10:00 WIB): 10 working days end on Tuesday 15 June.
FOLLOWUP = "2021-06-01T03:00:00Z"
LAST_DAY = "2021-06-15T10:00:00Z"  # 17:00 WIB on the last day
DAY_AFTER = "2021-06-16T01:00:00Z"


def sms(client, work, body: str, sender: str = "081234567890") -> str:
    """Send an SMS through the Twilio webhook and the worker; the reply the sender got."""
    sid = f"SMbalas{next(_sids):025d}"
    assert post_signed(client, sms_params(body=body, sid=sid, sender=sender)).status_code == 200
    work()
    settings = client.application.config["SETTINGS"]
    with session_factory(settings.DATABASE_URL)() as s:
        msg = s.scalar(select(InboundMessage).where(InboundMessage.external_id == sid))
        return msg.replies[-1].text


def followed_up(seed, api_as, **flags) -> str:
    number = seed("KEMENHUB", reporter=REPORTER, status="diverifikasi", **flags)
    with time_machine.travel(FOLLOWUP, tick=False):
        r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status",
                                    {"status": "ditindaklanjuti", "note": "armada ditertibkan"})
    assert r.status_code == 200
    assert seed.report(number).response_due == date(2021, 6, 15)
    return number


def test_the_parser_reads_balas_number_and_text(settings) -> None:
    registry = parse_registry(settings.PREFIXES_FILE)
    p = parse("balas #12345678: masih ada bus ngetem", registry)
    assert (p.command, p.tracking, p.body) == ("reply", "12345678", "masih ada bus ngetem")
    assert parse("BALAS", registry).command == "reply"
    # an ordinary word when a longer text follows without a number
    assert parse("balas dendam preman pasar ke pedagang kecil tiap malam", registry).command is None


def test_a_response_within_the_window_reaches_the_report(client, settings, work, seed, api_as) -> None:
    number = followed_up(seed, api_as)
    with time_machine.travel(LAST_DAY, tick=False):
        reply = sms(client, work, f"BALAS {number} masih ada bus yang angkut pemudik di terminal")
    assert reply == (f"Tanggapan Anda atas laporan {number} telah diteruskan ke KEMENHUB. Tanggapan lain dapat "
                     f"dikirim s.d. 15-06-2021: BALAS {number} <tanggapan> ke 1708.")
    report = seed.report(number)
    assert report.events[-1].action == "citizen_response" and report.events[-1].actor == "reporter"
    assert report.status == "ditindaklanjuti"
    detail = api_as("KEMENHUB").get(f"/api/v1/reports/{number}").json
    assert [r["text"] for r in detail["responses"]] == ["masih ada bus yang angkut pemudik di terminal"]


def test_a_response_after_the_window_is_refused_with_the_date(client, work, seed, api_as) -> None:
    number = followed_up(seed, api_as)
    with time_machine.travel(DAY_AFTER, tick=False):
        reply = sms(client, work, f"BALAS {number} bus masih ngetem")
    assert reply == (f"Batas tanggapan laporan {number} sudah lewat (15-06-2021, 10 hari kerja setelah tindak "
                     "lanjut). Bila masalah belum selesai, kirim laporan baru ke 1708.")
    assert seed.report(number).events[-1].action == "status"


def test_only_the_reporters_number_may_answer(client, settings, work, seed, api_as) -> None:
    number = followed_up(seed, api_as)
    with time_machine.travel(LAST_DAY, tick=False):
        reply = sms(client, work, f"BALAS {number} saya saksi, bus masih ada", sender="081111222333")
    assert reply.startswith(f"Tanggapan atas laporan {number} hanya dapat dikirim dari nomor HP pelapor.")
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.scalars(select(CitizenResponse)).all() == []


def test_a_confidential_report_does_not_exist_for_another_number(client, work, seed, api_as) -> None:
    number = followed_up(seed, api_as, confidential=True)
    with time_machine.travel(LAST_DAY, tick=False):
        assert "tidak ditemukan" in sms(client, work, f"BALAS {number} halo", sender="081111222333")
        assert "telah diteruskan" in sms(client, work, f"BALAS {number} masih terjadi")


def test_before_any_follow_up_there_is_nothing_to_answer(client, work, seed) -> None:
    number = seed("KEMENHUB", reporter=REPORTER, status="didisposisikan")
    reply = sms(client, work, f"BALAS {number} kapan ditindak?")
    assert reply.startswith(f"Laporan {number} berstatus didisposisikan. Tanggapan (BALAS) dapat dikirim dlm 10 "
                            "hari kerja setelah laporan ditindaklanjuti.")


def test_usage_and_bad_numbers_get_a_helpful_answer(client, work) -> None:
    assert sms(client, work, "BALAS").startswith("Untuk menanggapi tindak lanjut laporan kirim BALAS <nomor")
    good = tracking.generate()
    assert sms(client, work, f"BALAS {good}").startswith("Untuk menanggapi")  # no text
    typo = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert "tidak valid" in sms(client, work, f"BALAS {typo} terima kasih")
    assert "tidak ditemukan" in sms(client, work, f"BALAS {good} terima kasih")


def test_processing_the_same_sms_twice_records_one_response(client, settings, work, seed, api_as) -> None:
    number = followed_up(seed, api_as)
    with time_machine.travel(LAST_DAY, tick=False):
        sms(client, work, f"BALAS {number} sudah aman, terima kasih")
        with session_factory(settings.DATABASE_URL)() as s:
            inbound_id = s.scalars(select(InboundMessage.id).order_by(InboundMessage.id.desc())).first()
            s.get(InboundMessage, inbound_id).state = "received"  # as if the job had died before its commit
            s.commit()
        jobs.process_inbound(inbound_id)
    with session_factory(settings.DATABASE_URL)() as s:
        assert len(s.scalars(select(CitizenResponse)).all()) == 1


class TestAutoClose:
    def test_an_unanswered_follow_up_closes_after_the_window(self, seed, api_as, work, fake_twilio) -> None:
        number = followed_up(seed, api_as)
        work()  # the follow-up SMS
        with time_machine.travel(LAST_DAY, tick=False):
            assert close_unanswered() == {"closed": 0}
        with time_machine.travel(DAY_AFTER, tick=False):
            assert close_unanswered() == {"closed": 1}
            assert close_unanswered() == {"closed": 0}  # idempotent
            work()
        report = seed.report(number)
        assert report.status == "selesai" and report.closed_at is not None
        assert [e.action for e in report.events].count("auto_close") == 1
        assert report.events[-1].actor == "system"
        bodies = [m.form["Body"] for m in fake_twilio.messages]
        assert bodies[-1] == (f"Laporan {number} ditutup karena tidak ada tanggapan 10 hari kerja setelah tindak "
                              "lanjut. Terima kasih telah menggunakan LAPOR! 1708.")
        assert len(bodies) == 2

    def test_an_answered_follow_up_stays_open_for_the_agency(self, client, seed, api_as, work) -> None:
        number = followed_up(seed, api_as)
        with time_machine.travel("2021-06-03T03:00:00Z", tick=False):
            sms(client, work, f"BALAS {number} belum ada perubahan")
        with time_machine.travel("2021-07-01T03:00:00Z", tick=False):
            assert close_unanswered() == {"closed": 0}
        assert seed.report(number).status == "ditindaklanjuti"

    def test_a_further_follow_up_starts_a_new_window(self, client, settings, seed, api_as, work) -> None:
        number = followed_up(seed, api_as)
        with time_machine.travel("2021-06-03T03:00:00Z", tick=False):
            sms(client, work, f"BALAS {number} belum ada perubahan")
        with time_machine.travel("2021-06-10T03:00:00Z", tick=False):
            api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status",
                                    {"status": "ditindaklanjuti", "note": "patroli tambahan"})
        assert seed.report(number).response_due == date(2021, 6, 24)
        with time_machine.travel("2021-06-28T03:00:00Z", tick=False):
            assert close_unanswered() == {"closed": 1}
        with session_factory(settings.DATABASE_URL)() as s:
            assert s.scalar(select(Report.status)) == "selesai"

    def test_the_scheduler_runs_it(self, settings) -> None:
        names = {func.__name__ for func, _interval in jobs.periodic_jobs(settings)}
        assert {"close_unanswered", "run_escalations", "sweep_deliveries", "sweep"} <= names
