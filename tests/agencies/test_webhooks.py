"""Webhook push to agencies: HMAC-SHA256 signature, retries with backoff, delivery log, replay."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sms_gateway import queue as q
from sms_gateway.agencies import push
from sms_gateway.cli import main
from sms_gateway.db import session_factory
from sms_gateway.models import Report, WebhookDelivery
from tests.agencies.conftest import WEBHOOK_SECRET, add_to_agency
from tests.channels.test_twilio import post_signed, sms_params


def deliveries(settings) -> list[WebhookDelivery]:
    with session_factory(settings.DATABASE_URL)() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def agency_key(code: str) -> str:
    """The key an agency is given, computed here independently of the gateway's code."""
    return hmac.new(WEBHOOK_SECRET.encode(), f"webhook:{code}".encode(), hashlib.sha256).hexdigest()


def verify(request, code: str) -> bool:
    """What an agency's receiver does with the headers."""
    timestamp = request.headers["X-Lapor-Timestamp"]
    expected = hmac.new(agency_key(code).encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    return hmac.compare_digest(request.headers["X-Lapor-Signature"], "sha256=" + expected.hexdigest())


@pytest.fixture
def hooked(prefixes_file, receiver):
    """KEMENHUB and DISHUBBEKASI push to the local receiver."""
    add_to_agency(prefixes_file, "KEMENHUB", webhook_url=receiver.url + "/lapor/kemenhub")
    add_to_agency(prefixes_file, "DISHUBBEKASI", webhook_url=receiver.url + "/lapor/dishub")
    return receiver


def test_a_new_report_is_pushed_signed_to_its_agency(client, settings, work, hooked) -> None:
    params = sms_params(body="KEMENHUB ADUAN RAHASIA bus angkut pemudik di terminal", sender="081234567890")
    assert post_signed(client, params).status_code == 200
    work()
    [request] = hooked.requests
    assert request.path == "/lapor/kemenhub" and request.method == "POST"
    assert request.headers["Content-Type"].startswith("application/json")
    assert verify(request, "KEMENHUB")
    assert not verify(request, "POLRI")  # each agency has its own key
    body = json.loads(request.body)
    with session_factory(settings.DATABASE_URL)() as s:
        number = s.scalars(select(Report.tracking_number)).one()
    assert body["event"] == request.headers["X-Lapor-Event"] == "report.created"
    assert body["delivery_id"] == int(request.headers["X-Lapor-Delivery"])
    report = body["data"]["report"]
    assert (report["tracking_number"], report["agency"], report["confidential"]) == (number, "KEMENHUB", True)
    assert report["reporter"] is None and "81234567890" not in request.body.decode()
    [row] = deliveries(settings)
    assert (row.state, row.attempts, row.response_status, row.url) == ("delivered", 1, 200,
                                                                       hooked.url + "/lapor/kemenhub")


def test_the_cli_prints_the_key_the_agency_verifies_with(settings) -> None:
    result = CliRunner().invoke(main, ["agency", "webhook", "secret", "kemenhub"])
    assert result.exit_code == 0 and result.output.strip() == agency_key("KEMENHUB")


def test_a_disposition_is_pushed_to_the_new_agency(settings, work, hooked, api_as, seed) -> None:
    number = seed("PEMKOTBEKASI")
    api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "DISHUBBEKASI", "note": "terminal"})
    work()
    [request] = hooked.requests
    assert request.path == "/lapor/dishub" and verify(request, "DISHUBBEKASI")
    body = json.loads(request.body)
    assert body["event"] == "report.disposed"
    assert body["data"]["report"]["agency"] == "DISHUBBEKASI"
    assert body["data"]["report"]["history"][-1]["note"] == "terminal"


def test_server_errors_are_retried_until_delivered(settings, work, hooked, seed, api_as) -> None:
    hooked.script.extend([500, 503])
    number = seed(None)
    api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    work()
    assert len(hooked.requests) == 3
    ids = {r.headers["X-Lapor-Delivery"] for r in hooked.requests}
    assert len(ids) == 1  # the same delivery each time: receivers drop duplicates by it
    assert all(verify(r, "KEMENHUB") for r in hooked.requests)
    [row] = deliveries(settings)
    assert (row.state, row.attempts, row.response_status, row.error) == ("delivered", 3, 200, None)


def test_retries_use_the_backoff_and_stop_at_the_limit(env, hooked, seed, token_for) -> None:
    from sms_gateway.config import Settings, set_settings
    from sms_gateway.web import create_app
    from tests.agencies.conftest import Api
    from tests.conftest import run_jobs

    settings = Settings({**env, "JOB_RETRY_INTERVALS": "0", "WEBHOOK_MAX_ATTEMPTS": "3"})
    app = create_app(settings)
    hooked.script.extend([502] * 10)
    number = seed(None)
    Api(app.test_client(), token_for(admin=True)).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    run_jobs(settings)
    [row] = deliveries(settings)
    assert (row.state, row.attempts, row.response_status) == ("failed", 3, 502)
    assert row.error.startswith("HTTP 502")
    assert len(hooked.requests) == 3
    set_settings(None)


def test_the_job_is_enqueued_with_the_configured_backoff(env, redis_conn, seed) -> None:
    from sms_gateway.config import Settings, set_settings

    settings = Settings({**env, "JOB_RETRY_INTERVALS": "10,30,60,300"})
    set_settings(settings)
    try:
        push.enqueue_delivery(settings, 12345)
        [job] = q.get_queue(settings, q.DEFAULT).jobs
        assert job.func_name == "sms_gateway.jobs.deliver_webhook" and job.args == (12345,)
        assert job.retry_intervals == [10, 30, 60, 300] and job.retries_left >= 4
    finally:
        set_settings(None)


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_a_refusal_fails_at_once_visibly_and_can_be_replayed(settings, work, hooked, seed, api_as, status) -> None:
    hooked.script.append(status)
    number = seed(None)
    api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    work()
    [row] = deliveries(settings)
    assert (row.state, row.attempts, row.response_status) == ("failed", 1, status)
    assert row.error.startswith(f"HTTP {status}")
    listed = CliRunner().invoke(main, ["agency", "webhook", "deliveries", "--state", "failed"])
    assert f"#{row.id}" in listed.output and "error: HTTP" in listed.output
    # the agency fixed its receiver: replay from the CLI
    result = CliRunner().invoke(main, ["agency", "webhook", "replay", str(row.id)])
    assert result.exit_code == 0 and f"#{row.id}: replayed" in result.output
    work()
    [row] = deliveries(settings)
    assert (row.state, row.attempts, row.response_status) == ("delivered", 1, 200)
    assert [r.headers["X-Lapor-Delivery"] for r in hooked.requests] == [str(row.id)] * 2
    assert hooked.requests[0].body == hooked.requests[1].body


def test_replay_through_the_api(settings, work, hooked, seed, api_as) -> None:
    number = seed("PEMKOTBEKASI")
    api_as("PEMKOTBEKASI").post(f"/api/v1/reports/{number}/disposition", {"to": "DISHUBBEKASI"})
    dishub = api_as("DISHUBBEKASI")
    [delivery] = dishub.get("/api/v1/webhooks/deliveries").json["deliveries"]
    r = dishub.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert r.status_code == 409 and "pending" in r.json["error"]  # not sent yet: nothing to replay
    work()
    r = dishub.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert r.status_code == 202 and r.json["result"] == "replayed" and r.json["delivery"]["state"] == "pending"
    work()
    assert len(hooked.requests) == 2
    assert dishub.get("/api/v1/webhooks/deliveries?state=delivered").json["deliveries"][0]["attempts"] == 1


def test_no_secret_no_push(env, hooked, seed, token_for) -> None:
    from sms_gateway.config import Settings, set_settings
    from sms_gateway.web import create_app
    from tests.agencies.conftest import Api
    from tests.conftest import run_jobs

    settings = Settings({**env, "AGENCY_WEBHOOK_SECRET": ""})
    app = create_app(settings)
    number = seed(None)
    Api(app.test_client(), token_for(admin=True)).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    run_jobs(settings)
    [row] = deliveries(settings)
    assert row.state == "failed" and "AGENCY_WEBHOOK_SECRET is not set" in row.error
    assert hooked.requests == []
    set_settings(None)


def test_an_unreachable_receiver_is_retried_then_fails(env, prefixes_file, seed, token_for) -> None:
    from sms_gateway.config import Settings, set_settings
    from sms_gateway.web import create_app
    from tests.agencies.conftest import Api
    from tests.conftest import run_jobs

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    add_to_agency(prefixes_file, "KEMENHUB", webhook_url=f"http://127.0.0.1:{port}/hook")
    settings = Settings({**env, "WEBHOOK_MAX_ATTEMPTS": "2", "WEBHOOK_TIMEOUT": "2"})
    app = create_app(settings)
    number = seed(None)
    Api(app.test_client(), token_for(admin=True)).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    run_jobs(settings)
    [row] = deliveries(settings)
    assert (row.state, row.attempts) == ("failed", 2) and "ConnectionError" in row.error
    set_settings(None)


def test_agencies_without_a_webhook_get_no_delivery(settings, work, seed, api_as) -> None:
    number = seed(None)
    api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "POLRI"})
    work()
    assert deliveries(settings) == []


def test_the_sweeper_sends_a_delivery_whose_job_was_lost(settings, hooked, seed, api_as, redis_conn, work) -> None:
    import time_machine

    number = seed(None)
    api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    redis_conn.flushdb()  # Redis lost the job after our commit
    work()
    assert hooked.requests == []
    assert push.sweep_deliveries() == {"requeued": 0, "interrupted": 0}  # too recent to call it lost
    with time_machine.travel(deliveries(settings)[0].updated_at.timestamp() + 3600, tick=False):
        assert push.sweep_deliveries() == {"requeued": 1, "interrupted": 0}
        work()
    assert len(hooked.requests) == 1 and deliveries(settings)[0].state == "delivered"


def test_a_delivery_interrupted_mid_post_is_sent_again(settings, hooked, seed, api_as, work) -> None:
    import time_machine

    number = seed(None)
    api_as(admin=True).post(f"/api/v1/reports/{number}/disposition", {"to": "KEMENHUB"})
    row = deliveries(settings)[0]
    with session_factory(settings.DATABASE_URL)() as s:  # a worker died while POSTing
        s.get(WebhookDelivery, row.id).state = "delivering"
        s.commit()
    work()
    assert hooked.requests == []  # the claim keeps a second run off it
    with time_machine.travel(row.updated_at.timestamp() + 3600, tick=False):
        assert push.sweep_deliveries()["interrupted"] == 1
        work()
    assert len(hooked.requests) == 1 and deliveries(settings)[0].state == "delivered"
