"""Readiness alerts: each condition on a frozen clock, rosters, and an alert sent once per period."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from sms_gateway import jobs, outbox, readiness
from sms_gateway.agencies import rosters
from sms_gateway.cli import main
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, ReadinessAlert, Report, ReportView, User, utcnow
from sms_gateway.registry import registry_for
from tests.agencies.conftest import add_to_agency, add_to_coordinator

WIB = ZoneInfo("Asia/Jakarta")
DUTY = "+6281311112222"
CENTRAL_DUTY = "+6281344445555"


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2021, 5, day, hour, tzinfo=WIB)


def on(day: int, hour: int = 9) -> time_machine.travel:
    return time_machine.travel(at(day, hour), tick=False)


def add_roster(settings: Any, agency: str, number: str, email: str = "", weekdays: str = "12345",
               dates: str = "") -> None:
    with session_factory(settings.DATABASE_URL)() as session:
        entry = rosters.check(name="Petugas", number=number, email=email, weekdays=list(weekdays), dates=dates,
                              region="ID")
        rosters.add(session, agency, entry, "test")
        session.commit()


def view(settings: Any, number: str, email: str) -> None:
    with session_factory(settings.DATABASE_URL)() as session:
        report_id = session.scalar(select(Report.id).where(Report.tracking_number == number))
        user_id = session.scalar(select(User.id).where(User.email == email))
        session.add(ReportView(report_id=report_id, user_id=user_id, created_at=utcnow()))
        session.commit()


def test_roster_entries_hold_on_their_weekdays_and_dates(settings: Any) -> None:
    add_roster(settings, "KEMENHUB", "0813 1111 2222", weekdays="15", dates="2021-05-13")
    with session_factory(settings.DATABASE_URL)() as session:
        monday, tuesday, holiday = at(10).date(), at(11).date(), at(13).date()
        assert [e.number for e in rosters.on_duty(session, "KEMENHUB", monday)] == [DUTY]
        assert rosters.on_duty(session, "KEMENHUB", tuesday) == []
        assert len(rosters.on_duty(session, "KEMENHUB", holiday)) == 1  # a listed date
        assert rosters.on_duty(session, "PLN", monday) == []
    result = CliRunner().invoke(main, ["roster", "list", "kemenhub"])
    assert result.exit_code == 0 and DUTY in result.output and "Mon, Fri + 2021-05-13" in result.output
    assert "nobody" in CliRunner().invoke(main, ["roster", "list", "KEMENHUB", "--on", "2021-05-11"]).output
    assert CliRunner().invoke(main, ["roster", "list", "NOPE"]).exit_code != 0


def test_a_roster_refuses_what_is_not_a_number_or_a_date() -> None:
    for values, key in (({"number": "12"}, "bad_number"), ({"dates": "besok"}, "bad_date"),
                        ({"weekdays": [], "dates": ""}, "no_days"), ({"name": "  "}, "required")):
        form = {"name": "A", "number": "081311112222", "email": "", "weekdays": ["1"], "dates": "", **values}
        try:
            rosters.check(region="ID", **form)  # type: ignore[arg-type]
        except rosters.RosterError as exc:
            assert exc.key == key
        else:
            raise AssertionError(f"{values} accepted")


def test_at_risk_counts_reports_due_by_the_next_working_day_that_nobody_on_duty_opened(
        settings: Any, seed: Any, people: Any) -> None:
    registry = registry_for(settings)
    # Friday 7 May 2021: the next working day is Monday 10 May.
    soon = seed("KEMENHUB", special=True, received=at(6))  # disposition due Friday 7 May
    monday = seed("KEMENHUB", special=True, received=at(7))  # due Monday 10 May
    seed("KEMENHUB", received=at(7))  # ordinary: due 12 May → 17 May with the holidays: not at risk
    seed(None, special=True, received=at(6))  # the central queue is another condition
    people("piket@dephub.go.id", agency="KEMENHUB")
    people("lain@dephub.go.id", agency="KEMENHUB")
    with session_factory(settings.DATABASE_URL)() as session:
        found = readiness.at_risk(session, registry, at(7, 10))
    assert [(f.agency, f.detail["count"], f.detail["by"]) for f in found] == [("KEMENHUB", 2, "2021-05-10")]

    view(settings, soon, "lain@dephub.go.id")  # no roster names an account: anybody of the agency counts
    with session_factory(settings.DATABASE_URL)() as session:
        found = readiness.at_risk(session, registry, at(7, 10))
    assert found[0].detail == {"count": 1, "example": monday, "by": "2021-05-10"}

    add_roster(settings, "KEMENHUB", DUTY, email="piket@dephub.go.id")  # now only the person on duty counts
    with session_factory(settings.DATABASE_URL)() as session:
        assert readiness.at_risk(session, registry, at(7, 10))[0].detail["count"] == 2
    view(settings, soon, "piket@dephub.go.id")
    view(settings, monday, "piket@dephub.go.id")
    with session_factory(settings.DATABASE_URL)() as session:
        assert readiness.at_risk(session, registry, at(7, 10)) == []


def test_central_backlog_passes_its_threshold(settings: Any, seed: Any) -> None:
    for _ in range(3):
        seed(None)
    with session_factory(settings.DATABASE_URL)() as session:
        assert readiness.central_backlog(session, 3) == []
        assert [f.detail for f in readiness.central_backlog(session, 2)] == [{"count": 3, "limit": 2}]


def test_workers_stalled_when_messages_wait_and_nothing_was_processed(settings: Any) -> None:
    now = datetime(2021, 5, 7, 3, 0, tzinfo=UTC)
    with session_factory(settings.DATABASE_URL)() as session:
        session.add(InboundMessage(channel="twilio", external_id="done", sender="+62811", text="x",
                                   received_at=now - timedelta(minutes=30), state="processed",
                                   processed_at=now - timedelta(minutes=29)))
        session.add(InboundMessage(channel="twilio", external_id="wait", sender="+62811", text="y",
                                   received_at=now - timedelta(minutes=12), state="received"))
        session.commit()
        assert readiness.workers_stalled(session, now, 15) == []  # the waiting one is younger than 15 min
        found = readiness.workers_stalled(session, now, 10)
        assert [(f.condition, f.detail["count"], f.detail["minutes"]) for f in found] == \
            [("workers_stalled", 1, 10)]
        assert readiness.workers_stalled(session, now - timedelta(minutes=15), 10) == []  # processed 14 min before


def test_alerts_go_to_the_people_on_duty_once_per_period(settings: Any, seed: Any, prefixes_file: Any,
                                                         receiver: Any, fake_twilio: Any, work: Any,
                                                         monkeypatch: Any) -> None:
    add_to_agency(prefixes_file, "KEMENHUB", webhook_url=receiver.url + "/kemenhub")
    add_to_coordinator(prefixes_file, "OMBUDSMAN", webhook_url=receiver.url + "/ombudsman")
    monkeypatch.setattr(settings, "READINESS_CENTRAL_BACKLOG", 1, raising=False)
    seed("KEMENHUB", special=True, received=at(6))
    seed(None)
    seed(None)
    add_roster(settings, "KEMENHUB", DUTY, weekdays="12345")
    add_roster(settings, "PUSAT", CENTRAL_DUTY, weekdays="1234567")
    assert "check_readiness" in {f.__name__ for f, _ in jobs.periodic_jobs(settings)}

    with on(7, 10):
        first = jobs.check_readiness()
        assert jobs.check_readiness() == {"holding": 2, "alerts": 0, "sms": 0}  # run twice, send once
        work()
    assert first == {"holding": 2, "alerts": 2, "sms": 2}
    sms = {m.form["To"]: m.form["Body"] for m in fake_twilio.messages}
    assert sms[DUTY].startswith("LAPOR! 1708 SIAGA KEMENHUB: 1 laporan tenggat s.d. 10-05 belum dibuka")
    assert sms[CENTRAL_DUTY] == "LAPOR! 1708 SIAGA: antrean pusat 2 laporan (batas 1). Mohon disposisi."
    assert len(fake_twilio.messages) == 2
    events = {r.path: json.loads(r.body) for r in receiver.requests}
    assert events["/kemenhub"]["event"] == "readiness.alert"
    assert events["/kemenhub"]["data"]["condition"] == "at_risk"
    assert events["/ombudsman"]["data"]["condition"] == "central_backlog"
    with session_factory(settings.DATABASE_URL)() as session:
        assert len(session.scalars(select(ReadinessAlert)).all()) == 2
        assert {o.lane for o in session.scalars(select(OutboundMessage))} == {outbox.BULK}

    with on(7, 10 + settings.READINESS_ALERT_PERIOD // 3600):  # the next period: told again
        assert jobs.check_readiness()["alerts"] == 2
