"""Report lifecycle through the API: every status transition, disposition, "bukan wewenang", bad input."""

from __future__ import annotations

import itertools

import pytest

from sms_gateway.agencies.statuses import STATUSES, TRANSITIONS

TARGETS = [s for s in STATUSES if s != "diterima"]


@pytest.mark.parametrize(("start", "target"), list(itertools.product(STATUSES, TARGETS)))
def test_every_transition_is_allowed_or_refused_with_its_reason(api_as, seed, start, target) -> None:
    number = seed("KEMENHUB", status=start)
    before = len(seed.report(number).events)
    r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status", {"status": target, "note": "cek lapangan"})
    report = seed.report(number)
    if target in TRANSITIONS[start]:
        assert r.status_code == 200, r.json
        assert report.status == target == r.json["report"]["status"]
        assert len(report.events) == before + 1
        event = report.events[-1]
        assert (event.status, event.action, event.note, event.actor) == (target, "status", "cek lapangan",
                                                                          "agency:KEMENHUB")
    else:
        assert r.status_code == 422, r.json
        assert f"a report that is {start} cannot become {target}" in r.json["error"]
        assert report.status == start and len(report.events) == before


def test_the_table_has_every_status_and_diterima_is_never_a_target() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all("diterima" not in targets for targets in TRANSITIONS.values())
    assert TRANSITIONS["diarsipkan"] == frozenset()


def test_diterima_cannot_be_set_by_status(api_as, seed) -> None:
    number = seed("KEMENHUB", status="diverifikasi")
    r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status", {"status": "diterima"})
    assert r.status_code == 422 and "return_to_central" in r.json["error"]


def test_unknown_or_missing_status_and_malformed_bodies(api_as, seed) -> None:
    number = seed("KEMENHUB")
    api = api_as("KEMENHUB")
    r = api.post(f"/api/v1/reports/{number}/status", {"status": "beres"})
    assert r.status_code == 422 and "unknown status 'beres'" in r.json["error"]
    r = api.post(f"/api/v1/reports/{number}/status", {"note": "x"})
    assert r.status_code == 400 and "status is required" in r.json["error"]
    r = api.post(f"/api/v1/reports/{number}/status", {"status": "diverifikasi", "stauts": "x"})
    assert r.status_code == 400 and "unknown field(s) stauts" in r.json["error"]
    r = api.client.post(f"/api/v1/reports/{number}/status", data="status=diverifikasi",
                        headers={"Authorization": f"Bearer {api.token}"})
    assert r.status_code == 400 and "JSON object" in r.json["error"]
    assert seed.report(number).status == "diterima"


def test_an_oversized_note_is_refused_with_the_limit(api_as, seed, settings) -> None:
    number = seed("KEMENHUB")
    r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/status",
                                {"status": "diverifikasi", "note": "x" * (settings.API_NOTE_MAX_LENGTH + 1)})
    assert r.status_code == 422
    assert r.json["error"] == f"note is {settings.API_NOTE_MAX_LENGTH + 1} characters long; the limit is 2000"
    assert seed.report(number).status == "diterima"


def test_deadline_columns_follow_the_lifecycle(api_as, seed) -> None:
    number = seed("KEMENHUB")
    api = api_as("KEMENHUB")
    assert api.post(f"/api/v1/reports/{number}/status", {"status": "diverifikasi"}).status_code == 200
    report = seed.report(number)
    assert report.disposed_at is not None and report.followed_up_at is None
    r = api.post(f"/api/v1/reports/{number}/status", {"status": "ditindaklanjuti", "note": "bus ditilang"})
    report = seed.report(number)
    assert report.followed_up_at is not None and report.response_due is not None
    assert r.json["report"]["deadlines"]["response_due"] == report.response_due.isoformat()
    first = report.followed_up_at
    api.post(f"/api/v1/reports/{number}/status", {"status": "ditindaklanjuti", "note": "tindak lanjut kedua"})
    report = seed.report(number)
    assert report.followed_up_at == first and report.last_followup_at > first
    api.post(f"/api/v1/reports/{number}/status", {"status": "selesai"})
    assert seed.report(number).closed_at is not None


def test_a_central_report_needs_a_disposition_before_agency_statuses(api_as, seed) -> None:
    number = seed(None)
    admin = api_as(admin=True)
    for status in ("didisposisikan", "ditindaklanjuti"):
        seed.update(number, status="diverifikasi" if status == "ditindaklanjuti" else "diterima")
        r = admin.post(f"/api/v1/reports/{number}/status", {"status": status})
        assert r.status_code == 422 and "dispose it to an agency" in r.json["error"]
    seed.update(number, status="diterima")
    assert admin.post(f"/api/v1/reports/{number}/status", {"status": "diverifikasi"}).status_code == 200
    # verifying in the central queue is not a disposition: the deadline still runs
    assert seed.report(number).disposed_at is None


class TestDisposition:
    def test_admin_disposes_a_central_report_to_any_agency(self, api_as, seed) -> None:
        number = seed(None)
        r = api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "kemenhub", "note": "bus"})
        assert r.status_code == 200, r.json
        report = seed.report(number)
        assert (report.agency, report.status) == ("KEMENHUB", "didisposisikan")
        assert report.disposed_at is not None
        assert (report.events[-1].action, report.events[-1].actor, report.events[-1].agency) == \
            ("disposition", "admin", "KEMENHUB")
        assert r.json["event"]["action"] == "disposition"

    def test_parent_disposes_to_its_unit_and_both_still_see_it(self, api_as, seed) -> None:
        number = seed("PEMKOTBEKASI")
        r = api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "DISHUBBEKASI"})
        assert r.status_code == 200 and r.json["report"]["agency"] == "DISHUBBEKASI"
        assert api_as("DISHUBBEKASI").get(f"/api/v1/reports/{number}").status_code == 200
        assert api_as("PEMKOTBEKASI").get(f"/api/v1/reports/{number}").status_code == 200
        # the parent may move it to another unit, the unit may not
        r = api_as("DISHUBBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "DINKESBEKASI"})
        assert r.status_code == 422 and "can dispose only to its units (none)" in r.json["error"]
        r = api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "DINKESBEKASI"})
        assert r.status_code == 200

    def test_an_agency_cannot_dispose_outside_its_units(self, api_as, seed) -> None:
        number = seed("PEMKOTBEKASI")
        r = api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "POLRI"})
        assert r.status_code == 422
        assert "PEMKOTBEKASI can dispose only to its units (DBMSDABEKASI, DINKESBEKASI" in r.json["error"]
        assert seed.report(number).agency == "PEMKOTBEKASI"

    @pytest.mark.parametrize(("body", "status", "reason"), [
        ({"to": "NOWHERE"}, 422, "unknown agency 'NOWHERE'"),
        ({"to": "KEMENHUB"}, 422, "already at KEMENHUB"),
        ({}, 400, "to is required"),
        ({"to": "POLRI", "return_to_central": True}, 400, "either to or return_to_central"),
        ({"return_to_central": True}, 400, "reason is required"),
        ({"to": "POLRI", "note": "x" * 2001}, 422, "note is 2001 characters long"),
    ])
    def test_bad_dispositions_say_why(self, api_as, seed, body, status, reason) -> None:
        number = seed("KEMENHUB")
        api = api_as("KEMENHUB") if "return_to_central" in body else api_as(admin=True)
        r = api.post(f"/api/v1/reports/{number}/disposition", body)
        assert r.status_code == status and reason in r.json["error"], r.json
        assert seed.report(number).agency == "KEMENHUB"

    @pytest.mark.parametrize("status", ["ditindaklanjuti", "selesai", "diarsipkan"])
    def test_a_followed_up_or_closed_report_is_not_disposed(self, api_as, seed, status) -> None:
        number = seed("KEMENHUB", status=status)
        r = api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "POLRI"})
        assert r.status_code == 422 and f"a report that is {status} cannot be disposed" in r.json["error"]
        r = api_as("KEMENHUB").post(f"/api/v1/reports/{number}/disposition",
                                    {"return_to_central": True, "reason": "x"})
        assert r.status_code == 422

    def test_bukan_wewenang_returns_the_report_to_the_central_queue(self, api_as, seed) -> None:
        number = seed("KEMENHUB", status="didisposisikan")
        seed.update(number, disposed_at=seed.report(number).created_at)
        api = api_as("KEMENHUB")
        r = api.post(f"/api/v1/reports/{number}/disposition",
                     {"return_to_central": True, "reason": "jalan tol: wewenang Jasa Marga"})
        assert r.status_code == 200 and r.json["report"] is None
        assert r.json["event"]["note"] == "bukan wewenang: jalan tol: wewenang Jasa Marga"
        report = seed.report(number)
        assert (report.agency, report.status, report.disposed_at) == (None, "diterima", None)
        assert (report.events[-1].action, report.events[-1].actor) == ("return", "agency:KEMENHUB")
        assert api.get(f"/api/v1/reports/{number}").status_code == 404
        admin = api_as(admin=True)
        assert admin.get(f"/api/v1/reports/{number}").json["agency"] == "PUSAT"
        r = admin.post(f"/api/v1/reports/{number}/disposition", {"return_to_central": True, "reason": "x"})
        assert r.status_code == 422 and "central admin disposes" in r.json["error"]
        assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": "JASAMARGA"}).status_code == 200
