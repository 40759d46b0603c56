"""The real `sms-gateway modem` process against Gammu's dummy phone, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from sms_gateway.config import Settings, set_settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from tests.channels.modem_dummy import DummyPhone
from tests.channels.test_modem import run_inbound

GATEWAY = str(Path(sys.executable).parent / "sms-gateway")


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_modem_process_receives_answers_reports_status_and_stops_on_sigterm(env, tmp_path):
    phone = DummyPhone(tmp_path)
    phone.create_folders()
    phone.write_config()
    proc_env = {**os.environ, **env, "MODEM_POLL_INTERVAL": "0.2", "MODEM_STATUS_INTERVAL": "1",
                "LOG_LEVEL": "INFO"}
    settings = Settings(env)
    sessions = session_factory(settings.DATABASE_URL)
    log_path = tmp_path / "modem.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen([GATEWAY, "modem", "--config", str(phone.gammurc)], env=proc_env,
                                stdout=log_file, stderr=subprocess.STDOUT)
    try:
        path = phone.deliver("081234567890", "KEMENHUB ADUAN bus AKAP masih jual tiket ke solo")

        def stored():
            with sessions() as session:
                return session.scalar(select(InboundMessage).where(InboundMessage.channel == "modem"))

        inbound = wait_for(stored, what="the SMS to be stored")
        wait_for(lambda: not path.exists(), what="the SMS to be deleted from the modem")
        assert inbound.text == "KEMENHUB ADUAN bus AKAP masih jual tiket ke solo"

        set_settings(settings)
        run_inbound(settings)  # the general worker's part: report and reply
        set_settings(None)

        def sent():
            with sessions() as session:
                reply = session.scalar(select(OutboundMessage))
                return reply if reply is not None and reply.state == "sent" else None

        reply = wait_for(sent, what="the reply to be sent by the modem process")
        assert reply.channel == "modem" and reply.provider_id == "gammu:255"
        with sessions() as session:
            assert session.scalar(select(Report.agency)) == "KEMENHUB"

        def status():
            result = subprocess.run([GATEWAY, "modem", "--status", "--json"], env=proc_env,
                                    capture_output=True, text=True, timeout=30)
            record = json.loads(result.stdout)["modems"]
            return (result, record[0]) if record and record[0]["sent"] == 1 else None

        result, record = wait_for(status, what="a status record showing the send")
        assert result.returncode == 0
        assert (record["connected"], record["received"], record["sent"], record["signal_percent"]) == \
            (True, 1, 1, 42)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        set_settings(None)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert "got SIGTERM; finishing the current message" in output
    assert "modem: stopped cleanly (received 1, sent 1, failed 0)" in output
    final = subprocess.run([GATEWAY, "modem", "--status"], env=proc_env, capture_output=True, text=True,
                           timeout=30)
    assert final.returncode == 1 and ": stopped" in final.stdout
