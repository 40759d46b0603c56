"""The worker and the scheduler as operators run them, on a private Redis that the test
restarts (empty, as after a crash) and a worker that the test kills.

Each process must carry on by itself: no restart by a person, one log line
when the outage starts and one when it ends, and the work queued after the
outage done.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from sms_gateway.config import PROJECT_ROOT, Settings
from tests.channels.test_twilio import post_signed, sms_params
from tests.chaos.harness import PrivateRedis, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def private_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def roles(env: dict[str, str], private_redis: PrivateRedis, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start `sms-gateway <role>` processes on the private Redis; all stopped (by pid) at the end."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{args[0]}-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "sms_gateway.cli", *args], cwd=PROJECT_ROOT,
                                    start_new_session=True,  # its own process group, to kill it whole
                                    env={**os.environ, **env, "REDIS_URL": private_redis.url,
                                         "RECONNECT_MAX_DELAY": "1", "SWEEP_INTERVAL": "1",
                                         # RQ's start-up lines, which the test waits for.
                                         "LOG_LEVEL": "INFO,rq.worker=INFO,rq.scheduler=INFO,rq.cron=INFO"},
                                    stdout=out, stderr=subprocess.STDOUT)
        started.append((proc, log))
        return proc, log

    yield start
    for proc, _log in started:
        if proc.poll() is None:
            proc.terminate()
    for proc, log in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{proc.args} did not stop on SIGTERM:\n{log.read_text()[-3000:]}")


def count(pattern: str, log: Path) -> int:
    return len(re.findall(pattern, log.read_text(errors="replace")))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_worker_scheduler_and_sender_ride_out_a_redis_restart(roles, private_redis, env, client, fake_twilio) -> None:
    worker, worker_log = roles("worker")
    scheduler, scheduler_log = roles("scheduler")
    sender, _sender_log = roles("sender")
    wait_for(lambda: "Listening on" in worker_log.read_text(), 30, "the worker to start")
    wait_for(lambda: "starting" in scheduler_log.read_text(), 30, "the scheduler to start")

    private_redis.restart(down_for=3)  # empty afterwards: queues, registrations, locks gone

    settings = Settings({**env, "REDIS_URL": private_redis.url})
    from sms_gateway.config import set_settings

    set_settings(settings)
    client.application.config["SETTINGS"] = settings
    assert post_signed(client, sms_params(body="PLN ADUAN listrik mati sejak pagi")).status_code == 200
    wait_for(lambda: fake_twilio.messages, 30, f"the acknowledgement\n{worker_log.read_text()[-3000:]}")
    assert worker.poll() is None and scheduler.poll() is None and sender.poll() is None  # nobody restarted them
    # The cron scheduler registered itself again in the empty Redis and keeps enqueueing sweeps.
    wait_for(lambda: Redis.from_url(private_redis.url).zcard("rq:cron_schedulers"), 10, "the scheduler's registration")
    for log in (worker_log, scheduler_log):  # ours; RQ adds its own lines about the jobs the outage failed
        wait_for(lambda log=log: count(r"sms_gateway.processes: Redis back after [\d.]+ s", log), 15,
                 f"{log.name} to see Redis back")
        text = log.read_text()
        assert count(r"sms_gateway.processes: Redis unreachable", log) == 1, text[-3000:]
        assert count(r"sms_gateway.processes: Redis back after [\d.]+ s", log) == 1, text[-3000:]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kill", ["worker", "process group"])
def test_a_retry_is_not_held_up_by_the_lock_of_a_killed_worker(roles, private_redis, kill: str) -> None:
    """Issue 13 item 6: after a worker is SIGKILLed and restarted, retries due wait no minute.

    Killing the worker alone, its retry scheduler notices and releases the lock;
    killing the whole group (systemd's stop timeout, `docker kill`), the lock
    stays behind for 61 s, and the restarted worker frees it because its owner's pid is gone.
    """
    first, first_log = roles("worker", "--queue", "outbound")
    wait_for(lambda: "Acquired scheduler lock" in first_log.read_text(), 30, "the first worker's retry scheduler")
    if kill == "worker":
        first.send_signal(signal.SIGKILL)
    else:
        os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    redis = Redis.from_url(private_redis.url)
    # Its retry scheduler died with it (or dies within a moment): nobody left to move due retries.
    queue = Queue("outbound", connection=redis)
    job = queue.enqueue_in(__import__("datetime").timedelta(seconds=1), "sms_gateway.jobs.send_outbound", 999999)
    second, second_log = roles("worker", "--queue", "outbound")
    started = time.monotonic()
    try:
        wait_for(lambda: job.get_status(refresh=True) not in ("scheduled", "queued"), 20, "the scheduled job to run")
    except AssertionError:
        owner = redis.get("rq:scheduler-lock:outbound")
        holder = redis.hgetall(b"rq:scheduler:" + owner) if owner else {}
        pid = int(holder.get(b"pid", 0))
        state = Path(f"/proc/{pid}/stat").read_text() if pid and Path(f"/proc/{pid}/stat").exists() else "gone"
        raise AssertionError(f"lock held by {holder} ({state})\n{first_log.read_text()[-1500:]}\n"
                             f"{second_log.read_text()[-3000:]}") from None
    assert time.monotonic() - started < 15  # not the 61 s of the dead scheduler's lock
    assert ScheduledJobRegistry("outbound", connection=redis).count == 0
    assert second.poll() is None
