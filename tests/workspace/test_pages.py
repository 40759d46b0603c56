"""The inbox, the report page, the export and the admin pages through the Flask test client."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from sms_gateway.db import session_factory
from sms_gateway.models import CannedAnswer, OutboundMessage, Report, ReportNote, User
from sms_gateway.workspace import inbox
from tests.workspace.conftest import Workspace

WIB_9AM = timedelta(hours=2)  # 09:00 in Jakarta is 02:00 UTC


@pytest.fixture
def kemenhub(people, workspace) -> Workspace:
    people("ani@kemenhub.go.id", agency="KEMENHUB", role="admin", name="Ani Kemenhub")
    ws = workspace()
    ws.login("ani@kemenhub.go.id")
    return ws


def _numbers(html: str) -> list[str]:
    return re.findall(r'name="n" value="(\d+)"', html)


def test_the_inbox_counts_its_queues_and_puts_the_nearest_deadline_first(seed, people, workspace) -> None:
    with time_machine.travel(datetime(2026, 11, 2, 2, tzinfo=UTC), tick=False):  # Monday 09:00 WIB
        people("ani@kemenhub.go.id", agency="KEMENHUB")
        kemenhub = workspace()
        kemenhub.login("ani@kemenhub.go.id")
        late = seed("KEMENHUB", received=datetime(2026, 10, 26, 2, tzinfo=UTC))  # due Thu 29 Oct
        soon = seed("KEMENHUB", special=True, received=datetime(2026, 11, 2, 1, tzinfo=UTC))  # due Tue
        later = seed("KEMENHUB", received=datetime(2026, 11, 2, 1, tzinfo=UTC))  # due Thu
        followed = seed("KEMENHUB", status="selesai")
        html = kemenhub.get("/").get_data(as_text=True)
        assert _numbers(html) == [late, soon, later]
        assert "terlambat 2 hari kerja" in html and "1 hari kerja lagi" in html and "3 hari kerja lagi" in html
        counts = dict(re.findall(r'class="queue q-(\w+)"[^>]*>[^<]*<span class="count">(\d+)', html))
        assert counts == {"open": "3", "needs_disposition": "3", "new": "3", "due_today": "0", "overdue": "1",
                          "waiting_citizen": "0", "done": "1", "all": "4"}
        assert _numbers(kemenhub.get("/?queue=overdue").get_data(as_text=True)) == [late]
        assert _numbers(kemenhub.get("/?queue=done").get_data(as_text=True)) == [followed]


def test_working_day_clocks_skip_weekends_and_holidays(seed, settings) -> None:
    # Idul Fitri 2021: received Tue 11 May, special, due Mon 17 May (12 May leave, 13-14 holidays).
    number = seed("KEMENHUB", special=True, received=datetime(2021, 5, 11, 2, tzinfo=UTC))
    with session_factory(settings.DATABASE_URL)() as session:
        report = session.scalar(select(Report).where(Report.tracking_number == number))
        due = date(2021, 5, 17)  # the generated column follows the disposition deadline
        assert report.next_due == due
        assert inbox.clock(report, date(2021, 5, 11)) == inbox.Clock("ok", 1, due)
        assert inbox.clock(report, date(2021, 5, 15)) == inbox.Clock("ok", 1, due)
        assert inbox.clock(report, due).state == "today"
        assert inbox.clock(report, date(2021, 5, 19)) == inbox.Clock("late", 2, due)
        report.disposed_at = datetime(2021, 5, 12, tzinfo=UTC)
        session.commit()
        session.refresh(report)
        assert report.next_due == date(2021, 5, 18)  # now the follow-up deadline


def test_filters_and_search_live_in_the_url_and_pages_are_keyset(seed, kemenhub) -> None:
    numbers = [seed("KEMENHUB", text=f"keluhan nomor {i}", kind="aspirasi" if i % 2 else "aduan",
                    channel="kannel" if i % 3 == 0 else "twilio") for i in range(120)]
    seed("KEMENHUB", text="terminal Pulogebang kotor sekali", kind="info")
    seen: list[str] = []
    path = "/?kind=aduan"
    while path:
        html = kemenhub.get(path).get_data(as_text=True)
        seen += _numbers(html)
        more = re.search(r'href="(/\?[^"]*after=[^"]+)"', html)
        path = more.group(1).replace("&amp;", "&") if more else ""
    expected = {n for i, n in enumerate(numbers) if i % 2 == 0}
    assert len(seen) == len(set(seen)) == 60 and set(seen) == expected
    # htmx asks only for the next rows.
    fragment = kemenhub.get("/?kind=aduan&after=" + re.search(r"after=([\w-]+)", kemenhub.get("/?kind=aduan")
                                                              .get_data(as_text=True)).group(1),
                            headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True) and "report-row" in fragment.get_data(as_text=True)
    assert "HX-Request" in fragment.headers["Vary"]
    assert _numbers(kemenhub.get("/?q=pulogebang").get_data(as_text=True)) != []
    assert _numbers(kemenhub.get(f"/?q={numbers[7]}").get_data(as_text=True)) == [numbers[7]]
    seed("KEMENHUB", text="terminal Pulogebang sudah bersih", status="selesai")
    assert len(_numbers(kemenhub.get("/?q=pulogebang").get_data(as_text=True))) == 2  # a search looks everywhere
    assert len(_numbers(kemenhub.get("/?q=pulogebang&queue=open").get_data(as_text=True))) == 1
    assert len(_numbers(kemenhub.get("/?channel=kannel&kind=aspirasi").get_data(as_text=True))) == 20
    bad = kemenhub.get("/?status=rusak&kind=aduan").get_data(as_text=True)
    assert "tidak dikenal dan diabaikan" in bad and len(_numbers(bad)) == 50


def test_search_by_reporter_number_is_for_central_admins_only(seed, people, workspace) -> None:
    number = seed("KEMENHUB", reporter="+6281299990000")
    people("boss@lapor.go.id")
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    central, agency = workspace(), workspace()
    central.login("boss@lapor.go.id")
    agency.login("ani@kemenhub.go.id")
    assert _numbers(central.get("/?q=081299990000").get_data(as_text=True)) == [number]
    assert _numbers(agency.get("/?q=081299990000").get_data(as_text=True)) == []


def test_the_report_page_hides_a_confidential_number_exactly_as_the_api_does(seed, people, workspace,
                                                                               api_as) -> None:
    open_report = seed("KEMENHUB", reporter="+6281200000001")
    secret = seed("KEMENHUB", reporter="+6281200000002", confidential=True)
    people("ani@kemenhub.go.id", agency="KEMENHUB")
    people("boss@lapor.go.id")
    ws, central = workspace(), workspace()
    ws.login("ani@kemenhub.go.id")
    central.login("boss@lapor.go.id")
    api = api_as("KEMENHUB")
    for number, number_shown in ((open_report, "+6281200000001"), (secret, None)):
        assert api.get(f"/api/v1/reports/{number}").get_json()["reporter"] == number_shown
        html = ws.get(f"/reports/{number}").get_data(as_text=True)
        assert (number_shown in html) if number_shown else ("+6281200000002" not in html and "rahasia" in html)
        csv_text = ws.get("/export.csv").get_data(as_text=True)
        assert "+6281200000002" not in csv_text and "+6281200000001" in csv_text
    assert "+6281200000002" in central.get(f"/reports/{secret}").get_data(as_text=True)


def test_actions_name_the_person_and_bad_input_is_answered_in_indonesian(settings, seed, kemenhub,
                                                                          fake_twilio, work) -> None:
    number = seed("KEMENHUB")
    refused = kemenhub.post(f"/reports/{number}/answer", {"text": "   ", "mode": "split", "key": "k1"})
    assert refused.status_code == 422 and "Isian teks jawaban wajib diisi." in refused.get_data(as_text=True)
    long = "kata " * 400
    refused = kemenhub.post(f"/reports/{number}/answer", {"text": long, "mode": "split", "key": "k2"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Jawaban memerlukan" in html and "paling banyak 6" in html
    assert long.strip()[:50] in html  # the typed answer is still in the form, not lost
    wrong = kemenhub.post(f"/reports/{number}/status", {"status": "selesai"})
    assert wrong.status_code == 422 and "tidak bisa menjadi selesai" in wrong.get_data(as_text=True)
    assert kemenhub.post(f"/reports/{number}/verify").status_code == 302
    assert kemenhub.post(f"/reports/{number}/status", {"status": "ditindaklanjuti", "note": "tim ke lokasi"}
                         ).status_code == 302
    ok = kemenhub.post(f"/reports/{number}/answer", {"text": "Bus sudah ditertibkan.", "mode": "split", "key": "k3"})
    assert ok.status_code == 302
    again = kemenhub.post(f"/reports/{number}/answer", {"text": "Bus sudah ditertibkan.", "mode": "split",
                                                         "key": "k3"})  # a double click
    assert again.status_code == 302
    kemenhub.post(f"/reports/{number}/note", {"text": "cek ulang minggu depan"})
    work()
    bodies = [m.form["Body"] for m in fake_twilio.messages]
    assert len(bodies) == 2 and "Bus sudah ditertibkan." in bodies[1]  # follow-up notice, one answer
    html = kemenhub.get(f"/reports/{number}").get_data(as_text=True)
    assert html.count("oleh Ani Kemenhub (ani@kemenhub.go.id)") == 3
    assert "cek ulang minggu depan" in html
    with session_factory(settings.DATABASE_URL)() as session:
        note = session.scalar(select(ReportNote))
        assert note.author == "ani@kemenhub.go.id"
        assert all("cek ulang" not in (m.text or "") for m in session.scalars(select(OutboundMessage)))


def test_a_failed_answer_shows_its_reason_and_is_retried_from_the_page(settings, seed, kemenhub, fake_twilio,
                                                                        work) -> None:
    number = seed("KEMENHUB")
    fake_twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    kemenhub.post(f"/reports/{number}/answer", {"text": "Terima kasih, sedang kami tangani.", "mode": "split",
                                                "key": "a"})
    work()
    html = kemenhub.get(f"/reports/{number}").get_data(as_text=True)
    assert "gagal" in html and "unsubscribed recipient" in html and "Kirim ulang" in html
    with session_factory(settings.DATABASE_URL)() as session:
        sms = session.scalar(select(OutboundMessage).where(OutboundMessage.purpose == "answer"))
    assert kemenhub.post(f"/reports/{number}/sms/{sms.id}/retry").status_code == 302
    work()
    assert len(fake_twilio.messages) == 2
    assert "unsubscribed recipient" not in kemenhub.get(f"/reports/{number}").get_data(as_text=True)
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.get(OutboundMessage, sms.id).state == "sent"


def test_bulk_actions_check_each_report_and_say_what_changed(settings, seed, people, workspace) -> None:
    people("p@bekasi.go.id", agency="PEMKOTBEKASI", role="admin")
    ws = workspace()
    ws.login("p@bekasi.go.id")
    a, b = seed("PEMKOTBEKASI"), seed("PEMKOTBEKASI")
    done = seed("PEMKOTBEKASI", status="selesai")
    foreign = seed("KEMENHUB")
    response = ws.post("/bulk", {"n": [a, b, done, foreign], "action": "dispose", "to": "DISHUBBEKASI",
                                 "back": "queue=new"})
    assert response.status_code == 302 and response.location.endswith("/?queue=new")
    html = ws.get("/").get_data(as_text=True)
    assert "2 dari 4 laporan diubah." in html
    assert f"{done} tidak diubah: Laporan berstatus selesai tidak bisa didisposisikan lagi." in html
    assert f"{foreign} tidak diubah: tidak ditemukan di ruang kerja Anda" in html
    with session_factory(settings.DATABASE_URL)() as session:
        rows = {r.tracking_number: r for r in session.scalars(select(Report))}
    assert rows[a].agency == rows[b].agency == "DISHUBBEKASI" and rows[foreign].agency == "KEMENHUB"


def test_the_csv_export_streams_the_current_filter_with_the_same_scope(seed, kemenhub) -> None:
    seed("KEMENHUB", text="=HYPERLINK(\"http://x\")", kind="aduan")
    seed("KEMENHUB", text="jalan rusak, ", kind="aspirasi")
    seed("KEMENKES", text="bukan milik kemenhub", kind="aduan")
    response = kemenhub.get("/export.csv?kind=aduan", buffered=False)
    assert response.mimetype == "text/csv" and "Content-Length" not in response.headers  # streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 1
    assert rows[0]["text"] == "'=HYPERLINK(\"http://x\")"  # a formula stays text in a spreadsheet
    assert rows[0]["agency"] == "KEMENHUB" and rows[0]["reporter"] == "+6281234567890"
    assert len(list(csv.DictReader(io.StringIO(kemenhub.get("/export.csv").get_data(as_text=True))))) == 2


def test_agency_admin_pages(settings, seed, people, workspace, kemenhub) -> None:
    people("staf@kemenhub.go.id", agency="KEMENHUB")
    created = kemenhub.post("/admin/staff", {"email": "baru@kemenhub.go.id", "name": "Budi", "role": "staff",
                                             "agency": "KEMENHUB"})
    assert created.status_code == 201 and "/password/" in created.get_data(as_text=True)
    refused = kemenhub.post("/admin/staff", {"email": "x@kemenkes.go.id", "role": "staff", "agency": "KEMENKES"})
    assert refused.status_code == 422 and "hanya mengelola" in refused.get_data(as_text=True)
    central = kemenhub.post("/admin/staff", {"email": "x@lapor.go.id", "role": "central"})
    assert central.status_code == 422
    with session_factory(settings.DATABASE_URL)() as session:
        staff = session.scalar(select(User).where(User.email == "staf@kemenhub.go.id"))
    assert kemenhub.post(f"/admin/staff/{staff.id}/disable").status_code == 302
    assert workspace().login("staf@kemenhub.go.id").status_code == 401
    # Canned answers: offered on reports of that status, edited by the admin.
    kemenhub.post("/admin/answers", {"status": "diterima", "title": "Terima kasih",
                                     "text": "Laporan Anda kami terima."})
    number = seed("KEMENHUB")
    assert "Laporan Anda kami terima." in kemenhub.get(f"/reports/{number}").get_data(as_text=True)
    with session_factory(settings.DATABASE_URL)() as session:
        answer = session.scalar(select(CannedAnswer))
        assert answer.agency == "KEMENHUB" and answer.updated_by == "ani@kemenhub.go.id"
    bad = kemenhub.post(f"/admin/answers/{answer.id}", {"status": "diterima", "title": "", "text": "x"})
    assert bad.status_code == 422 and "wajib diisi" in bad.get_data(as_text=True)
    # Staff do not reach the admin pages at all.
    people("s2@kemenhub.go.id", agency="KEMENHUB")
    staff_ws = workspace()
    staff_ws.login("s2@kemenhub.go.id")
    for path in ("/admin/staff", "/admin/answers", "/admin/webhook"):
        assert staff_ws.get(path).status_code == 404
    webhook = kemenhub.get("/admin/webhook").get_data(as_text=True)
    assert "Log pengiriman" in webhook


def test_english_is_available(kemenhub) -> None:
    assert "Kotak masuk" in kemenhub.get("/").get_data(as_text=True)
    kemenhub.post("/language", {"lang": "en", "next": "/"})
    html = kemenhub.get("/").get_data(as_text=True)
    assert "Inbox" in html and 'lang="en"' in html and "Kotak masuk" not in html


def test_a_disposition_from_the_page_is_a_labelled_example_under_the_persons_name(settings, seed, people,
                                                                                    workspace) -> None:
    from sms_gateway.models import LabelledExample

    number = seed("PEMKOTBEKASI", text="lampu jalan mati di Harapan Indah")
    email = "kepala.bidang.lalu.lintas.dinas.perhubungan.kota.bekasi@bekasikota.go.id"  # over 64 characters
    people(email, agency="PEMKOTBEKASI", role="admin")
    ws = workspace()
    ws.login(email)
    assert ws.post(f"/reports/{number}/dispose", {"to": "DISHUBBEKASI"}).status_code == 302
    with session_factory(settings.DATABASE_URL)() as session:
        example = session.scalar(select(LabelledExample))
    assert (example.agency, example.previous_agency, example.actor) == ("DISHUBBEKASI", "PEMKOTBEKASI", email)
