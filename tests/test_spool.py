"""The local spool, with the database cut for real: a TCP proxy in front of PostgreSQL that the
test closes (every connection reset, new ones refused) and opens again."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import func, select

from sms_gateway import spool
from sms_gateway.config import Settings, set_settings
from sms_gateway.db import dispose_engines, session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from sms_gateway.web import create_app
from tests.channels.test_twilio import post_signed, sms_params
from tests.chaos.harness import TcpProxy, wait_for
from tests.conftest import run_jobs


@pytest.fixture
def proxy(db_url: str):  # type: ignore[no-untyped-def]
    if not db_url.startswith("postgresql"):
        pytest.skip("the cut is a TCP proxy in front of PostgreSQL")
    parts = urlsplit(db_url)
    server = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    yield server, urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{server.port}"))
    server.close()
    dispose_engines()


def count(url: str, model) -> int:  # type: ignore[no-untyped-def]
    with session_factory(url)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def metric(client, name: str) -> float:  # type: ignore[no-untyped-def]
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_webhooks_spool_while_the_database_is_cut_and_replay_exactly_once(proxy, env, db_url, redis_conn,
                                                                         fake_twilio) -> None:
    server, through_proxy = proxy
    settings = Settings({**env, "DATABASE_URL": through_proxy, "SPOOL_REPLAY_INTERVAL": "0.2"})
    set_settings(settings)
    app = create_app(settings)
    client = app.test_client()
    assert post_signed(client, sms_params(sid="SMbefore")).status_code == 200

    server.cut()
    during = [sms_params(body=f"PLN ADUAN listrik mati di gang {i}", sid=f"SMcut{i}", sender=f"08123450000{i}")
              for i in range(5)]
    for params in during:
        response = post_signed(client, params)
        assert response.status_code == 200, response.get_data(as_text=True)  # not a 5xx Twilio would drop
    assert post_signed(client, during[0]).status_code == 200  # Twilio's retry of one of them, spooled again
    assert spool.depth(settings) == 6
    assert metric(client, "sms_gateway_spool_messages") == 6
    assert metric(client, "sms_gateway_database_up") == 0
    assert client.get("/healthz").status_code == 503
    # The replayer may already have moved the first records aside (and found the database still down).
    lines = [line for path in spool.spool_dir(settings).glob("inbound*") for line in path.read_text().splitlines()]
    assert sorted(json.loads(line)["external_id"] for line in lines) == sorted(
        [*(p["MessageSid"] for p in during), "SMcut0"])

    time.sleep(1.1)
    cut_ended = datetime.now(UTC)
    server.restore()
    wait_for(lambda: spool.depth(settings) == 0, 20, "the replayer to empty the spool")
    assert count(db_url, InboundMessage) == 6  # one before, five during: the retry stored nothing twice
    assert spool.replay(settings) == 0  # nothing left, nothing stored again
    run_jobs(settings)
    assert count(db_url, Report) == 6
    with session_factory(db_url)() as session:
        recipients = sorted(session.scalars(select(OutboundMessage.recipient)))
        spooled = session.scalar(select(InboundMessage).where(InboundMessage.external_id == "SMcut3"))
        assert spooled is not None and spooled.meta["spooled"] is True
        # Received when it reached us, not when the database came back: deadlines count from then.
        assert spooled.received_at < cut_ended
    assert len(recipients) == len(set(recipients)) == 6
    assert len(fake_twilio.messages) == 6
    assert metric(client, "sms_gateway_spool_messages") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_torn_last_record_is_left_out_and_a_rejected_one_kept(settings) -> None:
    folder = spool.spool_dir(settings)
    folder.mkdir(parents=True)
    good = {"channel": "twilio", "external_id": "SMok", "sender": "081234567890", "recipient": "1708",
            "text": "PLN ADUAN", "provider_time": None, "incomplete": False, "meta": {}}
    (folder / spool.ACTIVE).write_text(json.dumps(good) + "\n" + "{not json}\n" + '{"channel": "twi')
    assert spool.depth(settings) == 2  # the torn line never ended: it was never acknowledged
    assert spool.replay(settings) == 1
    assert count(settings.DATABASE_URL, InboundMessage) == 1
    assert (folder / spool.REJECTED).read_text() == "{not json}\n"
    assert spool.depth(settings) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_spool_commands(settings, redis_conn) -> None:
    from click.testing import CliRunner

    from sms_gateway.channels.base import IncomingSMS
    from sms_gateway.cli import main

    spool.append(settings, IncomingSMS(channel="twilio", external_id="SMcli", sender="081234567890", text="PLN"))
    runner = CliRunner()
    status = runner.invoke(main, ["spool", "status"])
    assert status.exit_code == 1 and status.output.startswith("1 message(s) in ")
    replay = runner.invoke(main, ["spool", "replay"])
    assert replay.exit_code == 0 and "1 message(s) stored, 0 left" in replay.output
    assert runner.invoke(main, ["spool", "status"]).exit_code == 0
