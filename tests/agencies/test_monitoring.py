"""GET /api/v1/monitoring: per-agency open, overdue, escalations and median times to act."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine

from sms_gateway.agencies.escalation import run_escalations

WIB = ZoneInfo("Asia/Jakarta")


def at(day: int, hour: int) -> time_machine.travel:
    return time_machine.travel(datetime(2021, 6, day, hour, tzinfo=WIB), tick=False)


def test_figures_per_agency(seed, api_as) -> None:
    # Three KEMENHUB reports received Monday 7 June at 08:00: disposed after 2, 4 and 30 hours,
    # two of them followed up after 6 and 50 hours; one POLRI report left alone.
    numbers = [seed("KEMENHUB", received=datetime(2021, 6, 7, 8, tzinfo=WIB)) for _ in range(3)]
    idle = seed("POLRI", received=datetime(2021, 6, 7, 8, tzinfo=WIB))
    kemenhub = api_as("KEMENHUB")

    def act(number: str, day: int, hour: int, status: str) -> None:
        with at(day, hour):
            assert kemenhub.post(f"/api/v1/reports/{number}/status", {"status": status}).status_code == 200

    act(numbers[0], 7, 10, "diverifikasi")
    act(numbers[1], 7, 12, "diverifikasi")
    act(numbers[2], 8, 14, "diverifikasi")
    act(numbers[0], 7, 14, "ditindaklanjuti")
    act(numbers[1], 9, 10, "ditindaklanjuti")
    act(numbers[1], 9, 11, "selesai")
    with at(15, 9):
        run_escalations()
        rows = {r["agency"]: r for r in api_as(admin=True).get("/api/v1/monitoring?since=2021-06-01").json["agencies"]}
    k = rows["KEMENHUB"]
    assert (k["reports"], k["open"], k["overdue"]) == (3, 2, 1)  # numbers[2] missed its follow-up
    assert k["median_hours_to_disposition"] == 4.0
    assert k["median_hours_to_followup"] == 28.0  # median of 6 and 50
    assert k["escalations"] == {"level1": 1, "level2": 0}  # follow-up due 14 June, reprimand after 16 June
    p = rows["POLRI"]
    assert (p["reports"], p["open"], p["overdue"], p["median_hours_to_disposition"]) == (1, 1, 1, None)
    assert p["escalations"] == {"level1": 2, "level2": 1}  # disposition due 10 June: reprimand after 14 June
    assert rows["PUSAT"]["reports"] == 0 and rows["KEMENKES"]["open"] == 0
    assert idle not in str(rows)  # figures only, no report numbers


def test_since_limits_reports_and_escalations_not_open_counts(seed, api_as) -> None:
    seed("KEMENHUB", received=datetime(2021, 6, 7, 8, tzinfo=WIB))
    with at(30, 9):
        run_escalations()
        [row] = api_as("KEMENHUB").get("/api/v1/monitoring?since=2021-06-20").json["agencies"]
    assert (row["reports"], row["open"], row["overdue"]) == (0, 1, 1)
    assert row["escalations"] == {"level1": 2, "level2": 2}  # recorded on 30 June
    r = api_as("KEMENHUB").get("/api/v1/monitoring?since=juni")
    assert r.status_code == 400 and "since must be an ISO 8601" in r.json["error"]


def test_a_coordinator_sees_what_it_watches(seed, api_as) -> None:
    seed("PLN")
    rows = [r["agency"] for r in api_as("KEMENBUMN").get("/api/v1/monitoring").json["agencies"]]
    assert rows == ["JASAMARGA", "KAI", "PLN"]
    me = api_as("KEMENBUMN").get("/api/v1/me").json
    assert me == {"admin": False, "agency": "KEMENBUMN", "name": "Kementerian Badan Usaha Milik Negara",
                  "units": [], "watches": ["PLN", "KAI", "JASAMARGA"]}
    # watching is not reading: the reports themselves stay out of reach
    assert api_as("KEMENBUMN").get("/api/v1/reports").json["total"] == 0
