"""The operations page: the figures of /metrics, retry and replay, and an operator who reads no complaint."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sms_gateway import queue
from sms_gateway.config import Settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, WebhookDelivery, utcnow
from sms_gateway.registry import registry_for
from sms_gateway.sender import HEARTBEAT_PREFIX
from sms_gateway.workspace import accounts
from tests.workspace.conftest import PASSWORD

SECRET_TEXT = "rahasia: sopir bus minta pungli di terminal"


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Kannel's status URL points at a closed port: the page says so (without the password)."""
    return {**env, "KANNEL_STATUS_URL": "http://127.0.0.1:9/status.xml?password=geheim-kannel"}


@pytest.fixture
def state(settings: Any) -> dict[str, int]:
    """Inbound traffic over the last hour, sends on twilio, a failed send and a failed webhook."""
    now = utcnow()
    with session_factory(settings.DATABASE_URL)() as session:
        ages = [timedelta(seconds=5), timedelta(seconds=20), timedelta(minutes=7), timedelta(minutes=30),
                timedelta(minutes=59), timedelta(minutes=90)]  # the last is outside the hour
        for i, age in enumerate(ages):
            session.add(InboundMessage(channel="twilio", external_id=f"SM{i}", sender=f"+62812000000{i}",
                                       text="KEMENHUB ADUAN bus", received_at=now - age,
                                       state="received" if i < 2 else "processed",
                                       processed_at=None if i < 2 else now - age))
        for i in range(3):
            session.add(OutboundMessage(idempotency_key=f"ok{i}", channel="twilio", recipient="+6281200000001",
                                        text="terima kasih", purpose="ack", state="sent", segments=1))
        failed = OutboundMessage(idempotency_key="bad", channel="twilio", recipient="+6281234567890",
                                 text=SECRET_TEXT, purpose="notify", state="failed", segments=1,
                                 error="number unreachable", error_code="21612", attempts=3)
        delivery = WebhookDelivery(idempotency_key="hook", recipient="KEMENHUB", recipient_kind="agency",
                                   event="report.created", payload={"report": {"text": SECRET_TEXT}},
                                   state="failed", attempts=5, response_status=500, error="HTTP 500: down")
        session.add_all([failed, delivery])
        session.commit()
        return {"sms": failed.id, "delivery": delivery.id}


@pytest.fixture
def operator(settings, workspace):  # type: ignore[no-untyped-def]
    with session_factory(settings.DATABASE_URL)() as session:
        user = accounts.create_user(session, registry_for(settings), email="ops@lapor.go.id", name="Operator",
                                    role="operator", agency=None, created_by="test")
        accounts.set_password(session, user, PASSWORD, PASSWORD)
        session.commit()
    ws = workspace()
    ws.login("ops@lapor.go.id")
    return ws


def _metric(body: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", body, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def _cell(html: str, row_id: str, column: int) -> str:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert row, f"no row {row_id}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    return re.sub(r"<[^>]+>", "", cells[column]).strip()


def test_the_page_shows_the_figures_of_metrics(client, settings, state, central) -> None:
    queue.get_redis(settings).set(HEARTBEAT_PREFIX + "gw1:4242", "twilio,kannel", ex=60)  # a live sender
    queue.get_queue(settings, queue.DEFAULT).enqueue("sms_gateway.jobs.sweep", job_id="waiting-job")
    html = central.get("/ops").get_data(as_text=True)
    body = client.get("/metrics").get_data(as_text=True)
    minute = re.search(r'id="surge-minute">(\d+)<', html)
    hour = re.search(r'id="surge-hour">(\d+)<', html)
    assert minute and hour
    assert int(minute.group(1)) == _metric(body, "sms_gateway_inbound_last_minute") == 2
    assert int(hour.group(1)) == _metric(body, "sms_gateway_inbound_last_hour") == 5
    assert int(_cell(html, "q-inbound-db", 1)) == _metric(body, "sms_gateway_inbound_waiting") == 2
    twilio = '{channel="twilio"}'
    assert int(_cell(html, "sends-twilio", 1)) == _metric(body, "sms_gateway_sends_last_hour", twilio) == 4
    assert int(_cell(html, "sends-twilio", 2)) == _metric(body, "sms_gateway_sends_failed_last_hour",
                                                          '{channel="twilio"}') == 1
    assert _cell(html, "sends-twilio", 3) == "25.0%"
    assert int(_cell(html, "q-rq-default", 1)) == _metric(body, "sms_gateway_queue_jobs", '{queue="default"}') == 1
    assert _cell(html, "q-rq-default", 2).endswith(" s") and _cell(html, "q-rq-inbound", 2) == "—"
    assert 0 <= _metric(body, "sms_gateway_queue_oldest_seconds", '{queue="default"}') < 60
    assert html.count("<rect ") == 60  # one bar per minute
    assert "sender gw1:4242" in html and "twilio,kannel" in html and _metric(body, "sms_gateway_senders") == 1
    # Kannel unreachable: said, with the error, and without its admin password.
    assert "Tidak terjangkau (http://127.0.0.1:9/status.xml)" in html and "geheim-kannel" not in html
    # The failed send and webhook are listed with their reason, and the page refreshes itself.
    assert "number unreachable" in _cell(html, f"sms-{state['sms']}", 4)
    assert "HTTP 500" in _cell(html, f"webhook-{state['delivery']}", 3)
    assert 'hx-trigger="every 10s"' in html
    fragment = central.get("/ops", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.startswith('\n<div id="ops"') or fragment.lstrip().startswith('<div id="ops"')
    assert "<html" not in fragment


def test_retry_and_replay_from_the_page(settings, state, central, people, workspace) -> None:
    assert central.post(f"/ops/sms/{state['sms']}/retry", csrf=False).status_code == 400  # no CSRF token
    assert central.post(f"/ops/sms/{state['sms']}/retry").status_code == 302
    assert central.post(f"/ops/webhooks/{state['delivery']}/replay").status_code == 302
    with session_factory(settings.DATABASE_URL)() as session:
        sms = session.get(OutboundMessage, state["sms"])
        delivery = session.get(WebhookDelivery, state["delivery"])
        assert sms is not None and (sms.state, sms.attempts) == ("queued", 0)
        assert delivery is not None and delivery.state == "pending"
    html = central.get("/ops").get_data(as_text=True)
    assert f"SMS #{state['sms']} diantrekan ulang." in html
    assert central.post(f"/ops/sms/{state['sms']}/retry").status_code == 302  # queued: nothing to retry
    assert "tidak bisa dikirim ulang" in central.get("/ops").get_data(as_text=True)

    for email, role in (("staf@dephub.go.id", "staff"), ("kepala@dephub.go.id", "admin")):
        people(email, agency="KEMENHUB", role=role)
        agency = workspace()
        agency.login(email)
        assert agency.get("/ops").status_code == 404
        assert agency.post(f"/ops/sms/{state['sms']}/retry").status_code == 404
        assert agency.post(f"/ops/webhooks/{state['delivery']}/replay").status_code == 404
        assert "Operasional" not in agency.get("/").get_data(as_text=True)


def test_an_operator_sees_operations_and_no_complaint(settings, seed, state, operator) -> None:
    number = seed("KEMENHUB", text=SECRET_TEXT)
    home = operator.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/ops")
    html = operator.get("/ops").get_data(as_text=True)
    assert "Operasional" in html and "Kotak masuk" not in html
    assert SECRET_TEXT not in html  # the failed SMS is listed by purpose, masked number and reason only
    assert "+6281234567890" not in html and "number unreachable" in html
    for path in (f"/reports/{number}", "/export.csv", "/desk", "/admin/staff", "/?queue=all"):
        assert operator.get(path).status_code in (404, 302), path
        assert SECRET_TEXT not in operator.get(path).get_data(as_text=True)
    assert operator.get(f"/reports/{number}").status_code == 404
    assert operator.get("/export.csv").status_code == 404
    assert operator.post(f"/reports/{number}/note", {"text": "x"}).status_code == 404
    assert operator.post(f"/ops/sms/{state['sms']}/retry").status_code == 302  # its job
    assert operator.get("/account").status_code == 200
    assert operator.post("/logout").status_code == 302 and operator.get("/ops").status_code == 302  # signed out
    with session_factory(settings.DATABASE_URL)() as session:
        assert session.scalar(select(OutboundMessage.state).where(OutboundMessage.id == state["sms"])) == "queued"


KANNEL_XML = """<?xml version="1.0"?>
<gateway><version>1.4.5</version><status>running, uptime 0d 1h 2m 3s</status>
<smscs><count>1</count><smsc><name>SMPP:telkomsel</name><id>telkomsel</id><status>online 3723s</status></smsc></smscs>
</gateway>"""


def test_kannel_status_is_read_from_its_status_page(env) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sms_gateway.workspace import operations

    class Kannel(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = KANNEL_XML.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Kannel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/status.xml?password=x"
        status = operations.kannel_status(Settings({**env, "KANNEL_STATUS_URL": url}))
    finally:
        server.shutdown()
    assert status is not None and status.ok and status.http_status == 200
    assert status.gateway == "running, uptime 0d 1h 2m 3s"
    assert status.smscs == [("telkomsel", "online 3723s")]
    assert "password" not in status.url


def test_user_create_operator_makes_an_account_of_no_agency(settings, workspace) -> None:
    from click.testing import CliRunner

    from sms_gateway.cli import main
    from sms_gateway.models import User

    refused = CliRunner().invoke(main, ["user", "create", "noc@lapor.go.id", "--operator", "--agency", "KEMENHUB"])
    assert refused.exit_code != 0 and "--operator" in refused.output
    result = CliRunner().invoke(main, ["user", "create", "NOC@lapor.go.id", "--operator", "--name", "NOC"])
    assert result.exit_code == 0, result.output
    assert "(operator)" in result.output and "/password/" in result.output.strip().splitlines()[-1]
    with session_factory(settings.DATABASE_URL)() as session:
        user = session.scalar(select(User).where(User.email == "noc@lapor.go.id"))
        assert user is not None and (user.role, user.agency) == ("operator", None)
