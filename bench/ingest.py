"""Ingest throughput: signed Twilio webhooks against gunicorn, next to a bare Flask endpoint.

Both apps are served the same way (gunicorn, same worker class and workers)
in the same run and loaded by wrk with pre-signed requests (wrk's Lua cannot
compute HMAC-SHA1); every request the gateway gets carries a new MessageSid.
The bare endpoint parses the form and answers the same empty TwiML: it is the
ceiling of the stack (HTTP + gunicorn + Flask) on this machine. The gateway
adds what a message needs before it is acknowledged: the signature check, the
committed INSERT and the RQ enqueue.

    apt-get install wrk
    .venv/bin/python bench/ingest.py [--seconds 10] [--rounds 3] [--connections 64]
        [--worker-class gevent|gthread] [--database postgresql|sqlite]

Starts a private redis-server on a free port and, for PostgreSQL, creates a
scratch database on the local server; both are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twilio.request_validator import RequestValidator  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
PUBLIC = "https://gateway.bench"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_BENCH = f"bench_ingest_{os.getpid()}"

LUA = r"""
local bodies, sigs, i = {}, {}, %(offset)d
for line in io.lines("%(file)s") do
  local sig, body = line:match("^(%%S+) (.*)$")
  table.insert(sigs, sig); table.insert(bodies, body)
end
request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = sigs[i]}, bodies[i])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def write_requests(path: Path, n: int) -> None:
    validator = RequestValidator(TOKEN)
    texts = ["KEMENHUB ADUAN bus AKAP masih jual tiket mudik di terminal kampung rambutan",
             "PLN ADUAN listrik mati dr jam 5 sore di kel. margahayu bekasi timur",
             "CEK 45218736", "jalan rusak parah di jl. siliwangi bekasi timur dekat lampu merah"]
    with path.open("w") as f:
        for i in range(n):
            sid = "SM" + uuid.uuid4().hex
            params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "ACbench",
                      "From": f"+62812{i % 10_000_000:08d}", "To": "1708", "Body": texts[i % len(texts)],
                      "NumSegments": "1", "NumMedia": "0"}
            sig = validator.compute_signature(PUBLIC + "/sms/twilio", params)
            f.write(f"{sig} {urlencode(params)}\n")


def gunicorn(app: str, port: int, env: dict[str, str], workers: int, threads: int,
             worker_class: str = "gevent") -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
           "--worker-class", worker_class, "--threads", str(threads),
           "--chdir", str(ROOT), "--log-level", "warning", app]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_http(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_wrk(port: int, path: str, requests_file: Path, seconds: int, connections: int,
            offset: int = 0) -> dict[str, float]:
    """Load ``path`` for ``seconds``, replaying the requests from line ``offset`` on."""
    lua = requests_file.with_suffix(".lua")
    lua.write_text(LUA % {"file": requests_file, "path": path, "offset": offset})
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(lua), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    out = out.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sent = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rate": rate, "p50": pct("50"), "p99": pct("99"), "non2xx": float(errors.group(1)) if errors else 0.0,
            "sent": float(sent)}


def prepare_database(kind: str, tmp: Path) -> str:
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite3'}"
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {PG_BENCH}"))
    engine.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_BENCH}"


def drop_database(kind: str) -> None:
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        return
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {PG_BENCH} WITH (FORCE)"))
    engine.dispose()


def private_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of our own on a free port (stopped by the caller)."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    wait_http(port)
    return proc, f"redis://127.0.0.1:{port}/0"


def count_stored(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar_one())
    engine.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=["gevent", "gthread"], default="gevent",
                        help="gunicorn worker class for both apps (as WEB_WORKER_CLASS)")
    parser.add_argument("--threads", type=int, default=32, help="gthread threads per worker (as WEB_THREADS)")
    parser.add_argument("--rounds", type=int, default=2, help="bare/gateway pairs, interleaved")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")



    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    db_url = prepare_database(args.database, tmp)
    redis_proc, redis_url = private_redis(tmp)
    try:
        run(args, tmp, db_url, redis_url)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        drop_database(args.database)
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, db_url: str, redis_url: str) -> None:
    """The interleaved rounds and the report."""
    from redis import Redis

    from sms_gateway.cli import upgrade_database
    from sms_gateway.config import Settings

    upgrade_database(Settings({"DATABASE_URL": db_url}))
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "TWILIO_AUTH_TOKEN": TOKEN,
           "PUBLIC_BASE_URL": PUBLIC, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    # Every request the gateway gets is a new message: each run replays the
    # file from where the previous one stopped (a duplicate MessageSid would
    # take the cheaper "already stored" path). Sized for 10,000 req/s.
    requests_file = tmp / "requests.txt"
    needed = 10_000 * (args.seconds + 2) * args.rounds
    write_requests(requests_file, needed)

    results: dict[str, list[dict[str, float]]] = {"bare": [], "gateway": []}
    offset = 0  # next unused request line, for the gateway
    for _ in range(args.rounds):
        for name, app, path in (("bare", "bench.bare_app:app", "/sms/twilio"), ("gateway", "app:app", "/sms/twilio")):
            port = free_port()
            proc = gunicorn(app, port, env, args.workers, args.threads, args.worker_class)
            try:
                start = offset if name == "gateway" else 0
                warm = run_wrk(port, path, requests_file, 2, args.connections, start)
                run = run_wrk(port, path, requests_file, args.seconds, args.connections,
                              start + int(warm["sent"]) + args.connections)
                results[name].append(run)
                if name == "gateway":  # wrk does not count the requests still in flight at the end
                    offset = start + int(warm["sent"] + run["sent"]) + 2 * args.connections
            finally:
                stop(proc)
    if offset > needed:
        sys.exit(f"only {needed} unique requests were prepared and {offset} were sent: raise `needed`")
    stored, jobs = count_stored(db_url), Redis.from_url(redis_url).llen("rq:queue:inbound")

    def best(name: str) -> dict[str, float]:
        return max(results[name], key=lambda r: r["rate"])

    bare, gw = best("bare"), best("gateway")
    server = (f"gunicorn {args.worker_class} --workers {args.workers}"
              + (f" --threads {args.threads}" if args.worker_class == "gthread" else ""))
    print(f"machine: {os.cpu_count()} cores; {server}; "
          f"wrk -t1 -c{args.connections} -d{args.seconds}s; database {args.database}; "
          f"best of {args.rounds} interleaved rounds")
    print(f"{'endpoint':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in (("bare", bare), ("gateway", gw)):
        print(f"{name:10} {r['rate']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['non2xx']:8.0f}")
    print(f"ratio gateway/bare: {gw['rate'] / bare['rate']:.2f} (target >= 0.50)")
    print(f"messages stored (each request a new MessageSid): {stored}, handed to the worker in {jobs} RQ jobs "
          f"(one per stored batch; {stored / max(jobs, 1):.1f} messages per job)")


if __name__ == "__main__":
    main()
