"""Fixtures: a real database (SQLite and PostgreSQL), a real Redis, a local fake Twilio API.

Environment:
- ``TEST_POSTGRES_URL``: PostgreSQL for the suite (default: the local server's
  ``test`` database). ``skip`` leaves PostgreSQL out; in CI (``CI`` set) an
  unreachable server fails the run instead of skipping.
- ``TEST_REDIS_URL``: Redis database the suite flushes (default db 15).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from sms_gateway import queue as q
from sms_gateway.cli import upgrade_database
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from sms_gateway.db import Base, dispose_engines
from tests.support import FakeTwilioAPI

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TWILIO_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_BASE = "https://gateway.example.id"


def _postgres_available() -> str | None:
    if POSTGRES_URL == "skip":
        return "TEST_POSTGRES_URL=skip"
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"PostgreSQL at {POSTGRES_URL} is required in CI: {exc}") from exc
        return f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
    return None


_MIGRATED: dict[str, str] = {}


def _migrated(backend: str, tmp_root: Path) -> str:
    if backend in _MIGRATED:
        return _MIGRATED[backend]
    if backend == "sqlite":
        url = f"sqlite:///{tmp_root / 'test.sqlite3'}"
    else:
        reason = _postgres_available()
        if reason:
            pytest.skip(reason)
        url = POSTGRES_URL
        engine = create_engine(url)
        with engine.begin() as conn:  # start from an empty schema, whatever a previous run left
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade_database(Settings({"DATABASE_URL": url}))
    _MIGRATED[backend] = url
    return url


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    if url.startswith("postgresql"):
        for attempt in range(2):
            try:
                with engine.begin() as conn:
                    conn.execute(text("SET LOCAL lock_timeout = '10s'"))
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                break
            except OperationalError:
                if attempt:
                    raise
                # A previous test's server thread (a streamed response the browser let go of) can leave its
                # connection idle in a transaction; TRUNCATE would wait for it until CI's time runs out.
                with engine.begin() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                      " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                                      " AND state LIKE 'idle in transaction%'"))
    else:
        with engine.begin() as conn:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    engine.dispose()


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database on the TEST_POSTGRES_URL server, dropped afterwards."""
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_root: Path) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    url = _migrated(request.param, tmp_root)
    _empty_tables(url)
    yield url
    dispose_engines()


@pytest.fixture
def redis_conn() -> Iterator[Redis]:
    """The test Redis database, flushed before and after."""
    conn = Redis.from_url(REDIS_URL)
    conn.flushdb()
    q.reset_connections()
    yield conn
    conn.flushdb()
    q.reset_connections()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioAPI]:
    """Twilio's REST API on loopback, recording every call."""
    api = FakeTwilioAPI().start()
    yield api
    api.stop()


@pytest.fixture
def prefixes_file(tmp_path: Path) -> Path:
    """A copy of the shipped prefixes.yaml that a test may edit."""
    path = tmp_path / "prefixes.yaml"
    shutil.copy(PROJECT_ROOT / "prefixes.yaml", path)
    return path


@pytest.fixture
def env(db_url: str, redis_conn: Redis, fake_twilio: FakeTwilioAPI, prefixes_file: Path,
        tmp_path: Path) -> dict[str, str]:
    """Environment of a gateway wired to the real test database, Redis and fake Twilio."""
    return {
        "SPOOL_DIR": str(tmp_path / "spool"),
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "PREFIXES_FILE": str(prefixes_file),
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "TWILIO_ACCOUNT_SID": "ACtest",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "1708",
        "TWILIO_API_BASE_URL": fake_twilio.url,
        "JOB_RETRY_INTERVALS": "0",
        "SEND_TIMEOUT": "5",
        # Rates a test never waits for; tests of the rate limiter set their own.
        "TWILIO_MPS": "1000",
        "KANNEL_MPS": "1000",
        "MODEM_MPM": "60000",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Iterator[Settings]:
    """The gateway's settings for this test, installed as the process's settings."""
    s = Settings(env)
    set_settings(s)
    yield s
    set_settings(None)


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from sms_gateway.web import create_app

    flask_app = create_app(settings)
    flask_app.testing = True
    return flask_app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def run_jobs(settings: Settings) -> None:
    """Process the stored messages (the workers' inbound loop, drained), run every queued job
    in-process (RQ SimpleWorker, burst), send every due SMS (the senders, drained), until
    nothing is left."""
    from sms_gateway import pipeline, sender
    from sms_gateway.config import get_settings

    conn = q.get_redis(settings)
    queues = [q.get_queue(settings, name) for name in q.QUEUES]
    for _ in range(5):
        # As the processes do: with the settings in force (a test may have installed its own).
        processed = pipeline.drain(get_settings())  # what a worker's inbound loop does
        SimpleWorker(queues, connection=conn).work(burst=True, with_scheduler=False)
        sent = sender.drain_all(get_settings())
        if not processed and not sent and not any(queue.count for queue in queues):
            return


@pytest.fixture
def work(settings: Settings):  # type: ignore[no-untyped-def]
    """Call ``work()`` to run the queued jobs."""
    return lambda: run_jobs(settings)
