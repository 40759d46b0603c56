"""The disposition desk: who sees it, what it explains, one-key disposition and its undo window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from sms_gateway import outbox, queue
from sms_gateway.agencies import push
from sms_gateway.db import session_factory
from sms_gateway.models import LabelledExample, OutboundMessage, WebhookDelivery, utcnow
from sms_gateway.workspace import desk
from tests.agencies.conftest import add_to_agency

TIE = {"decided_by": "central", "unknown_code": None, "rules": {
    "agency": None, "unit": None, "score": 0, "reason": "tie at score 2 between KEMENHUB, PEMKOTBEKASI",
    "scores": {"KEMENHUB": 2, "PEMKOTBEKASI": 2},
    "matched": [{"keyword": "terminal", "for": "KEMENHUB", "rule": "terminal", "weight": 2, "line": 10},
                {"keyword": "angkot", "for": "DISHUBBEKASI", "rule": "angkot", "weight": 2, "line": 20}],
    "vetoed": [], "needs_context": [], "places": []}}


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    """The desk's clock, moved by the test: ``clock.at = …``."""
    class Clock:
        at = utcnow().replace(microsecond=0)
    monkeypatch.setattr(desk, "now", lambda: Clock.at)
    return Clock


@pytest.fixture
def hooked(prefixes_file, receiver):  # type: ignore[no-untyped-def]
    """KEMENHUB pushes to the local receiver (written before the app reads prefixes.yaml)."""
    add_to_agency(prefixes_file, "KEMENHUB", webhook_url=receiver.url + "/lapor")
    return receiver


def test_only_central_and_city_disposition_admins_have_a_desk_and_each_sees_its_own(seed, people, workspace,
                                                                                      central) -> None:
    in_central = seed(None, text="angkot ngetem di terminal")
    at_city = seed("PEMKOTBEKASI", text="angkot ngetem sembarangan di Bekasi")
    at_unit = seed("DISHUBBEKASI", text="lampu lalu lintas mati")
    at_kemenhub = seed("KEMENHUB")
    html = central.get("/desk").get_data(as_text=True)
    assert in_central in html and at_city not in html and at_kemenhub not in html
    assert "Meja disposisi" in central.get("/").get_data(as_text=True)  # in the menu

    people("kota@bekasikota.go.id", agency="PEMKOTBEKASI", role="admin")
    city = workspace()
    city.login("kota@bekasikota.go.id")
    html = city.get("/desk").get_data(as_text=True)
    assert at_city in html and at_unit not in html and in_central not in html
    assert 'value="DISHUBBEKASI"' in html and 'value="KEMENHUB"' not in html  # its units only

    for email, agency, role in (("staf@bekasikota.go.id", "PEMKOTBEKASI", "staff"),
                                ("kepala@dephub.go.id", "KEMENHUB", "admin"),
                                ("staf@dephub.go.id", "KEMENHUB", "staff")):
        people(email, agency=agency, role=role)
        other = workspace()
        other.login(email)
        assert other.get("/desk").status_code == 404
        assert other.post("/desk/dispose", {"n": in_central, "to": "KEMENHUB"}).status_code == 404
        assert "Meja disposisi" not in other.get("/").get_data(as_text=True)
    # A city admin cannot dispose a central report by guessing its number: it is not in its scope.
    assert city.post("/desk/dispose", {"n": in_central, "to": "DISHUBBEKASI"}).status_code == 404


def test_the_oldest_deadline_comes_first_and_a_long_desk_says_what_it_leaves_out(seed, central,
                                                                                  monkeypatch) -> None:
    now = utcnow()
    newest = seed(None, received=now)
    oldest = seed(None, received=now - timedelta(days=10))
    middle = seed(None, received=now - timedelta(days=4))
    html = central.get("/desk").get_data(as_text=True)
    assert html.index(f'id="t-{oldest}"') < html.index(f'id="t-{middle}"') < html.index(f'id="t-{newest}"')
    monkeypatch.setattr(desk, "PAGE_SIZE", 2)
    html = central.get("/desk").get_data(as_text=True)
    assert newest not in html and "Menampilkan 2 laporan dengan batas waktu terlama dari 3" in html


def test_each_row_explains_the_rules_and_offers_their_guesses_as_keys(seed, central) -> None:
    tied = seed(None, text="angkot ngetem di terminal")
    seed.update(tied, evidence=TIE)
    unexplained = seed(None, text="tolong dibantu pak")
    low = seed(None, text="lampu jalan mati")
    seed.update(low, evidence={"decided_by": "central", "rules": {
        **TIE["rules"], "reason": "best score 1 (PEMKOTBEKASI) is below min_score 2", "scores": {"PEMKOTBEKASI": 1}}})
    html = central.get("/desk").get_data(as_text=True)
    assert "Skor tertinggi 1 (PEMKOTBEKASI) di bawah ambang 2." in html
    assert "tie at score 2 between KEMENHUB, PEMKOTBEKASI" in html  # the engine's words, and in the page's
    assert "Seri: KEMENHUB, PEMKOTBEKASI sama-sama mendapat skor 2." in html
    assert "“terminal” → KEMENHUB +2" in html and "“angkot” → DISHUBBEKASI +2" in html
    first, second = html.index(f'id="t-{tied}"'), html.index(f'id="t-{unexplained}"')
    assert first < html.index(f'id="t-{low}"')  # same deadline: the older report first
    row = html[first:second]
    assert 'data-key="1"' in row and 'value="KEMENHUB"' in row and 'value="PEMKOTBEKASI"' in row
    assert row.index('value="KEMENHUB"') < row.index('value="PEMKOTBEKASI"')
    assert "dihitung ulang dengan aturan saat ini" in html[second:]  # no stored evidence: recomputed, and said


def test_a_returned_report_says_who_returned_it_and_is_not_offered_back_to_it(settings, seed, people,
                                                                               workspace, central) -> None:
    number = seed("KEMENHUB", text="angkot ngetem di terminal")
    seed.update(number, evidence={**TIE, "decided_by": "rules"})
    people("staf@dephub.go.id", agency="KEMENHUB")
    agency = workspace()
    agency.login("staf@dephub.go.id")
    agency.get(f"/reports/{number}")
    assert agency.post(f"/reports/{number}/return", {"reason": "urusan pemkot"}).status_code == 302
    html = central.get("/desk").get_data(as_text=True)
    row = html[html.index(f'id="t-{number}"'):]
    assert "Dikembalikan oleh KEMENHUB (bukan wewenang): urusan pemkot" in html
    assert 'data-key="1"' in row and 'name="to" value="PEMKOTBEKASI"' in row
    assert 'name="to" value="KEMENHUB"' not in html  # the guess, not the picker's option


def test_dispose_holds_the_notifications_and_undo_withdraws_them(hooked, settings, seed, central, clock) -> None:
    recorder = hooked
    number = seed(None, text="bus masih angkut pemudik di terminal")
    central.get("/desk")
    t0 = clock.at
    response = central.post("/desk/dispose", {"n": number, "to": "KEMENHUB"})
    assert response.status_code == 302
    assert seed.report(number).agency == "KEMENHUB"
    with session_factory(settings.DATABASE_URL)() as session:
        sms = session.scalar(select(OutboundMessage).where(OutboundMessage.purpose == "notify"))
        delivery = session.scalar(select(WebhookDelivery))
        example = session.scalar(select(LabelledExample))
        assert sms is not None and sms.next_attempt_at == t0 + timedelta(seconds=desk.UNDO_SECONDS)
        assert delivery is not None and delivery.state == push.PENDING
        assert example is not None and (example.agency, example.actor) == ("KEMENHUB", "pusat@lapor.go.id")
        assert outbox.claim(session, sms.channel, 10, now=t0 + timedelta(seconds=9)) == []  # held
    # The webhook is scheduled for the end of the window, not queued now.
    scheduled = ScheduledJobRegistry(queue.DEFAULT, connection=queue.get_redis(settings))
    assert queue.get_queue(settings, queue.DEFAULT).count == 0 and len(scheduled) == 1
    page = central.get("/desk").get_data(as_text=True)
    assert 'id="undo-form"' in page and number in page

    clock.at = t0 + timedelta(seconds=6)
    assert central.post("/desk/undo", {"n": number, "event": _event_id(page)}).status_code == 302
    assert "tidak ada pemberitahuan yang terkirim" in central.get("/desk").get_data(as_text=True)
    report = seed.report(number)
    assert (report.agency, report.status, report.disposed_at) == (None, "diterima", None)
    assert [(e.action, e.actor) for e in report.events][-2:] == [("disposition", "pusat@lapor.go.id"),
                                                                  ("undo", "pusat@lapor.go.id")]
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.scalar(select(LabelledExample)) is None
        row = session.get(OutboundMessage, sms.id)
        assert row is not None and row.state == "cancelled"
        assert outbox.claim(session, sms.channel, 10, now=t0 + timedelta(minutes=5)) == []  # never sent
        assert outbox.retry(settings, sms.id) is False  # and not retryable either
    # The scheduled webhook job finds its delivery withdrawn: nothing is POSTed.
    assert push.deliver_webhook(delivery.id) == "not pending"
    assert recorder.requests == []
    assert number in central.get("/desk").get_data(as_text=True)  # back on the desk


def test_after_the_window_the_notifications_leave_and_undo_is_refused(hooked, settings, seed, central,
                                                                      clock) -> None:
    recorder = hooked
    number = seed(None)
    central.get("/desk")
    t0 = clock.at
    assert central.post("/desk/dispose", {"n": number, "to": "KEMENHUB"}).status_code == 302
    page = central.get("/desk").get_data(as_text=True)
    with session_factory(settings.DATABASE_URL)() as session:
        channel = session.scalar(select(OutboundMessage.channel))
        claimed = outbox.claim(session, str(channel), 10, now=t0 + timedelta(seconds=desk.UNDO_SECONDS))
        assert len(claimed) == 1 and claimed[0].text
        delivery_id = session.scalar(select(WebhookDelivery.id))
    assert push.deliver_webhook(int(delivery_id)) == push.DELIVERED  # what RQ's scheduler runs at t0 + 10 s
    assert len(recorder.requests) == 1

    clock.at = t0 + timedelta(seconds=desk.UNDO_SECONDS)
    central.post("/desk/undo", {"n": number, "event": _event_id(page)})
    html = central.get("/desk").get_data(as_text=True)
    assert "Batas 10 detik untuk membatalkan sudah lewat" in html
    assert seed.report(number).agency == "KEMENHUB"
    assert seed.report(number).events[-1].action == "disposition"


def test_undo_is_refused_once_the_sender_has_the_sms(settings, seed, central, clock) -> None:
    number = seed(None)
    central.get("/desk")
    central.post("/desk/dispose", {"n": number, "to": "KEMENHUB"})
    page = central.get("/desk").get_data(as_text=True)
    with session_factory(settings.DATABASE_URL)() as session:
        sms = session.scalar(select(OutboundMessage))
        assert sms is not None
        sms.next_attempt_at = None  # a sender got there first (a race at the window's edge)
        session.commit()
        assert len(outbox.claim(session, sms.channel, 10)) == 1
    clock.at = clock.at + timedelta(seconds=3)
    central.post("/desk/undo", {"n": number, "event": _event_id(page)})
    assert "sudah dikirim" in central.get("/desk").get_data(as_text=True)
    assert seed.report(number).agency == "KEMENHUB"


def test_a_city_admin_disposes_to_a_unit_and_undoes_it(settings, seed, people, workspace, clock) -> None:
    number = seed("PEMKOTBEKASI", text="angkot ngetem sembarangan")
    seed.update(number, evidence=TIE)
    people("kota@bekasikota.go.id", agency="PEMKOTBEKASI", role="admin")
    city = workspace()
    city.login("kota@bekasikota.go.id")
    html = city.get("/desk").get_data(as_text=True)
    assert 'data-key="1"' in html and 'name="to" value="DISHUBBEKASI"' in html  # the unit whose word matched
    assert city.post("/desk/dispose", {"n": number, "to": "KEMENHUB"}).status_code == 302  # not its unit
    assert "bukan unit Anda" in city.get("/desk").get_data(as_text=True)
    assert city.post("/desk/dispose", {"n": number, "to": "DISHUBBEKASI"}).status_code == 302
    assert seed.report(number).agency == "DISHUBBEKASI"
    page = city.get("/desk").get_data(as_text=True)
    clock.at = clock.at + timedelta(seconds=2)
    city.post("/desk/undo", {"n": number, "event": _event_id(page)})
    report = seed.report(number)
    assert (report.agency, report.status, report.disposed_at) == ("PEMKOTBEKASI", "diterima", None)


def _event_id(page: str) -> str:
    marker = 'name="event" value="'
    start = page.index(marker) + len(marker)
    return page[start:page.index('"', start)]


def test_only_the_person_who_disposed_can_undo(seed, people, workspace, central, clock) -> None:
    number = seed(None)
    central.get("/desk")
    central.post("/desk/dispose", {"n": number, "to": "KEMENHUB"})
    event = _event_id(central.get("/desk").get_data(as_text=True))
    people("pusat2@lapor.go.id", name="Admin Pusat Dua")
    other = workspace()
    other.login("pusat2@lapor.go.id")
    assert "undo-form" not in other.get("/desk").get_data(as_text=True)  # the bar is its owner's
    other.post("/desk/undo", {"n": number, "event": event})
    assert "Tidak ada disposisi Anda yang bisa dibatalkan" in other.get("/desk").get_data(as_text=True)
    assert seed.report(number).agency == "KEMENHUB"
    assert other.post("/desk/undo", {"n": number, "event": "x"}).status_code == 400
