"""The guarantees at load: thousands of messages through the real processes while things break.

``sms-gateway web`` (gunicorn), two ``sms-gateway worker``, one ``sms-gateway
sender`` and the scheduler run as operators run them, on PostgreSQL and Redis,
against the fake Twilio API (the SDK's real REST client). During the load:

- Twilio retries some webhooks (the same MessageSid again);
- the API answers 429 to everything for a few seconds, and 500 (creating
  nothing) to the first attempt of every 40th message;
- a worker is SIGKILLed and started again, then the sender is SIGKILLed in the
  middle of its sends and started again (its interrupted sends are settled
  by asking the fake API's Messages list).

Then every message must have exactly one report and exactly one
acknowledgement at the provider. Correctness, not speed: the figures are in
bench/e2e.py and docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from sms_gateway.config import PROJECT_ROOT
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, OutboundMessage, Report
from tests.channels.test_twilio import sms_params
from tests.conftest import PUBLIC_BASE, TWILIO_TOKEN
from tests.support import twilio_signature

pytestmark = pytest.mark.slow

MESSAGES = 2000
RETRIED = 200  # webhooks Twilio sends twice


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


class Gateway:
    """The gateway's processes, each with its own log; start, SIGKILL and start again by role."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: Counter[str] = Counter()

    def start(self, role: str, *args: str) -> None:
        self.starts[role] += 1
        log = open(self.logs / f"{role}-{self.starts[role]}.log", "wb")
        self.procs[role] = subprocess.Popen([sys.executable, "-m", "sms_gateway", *args], env=self.env,
                                            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, role: str) -> None:
        self.procs[role].send_signal(signal.SIGKILL)
        self.procs[role].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.logs.glob("*.log")))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_every_message_gets_one_report_and_one_acknowledgement_under_faults(env, db_url, fake_twilio, tmp_path):
    port = free_port()
    settings_env = {**os.environ, **env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "2",
                    "PUBLIC_BASE_URL": PUBLIC_BASE, "LOG_LEVEL": os.environ.get("LOAD_LOG_LEVEL", "WARNING"),
                    "TWILIO_MPS": "400",
                    "SEND_CONCURRENCY": "8", "SEND_TIMEOUT": "2", "SEND_MAX_ATTEMPTS": "5",
                    "JOB_RETRY_INTERVALS": "1", "SWEEP_INTERVAL": "2", "SWEEP_GRACE": "3"}
    gateway = Gateway(settings_env, tmp_path)
    failed_once: set[str] = set()

    def first_attempt_of_every_40th(form: dict[str, str]) -> bool:
        if int(form.get("To", "0")[-4:]) % 40 or form["To"] in failed_once:
            return False
        failed_once.add(form["To"])
        return True

    fake_twilio.fail_500 = first_attempt_of_every_40th

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))

    def post(i: int) -> int:
        params = sms_params(body=f"KEMENHUB ADUAN bus nomor {i} masih angkut pemudik", sid=f"SMload{i:08d}",
                            sender=f"+62815{i:08d}")
        signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + "/sms/twilio", params)
        for _ in range(20):  # no answer in 15 s (Twilio's timeout) or refused: Twilio sends it again
            try:
                status = session.post(f"http://127.0.0.1:{port}/sms/twilio", data=params, timeout=15,
                                      headers={"X-Twilio-Signature": signature}).status_code
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
                continue
            posted.append(i)
            return status
        raise RuntimeError(f"webhook {i} never answered")

    posted: list[int] = []

    def acknowledged() -> int:
        return len({m.form["To"] for m in fake_twilio.messages if m.form.get("To", "").startswith("+62815")})

    try:
        gateway.start("web", "web")
        for n in (1, 2):
            gateway.start(f"worker{n}", "worker")
        gateway.start("sender", "sender")
        gateway.start("scheduler", "scheduler")
        wait_port(port)
        start = time.monotonic()
        faults: list[str] = []

        def break_things() -> None:
            while acknowledged() < MESSAGES * 0.15:
                time.sleep(0.05)
            fake_twilio.throttle_until = time.time() + 3
            faults.append(f"429 for 3 s at {time.monotonic() - start:.1f} s")
            while len(posted) < MESSAGES * 0.5:
                time.sleep(0.05)
            gateway.kill("worker1")  # in the middle of the inbound load
            faults.append(f"worker1 SIGKILLed at {time.monotonic() - start:.1f} s")
            time.sleep(0.5)
            gateway.start("worker1", "worker")
            while acknowledged() < MESSAGES * 0.6:
                time.sleep(0.05)
            gateway.kill("sender")  # in the middle of its sends
            faults.append(f"sender SIGKILLed at {time.monotonic() - start:.1f} s "
                          f"({acknowledged()} acknowledged)")
            time.sleep(0.5)
            gateway.start("sender", "sender")

        saboteur = threading.Thread(target=break_things, daemon=True)
        saboteur.start()
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, [*range(MESSAGES), *range(0, MESSAGES, MESSAGES // RETRIED)]))
        assert set(answers) == {200}, Counter(answers)
        posted = time.monotonic() - start

        deadline = time.monotonic() + 120
        while acknowledged() < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.2)
        done = time.monotonic() - start
        saboteur.join(10)
        time.sleep(2 * 3 + 2)  # two sweeps and a reconciliation more: anything doubled would show now
    except BaseException:
        print(gateway.tail())
        raise
    finally:
        gateway.stop()

    sent_to = Counter(m.form["To"] for m in fake_twilio.messages if m.form.get("To", "").startswith("+62815"))
    print(f"\n{MESSAGES} messages (+{RETRIED} provider retries) posted in {posted:.1f} s, all acknowledged "
          f"after {done:.1f} s; faults: {'; '.join(faults)}; API calls {len(fake_twilio.messages)} "
          f"(429s and 500s included), created {len(fake_twilio.created)}; interrupted sends settled by the "
          f"restarted sender: {(tmp_path / 'sender-2.log').read_text().count('interrupted send #')}")
    with session_factory(db_url)() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == MESSAGES
        assert s.scalar(select(func.count()).select_from(Report)) == MESSAGES
        per_report = s.execute(select(Report.inbound_id, func.count()).group_by(Report.inbound_id)
                               .having(func.count() > 1)).all()
        assert per_report == []
        states = Counter(s.scalars(select(OutboundMessage.state)))
    assert len(faults) == 3, gateway.tail()
    assert states == {"sent": MESSAGES}, (states, gateway.tail())
    created = Counter(m["to"] for m in fake_twilio.created if m["to"].startswith("+62815"))
    assert len(created) == MESSAGES, gateway.tail()  # every citizen acknowledged …
    assert [to for to, n in created.items() if n > 1] == []  # … exactly once
    assert set(sent_to) == set(created)
