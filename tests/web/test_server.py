"""The web process as operators run it: `sms-gateway web` (gunicorn) under concurrent webhooks.

The Flask test client runs the app in the test's own thread; this starts the
real server, with each worker class it supports, and posts signed webhooks
from many connections at once, duplicates (Twilio retries) included.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from sms_gateway.config import PROJECT_ROOT
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage
from tests.channels.test_twilio import sms_params
from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN, run_jobs
from tests.support import twilio_signature
from tests.test_ingest import queued_ids

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["gevent", "gthread"])
def server(request: pytest.FixtureRequest, env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`sms-gateway web` with two workers of the given class; yields its base URL."""
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sms_gateway.cli", "web"], cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "2",
                 "WEB_WORKER_CLASS": request.param, "WEB_THREADS": "8"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # still booting: a loaded machine takes seconds to import the app
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(url: str, params: dict[str, str], signature: str | None = None) -> requests.Response:
    signature = signature or twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/sms/twilio", params)
    return requests.post(url + "/sms/twilio", data=params, headers={"X-Twilio-Signature": signature}, timeout=30)


def test_concurrent_webhooks_and_retries_each_store_one_message_and_one_reply(server, settings, redis_conn,
                                                                             fake_twilio) -> None:
    unique = [sms_params(body=f"PLN ADUAN listrik mati di gang {i}", sid=f"SM{i:032d}", sender=f"0812345{i:05d}")
              for i in range(40)]
    with ThreadPoolExecutor(max_workers=24) as pool:  # each message posted three times, concurrently
        responses = list(pool.map(lambda p: post(server, p), unique * 3))
    assert {(r.status_code, r.text) for r in responses} == {
        (200, '<?xml version="1.0" encoding="UTF-8"?><Response/>')}
    with session_factory(settings.DATABASE_URL)() as s:
        stored = s.scalars(select(InboundMessage)).all()
    assert sorted(m.external_id for m in stored) == sorted(p["MessageSid"] for p in unique)
    assert sorted(queued_ids(settings, redis_conn)) == sorted(m.id for m in stored)  # each handed on once

    run_jobs(settings)
    assert len(fake_twilio.messages) == 40
    with session_factory(settings.DATABASE_URL)() as s:
        assert {o.state for o in s.scalars(select(OutboundMessage))} == {"sent"}


def test_bad_requests_get_their_answer_from_the_real_server(server, settings) -> None:
    assert post(server, sms_params(), signature="forged").status_code == 403
    params = sms_params()
    del params["From"]
    missing = post(server, params)
    assert (missing.status_code, missing.text) == (400, "missing From\n")


def test_the_access_log_leaves_answered_webhooks_to_the_gateways_own_line(server, tmp_path: Path) -> None:
    params = sms_params(body="PLN ADUAN listrik mati", sid="SM" + "7" * 32, sender="081234500077")
    assert post(server, params).status_code == 200
    assert post(server, params, signature="forged").status_code == 403
    assert requests.get(server + "/livez", timeout=10).status_code == 200
    log = tmp_path / "web.log"
    deadline = time.monotonic() + 10
    while '"GET /livez" 200' not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    access = [line for line in log.read_text().splitlines() if '" 200 ' in line or '" 403 ' in line]
    assert any('"POST /sms/twilio" 403' in line for line in access)  # refused: an operator must see it
    assert any('"GET /livez" 200' in line for line in access)  # every other request keeps its line
    assert not any('"POST /sms/twilio" 200' in line for line in access), access  # said once, by the gateway


def test_gunicorns_master_imports_no_application_code() -> None:
    # gunicorn's master loads the logger class before it forks; the gevent workers
    # monkey-patch after the fork. psycopg imported before the patch waits for the
    # database without yielding: one outage then froze whole workers (chaos test c).
    code = ("import sys, sms_gateway.access_log; print(sorted(m for m in ('psycopg', 'flask', 'sqlalchemy', "
            "'redis', 'urllib3', 'sms_gateway.web') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]"
