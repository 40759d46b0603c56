"""Kannel round trip: SMS in through the fake SMS centre, acknowledgement back at it.

The same Kannel (bearerbox + smsbox from tests/channels/kannel/kannel.conf.tmpl,
fake SMSC, log-level info) answers in three ways, interleaved in each round:

- ``static``: the sms-service answers with a fixed ``text``: Kannel alone.
- ``responder``: the get-url is a trivial Flask app under gunicorn (same
  workers and threads as the gateway) whose body is the reply: Kannel with an
  HTTP application, the ceiling for any get-url service here.
- ``gateway``: the get-url is the gateway under gunicorn (store, commit,
  ring the workers' doorbell; empty body), two ``worker.py`` processes parse,
  create the report and the ack, one ``sms-gateway sender`` sends it through
  sendsms (dlr-url included, ``--kannel-mps`` segments/s, ``KANNEL_SEND_CONCURRENCY``
  calls in flight), Kannel delivers it and fetches the DLRs.

Each way is measured twice:

Before the clock starts, one SMS is answered end to end and every process is
left to become idle (the workers load the registry and rules at start).

- ``burst``: N SMS written at once by the real ``fakesmsc`` binary
  (``-m N -i 0 -z 1``: a random sender per SMS); msg/s = N / time until the
  N-th reply reached fakesmsc. fakesmsc prints no per-message identity, so
- ``paced``: a Python client speaking fakesmsc's line protocol (the very lines
  fakesmsc writes: ``sender receiver text words``) sends at a fixed rate with a
  unique sender per SMS and times each reply: p50/p95 round trip.

    .venv/bin/python bench/kannel.py [--burst 2000] [--rate 50 --seconds 10] [--rounds 2]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB] [--redis-url redis://127.0.0.1:6379/N]

The database's gateway tables and the Redis database are emptied before each gateway run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.channels.kannel.harness import (  # noqa: E402
    FAKESMSC,
    KannelStack,
    free_port,
    gateway_service,
    kannel_missing,
    stop_pid,
    wait_for_port,
)

TOKEN = "bench-kannel-token"
REPORT = "KEMENHUB ADUAN bus AKAP masih angkut pemudik melebihi kapasitas di terminal"
STATIC_REPLY = ("Laporan Anda diterima & diteruskan ke KEMENHUB. Nomor laporan: 12345678. "
                "Cek status: kirim CEK 12345678 ke 1708. Terima kasih.")


# --------------------------------------------------------------------------- the trivial responder

def responder_app(environ, start_response):  # type: ignore[no-untyped-def]
    """get-url answered by a bare WSGI app: check the fields, answer the reply as the body."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if not (query.get("from") and query.get("text")):
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"missing from or text\n"]
    body = STATIC_REPLY.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# --------------------------------------------------------------------------- processes

def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def gunicorn(app: str, port: int, env: dict[str, str], log: Path, workers: int,
             threads: int, worker_class: str = "gevent") -> subprocess.Popen[bytes]:
    proc = start([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                  "--worker-class", worker_class, "--threads", str(threads), "--log-level", "warning", app],
                 env, log)
    wait_for_port(port, 30, f"gunicorn {app}", log)
    return proc


def stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            stop_pid(proc.pid, proc, signal.SIGTERM, timeout=20)


# --------------------------------------------------------------------------- measurements

def burst_with_fakesmsc(stack: KannelStack, n: int, timeout: float) -> float:
    """msg/s for ``n`` SMS injected at once by the fakesmsc binary, until its n-th reply."""
    out_path = stack.workdir / f"fakesmsc-burst-{time.monotonic_ns()}.out"
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([FAKESMSC, "-H", "127.0.0.1", "-r", str(stack.fake_port), "-i", "0",
                                 "-m", str(n), "-z", "1", f"0812 1708 text {REPORT}"],
                                stdout=out, stderr=subprocess.STDOUT)
    received, last = 0, t0
    deadline = t0 + timeout
    try:
        while received < n and time.perf_counter() < deadline:
            count = out_path.read_bytes().count(b"Got message ")
            if count > received:
                received, last = count, time.perf_counter()
            time.sleep(0.02)
    finally:
        stop_pid(proc.pid, proc, signal.SIGINT, timeout=5)
    if received < n:
        raise RuntimeError(f"burst: {received}/{n} replies after {timeout}s ({out_path})")
    return n / (last - t0)


@dataclass
class PacedClient:
    """Speaks fakesmsc's line protocol to the fake SMSC and times each reply by its receiver."""

    port: int
    prefix: str = "0813"  # senders are prefix + 8 digits
    sent: dict[str, float] = field(default_factory=dict)
    got: dict[str, float] = field(default_factory=dict)

    def run(self, rate: float, seconds: float, first: int, timeout: float) -> list[float]:
        """Send rate×seconds SMS at ``rate``/s; round trips in ms of those answered in time."""
        sock = socket.create_connection(("127.0.0.1", self.port))
        reader = threading.Thread(target=self._read, args=(sock,), daemon=True)
        reader.start()
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            number = f"{self.prefix}{first + i:08d}"
            self.sent[number[-8:]] = time.perf_counter()
            sock.sendall(f"{number} 1708 text {REPORT}\n".encode())
        deadline = time.perf_counter() + timeout
        while len(self.got) < n and time.perf_counter() < deadline:
            time.sleep(0.05)
        sock.shutdown(socket.SHUT_RDWR)  # the reader's file keeps the socket open; the fake SMSC serves one client
        sock.close()
        missing = n - len(self.got)
        if missing:
            raise RuntimeError(f"paced: {missing}/{n} SMS not answered within {timeout}s")
        return [(self.got[k] - self.sent[k]) * 1000 for k in self.sent]

    def _read(self, sock: socket.socket) -> None:
        with sock.makefile("rb") as lines:
            try:
                for line in lines:
                    now = time.perf_counter()
                    fields = line.decode("utf-8", "replace").split(" ", 3)
                    if len(fields) >= 2:
                        self.got.setdefault(fields[1][-8:], now)  # receiver: 0813… or +62813…
            except OSError:
                return


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_cpu(int(child))
    except (OSError, IndexError, ValueError):
        pass  # exited meanwhile
    return total


def warm_up(stack: KannelStack, pids: list[int], first: int) -> None:
    """One SMS answered end to end, then wait until every process is idle, so that the
    clock starts with the workers' imports, registry and caches loaded (as bench/e2e.py)."""
    PacedClient(stack.fake_port, prefix="0819").run(1, 1, first, timeout=60)
    deadline = time.monotonic() + 60
    before = sum(map(tree_cpu, pids))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(map(tree_cpu, pids))
        if now - before < 0.05:  # under 10 % of a core, all processes together
            return
        before = now
    raise RuntimeError("the processes did not become idle within 60 s of the warm-up SMS")


def pg_backends(db_url: str) -> list[int]:
    """PostgreSQL backend pids serving the gateway's database (none for SQLite: it runs in the processes)."""
    if not db_url.startswith("postgresql"):
        return []
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [int(pid) for pid in conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).scalars()]
    finally:
        engine.dispose()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# --------------------------------------------------------------------------- the three set-ups

@dataclass
class Result:
    burst: list[float] = field(default_factory=list)
    kannel_cpu: list[float] = field(default_factory=list)  # ms of CPU per SMS, during the burst
    web_cpu: list[float] = field(default_factory=list)
    worker_cpu: list[float] = field(default_factory=list)
    db_cpu: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p95: list[float] = field(default_factory=list)


@dataclass
class Run:
    burst: float
    kannel_cpu: float
    web_cpu: float
    worker_cpu: float
    db_cpu: float  # PostgreSQL's backends (0 for SQLite)
    trips: list[float]


def empty_gateway(db_url: str, redis_url: str) -> None:
    from redis import Redis
    from sqlalchemy import create_engine, text

    import sms_gateway.models  # noqa: F401 - registers the tables on Base.metadata
    from sms_gateway.db import Base

    engine = create_engine(db_url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if db_url.startswith("postgresql"):
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
    engine.dispose()
    Redis.from_url(redis_url).flushdb()


def run_setup(name: str, args: argparse.Namespace, workdir: Path, db_url: str, first: int) -> Run:
    workdir.mkdir(parents=True)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    if name == "static":
        service = f'max-messages = 1\ntext = "{STATIC_REPLY}"'
    elif name == "responder":
        service = f'max-messages = 1\nget-url = "http://127.0.0.1:{port}/sms/kannel?from=%p&to=%P&text=%b"'
    else:
        service = gateway_service(f"http://127.0.0.1:{port}", TOKEN)
    stack = KannelStack(workdir, service=service, log_level=1, token=TOKEN)
    env.update({"DATABASE_URL": db_url, "REDIS_URL": args.redis_url,
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "KANNEL_SENDSMS_URL": stack.sendsms_url,
                "KANNEL_USERNAME": stack.username, "KANNEL_PASSWORD": stack.password,
                "KANNEL_INBOUND_TOKEN": TOKEN, "SEND_TIMEOUT": "10", "KANNEL_DLR_MASK": str(args.dlr_mask),
                "KANNEL_MPS": str(args.kannel_mps)})
    try:
        if name == "responder":
            procs.append(gunicorn("bench.kannel:responder_app", port, env, workdir / "gunicorn.log",
                                  args.workers, args.threads, args.worker_class))
        elif name == "gateway":
            empty_gateway(db_url, args.redis_url)
            procs.append(gunicorn("app:app", port, env, workdir / "gunicorn.log", args.workers, args.threads,
                                  args.worker_class))
            for i in range(args.rq_workers):
                procs.append(start([sys.executable, "worker.py"], env, workdir / f"worker-{i}.log"))
            procs.append(start([sys.executable, "-m", "sms_gateway", "sender"], env, workdir / "sender.log"))
        stack.start()
        groups = [[p.pid for p in stack.procs.values()], [p.pid for p in procs[:1]], [p.pid for p in procs[1:]]]
        warm_up(stack, [pid for group in groups for pid in group], first)
        before = [sum(map(tree_cpu, pids)) for pids in groups]
        db_before = {pid: tree_cpu(pid) for pid in pg_backends(db_url)}
        rate = burst_with_fakesmsc(stack, args.burst, timeout=args.timeout)
        after = [sum(map(tree_cpu, pids)) for pids in groups]
        # A backend that exited during the burst is not counted (the gateway's pools keep theirs).
        db_after = {pid: tree_cpu(pid) for pid in pg_backends(db_url)}
        db_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()) * 1000 / args.burst
        time.sleep(2)  # let the burst's DLRs and stragglers settle
        trips = PacedClient(stack.fake_port).run(args.rate, args.seconds, first, timeout=args.timeout)
        per_sms = [(b - a) * 1000 / args.burst for a, b in zip(before, after, strict=True)]
        return Run(rate, per_sms[0], per_sms[1], per_sms[2], db_cpu, trips)
    finally:
        stack.stop()
        stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=2000, help="SMS per burst (fakesmsc -m)")
    parser.add_argument("--rate", type=float, default=50, help="paced SMS per second")
    parser.add_argument("--seconds", type=float, default=10, help="length of the paced run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (responder and gateway)")
    parser.add_argument("--worker-class", choices=["gevent", "gthread"], default="gevent",
                        help="gunicorn worker class (responder and gateway; as WEB_WORKER_CLASS)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per gunicorn worker")
    parser.add_argument("--rq-workers", type=int, default=2, help="worker.py processes for the gateway "
                        "(plus one `sms-gateway sender`)")
    parser.add_argument("--dlr-mask", type=int, default=31, help="KANNEL_DLR_MASK of the gateway")
    parser.add_argument("--kannel-mps", type=float, default=5000,
                        help="KANNEL_MPS of the gateway (high: Kannel's fake SMSC, not our limiter, sets the pace)")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="flushed")
    parser.add_argument("--only", choices=["static", "responder", "gateway"], action="append")
    args = parser.parse_args()
    reason = kannel_missing()
    if reason:
        sys.exit(reason)

    from sms_gateway.cli import upgrade_database
    from sms_gateway.config import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-kannel-"))
    db_url = args.database_url or f"sqlite:///{tmp / 'gateway.sqlite3'}"
    upgrade_database(Settings({"DATABASE_URL": db_url}))
    setups = args.only or ["static", "responder", "gateway"]
    results = {name: Result() for name in setups}
    first = 0
    for round_no in range(args.rounds):
        for name in setups:
            run = run_setup(name, args, tmp / f"{round_no}-{name}", db_url, first)
            first += len(run.trips)
            res = results[name]
            res.burst.append(run.burst)
            res.kannel_cpu.append(run.kannel_cpu)
            res.web_cpu.append(run.web_cpu)
            res.worker_cpu.append(run.worker_cpu)
            res.db_cpu.append(run.db_cpu)
            res.p50.append(percentile(run.trips, 50))
            res.p95.append(percentile(run.trips, 95))
            print(f"round {round_no + 1} {name:9}: burst {run.burst:6.0f} msg/s, CPU/SMS Kannel "
                  f"{run.kannel_cpu:.2f} ms web {run.web_cpu:.2f} ms workers {run.worker_cpu:.2f} ms "
                  f"PostgreSQL {run.db_cpu:.2f} ms; "
                  f"paced {args.rate:.0f}/s "
                  f"p50 {res.p50[-1]:7.1f} ms p95 {res.p95[-1]:7.1f} ms", flush=True)

    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"database {db_url.split(':')[0]}; burst {args.burst} SMS (fakesmsc -i 0 -z 1); "
          f"paced {args.rate:.0f} SMS/s x {args.seconds:.0f} s; gunicorn {args.worker_class} {args.workers} workers"
          f"{f' x {args.threads} threads' if args.worker_class == 'gthread' else ''}; "
          f"{args.rq_workers} RQ workers; {args.rounds} interleaved rounds (median)")
    print("| set-up | burst msg/s | CPU ms/SMS: Kannel | web | workers | PostgreSQL | paced p50 ms | paced p95 ms |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, res in results.items():
        print(f"| {name} | {statistics.median(res.burst):,.0f} | {statistics.median(res.kannel_cpu):.2f} "
              f"| {statistics.median(res.web_cpu):.2f} | {statistics.median(res.worker_cpu):.2f} "
              f"| {statistics.median(res.db_cpu):.2f} "
              f"| {statistics.median(res.p50):.1f} "
              f"| {statistics.median(res.p95):.1f} |")


if __name__ == "__main__":
    main()
