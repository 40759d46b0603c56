"""Agency A never reads, lists or changes agency B's reports, on any endpoint; personal data per viewer."""

from __future__ import annotations

import pytest

from sms_gateway import tracking

# Every endpoint that takes a report, with a body that would succeed on a report in reach.
REPORT_ENDPOINTS = [
    ("GET", "/api/v1/reports/{n}", None),
    ("POST", "/api/v1/reports/{n}/status", {"status": "diverifikasi"}),
    ("POST", "/api/v1/reports/{n}/disposition", {"to": "DISHUBBEKASI"}),
    ("POST", "/api/v1/reports/{n}/disposition", {"return_to_central": True, "reason": "bukan wewenang"}),
    ("POST", "/api/v1/reports/{n}/reply", {"text": "terima kasih, sedang kami periksa"}),
]


def call(api, method, path, body):
    return api.get(path) if method == "GET" else api.post(path, body)


@pytest.mark.parametrize(("method", "path", "body"), REPORT_ENDPOINTS)
def test_another_agencys_report_is_404_like_a_missing_one_and_stays_untouched(
        api_as, seed, method, path, body) -> None:
    theirs = seed("POLRI", text="oknum minta uang di pos penyekatan")
    missing = tracking.generate()
    kemenhub = api_as("KEMENHUB")
    r_theirs = call(kemenhub, method, path.format(n=theirs), body)
    r_missing = call(kemenhub, method, path.format(n=missing), body)
    assert r_theirs.status_code == r_missing.status_code == 404
    assert r_theirs.json == r_missing.json == {"error": "no such report", "status": 404}
    report = seed.report(theirs)
    assert (report.status, report.agency, len(report.events)) == ("diterima", "POLRI", 1)
    assert seed.outbound() == []
    # the owner, on the same endpoint, gets through
    owner = api_as("PEMKOTBEKASI")
    mine = seed("PEMKOTBEKASI")
    assert call(owner, method, path.format(n=mine), body).status_code == 200


def test_the_list_holds_only_the_callers_reports_and_units(api_as, seed) -> None:
    a = seed("KEMENHUB")
    seed("POLRI")
    seed(None)
    parent = seed("PEMKOTBEKASI")
    unit = seed("DISHUBBEKASI")

    def listed(api, query=""):
        return {r["tracking_number"] for r in api.get(f"/api/v1/reports{query}").json["reports"]}

    assert listed(api_as("KEMENHUB")) == {a}
    assert listed(api_as("KEMENHUB"), "?agency=POLRI") == set()
    assert listed(api_as("KEMENHUB"), "?agency=PUSAT") == set()
    assert listed(api_as("PEMKOTBEKASI")) == {parent, unit}
    assert listed(api_as("DISHUBBEKASI")) == {unit}
    assert listed(api_as("PEMKOTBEKASI"), "?agency=DISHUBBEKASI") == {unit}
    assert len(listed(api_as(admin=True))) == 5
    assert api_as("DISHUBBEKASI").get(f"/api/v1/reports/{parent}").status_code == 404


def test_the_central_queue_is_the_admins_only(api_as, seed) -> None:
    central = seed(None)
    for code in ("KEMENHUB", "OMBUDSMAN", "KEMENPANRB"):
        assert api_as(code).get(f"/api/v1/reports/{central}").status_code == 404
    assert api_as(admin=True).get(f"/api/v1/reports/{central}").json["agency"] == "PUSAT"


def test_webhook_deliveries_are_the_recipients_only(api_as, seed, settings, prefixes_file, receiver) -> None:
    from tests.agencies.conftest import add_to_agency

    add_to_agency(prefixes_file, "POLRI", webhook_url=receiver.url + "/hook")
    number = seed("KEMENHUB")
    admin = api_as(admin=True)
    assert admin.post(f"/api/v1/reports/{number}/disposition", {"to": "POLRI"}).status_code == 200
    [delivery] = admin.get("/api/v1/webhooks/deliveries").json["deliveries"]
    assert delivery["recipient"] == "POLRI"
    kemenhub, polri = api_as("KEMENHUB"), api_as("POLRI")
    assert kemenhub.get("/api/v1/webhooks/deliveries").json["deliveries"] == []
    assert kemenhub.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay").status_code == 404
    assert [d["id"] for d in polri.get("/api/v1/webhooks/deliveries").json["deliveries"]] == [delivery["id"]]


def test_monitoring_shows_the_callers_agencies_only(api_as, seed) -> None:
    seed("KEMENHUB")
    seed("POLRI")

    def agencies(api):
        return [row["agency"] for row in api.get("/api/v1/monitoring").json["agencies"]]

    assert agencies(api_as("KEMENHUB")) == ["KEMENHUB"]
    assert agencies(api_as("PEMKOTBEKASI"))[0] == "DBMSDABEKASI" and "POLRI" not in agencies(api_as("PEMKOTBEKASI"))
    assert set(agencies(api_as("KEMENDAGRI"))) >= {"KEMENDAGRI", "PEMKOTBEKASI", "DISHUBBEKASI"}
    assert "POLRI" not in agencies(api_as("KEMENDAGRI"))
    assert "PUSAT" in agencies(api_as("OMBUDSMAN")) and "PUSAT" in agencies(api_as(admin=True))


class TestReporterNumber:
    @pytest.mark.parametrize(("flags", "agency_sees", "admin_sees", "why"), [
        ({}, True, True, None),
        ({"anonymous": True}, False, True, "anonymous"),
        ({"confidential": True}, False, True, "confidential"),
        ({"confidential": True, "anonymous": True}, False, True, "confidential"),
    ])
    def test_who_sees_the_number(self, api_as, seed, flags, agency_sees, admin_sees, why) -> None:
        number = seed("KEMENHUB", reporter="+6281299990000", **flags)
        for api, sees in ((api_as("KEMENHUB"), agency_sees), (api_as(admin=True), admin_sees)):
            detail = api.get(f"/api/v1/reports/{number}").json
            listed = api.get("/api/v1/reports").json["reports"][0]
            for body in (detail, listed):
                assert body["reporter"] == ("+6281299990000" if sees else None)
                assert body["reporter_hidden"] == (None if sees else why)
            if not sees:
                assert "6281299990000" not in api.get(f"/api/v1/reports/{number}").get_data(as_text=True)


def test_open311_with_a_required_key_is_scoped_like_the_api(client, api_as, seed, settings) -> None:
    from sms_gateway.config import set_settings

    mine, theirs = seed("KEMENHUB"), seed("POLRI")
    settings._values["OPEN311_REQUIRE_KEY"] = True
    set_settings(settings)
    r = client.get("/open311/v2/requests.json")
    assert r.status_code == 401 and r.json[0]["code"] == 401
    assert client.get("/open311/v2/requests.json?api_key=lpr_nope").status_code == 403
    token = api_as("KEMENHUB").token
    ids = [row["service_request_id"] for row in client.get(f"/open311/v2/requests.json?api_key={token}").json]
    assert ids == [mine]
    assert client.get(f"/open311/v2/requests/{theirs}.json?api_key={token}").status_code == 404
    assert client.get(f"/open311/v2/requests/{mine}.json", headers={"Authorization": f"Bearer {token}"}).json[0][
        "service_request_id"] == mine
