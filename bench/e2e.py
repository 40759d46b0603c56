"""End to end: signed Twilio webhooks in, acknowledgements out at a local fake Twilio API.

The gateway runs as operators run it, on PostgreSQL and a private Redis:
``sms-gateway web`` (gunicorn gevent, 2 workers), two ``sms-gateway worker``
processes (inbound pipeline) and one ``sms-gateway sender`` (the outbox's
long-lived sender: 48 Twilio calls in flight over one pooled session). The
Twilio REST API is ``bench/fake_twilio.py`` (one asyncio process; ``--fake
gunicorn`` serves it as before, under gunicorn gevent), which answers 201 at
once (or after ``--fake-latency`` seconds, the real API's round trip) and
records every message.

- **flood**: wrk replays pre-signed webhooks (each a new MessageSid and a new
  sender number) for ``--seconds``; the figure is acknowledgements arriving
  at the fake API per second, from the first webhook to the last
  acknowledgement. Every stored message must be acknowledged exactly once
  (checked: one message per sender number, as many as were stored).
- **bare**: ``bench/bare_app.py`` under the same gunicorn, loaded by the same
  wrk in the same run: the ceiling of HTTP + gunicorn + Flask here.
- **paced**: ``--rate`` webhooks per second for ``--paced-seconds`` from a
  client that times each one until its acknowledgement: p50/p95.
- **CPU per message by stage** over the flood (from /proc): web, workers,
  sender, PostgreSQL backends of the bench database, the private Redis, the
  fake Twilio.

    apt-get install wrk
    .venv/bin/python bench/e2e.py [--seconds 3] [--connections 32] [--rounds 2] [--rate 100 --paced-seconds 10]
        [--mps 100 --fake-latency 0.3 --send-concurrency 48]   # a short code's rate over a distant API

Creates a scratch PostgreSQL database and a private redis-server on free
ports, and removes both at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from bench.ingest import PUBLIC, TOKEN, free_port, run_wrk, wait_http, write_requests  # noqa: E402
from bench.kannel import percentile, tree_cpu  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def fake_provider(port: int, env: dict[str, str], log: Path, kind: str = "asyncio",
                  latency: float = 0.0) -> subprocess.Popen[bytes]:
    """``bench/fake_twilio.py`` on ``port``: its own asyncio server (answering after ``latency``
    seconds), or (``gunicorn``) as before."""
    if kind == "gunicorn":
        return gunicorn("bench.fake_twilio:app", port, env, log, 1)
    proc = start([sys.executable, "-m", "bench.fake_twilio", str(port), str(latency)], env, log)
    wait_http(port)
    return proc


def gunicorn(app: str, port: int, env: dict[str, str], log: Path, workers: int) -> subprocess.Popen[bytes]:
    proc = start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                  "--worker-class", "gevent", "--log-level", "warning", app], env, log)
    wait_http(port)
    return proc


class Scratch:
    """A private redis-server and a scratch PostgreSQL database, removed on exit."""

    def __init__(self, tmp: Path) -> None:
        from sqlalchemy import create_engine, text

        self.name = f"bench_e2e_{os.getpid()}"
        self.admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {self.name}"))
        self.db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
        self.redis_port = free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                      stdout=subprocess.DEVNULL)
        wait_http(self.redis_port)
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def reset(self) -> None:
        """Empty tables and Redis between runs."""
        from redis import Redis
        from sqlalchemy import create_engine, text

        import sms_gateway.models  # noqa: F401 - registers the tables
        from sms_gateway.db import Base

        engine = create_engine(self.db_url)
        with engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        Redis.from_url(self.redis_url).flushdb()

    def backends(self) -> list[int]:
        """PostgreSQL backend pids serving the scratch database."""
        from sqlalchemy import text

        with self.admin.connect() as conn:
            return [int(pid) for pid in conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.name}).scalars()]

    def close(self) -> None:
        from sqlalchemy import text

        self.redis.terminate()
        self.redis.wait(10)
        with self.admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"))
        self.admin.dispose()


def count_stored(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar_one())
    engine.dispose()
    return n


def wait_acks(fake: str, expected: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    state = {"count": 0, "last": None}
    while time.monotonic() < deadline:
        state = requests.get(f"{fake}/_count", timeout=5).json()
        if state["count"] >= expected:
            time.sleep(1.0)  # anything more would be a double
            return requests.get(f"{fake}/_count", timeout=5).json()
        time.sleep(0.05)
    raise RuntimeError(f"only {state['count']} of {expected} acknowledgements after {timeout:.0f} s")


class Paced:
    """Posts signed webhooks at a steady rate and times each until its acknowledgement."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: dict[str, float] = {}
        self.session = requests.Session()
        self.validator = RequestValidator(TOKEN)
        self.lock = threading.Lock()

    def post(self, number: str) -> None:
        sid = "SM" + uuid.uuid4().hex
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "ACbench", "From": number, "To": "1708",
                  "Body": "KEMENHUB ADUAN bus AKAP masih jual tiket mudik di terminal", "NumSegments": "1",
                  "NumMedia": "0"}
        signature = self.validator.compute_signature(PUBLIC + "/sms/twilio", params)
        with self.lock:
            self.sent[number] = time.time()
        answer = self.session.post(self.url, data=urlencode(params), timeout=15, headers={
            "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
        answer.raise_for_status()

    def run(self, rate: float, seconds: float, first: int) -> None:
        n = int(rate * seconds)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(self.post, f"+62813{first + i:08d}"))
            for f in futures:
                f.result()


def run_gateway(args: argparse.Namespace, scratch: Scratch, tmp: Path, requests_file: Path, offset: int,
                round_no: int) -> dict[str, float]:
    scratch.reset()
    fake_port, web_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {**os.environ, "DATABASE_URL": scratch.db_url, "REDIS_URL": scratch.redis_url, "TWILIO_AUTH_TOKEN": TOKEN,
           "TWILIO_ACCOUNT_SID": "ACbench", "TWILIO_FROM_NUMBER": "1708", "TWILIO_API_BASE_URL": fake_url,
           "TWILIO_MPS": str(args.mps), "PUBLIC_BASE_URL": PUBLIC, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
           "WEB_BIND": f"127.0.0.1:{web_port}", "WEB_WORKERS": str(args.web_workers),
           "SEND_CONCURRENCY": str(args.send_concurrency)}
    logs = tmp / f"round-{round_no}"
    logs.mkdir()
    fake = fake_provider(fake_port, env, logs / "fake.log", args.fake, args.fake_latency)
    exe = [sys.executable, "-m", "sms_gateway"]
    web = start([*exe, "web"], env, logs / "web.log")
    workers = [start([*exe, "worker"], env, logs / f"worker-{i}.log") for i in range(args.workers)]
    senders = [start([*exe, "sender"], env, logs / f"sender-{i}.log") for i in range(args.senders)]
    procs = [web, *workers, *senders, fake]
    try:
        wait_http(web_port)
        # Warm up: one webhook answered and acknowledged, so every process is up before the clock starts.
        warm = Paced(f"http://127.0.0.1:{web_port}/sms/twilio")
        deadline = time.monotonic() + 60
        while True:
            try:
                warm.post("+62814" + f"{round_no:08d}")
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        wait_acks(fake_url, 1, 60)
        warmed = 1
        groups = {"web": [web.pid], "workers": [p.pid for p in workers], "sender": [p.pid for p in senders],
                  "redis": [scratch.redis.pid], "fake twilio": [fake.pid]}
        pg_before = {pid: tree_cpu(pid) for pid in scratch.backends()}
        before = {k: sum(map(tree_cpu, v)) for k, v in groups.items()}
        t0 = time.time()
        flood = run_wrk(web_port, "/sms/twilio", requests_file, args.seconds, args.connections, offset)
        time.sleep(1.5)  # requests still in flight when wrk stopped
        total = count_stored(scratch.db_url)
        stored = total - warmed
        done = wait_acks(fake_url, total, args.timeout)
        after = {k: sum(map(tree_cpu, v)) for k, v in groups.items()}
        pg_after = {pid: tree_cpu(pid) for pid in scratch.backends()}
        records = requests.get(f"{fake_url}/_dump", timeout=30).json()
        per_number = Counter(to for _t, to, _body in records)
        doubled = sum(1 for n in per_number.values() if n > 1)
        if done["count"] != total or doubled or len(per_number) != total:
            raise RuntimeError(f"{stored} stored, {done['count']} acknowledgements, {len(per_number)} numbers, "
                               f"{doubled} acknowledged twice")
        elapsed = done["last"] - t0
        cpu = {k: (after[k] - before[k]) * 1000 / stored for k in groups}
        cpu["postgresql"] = (sum(pg_after.values()) - sum(pg_before.get(p, 0.0) for p in pg_after)) * 1000 / stored
        result = {"acks": float(stored), "elapsed": elapsed, "rate": stored / elapsed, "ingest": flood["rate"],
                  "non2xx": flood["non2xx"], **{f"cpu {k}": v for k, v in cpu.items()}}
        if args.rate:
            paced = Paced(f"http://127.0.0.1:{web_port}/sms/twilio")
            paced.run(args.rate, args.paced_seconds, first=round_no * 1_000_000)
            final = wait_acks(fake_url, total + len(paced.sent), args.timeout)
            records = requests.get(f"{fake_url}/_dump", timeout=30).json()
            acked = {to: t for t, to, _body in records if to in paced.sent}
            if len(acked) != len(paced.sent) or final["count"] != total + len(paced.sent):
                raise RuntimeError(f"paced: {len(acked)} of {len(paced.sent)} acknowledged")
            trips = [(acked[n] - paced.sent[n]) * 1000 for n in paced.sent]
            result.update({"p50": percentile(trips, 50), "p95": percentile(trips, 95), "max": max(trips)})
        return result
    finally:
        stop(procs)


def run_bare(args: argparse.Namespace, tmp: Path, requests_file: Path) -> float:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = gunicorn("bench.bare_app:app", port, env, tmp / "bare.log", args.web_workers)
    try:
        run_wrk(port, "/sms/twilio", requests_file, 2, args.connections)
        return run_wrk(port, "/sms/twilio", requests_file, max(args.seconds, 5), args.connections)["rate"]
    finally:
        stop([proc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=3, help="length of the flood")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="bare/gateway pairs, interleaved")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="`sms-gateway worker` processes")
    parser.add_argument("--senders", type=int, default=1, help="`sms-gateway sender` processes")
    parser.add_argument("--send-concurrency", type=int, default=48, help="SEND_CONCURRENCY (the gateway's default)")
    parser.add_argument("--mps", type=float, default=100_000, help="TWILIO_MPS (the fake API has no limit)")
    parser.add_argument("--rate", type=float, default=100, help="paced webhooks per second (0: skip)")
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--fake-latency", type=float, default=0.0,
                        help="seconds the fake API takes to answer (the real one's round trip; asyncio fake only)")
    parser.add_argument("--fake", choices=["asyncio", "gunicorn"], default="asyncio",
                        help="how the fake Twilio API is served (gunicorn: as before 2026-12-05, to compare)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")

    from sms_gateway.cli import upgrade_database
    from sms_gateway.config import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    scratch = Scratch(tmp)
    try:
        upgrade_database(Settings({"DATABASE_URL": scratch.db_url}))
        requests_file = tmp / "requests.txt"
        per_round = 8_000 * (args.seconds + 1)
        write_requests(requests_file, per_round * args.rounds)
        bare, gateway = [], []
        for round_no in range(args.rounds):
            bare.append(run_bare(args, tmp, requests_file))
            gateway.append(run_gateway(args, scratch, tmp, requests_file, round_no * per_round, round_no))
            g = gateway[-1]
            print(f"round {round_no + 1}: bare {bare[-1]:,.0f} req/s; flood {g['acks']:.0f} webhooks "
                  f"(ingest {g['ingest']:,.0f}/s), last ack after {g['elapsed']:.1f} s: {g['rate']:,.0f} acks/s, "
                  f"ratio {g['rate'] / bare[-1]:.3f}"
                  + (f"; paced {args.rate:.0f}/s p50 {g['p50']:.0f} ms p95 {g['p95']:.0f} ms max {g['max']:.0f} ms"
                     if args.rate else ""), flush=True)
        best = max(range(args.rounds), key=lambda i: gateway[i]["rate"] / bare[i])
        g, b = gateway[best], bare[best]
        print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; PostgreSQL, private Redis; "
              f"wrk -t1 -c{args.connections} -d{args.seconds}s; fake Twilio: {args.fake}; "
              f"web gunicorn gevent x{args.web_workers}, "
              f"{args.workers} workers, {args.senders} sender(s) x {args.send_concurrency} calls; best of "
              f"{args.rounds} rounds by ratio")
        print("| bare req/s | webhooks | ingest req/s | last ack s | acks/s | ratio | paced p50 / p95 ms |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(f"| {b:,.0f} | {g['acks']:,.0f} | {g['ingest']:,.0f} | {g['elapsed']:.1f} | {g['rate']:,.0f} "
              f"| {g['rate'] / b:.3f} | {g.get('p50', 0):.0f} / {g.get('p95', 0):.0f} |")
        stages = ["web", "workers", "sender", "postgresql", "redis", "fake twilio"]
        print("\nCPU ms per message (median of rounds): " + ", ".join(
            f"{s} {statistics.median(r[f'cpu {s}'] for r in gateway):.2f}" for s in stages))
        print(json.dumps({"bare": bare, "gateway": gateway}))
    finally:
        scratch.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
