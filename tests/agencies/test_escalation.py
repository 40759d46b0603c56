"""The deadline watch on a frozen clock: level 1, then level 2; agencies and coordinators told once."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from sms_gateway.agencies.escalation import levels_due, run_escalations
from sms_gateway.cli import main
from sms_gateway.db import session_factory
from sms_gateway.models import Escalation
from tests.agencies.conftest import add_to_agency, add_to_coordinator

WIB = ZoneInfo("Asia/Jakarta")
RECEIVED = datetime(2021, 5, 11, 10, 0, tzinfo=WIB)  # Tuesday before Idul Fitri 2021
KEMENHUB_ADMIN = "+628111000001"
PANRB_ADMIN = "+628111000002"


def on(day: int, hour: int = 9) -> time_machine.travel:
    """The clock at ``hour`` WIB on ``day`` May 2021."""
    return time_machine.travel(datetime(2021, 5, day, hour, tzinfo=WIB), tick=False)


def escalations(settings) -> list[tuple[str | None, str, int]]:
    with session_factory(settings.DATABASE_URL)() as s:
        rows = s.scalars(select(Escalation).order_by(Escalation.id)).all()
        return [(e.agency, e.deadline, e.level) for e in rows]


@pytest.fixture
def watched(prefixes_file, receiver):
    add_to_agency(prefixes_file, "KEMENHUB", admin_number=KEMENHUB_ADMIN, webhook_url=receiver.url + "/kemenhub")
    add_to_coordinator(prefixes_file, "KEMENPANRB", admin_number=PANRB_ADMIN)
    add_to_coordinator(prefixes_file, "OMBUDSMAN", webhook_url=receiver.url + "/ombudsman")
    return receiver


def test_levels_by_working_days() -> None:
    due = datetime(2021, 5, 17).date()
    assert levels_due(due, due, 2) == []
    assert levels_due(due, datetime(2021, 5, 18).date(), 2) == [1]
    assert levels_due(due, datetime(2021, 5, 19).date(), 2) == [1]
    assert levels_due(due, datetime(2021, 5, 20).date(), 2) == [1, 2]


def test_a_special_report_escalates_day_by_day_once_per_level(settings, seed, work, fake_twilio, watched) -> None:
    number = seed("KEMENHUB", special=True, received=RECEIVED)
    report = seed.report(number)
    assert (str(report.disposition_due), str(report.followup_due)) == ("2021-05-17", "2021-05-18")

    with on(17, 16):  # the due day itself: still in time
        assert run_escalations()["escalations"] == 0
    with on(18):
        assert run_escalations() == {"escalations": 1, "sms": 2}
        assert run_escalations() == {"escalations": 0, "sms": 0}  # a second run records nothing
        work()
    assert escalations(settings) == [("KEMENHUB", "disposition", 1)]
    with on(19):
        run_escalations()
    with on(20):
        run_escalations()
    with on(21):
        run_escalations()
        run_escalations()
    assert escalations(settings) == [("KEMENHUB", "disposition", 1), ("KEMENHUB", "followup", 1),
                                     ("KEMENHUB", "disposition", 2), ("KEMENHUB", "followup", 2)]
    with on(21):
        work()

    to_admin = [m.form["Body"] for m in fake_twilio.messages if m.form["To"] == KEMENHUB_ADMIN]
    assert to_admin[0] == (f"LAPOR! 1708: 1 laporan utk KEMENHUB lewat tenggat (0 sudah teguran). Contoh: {number}. "
                           "Mohon segera didisposisi/ditindaklanjuti.")
    assert "(1 sudah teguran)" in to_admin[2]
    assert len(to_admin) == 4  # one per run that found something new
    to_panrb = [m.form["Body"] for m in fake_twilio.messages if m.form["To"] == PANRB_ADMIN]
    assert to_panrb[0] == ("LAPOR! 1708 pemantauan KEMENPANRB: 1 eskalasi baru (0 teguran), terbanyak di KEMENHUB. "
                           "Rincian: GET /api/v1/monitoring")
    assert len(to_panrb) == 4

    pushed = {path: [json.loads(r.body) for r in watched.requests if r.path == path]
              for path in ("/kemenhub", "/ombudsman")}
    assert [b["event"] for b in pushed["/kemenhub"]] == ["report.escalated"] * 4
    first = pushed["/kemenhub"][0]["data"]["escalations"][0]
    assert (first["tracking_number"], first["deadline"], first["level"], first["due"]) == \
        (number, "disposition", 1, "2021-05-17")
    assert [b["event"] for b in pushed["/ombudsman"]] == ["escalations"] * 4
    assert pushed["/ombudsman"][3]["data"]["escalations"][0]["level"] == 2


def test_deadlines_met_in_time_are_not_escalated(settings, seed, api_as) -> None:
    number = seed("KEMENHUB", special=True, received=RECEIVED)
    with on(17):
        api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status", {"status": "diverifikasi"})
    with on(19):
        run_escalations()
    assert escalations(settings) == [("KEMENHUB", "followup", 1)]
    with on(19, 14):
        api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status", {"status": "ditindaklanjuti"})
    with on(28):
        run_escalations()
    assert escalations(settings) == [("KEMENHUB", "followup", 1)]  # late, but done: no reprimand


def test_closed_reports_are_not_watched(settings, seed) -> None:
    seed("KEMENHUB", received=RECEIVED, status="diarsipkan")
    with on(31):
        assert run_escalations()["escalations"] == 0


def test_the_central_queue_answers_to_the_coordinators_watching_everything(settings, seed, work, fake_twilio,
                                                                            watched) -> None:
    seed(None, special=True, received=RECEIVED)
    with on(18):
        assert run_escalations() == {"escalations": 1, "sms": 1}  # KEMENPANRB; no agency to tell
        work()
    assert escalations(settings) == [(None, "disposition", 1)]
    assert [m.form["To"] for m in fake_twilio.messages] == [PANRB_ADMIN]
    assert "terbanyak di PUSAT" in fake_twilio.messages[0].form["Body"]
    assert [r.path for r in watched.requests] == ["/ombudsman"]


def test_regional_coordinators_hear_about_units_only(settings, seed, work, prefixes_file, fake_twilio) -> None:
    add_to_coordinator(prefixes_file, "KEMENDAGRI", admin_number="+628111000003")
    add_to_coordinator(prefixes_file, "KEMENBUMN", admin_number="+628111000004")
    seed("DISHUBBEKASI", special=True, received=RECEIVED)
    with on(18):
        run_escalations()
        work()
    assert [m.form["To"] for m in fake_twilio.messages] == ["+628111000003"]


def test_escalations_show_in_the_report_and_in_monitoring(settings, seed, api_as) -> None:
    number = seed("KEMENHUB", special=True, received=RECEIVED)
    with on(21):
        run_escalations()
        detail = api_as("KEMENHUB").get(f"/api/v1/reports/{number}").json
        assert [(e["deadline"], e["level"]) for e in detail["escalations"]] == [
            ("disposition", 1), ("disposition", 2), ("followup", 1), ("followup", 2)]
        assert detail["deadlines"]["overdue"] == ["disposition", "followup"]
        [row] = api_as("KEMENHUB").get("/api/v1/monitoring?since=2021-05-01").json["agencies"]
        assert (row["open"], row["overdue"], row["escalations"]) == (1, 1, {"level1": 2, "level2": 2})
        listed = api_as("KEMENHUB").get("/api/v1/reports?overdue=true").json["reports"]
        assert [r["tracking_number"] for r in listed] == [number]
        assert api_as("KEMENHUB").get("/api/v1/reports?overdue=false").json["reports"] == []


def test_the_cli_runs_the_watch_once(settings, seed) -> None:
    seed("KEMENHUB", special=True, received=RECEIVED)
    with on(18):
        result = CliRunner().invoke(main, ["agency", "watch"])
    assert result.exit_code == 0, result.output
    assert "1 new escalation(s)" in result.output


def test_two_runs_at_once_record_each_escalation_once(settings, seed) -> None:
    """Two schedulers (or a CLI run beside the scheduler) racing on PostgreSQL's unique index."""
    import threading

    from sms_gateway.agencies import escalation

    if not settings.DATABASE_URL.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: the race needs concurrent transactions")
    for _ in range(3):
        seed("KEMENHUB", special=True, received=RECEIVED)
    today, now = datetime(2021, 5, 21).date(), datetime(2021, 5, 21, 9, tzinfo=WIB)
    sessions = session_factory(settings.DATABASE_URL)
    first, second = sessions(), sessions()
    mine = escalation.record(first, settings, today, now)  # inserted, not committed yet
    theirs: list = []
    racer = threading.Thread(target=lambda: theirs.extend(escalation.record(second, settings, today, now)))
    racer.start()  # blocks on the unique index until the first run commits
    racer.join(timeout=1)
    assert racer.is_alive()
    first.commit()
    racer.join(timeout=30)
    second.commit()
    first.close()
    second.close()
    assert len(mine) == 12 and theirs == []
    assert len(escalations(settings)) == 12
