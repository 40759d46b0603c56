"""The OpenAPI document is valid, lists every route, and matches what the endpoints answer."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from sms_gateway.agencies.api import openapi_document


def routes(app) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/v1", "/open311/v2")):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            found.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    return found


def test_the_document_is_valid_openapi() -> None:
    validate(openapi_document())


def test_every_route_is_documented_and_every_documented_path_exists(app) -> None:
    documented = {path: {m for m in ops if m in ("get", "post", "put", "patch", "delete")}
                  for path, ops in openapi_document()["paths"].items()}
    assert documented == routes(app)


def test_the_served_document_is_the_file(client) -> None:
    assert client.get("/api/v1/openapi.json").json == openapi_document()


def check(body, schema_name: str) -> None:
    doc = openapi_document()
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}",
                                      "components": doc["components"]})
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.fixture
def busy_report(seed, api_as):
    number = seed("PEMKOTBEKASI", confidential=True)
    api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "DISHUBBEKASI"})
    return number


def test_answers_match_their_schemas(api_as, busy_report, client, seed) -> None:
    admin, dishub = api_as(admin=True), api_as("DISHUBBEKASI")
    check(admin.get("/api/v1/reports").json, "ReportList")
    check(dishub.get(f"/api/v1/reports/{busy_report}").json, "ReportDetail")
    check(dishub.post(f"/api/v1/reports/{busy_report}/status", {"status": "ditindaklanjuti"}).json, "ActionResult")
    check(dishub.post(f"/api/v1/reports/{busy_report}/reply", {"text": "sudah ditertibkan"}).json, "ReplyResult")
    returned = api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{seed('PEMKOTBEKASI')}/disposition",
                                           {"return_to_central": True, "reason": "bukan wewenang"})
    check(returned.json, "ActionResult")
    check(admin.get("/api/v1/monitoring").json, "Monitoring")
    check(dishub.get("/api/v1/me").json, "Me")
    for row in client.get("/open311/v2/services.json").json:
        check(row, "Open311Service")
    check(dishub.get("/api/v1/reports/12345674").json, "Error")


def test_open311_requests_match_their_schema(client, seed) -> None:
    seed("KEMENHUB")
    seed(None, status="selesai")
    rows = client.get("/open311/v2/requests.json").json
    assert len(rows) == 2
    for row in rows:
        check(row, "Open311Request")


def test_unknown_paths_and_methods_answer_in_json_under_the_api_only(client, api_as) -> None:
    api = api_as("KEMENHUB")
    r = api.get("/api/v1/laporan")
    assert r.status_code == 404 and r.json["status"] == 404
    r = api.client.delete("/api/v1/reports", headers={"Authorization": f"Bearer {api.token}"})
    assert r.status_code == 405 and r.json["status"] == 405 and "GET" in r.headers["Allow"]
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.mimetype == "text/html"  # other paths keep Flask's answer
