"""The coordinators' board: who sees it, its figures on a known set, intervensi/teguran and their answers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select, true

from sms_gateway.agencies.statuses import OPEN
from sms_gateway.cli import main
from sms_gateway.db import session_factory
from sms_gateway.models import OPEN_STATUSES, CoordinationAction, Escalation, ReportEvent, User
from sms_gateway.registry import registry_for
from sms_gateway.workspace import accounts
from sms_gateway.workspace.access import scoped_sessions, set_scope
from sms_gateway.workspace.board import figures
from tests.agencies.conftest import add_to_agency, add_to_coordinator
from tests.workspace.conftest import PASSWORD, SUFFIX, Workspace

WIB = ZoneInfo("Asia/Jakarta")
ON_DUTY = "+6281311112222"
KEMENDAGRI_ADMIN = "+6281399990000"


def on(day: int, hour: int = 9) -> time_machine.travel:
    """The clock at ``hour`` WIB on ``day`` May 2021 (13-14 May Idul Fitri, 12 May collective leave)."""
    return time_machine.travel(datetime(2021, 5, day, hour, tzinfo=WIB), tick=False)


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2021, 5, day, hour, tzinfo=WIB)


def coordinator(settings: Any, email: str, code: str, name: str = "Bu Koordinator") -> int:
    """A coordinator's account with its password set."""
    with session_factory(settings.DATABASE_URL)() as session:
        user = accounts.create_user(session, registry_for(settings), email=email, name=name, role="coordinator",
                                    agency=code, created_by="test")
        accounts.set_password(session, user, PASSWORD, PASSWORD)
        session.commit()
        return user.id


def test_the_boards_index_of_open_reports_knows_the_open_statuses() -> None:
    assert OPEN_STATUSES == OPEN  # models cannot import statuses: the partial index repeats them


def test_user_create_coordinator_from_the_cli(settings: Any) -> None:
    result = CliRunner().invoke(main, ["user", "create", "pantau@kemendagri.go.id", "--coordinator", "KEMENDAGRI"])
    assert result.exit_code == 0, result.output
    assert "coordinator KEMENDAGRI" in result.output
    with session_factory(settings.DATABASE_URL)() as session:
        user = session.scalar(select(User).where(User.email == "pantau@kemendagri.go.id"))
        assert user is not None and (user.role, user.agency) == ("coordinator", "KEMENDAGRI")
    refused = CliRunner().invoke(main, ["user", "create", "x@y.id", "--coordinator", "KEMENHUB"])
    assert refused.exit_code != 0 and "not a coordinator" in refused.output


def test_a_coordinator_sees_only_the_agencies_it_watches(settings: Any, seed: Any, people: Any,
                                                         workspace: Any) -> None:
    bekasi = seed("DISHUBBEKASI")
    kemenhub = seed("KEMENHUB")
    central = seed(None)
    coordinator(settings, "pantau@kemendagri.go.id", "KEMENDAGRI")  # watches PEMKOTBEKASI and its units
    people("staf@dephub.go.id", agency="KEMENHUB", role="admin")
    people("biasa@dephub.go.id", agency="KEMENHUB")

    ws = workspace()
    assert ws.login("pantau@kemendagri.go.id").status_code == 302
    page = ws.get("/board")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "PEMKOTBEKASI" in html and "DISHUBBEKASI" in html
    assert "KEMENHUB" not in html and "PUSAT" not in html
    assert ws.get("/board/DISHUBBEKASI").status_code == 200
    assert ws.get("/board/KEMENHUB").status_code == 404
    assert ws.get("/board/PUSAT").status_code == 404
    # It reads the reports it watches, and no other; it works none of them.
    report = ws.get(f"/reports/{bekasi}")
    assert report.status_code == 200
    assert 'id="answer-form"' not in report.get_data(as_text=True)
    assert ws.get(f"/reports/{kemenhub}").status_code == 404
    assert ws.get(f"/reports/{central}").status_code == 404
    assert ws.post(f"/reports/{bekasi}/status", {"status": "diverifikasi"}).status_code == 404
    assert ws.post(f"/reports/{bekasi}/note", {"text": "x"}).status_code == 404
    assert ws.get("/admin/staff").status_code == 404
    assert ws.get("/admin/roster").status_code == 404
    assert seed.report(bekasi).status == "diterima"

    assert 'class="bulk"' not in ws.get("/").get_data(as_text=True)  # it reads what it watches, changes nothing
    assert ws.post("/bulk", {"n": bekasi, "action": "status", "status": "diverifikasi"}).status_code == 404

    agency = workspace()
    agency.login("staf@dephub.go.id")
    assert agency.get("/board").status_code == 404
    assert agency.get("/board/KEMENHUB").status_code == 404
    assert "Papan pantau" not in agency.get("/").get_data(as_text=True)
    assert agency.post(f"/coordination/{2**40}/answer", {"text": "x"}).status_code == 404
    assert agency.post(f"/admin/roster/{2**40}/delete").status_code == 404
    staff = workspace()
    staff.login("biasa@dephub.go.id")
    assert staff.get("/admin/roster").status_code == 404
    assert staff.get("/board").status_code == 404


def test_a_coordinator_signs_in_on_the_central_host_only(settings: Any, env: dict[str, str]) -> None:
    from sms_gateway.config import Settings
    from sms_gateway.web import create_app

    coordinator(settings, "pantau@kemendagri.go.id", "KEMENDAGRI")
    app = create_app(Settings({**env, "WORKSPACE_HOST_SUFFIX": SUFFIX, "PUBLIC_BASE_URL": "https://lapor.test"}))
    app.testing = True
    assert Workspace(app, "pemkotbekasi.lapor.test").login("pantau@kemendagri.go.id").status_code == 401
    central = Workspace(app, SUFFIX)
    assert central.login("pantau@kemendagri.go.id").status_code == 302
    assert central.get("/board").status_code == 200
    assert central.post("/login", {"email": "x", "password": "y"}).status_code == 302  # signed in already


def test_central_admins_see_every_agency_and_the_central_queue(seed: Any, people: Any, workspace: Any) -> None:
    seed(None)
    people("pusat@lapor.go.id")
    ws = workspace()
    ws.login("pusat@lapor.go.id")
    html = ws.get("/board").get_data(as_text=True)
    assert "KEMENHUB" in html and "PUSAT" in html and "DISHUBBEKASI" in html
    assert ws.get("/board/PUSAT").status_code == 200


def test_the_boards_figures_on_a_known_set(settings: Any, seed: Any) -> None:
    # Special reports received Tuesday 11 May 2021 are due for disposition on Monday 17 May
    # (12 May collective leave, 13-14 May Idul Fitri, the weekend) and for follow-up on 18 May.
    late = [seed("KEMENHUB", special=True, received=at(11)) for _ in range(2)]
    fast = [seed("KEMENHUB", special=True, received=at(10, 8)) for _ in range(3)]
    for number, hours in zip(fast, (2, 4, 10), strict=True):
        seed.update(number, disposed_at=at(10, 8) + timedelta(hours=hours), status="didisposisikan")
    # Received Monday 10 May: follow-up due Monday 17 May. One followed up early, one a working day late.
    seed.update(fast[0], followed_up_at=at(11, 8), status="ditindaklanjuti")
    seed.update(fast[1], followed_up_at=at(18, 8), status="ditindaklanjuti")
    due_today = seed("KEMENHUB", special=True, received=at(18))  # disposition due 19 May
    seed("KEMENHUB", status="selesai", received=at(18))
    seed("PLN", received=at(3))  # another agency: ordinary, due 6 May; 5 working days late on 19 May
    old = seed("KEMENHUB", special=True, received=at(1, 9) - timedelta(days=60))  # outside a 30-day period
    seed.update(old, disposed_at=at(1), status="didisposisikan", followed_up_at=at(1))
    seed.update(late[0], status="diverifikasi")  # verified by the agency (disposition met), not followed up
    seed.update(late[0], disposed_at=at(17, 10))
    with session_factory(settings.DATABASE_URL)() as session:
        report_id = session.scalar(select(ReportEvent.report_id).limit(1))
        session.add_all([Escalation(report_id=report_id, agency="KEMENHUB", deadline="disposition", level=1,
                                    due=at(17).date(), created_at=at(18).astimezone(ZoneInfo("UTC"))),
                         Escalation(report_id=report_id, agency="KEMENHUB", deadline="disposition", level=2,
                                    due=at(17).date(), created_at=at(19).astimezone(ZoneInfo("UTC")))])
        session.commit()

    with scoped_sessions(settings.DATABASE_URL)() as session:
        set_scope(session, true())  # the central admin's scope: everything
        rows = {r.code: r for r in figures(session, ["KEMENHUB", "PLN", "KAI"], True, at(19).date(), 30)}
    hub = rows["KEMENHUB"]
    assert (hub.open, hub.due_today) == (7, 1)
    # Overdue on 19 May: late[1] (disposition due 17 May), late[0] (verified; follow-up due 18 May),
    # fast[2] (follow-up due 17 May); not fast[0] and fast[1], followed up (in time or not).
    assert hub.overdue == 3
    assert hub.oldest_due == at(17).date() and hub.late_days == 2  # 18 and 19 May
    assert hub.reports == 7  # the 60-day-old one is outside the period
    assert hub.median_hours_to_disposition == 7.0  # 2, 4, 10 hours and late[0]'s 6 days 1 hour
    assert hub.median_hours_to_followup == 108.0  # 24 and 192 hours
    assert (hub.followups_in_time, hub.followups_due) == (1, 5)  # fast[0] of fast ×3 and late ×2
    assert hub.escalations == {1: 1, 2: 1}
    pln = rows["PLN"]
    # Ordinary, received Monday 3 May: disposition due Thursday 6 May; 7, 10, 11, 17, 18, 19 May are
    # working days after it (12 May collective leave, 13 May Ascension and Idul Fitri, 14 May Idul Fitri).
    assert (pln.open, pln.overdue, pln.late_days) == (1, 1, 6)
    assert rows["KAI"].open == 0 and rows["KAI"].median_hours_to_disposition is None
    assert rows["PUSAT"].open == 0
    del due_today


@pytest.fixture
def watched(prefixes_file: Any, receiver: Any) -> Any:
    add_to_agency(prefixes_file, "PEMKOTBEKASI", webhook_url=receiver.url + "/bekasi")
    add_to_coordinator(prefixes_file, "KEMENDAGRI", webhook_url=receiver.url + "/kemendagri",
                       admin_number=KEMENDAGRI_ADMIN)
    return receiver


def test_intervensi_reaches_the_agency_and_its_answer_the_coordinator(
        settings: Any, seed: Any, people: Any, workspace: Any, watched: Any, fake_twilio: Any, work: Any) -> None:
    number = seed("PEMKOTBEKASI")
    coordinator(settings, "pantau@kemendagri.go.id", "KEMENDAGRI", name="Bu Sari")
    people("admin@bekasi.go.id", agency="PEMKOTBEKASI", role="admin", name="Pak Admin")
    agency = workspace()
    agency.login("admin@bekasi.go.id")
    everyday = {"name": "Piket Satu", "number": "0813-1111-2222", "weekday": list("1234567"), "dates": ""}
    assert agency.post("/admin/roster", everyday).status_code == 302

    ws = workspace()
    ws.login("pantau@kemendagri.go.id")
    assert ws.post(f"/reports/{number}/intervensi", {"reason": ""}).status_code == 302  # refused: no reason
    assert "wajib" in ws.get(f"/reports/{number}").get_data(as_text=True)
    response = ws.post(f"/reports/{number}/intervensi", {"reason": "Mohon segera ditindaklanjuti <b>hari ini</b>"})
    assert response.status_code == 302
    work()

    report = seed.report(number)
    event = report.events[-1]
    assert (event.action, event.actor, event.note) == ("intervensi", "pantau@kemendagri.go.id",
                                                       "Mohon segera ditindaklanjuti <b>hari ini</b>")
    sms = [m.form for m in fake_twilio.messages if m.form["To"] == ON_DUTY]
    assert len(sms) == 1, [(o.recipient, o.state, o.error) for o in seed.outbound()]
    assert sms[0]["Body"].startswith(f"LAPOR! 1708 INTERVENSI dr KEMENDAGRI utk PEMKOTBEKASI lap. {number}: Mohon")
    pushed = [json.loads(r.body) for r in watched.requests if r.path == "/bekasi"]
    assert [p["event"] for p in pushed] == ["coordination.intervensi"]
    assert pushed[0]["data"]["by"] == "Bu Sari" and pushed[0]["data"]["tracking_number"] == number
    signed = next(r for r in watched.requests if r.path == "/bekasi")
    assert signed.headers["X-Lapor-Signature"].startswith("sha256=")

    page = ws.get(f"/reports/{number}").get_data(as_text=True)
    assert "belum dijawab" in page and "&lt;b&gt;hari ini&lt;/b&gt;" in page

    inbox = agency.get("/").get_data(as_text=True)
    assert "Intervensi" in inbox and "Bu Sari" in inbox and 'role="alert"' in inbox
    with session_factory(settings.DATABASE_URL)() as session:
        action_id = session.scalar(select(CoordinationAction.id))
    assert ws.post(f"/coordination/{action_id}/answer", {"text": "bukan saya"}).status_code == 404
    assert agency.post(f"/coordination/{action_id}/answer", {"text": "Sudah kami tangani"}).status_code == 302
    assert agency.post(f"/coordination/{action_id}/answer", {"text": "dua kali"}).status_code == 302  # refused
    work()
    assert 'class="banner' not in agency.get("/").get_data(as_text=True)
    assert [e.action for e in seed.report(number).events][-1] == "intervensi_answer"
    back = [json.loads(r.body) for r in watched.requests if r.path == "/kemendagri"]
    assert [b["event"] for b in back] == ["coordination.answered"]
    assert back[0]["data"]["answer"]["text"] == "Sudah kami tangani"
    to_coordinator = [m.form["Body"] for m in fake_twilio.messages if m.form["To"] == KEMENDAGRI_ADMIN]
    assert to_coordinator == [f"LAPOR! 1708: PEMKOTBEKASI menjawab intervensi #{action_id}: Sudah kami tangani"]
    assert "dijawab" in ws.get(f"/reports/{number}").get_data(as_text=True)


def test_teguran_to_an_agency_on_the_board(settings: Any, seed: Any, people: Any, workspace: Any, watched: Any,
                                           fake_twilio: Any, work: Any, prefixes_file: Any) -> None:
    add_to_agency(prefixes_file, "DISHUBBEKASI", admin_number="+6281355556666")
    coordinator(settings, "pantau@kemendagri.go.id", "KEMENDAGRI")
    ws = workspace()
    ws.login("pantau@kemendagri.go.id")
    page = ws.post("/board/DISHUBBEKASI/teguran", {"reason": ""})
    assert page.status_code == 422 and "wajib" in page.get_data(as_text=True)
    assert ws.post("/board/KEMENHUB/teguran", {"reason": "bukan wewenang"}).status_code == 404
    assert ws.post("/board/DISHUBBEKASI/teguran", {"reason": "Terlalu banyak laporan terlambat"}).status_code == 302
    work()
    # Nobody on DISHUBBEKASI's roster: its admin_number gets the SMS.
    sms = [m.form["Body"] for m in fake_twilio.messages if m.form["To"] == "+6281355556666"]
    assert sms == ["LAPOR! 1708 TEGURAN dr KEMENDAGRI utk DISHUBBEKASI: Terlalu banyak laporan terlambat "
                   "Jawab di ruang kerja."]
    html = ws.get("/board").get_data(as_text=True)
    assert "Belum dijawab" in html
    people("staf@bekasi.go.id", agency="PEMKOTBEKASI")  # the parent's staff see their unit's banner
    staff = workspace()
    staff.login("staf@bekasi.go.id")
    assert "Terlalu banyak laporan terlambat" in staff.get("/").get_data(as_text=True)
