"""The start-up check: each configuration error is one line naming the setting, and exit status 2."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sms_gateway.cli import main, upgrade_database
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from sms_gateway.preflight import check
from sms_gateway.web import create_app
from tests.conftest import POSTGRES_URL


def start(args: list[str], env: dict[str, str]) -> list[str]:
    """Run ``sms-gateway ARGS`` with ``env``; assert it refused to start; return its error lines."""
    set_settings(None)
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("sms-gateway: configuration error: ") for line in lines), result.stderr
    return [line.removeprefix("sms-gateway: configuration error: ") for line in lines]


def test_a_bad_number_is_one_line_and_exit_2_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sms_gateway", "web"], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "WEB_WORKERS": "abc", "PYTHONPATH": str(PROJECT_ROOT)},
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "sms-gateway: configuration error: WEB_WORKERS='abc': expected a whole number, e.g. WEB_WORKERS=2 "
        "(the default)"]


def test_every_bad_value_is_named_at_once(env: dict[str, str]) -> None:
    lines = start(["worker"], {**env, "LOG_LEVEL": "INFO,rq=LOUD", "WEB_WORKER_CLASS": "eventlet",
                               "SEND_TIMEOUT": "-1", "TWILIO_VALIDATE_SIGNATURE": "maybe",
                               "CONSOLE_CHANNELS": "twilio,pigeon", "JOB_RETRY_INTERVALS": "10,soon"})
    assert [line.split("=")[0] for line in lines] == [
        "TWILIO_VALIDATE_SIGNATURE", "CONSOLE_CHANNELS", "SEND_TIMEOUT", "JOB_RETRY_INTERVALS", "LOG_LEVEL",
        "WEB_WORKER_CLASS"]
    assert "expected true or false" in lines[0] and "unknown channel pigeon" in lines[1]
    assert "must not be negative" in lines[2] and "'rq=LOUD' is not a level" in lines[4]


def test_a_database_that_does_not_exist(env: dict[str, str]) -> None:
    if POSTGRES_URL == "skip":
        pytest.skip("TEST_POSTGRES_URL=skip")
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_database_1708"
    for role in (["db", "upgrade"], ["worker"]):
        [line] = start(role, {**env, "DATABASE_URL": url})
        assert line.startswith(f"DATABASE_URL={url}: cannot connect:")
        assert 'database "no_such_database_1708" does not exist' in line and "fix DATABASE_URL" in line


def test_an_unmigrated_database_stops_the_worker_but_not_the_web(env: dict[str, str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    [line] = start(["worker"], {**env, "DATABASE_URL": url})
    assert line.endswith("migrations pending (database at an empty schema, code needs "
                         f"{_head()}): run sms-gateway db upgrade")
    found = check(Settings({**env, "DATABASE_URL": url}), "web")
    assert found.errors == [] and "migrations pending" in found.warnings[0]


def _head() -> str:
    from sms_gateway.db import head_revision

    return str(head_revision())


def test_redis_and_registry_problems_name_their_setting(env: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    from sms_gateway import queue

    monkeypatch.setattr(queue, "LOCAL_REDIS_URL_FILE", tmp_path / "redis.url")  # no local run's Redis either
    broken = tmp_path / "prefixes.yaml"
    broken.write_text("agencies:\n  KEMENHUB: [not, a, mapping\n")
    lines = start(["scheduler"], {**env, "REDIS_URL": "", "PREFIXES_FILE": str(broken)})
    assert lines[0].startswith("REDIS_URL is not set: set it to")
    assert lines[1].startswith(f"PREFIXES_FILE: {broken}:")
    [missing] = start(["worker"], {**env, "PREFIXES_FILE": str(tmp_path / "nope.yaml")})
    assert missing.startswith(f"PREFIXES_FILE={tmp_path / 'nope.yaml'}: no such file")


def test_a_channel_that_receives_but_cannot_send_is_an_error_not_a_console_fallback(env: dict[str, str]) -> None:
    kannel = {**env, "KANNEL_INBOUND_TOKEN": "secret"}
    [line] = start(["worker"], kannel)
    assert line.startswith("KANNEL_SENDSMS_URL, KANNEL_USERNAME, KANNEL_PASSWORD not set: kannel messages are "
                           "accepted (KANNEL_INBOUND_TOKEN is set)")
    assert "CONSOLE_CHANNELS=kannel" in line
    assert check(Settings({**kannel, "CONSOLE_CHANNELS": "kannel"}), "worker").errors == []
    no_twilio = {**env, "TWILIO_ACCOUNT_SID": ""}
    [line] = start(["web"], no_twilio)
    assert line.startswith("TWILIO_ACCOUNT_SID not set: twilio messages are accepted")
    assert check(Settings({**no_twilio, "CONSOLE_CHANNELS": "*"}), "web").errors == []


def test_admin_sms_need_a_sending_channel(env: dict[str, str], prefixes_file: Path) -> None:
    text = prefixes_file.read_text().replace("  KEMENHUB:\n", "  KEMENHUB:\n    admin_number: \"+6281100001708\"\n", 1)
    prefixes_file.write_text(text)
    settings = Settings({**env, "NOTIFY_SMS_CHANNEL": "kannel"})
    [line] = check(settings, "scheduler").errors
    assert line.startswith("NOTIFY_SMS_CHANNEL=kannel: KANNEL_SENDSMS_URL") and "(+6281*******08…)" in line
    assert check(Settings(env), "scheduler").errors == []  # twilio is configured


def test_readiness_on_an_unmigrated_database(scratch_postgres: str, env: dict[str, str], caplog) -> None:
    app = create_app(Settings({**env, "DATABASE_URL": scratch_postgres}))
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        not_ready = client.get("/healthz")
        client.get("/healthz")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["database"] == (
        f"error: migrations pending (database at an empty schema, code needs {_head()}): "
        "run sms-gateway db upgrade")
    assert [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()] == [
        f"not ready: database: {not_ready.get_json()['database']}"]  # once, not once per probe
    assert client.get("/livez").status_code == 200
    upgrade_database(Settings({**env, "DATABASE_URL": scratch_postgres}))
    assert client.get("/healthz").status_code == 200


def test_readiness_names_redis_url(env: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    from sms_gateway import queue

    monkeypatch.setattr(queue, "LOCAL_REDIS_URL_FILE", tmp_path / "redis.url")
    down = create_app(Settings({**env, "REDIS_URL": ""})).test_client().get("/healthz")
    assert down.status_code == 503 and down.get_json()["redis"].startswith("error: REDIS_URL is not set")


def test_workspace_settings_are_checked_before_the_web_starts(env: dict[str, str]) -> None:
    lines = start(["web"], {**env, "WORKSPACE_LOGIN_LIMIT": "10 kali", "WORKSPACE_HOST_SUFFIX": "https://lapor.go.id",
                            "SECRET_KEY": "pendek"})
    assert [line.split("=")[0].split(" ")[0] for line in lines] == [
        "WORKSPACE_LOGIN_LIMIT", "WORKSPACE_HOST_SUFFIX", "SECRET_KEY"]
    assert "10/minute" in lines[0] and "bare domain" in lines[1] and "32 characters" in lines[2]
    fine = check(Settings({**env, "WORKSPACE_HOST_SUFFIX": "lapor.go.id", "SECRET_KEY": "k" * 40}), "web")
    assert fine.errors == [] and "is not on WORKSPACE_HOST_SUFFIX=lapor.go.id" in fine.warnings[-1]
    assert check(Settings({**env, "WORKSPACE_LOGIN_LIMIT": "10 kali"}), "worker").errors == []  # web roles only
