"""Open311 GeoReport v2: field mapping, filters, formats, and no personal data."""

from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from sms_gateway.agencies.open311 import scrub

WIB = ZoneInfo("Asia/Jakarta")
RECEIVED = datetime(2021, 5, 11, 10, 0, tzinfo=WIB)


def test_services_are_the_kinds_of_report(client) -> None:
    r = client.get("/open311/v2/services.json")
    assert r.status_code == 200
    services = {s["service_code"]: s for s in r.json}
    assert list(services) == ["aduan", "aspirasi", "info"]
    assert services["aduan"]["service_name"] == "Pengaduan"
    assert (services["aduan"]["metadata"], services["aduan"]["type"], services["aduan"]["group"]) == \
        (False, "realtime", "SP4N-LAPOR!")
    assert "keluhan" in services["aduan"]["keywords"].split(",")


def test_a_report_maps_to_a_service_request(client, seed) -> None:
    number = seed("KEMENHUB", special=True, received=RECEIVED, kind="aduan",
                  text="bus masih angkut pemudik di terminal pulogebang", reporter="+6281234567890")
    [row] = client.get(f"/open311/v2/requests/{number}.json").json
    assert row == {
        "service_request_id": number,
        "status": "open",
        "status_notes": "Status LAPOR!: diterima",
        "service_name": "Pengaduan",
        "service_code": "aduan",
        "description": "bus masih angkut pemudik di terminal pulogebang",
        "agency_responsible": "Kementerian Perhubungan",
        "service_notice": None,
        "requested_datetime": "2021-05-11T10:00:00+07:00",
        "updated_datetime": row["updated_datetime"],
        "expected_datetime": "2021-05-18T23:59:59+07:00",  # follow-up due (special: 2 working days)
        "address": None, "address_id": None, "zipcode": None, "lat": None, "long": None, "media_url": None,
    }


@pytest.mark.parametrize(("status", "open311"), [
    ("diterima", "open"), ("diverifikasi", "open"), ("didisposisikan", "open"), ("ditindaklanjuti", "open"),
    ("selesai", "closed"), ("diarsipkan", "closed"),
])
def test_statuses_map_to_open_and_closed(client, seed, status, open311) -> None:
    number = seed("KEMENHUB", status=status)
    [row] = client.get(f"/open311/v2/requests/{number}.json").json
    assert (row["status"], row["status_notes"]) == (open311, f"Status LAPOR!: {status}")


def test_personal_data_is_removed(client, seed) -> None:
    text = ("pungli di kantor samsat, hubungi saya 0812-3456-7890 atau budi.s@mail.co.id, "
            "NIK 3275012345670001")
    seed("POLRI", text=text, reporter="+6281299990000", anonymous=True)
    secret = seed("POLRI", text="rahasia: nama petugas Y", confidential=True)
    body = client.get("/open311/v2/requests.json").get_data(as_text=True)
    for leak in ("6281299990000", "0812-3456-7890", "budi.s@mail.co.id", "3275012345670001", "rahasia"):
        assert leak not in body
    [row] = client.get("/open311/v2/requests.json").json
    assert row["description"] == ("pungli di kantor samsat, hubungi saya [nomor disembunyikan] atau "
                                  "[email disembunyikan], NIK [NIK disembunyikan]")
    assert client.get(f"/open311/v2/requests/{secret}.json").status_code == 404


def test_scrub_keeps_ordinary_numbers() -> None:
    assert scrub("bus B 7012 XY, tarif 150000, jam 10.30") == "bus B 7012 XY, tarif 150000, jam 10.30"
    assert scrub("wa ke +62 811-1000-002 ya") == "wa ke [nomor disembunyikan] ya"


def test_filters_by_id_service_status_and_dates(client, seed) -> None:
    old = seed("KEMENHUB", received=datetime(2021, 5, 3, 9, tzinfo=WIB), kind="info")
    mid = seed("POLRI", received=datetime(2021, 5, 11, 9, tzinfo=WIB), status="selesai")
    new = seed(None, received=datetime(2021, 5, 20, 9, tzinfo=WIB), kind="aspirasi")

    def ids(query: str) -> list[str]:
        r = client.get(f"/open311/v2/requests.json?{query}")
        assert r.status_code == 200, r.json
        return [row["service_request_id"] for row in r.json]

    window = "start_date=2021-05-01T00:00:00Z&end_date=2021-05-31T00:00:00Z"
    assert ids(window) == [new, mid, old]  # newest first
    assert ids(f"{window}&service_code=info,aspirasi") == [new, old]
    assert ids(f"{window}&status=closed") == [mid]
    assert ids(f"{window}&status=open") == [new, old]
    assert ids("start_date=2021-05-10T00:00:00%2B07:00&end_date=2021-05-12T00:00:00%2B07:00") == [mid]
    assert ids(f"service_request_id={old},{new}&status=closed") == [new, old]  # ids win over filters
    assert ids("") == []  # default window: the last 90 days
    [central] = client.get(f"/open311/v2/requests/{new}.json").json
    assert central["agency_responsible"] == "LAPOR! pusat"


@pytest.mark.parametrize(("query", "reason"), [
    ("status=pending", "status must be open, closed"),
    ("service_code=keluhan", "unknown service_code 'keluhan'"),
    ("start_date=kemarin", "start_date must be an ISO 8601"),
])
def test_bad_parameters_get_a_geoerport_error_list(client, query, reason) -> None:
    r = client.get(f"/open311/v2/requests.json?{query}")
    assert r.status_code == 400
    [error] = r.json
    assert error["code"] == 400 and reason in error["description"]


def test_unknown_request_and_format(client, seed) -> None:
    r = client.get("/open311/v2/requests/12345674.json")
    assert r.status_code == 404 and r.json[0]["code"] == 404
    assert client.get("/open311/v2/services.csv").status_code == 404
    r = client.get("/open311/v2/nothing.json")
    assert r.status_code == 404 and r.json[0]["code"] == 404


def test_xml_is_served_too(client, seed) -> None:
    number = seed("KEMENHUB", received=RECEIVED)
    r = client.get(f"/open311/v2/requests/{number}.xml")
    assert r.status_code == 200 and r.mimetype == "text/xml"
    root = ElementTree.fromstring(r.data)
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request.findtext("service_request_id") == number
    assert request.findtext("status") == "open"
    assert request.findtext("expected_datetime") == "2021-05-21T23:59:59+07:00"
    services = ElementTree.fromstring(client.get("/open311/v2/services.xml").data)
    assert [s.findtext("service_code") for s in services.findall("service")] == ["aduan", "aspirasi", "info"]
    bad = client.get("/open311/v2/requests.xml?status=x")
    assert bad.status_code == 400 and ElementTree.fromstring(bad.data).find("error").findtext("code") == "400"
