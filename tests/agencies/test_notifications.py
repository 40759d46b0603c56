"""The reporter hears about what agencies do: status SMS and answers, through the Twilio API (a local fake)."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from sms_gateway import gsm
from sms_gateway.db import session_factory
from sms_gateway.models import OptOut, Report
from tests.channels.test_twilio import post_signed, sms_params

_sids = itertools.count(1)


def text_in(client, work, body: str, sender: str = "081234567890") -> None:
    """An SMS arriving through the Twilio webhook, processed by the worker."""
    assert post_signed(client, sms_params(body=body, sid=f"SMagency{next(_sids):024d}", sender=sender)).status_code \
        == 200
    work()


def sent_to(fake_twilio, number: str = "+6281234567890") -> list[str]:
    return [m.form["Body"] for m in fake_twilio.messages if m.form["To"] == number]


def test_sms_report_disposed_followed_up_and_done_keeps_the_reporter_informed(
        client, settings, work, fake_twilio, api_as) -> None:
    text_in(client, work, "KEMENHUB ADUAN jalan berlubang di depan terminal bekasi")
    with session_factory(settings.DATABASE_URL)() as s:
        number = s.scalars(select(Report.tracking_number)).one()
    assert len(sent_to(fake_twilio)) == 1  # the acknowledgement

    admin = api_as(admin=True)
    r = admin.post(f"/api/v1/reports/{number}/disposition", {"to": "PEMKOTBEKASI"})
    assert r.json["sms"]["state"] == "queued" and r.json["sms"]["channel"] == "twilio"
    work()
    assert sent_to(fake_twilio)[-1] == (f"Laporan {number} telah diteruskan ke PEMKOTBEKASI utk ditindaklanjuti. "
                                        f"Cek status: kirim CEK {number} ke 1708.")
    bekasi = api_as("PEMKOTBEKASI")
    bekasi.post(f"/api/v1/reports/{number}/disposition", {"to": "DBMSDABEKASI"})
    work()
    assert "diteruskan ke DBMSDABEKASI" in sent_to(fake_twilio)[-1]

    dinas = api_as("DBMSDABEKASI")
    r = dinas.post(f"/api/v1/reports/{number}/status", {"status": "ditindaklanjuti", "note": "ditambal 12/5"})
    due = r.json["report"]["deadlines"]["response_due"]
    work()
    day = f"{due[8:10]}-{due[5:7]}-{due[:4]}"
    assert sent_to(fake_twilio)[-1] == (f"Laporan {number} telah ditindaklanjuti DBMSDABEKASI. Tanggapi s.d. {day} "
                                        f"(10 hari kerja): kirim BALAS {number} <tanggapan Anda> ke 1708.")
    dinas.post(f"/api/v1/reports/{number}/status", {"status": "selesai"})
    work()
    assert sent_to(fake_twilio)[-1].startswith(f"Laporan {number} telah selesai ditangani DBMSDABEKASI.")
    assert len(sent_to(fake_twilio)) == 5
    assert all(gsm.measure(body).segments == 1 for body in sent_to(fake_twilio))


@pytest.mark.parametrize(("start", "status", "expected"), [
    ("diterima", "diverifikasi", None),
    ("diterima", "didisposisikan", "telah diteruskan ke KEMENHUB"),
    ("diverifikasi", "ditindaklanjuti", "telah ditindaklanjuti KEMENHUB"),
    ("ditindaklanjuti", "selesai", "telah selesai ditangani KEMENHUB"),
    ("selesai", "diarsipkan", "diarsipkan oleh KEMENHUB"),
])
def test_which_status_changes_send_an_sms(api_as, seed, work, fake_twilio, start, status, expected) -> None:
    number = seed("KEMENHUB", status=start)
    r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status", {"status": status})
    work()
    if expected is None:
        assert r.json["sms"] is None and fake_twilio.messages == []
    else:
        [body] = sent_to(fake_twilio)
        assert expected in body and number in body
        assert seed.outbound(purpose="notify")[0].state == "sent"


def test_a_reporter_who_sent_berhenti_gets_no_notification(client, settings, work, fake_twilio, api_as, seed) -> None:
    number = seed("KEMENHUB", reporter="+6281234567890")
    text_in(client, work, "BERHENTI")
    assert "tidak akan menerima SMS pemberitahuan" in sent_to(fake_twilio)[-1]
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.get(OptOut, "+6281234567890") is not None
    api = api_as("KEMENHUB")
    r = api.post(f"/api/v1/reports/{number}/status", {"status": "didisposisikan"})
    assert r.status_code == 200 and r.json["sms"] is None and r.json["sms_skipped"] == "opted_out"
    r = api.post(f"/api/v1/reports/{number}/reply", {"text": "sudah kami tangani"})
    assert r.json["sms_skipped"] == "opted_out"
    assert seed.report(number).events[-1].note == "sudah kami tangani"  # the answer is kept all the same
    work()
    assert len(sent_to(fake_twilio)) == 1  # only the answer to BERHENTI


def test_notifications_leave_on_the_channel_the_report_came_in_on(api_as, seed, work, fake_twilio, capsys) -> None:
    number = seed("KEMENHUB", channel="console")
    api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status", {"status": "didisposisikan"})
    work()
    assert fake_twilio.messages == []
    assert f"Laporan {number} telah diteruskan ke KEMENHUB" in capsys.readouterr().out
    assert seed.outbound()[0].channel == "console"


class TestAnswers:
    LONG = ("Terima kasih atas laporan Anda. Kami telah berkoordinasi dengan Dinas Perhubungan dan operator "
            "terminal. Bus yang mengangkut pemudik telah ditindak dan izin trayeknya dibekukan sementara. "
            "Petugas gabungan berjaga di terminal sampai akhir masa larangan mudik. Bila masih ada pelanggaran, "
            "silakan laporkan kembali dengan menyebut nomor polisi kendaraan.")

    def test_a_long_answer_is_sent_whole_as_one_concatenated_sms(self, api_as, seed, work, fake_twilio) -> None:
        number = seed("KEMENHUB")
        r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/reply", {"text": self.LONG})
        assert r.status_code == 200, r.json
        work()
        [body] = sent_to(fake_twilio)
        assert body == f"KEMENHUB (laporan {number}): {self.LONG}"
        assert r.json["sms"]["segments"] == gsm.measure(body).segments == 3
        assert seed.report(number).events[-1].action == "answer"
        assert seed.report(number).status == "diterima"

    def test_too_many_parts_is_refused_with_the_way_out(self, api_as, seed, fake_twilio) -> None:
        number = seed("KEMENHUB")
        r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/reply", {"text": self.LONG * 3})
        assert r.status_code == 422
        assert "more than 6" in r.json["error"] and "shorten" in r.json["error"]
        assert seed.outbound() == [] and len(seed.report(number).events) == 1

    def test_shortened_answer_is_one_sms_ending_with_the_pointer(self, api_as, seed, work, fake_twilio) -> None:
        number = seed("KEMENHUB")
        api = api_as("KEMENHUB")
        api.post(f"/api/v1/reports/{number}/reply", {"text": self.LONG, "mode": "shorten"})
        api.post(f"/api/v1/reports/{number}/reply",
                 {"text": self.LONG, "mode": "shorten", "pointer": "Lengkap: dephub.go.id/l/7Kq"})
        work()
        # Sent concurrently: they reach the provider in either order.
        custom, default = sorted(sent_to(fake_twilio), key=lambda body: "lapor.go.id" in body)
        for body in (default, custom):
            assert gsm.measure(body).segments == 1 and gsm.measure(body).encoding == "gsm7"
            assert body.startswith(f"KEMENHUB (laporan {number}): Terima kasih atas laporan Anda.")
            assert "... " in body
        assert default.endswith(f"Jawaban lengkap: lapor.go.id, nomor {number}.")
        assert custom.endswith("Lengkap: dephub.go.id/l/7Kq")
        assert seed.report(number).events[-1].note == self.LONG  # the full answer stays in the history

    def test_a_shortened_answer_with_non_gsm_characters_stays_one_gsm_sms(self, api_as, seed, work,
                                                                         fake_twilio) -> None:
        number = seed("KEMENHUB")
        text = "“Bus sudah ditindak” – petugas berjaga 24 jam 🚌 " + self.LONG
        api_as("KEMENHUB").post(f"/api/v1/reports/{number}/reply", {"text": text, "mode": "shorten"})
        work()
        [body] = sent_to(fake_twilio)
        assert gsm.measure(body).encoding == "gsm7" and gsm.measure(body).segments == 1
        assert '"Bus sudah ditindak" - petugas berjaga 24 jam' in body

    @pytest.mark.parametrize(("body", "status", "reason"), [
        ({}, 400, "text is required"),
        ({"text": "   "}, 400, "text is required"),
        ({"text": "ok", "mode": "sms"}, 400, "mode must be one of split, shorten"),
        ({"text": "ok", "mode": "shorten", "pointer": "Lihat → https://contoh.go.id"}, 422, "GSM-7"),
        ({"text": "ok", "mode": "shorten", "pointer": "x" * 61}, 422, "at most 60"),
    ])
    def test_bad_answers_say_why(self, api_as, seed, body, status, reason) -> None:
        number = seed("KEMENHUB")
        r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/reply", body)
        assert r.status_code == status and reason in r.json["error"]
        assert seed.outbound() == []

    def test_a_retried_request_with_the_same_idempotency_key_sends_once(self, api_as, seed, work,
                                                                         fake_twilio) -> None:
        number = seed("KEMENHUB")
        api = api_as("KEMENHUB")
        first = api.post(f"/api/v1/reports/{number}/reply", {"text": "sedang diproses"},
                         headers={"Idempotency-Key": "req-42"})
        again = api.post(f"/api/v1/reports/{number}/reply", {"text": "sedang diproses"},
                         headers={"Idempotency-Key": "req-42"})
        assert (first.json["duplicate"], again.json["duplicate"]) == (False, True)
        assert again.json["sms"]["id"] == first.json["sms"]["id"]
        work()
        assert len(sent_to(fake_twilio)) == 1
        assert [e.action for e in seed.report(number).events] == [None, "answer"]

    def test_an_answer_while_followed_up_restarts_the_reporters_window(self, api_as, seed) -> None:
        import time_machine

        number = seed("KEMENHUB", status="diverifikasi")
        api = api_as("KEMENHUB")
        with time_machine.travel("2021-06-01T03:00:00Z", tick=False):
            api.post(f"/api/v1/reports/{number}/status", {"status": "ditindaklanjuti"})
        first_due = seed.report(number).response_due
        with time_machine.travel("2021-06-08T03:00:00Z", tick=False):
            api.post(f"/api/v1/reports/{number}/reply", {"text": "jadwal perbaikan: pekan depan"})
        assert seed.report(number).response_due > first_due
