"""The chaos suite: the real gateway under load while things break, counting lost and doubled SMS.

One stack for the module: `sms-gateway web` (gunicorn, two gevent workers), two
`sms-gateway worker`, `sms-gateway sender` and `sms-gateway scheduler`, on a private redis-server and
on a PostgreSQL database of its own reached through a TCP proxy, answering
through a fake Twilio API. Each scenario posts a load of signed webhooks (a new
number per message) and, halfway through, breaks one thing:

(a) both workers and the sender SIGKILLed in turn (then started again, as systemd would);
(b) the private Redis killed and started again, empty;
(c) the database connection cut (every connection reset, new ones refused);
(d) Twilio answering 429 and 500 for a while.

Afterwards every message must have exactly one report and exactly one
acknowledgement at the fake provider, every process must still be running (none
restarted by hand), and the webhooks must never have answered 5xx. The time to
recover (fault over → last acknowledgement out) is printed and written to
``chaos-results.md`` in the test's directory; docs/RELIABILITY.md has the table.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import create_engine, func, select, text

from sms_gateway.cli import upgrade_database
from sms_gateway.config import Settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage, Report
from tests.chaos.harness import Gateway, PrivateRedis, SourTwilio, TcpProxy, free_port, wait_for
from tests.conftest import POSTGRES_URL, TWILIO_TOKEN
from tests.support import twilio_signature

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

LOAD = int(os.environ.get("CHAOS_LOAD", "750"))  # messages per scenario
RECOVERY_LIMIT = 180.0  # seconds after the fault for the last acknowledgement


@dataclass
class Stack:
    gateway: Gateway
    redis: PrivateRedis
    proxy: TcpProxy
    twilio: SourTwilio
    database_url: str  # direct, for the checks
    workdir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if POSTGRES_URL == "skip":
        pytest.skip("TEST_POSTGRES_URL=skip: the chaos suite runs on PostgreSQL")
    workdir = tmp_path_factory.mktemp("chaos")
    parts = urlsplit(POSTGRES_URL)
    name = f"{parts.path.lstrip('/') or 'test'}_chaos"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    direct = urlunsplit(parts._replace(path=f"/{name}"))
    upgrade_database(Settings({"DATABASE_URL": direct}))
    redis = PrivateRedis(workdir / "redis").start()
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    twilio = SourTwilio().start()
    port = free_port()
    env = {
        "DATABASE_URL": urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}",
                                                  path=f"/{name}")),
        "REDIS_URL": redis.url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_WORKERS": "2",
        "TWILIO_ACCOUNT_SID": "ACchaos",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "1708",
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_MPS": "1000",  # the fake API has no rate; at the default 10/s the load alone takes 75 s
        "SPOOL_DIR": str(workdir / "spool"),
        "SPOOL_REPLAY_INTERVAL": "1",
        "RECONNECT_MAX_DELAY": "1",
        # Faster than production so that a run fits in CI; the mechanisms are the same.
        "SWEEP_INTERVAL": "2",
        "SWEEP_GRACE": "8",
        "JOB_RETRY_INTERVALS": "1,2,3",
        "SEND_MAX_ATTEMPTS": "12",
        "SEND_TIMEOUT": "5",
        "ESCALATION_INTERVAL": "3600",
        # RQ's and the Twilio client's lines too: the masking check reads every line.
        "LOG_LEVEL": "INFO,rq.worker=INFO,rq.scheduler=INFO,twilio=INFO",
    }
    gateway = Gateway(env, workdir / "logs").start_all()
    wait_for(lambda: _get(gateway.url + "/healthz") == 200, 60, "the gateway to be healthy")
    yield Stack(gateway, redis, proxy, twilio, direct, workdir)
    gateway.stop_all()
    twilio.stop()
    proxy.close()
    redis.stop()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return 0


@dataclass
class Outcome:
    scenario: str
    load: int
    fault: str
    statuses: Counter[int]
    lost: list[str]  # numbers that got no acknowledgement
    doubled: list[str]  # numbers that got more than one
    missing_reports: int
    extra_reports: int
    fault_seconds: float
    recovery_seconds: float
    dead: list[str]

    def row(self) -> str:
        five = sum(n for status, n in self.statuses.items() if status >= 500 or status == 0)
        return (f"| {self.scenario} | {self.load} | {self.fault} | {len(self.lost)} | {len(self.doubled)} | "
                f"{self.recovery_seconds:.1f} s | {five} |")


RESULTS: list[Outcome] = []


def run_scenario(stack: Stack, code: int, scenario: str, fault: str, inject: Callable[[], None],
                 capsys: pytest.CaptureFixture[str]) -> Outcome:
    """Post LOAD webhooks; inject the fault when half are posted; wait for every acknowledgement."""
    numbers = [f"+62813{code:02d}{i:06d}" for i in range(LOAD)]
    posted = threading.Event()
    half = threading.Event()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    session = threading.local()

    def post(i: int) -> None:
        if i == LOAD // 2:
            half.set()
        params = {"MessageSid": f"SMchaos{code:02d}{i:06d}", "From": numbers[i], "To": "1708",
                  "Body": f"PLN ADUAN listrik mati di gang {i} sejak pagi", "AccountSid": "ACchaos"}
        signature = twilio_signature(TWILIO_TOKEN, stack.gateway.url + "/sms/twilio", params)
        if not hasattr(session, "http"):
            session.http = requests.Session()
        try:
            status = session.http.post(stack.gateway.url + "/sms/twilio", data=params, timeout=30,
                                       headers={"X-Twilio-Signature": signature}).status_code
        except requests.RequestException:
            status = 0  # no answer: to Twilio the same as a 5xx
        with lock:
            statuses[status] += 1

    def load() -> None:
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(post, range(LOAD)))
        posted.set()

    loader = threading.Thread(target=load)
    loader.start()
    half.wait(120)
    fault_started = time.monotonic()
    inject()
    fault_over = time.monotonic()
    loader.join(300)
    assert posted.is_set(), "the load did not finish"

    def acknowledged() -> bool:
        return len({r.form.get("To") for r in stack.twilio.sent} & set(numbers)) == LOAD

    try:
        wait_for(acknowledged, RECOVERY_LIMIT, f"every acknowledgement of scenario {scenario}", interval=0.25)
    except AssertionError:
        pass  # counted below as lost
    recovery = time.monotonic() - fault_over
    time.sleep(2)  # anything doubled would show by now (a retry due, a sweep)
    sent = Counter(r.form.get("To") for r in stack.twilio.sent)
    outcome = Outcome(
        scenario=scenario, load=LOAD, fault=fault, statuses=statuses,
        lost=[n for n in numbers if sent[n] == 0], doubled=[n for n in numbers if sent[n] > 1],
        missing_reports=0, extra_reports=0, fault_seconds=fault_over - fault_started,
        recovery_seconds=recovery, dead=stack.gateway.dead())
    with session_factory(stack.database_url)() as db:
        per_message = dict(db.execute(
            select(InboundMessage.sender, func.count(Report.id))
            .outerjoin(Report, Report.inbound_id == InboundMessage.id)
            .where(InboundMessage.sender.in_(numbers)).group_by(InboundMessage.sender)).all())
    outcome.missing_reports = sum(1 for n in numbers if per_message.get(n, 0) == 0)
    outcome.extra_reports = sum(1 for n in numbers if per_message.get(n, 0) > 1)
    RESULTS.append(outcome)
    report = (f"chaos {scenario}: {LOAD} messages, {fault} ({outcome.fault_seconds:.1f} s); "
              f"recovered {recovery:.1f} s after the fault; lost {len(outcome.lost)}, doubled "
              f"{len(outcome.doubled)}, webhook answers {dict(statuses)}, reports missing "
              f"{outcome.missing_reports} / doubled {outcome.extra_reports}")
    with capsys.disabled():
        print("\n" + report)
    with (stack.workdir / "chaos-results.md").open("a") as f:
        f.write(outcome.row() + "\n")
    return outcome


def check(outcome: Outcome, stack: Stack) -> None:
    """What every scenario must show."""
    assert outcome.statuses == Counter({200: outcome.load}), outcome.statuses  # never a 5xx, never silence
    assert outcome.missing_reports == 0 and outcome.extra_reports == 0
    assert outcome.doubled == [], outcome.doubled[:5]
    assert outcome.dead == [], f"needed a manual restart: {outcome.dead}"
    assert outcome.lost == [], f"{len(outcome.lost)} without acknowledgement, e.g. {outcome.lost[:5]}"


def test_0_baseline_without_a_fault(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """The same load with nothing broken: how long the backlog alone takes to drain."""
    outcome = run_scenario(stack, 0, "(0) no fault (baseline)", "none", lambda: None, capsys)
    check(outcome, stack)


def test_a_workers_sigkilled_and_restarted(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    def kill_workers() -> None:
        # The sender too: the sends it has in flight are settled with the provider afterwards.
        for name in ("worker1", "worker2", "sender"):
            stack.gateway.kill(name)
            time.sleep(1)  # RestartSec=1
            stack.gateway.start(stack.gateway.role(name))
            time.sleep(1)

    outcome = run_scenario(stack, 1, "(a) workers and sender SIGKILLed",
                           "SIGKILL of each worker and of the sender, restarted 1 s later", kill_workers, capsys)
    check(outcome, stack)


def test_b_redis_restarted_empty(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_scenario(stack, 2, "(b) Redis restarted", "redis-server killed, back empty 3 s later",
                           lambda: stack.redis.restart(down_for=3), capsys)
    check(outcome, stack)


def test_c_database_cut(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    def cut() -> None:
        stack.proxy.cut()
        time.sleep(5)
        stack.proxy.restore()

    outcome = run_scenario(stack, 3, "(c) database cut", "every PostgreSQL connection reset, refused for 5 s",
                           cut, capsys)
    check(outcome, stack)
    assert not any((stack.workdir / "spool").glob("inbound*")) or all(
        p.stat().st_size == 0 for p in (stack.workdir / "spool").glob("inbound*"))  # the spool was replayed


def test_d_twilio_429_and_500(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_scenario(stack, 4, "(d) provider 429/500", "Twilio answers 429 and 500 for 8 s",
                           lambda: stack.twilio.turn_sour(8), capsys)
    assert stack.twilio.sour_answers > 0
    check(outcome, stack)


def test_z_no_full_number_in_any_log(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Every log line of every process, after thousands of messages and four faults: numbers masked."""
    logs = stack.gateway.logs()
    assert len(logs.splitlines()) > 1000
    full = re.findall(r"(?:\+?62|0)813\d{8}", logs)
    assert full == [], full[:5]
    with capsys.disabled():
        print("\n| scenario | load | fault | lost | doubled | recovery | 5xx |\n"
              "| --- | ---: | --- | ---: | ---: | ---: | ---: |\n" + "\n".join(o.row() for o in RESULTS))
