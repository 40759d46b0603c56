"""Workspace pages over 100,000 reports: server time of the inbox, a filtered page and a search, next to
the same query run bare through SQLAlchemy in the same run.

Each subject is a real request through the whole app in-process (Flask's test
client: the session cookie checked against its row, the scope applied by the
session, the queue counts, the page query, the template): the server's time
without the network. The baseline is the page's own SELECT (scope, filters,
order, LIMIT 51) through a plain SQLAlchemy session. Requests and baselines
alternate; p50 and p95 over ``--requests`` each, after a warm-up.

    .venv/bin/python bench/workspace.py [--reports 100000] [--requests 200] [--postgres-url URL]

A PostgreSQL database of its own (``bench_workspace_<pid>``) is created on the
server of ``--postgres-url`` (default: the local one) and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from bench.scratch import DEFAULT_SERVER, percentile, scratch_database  # noqa: E402
from sms_gateway import deadlines, tracking  # noqa: E402
from sms_gateway.cli import upgrade_database  # noqa: E402
from sms_gateway.config import Settings, set_settings  # noqa: E402
from sms_gateway.db import session_factory  # noqa: E402
from sms_gateway.models import Report  # noqa: E402
from sms_gateway.registry import registry_for  # noqa: E402
from sms_gateway.workspace import accounts, inbox  # noqa: E402
from sms_gateway.workspace.access import report_scope  # noqa: E402

PASSWORD = "bench-password-123"
NUMBER = f"{1_000_042}{tracking.damm('1000042')}"  # the 43rd report's tracking number
WORDS = ("bus terminal tiket calo travel gelap kapal pelabuhan antre jalan rusak lampu mati sampah banjir "
         "puskesmas vaksin obat rumah sakit pungli polisi tilang sekolah guru bansos listrik padam kereta "
         "tol macet pemudik penyekatan sopir truk angkot ojek parkir liar pasar harga minyak").split()
STATUSES = ("diterima", "diterima", "diverifikasi", "didisposisikan", "ditindaklanjuti", "selesai", "diarsipkan")


def seed(url: str, n: int, agencies: list[str], today: date) -> None:
    """n reports over the last 60 days across the agencies and the central queue."""
    rng = random.Random(1708)
    rows: list[dict[str, Any]] = []
    engine = create_engine(url)
    for i in range(n):
        received = datetime.combine(today - timedelta(days=rng.randrange(60)), datetime.min.time(),
                                    deadlines.JAKARTA) + timedelta(hours=rng.randrange(7, 20))
        special = rng.random() < 0.2
        disposition_due, followup_due = deadlines.due_dates(received, special)
        status = rng.choice(STATUSES)
        agency = None if rng.random() < 0.04 else rng.choice(agencies)
        disposed = status not in ("diterima",) and agency is not None
        rows.append({
            "tracking_number": f"{1_000_000 + i}{tracking.damm(str(1_000_000 + i))}",
            "channel": rng.choice(("twilio", "kannel", "kannel", "modem")),
            "agency": agency, "kind": rng.choice(("aduan", "aduan", "aduan", "aspirasi", "info")),
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 25))),
            "reporter": f"+62812{i:08d}", "confidential": rng.random() < 0.05, "anonymous": False,
            "status": status, "special": special,
            "category": "COVID-19" if special and rng.random() < .5 else None,
            "disposition_due": disposition_due, "followup_due": followup_due,
            "disposed_at": received + timedelta(hours=5) if disposed else None,
            "followed_up_at": received + timedelta(days=1) if status in ("ditindaklanjuti", "selesai") else None,
            "response_due": (received + timedelta(days=14)).date() if status == "ditindaklanjuti" else None,
            "created_at": received.astimezone(UTC), "updated_at": received.astimezone(UTC),
        })
        if len(rows) == 10_000:
            with engine.begin() as conn:
                conn.execute(insert(Report), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(Report), rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE reports"))
    engine.dispose()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER)
    args = parser.parse_args()

    with scratch_database("bench_workspace", args.postgres_url) as url:
        run(args, url)


def run(args: argparse.Namespace, url: str) -> None:
    settings = Settings({"DATABASE_URL": url, "PREFIXES_FILE": str(ROOT / "prefixes.yaml"),
                         "HOLIDAYS_OVERRIDE_FILE": str(ROOT / "holidays_override.yaml"),
                         "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
                         "SECRET_KEY": "bench-" + "k" * 40, "LOG_LEVEL": "WARNING"})
    set_settings(settings)
    upgrade_database(settings)
    registry = registry_for(settings)
    agencies = [*sorted(code for code, a in registry.agencies.items() if not a.parent), "DISHUBBEKASI"]
    today = deadlines.today()
    started = time.perf_counter()
    seed(url, args.reports, agencies, today)
    print(f"seeded {args.reports:,} reports over {len(agencies)} agencies + the central queue "
          f"in {time.perf_counter() - started:.0f} s")

    from sms_gateway.web import create_app

    app = create_app(settings)
    with session_factory(url)() as session:
        for email, agency, role in (("pusat@lapor.go.id", None, "central"),
                                    ("admin@kemenhub.go.id", "KEMENHUB", "admin")):
            user = accounts.create_user(session, registry, email=email, name="", role=role, agency=agency,
                                        created_by="bench")
            accounts.set_password(session, user, PASSWORD, PASSWORD)
        session.commit()

    def client(email: str) -> Any:
        c = app.test_client()
        c.get("/login")
        import re

        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
        assert c.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD}).status_code == 302
        return c

    central, agency = client("pusat@lapor.go.id"), client("admin@kemenhub.go.id")
    sessions = session_factory(url)
    viewers = {}
    with session_factory(url)() as session:
        for email in ("pusat@lapor.go.id", "admin@kemenhub.go.id"):
            viewers[email] = accounts.viewer_of(accounts.find(session, email))

    def bare(email: str, query_string: dict[str, str]) -> Callable[[], int]:
        viewer = viewers[email]
        f = inbox.parse_filters(query_string, registry, viewer, sorted(registry.agencies))

        def go() -> int:
            with sessions() as session:
                query = inbox.ordered(inbox.filtered(f, viewer, today, "ID"), f)
                query = query.where(report_scope(registry, viewer)).limit(inbox.PAGE_SIZE + 1)
                return len(session.scalars(query).all())
        return go

    def page(c: Any, path: str) -> Callable[[], int]:
        def go() -> int:
            response = c.get(path)
            assert response.status_code == 200, response.status_code
            return len(response.get_data())
        return go

    cases = [
        ("inbox, first page (central admin, every agency)", central, "/", "pusat@lapor.go.id", {}),
        ("inbox, first page (KEMENHUB)", agency, "/", "admin@kemenhub.go.id", {}),
        ("filtered page: overdue, aduan, special (central)", central, "/?queue=overdue&kind=aduan&special=1",
         "pusat@lapor.go.id", {"queue": "overdue", "kind": "aduan", "special": "1"}),
        ("filtered page: kannel, since 14 days (KEMENHUB)", agency,
         f"/?channel=kannel&from={(today - timedelta(days=14)).isoformat()}", "admin@kemenhub.go.id",
         {"channel": "kannel", "from": (today - timedelta(days=14)).isoformat()}),
        ("search: words of the text (central)", central, "/?q=terminal+bus", "pusat@lapor.go.id",
         {"q": "terminal bus"}),
        ("search: a tracking number (central)", central, f"/?q={NUMBER}", "pusat@lapor.go.id", {"q": NUMBER}),
    ]
    print(f"\n{args.requests} requests per case after 20 warm-up; server time in-process (Flask test client)\n")
    print("| case | rows | page p50 / p95 ms | bare query p50 / p95 ms | p95 ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for label, c, path, email, query_string in cases:
        subject, baseline = page(c, path), bare(email, query_string)
        for _ in range(20):
            subject()
            baseline()
        page_times: list[float] = []
        bare_times: list[float] = []
        rows = 0
        for _ in range(args.requests):
            start = time.perf_counter()
            subject()
            page_times.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            rows = baseline()
            bare_times.append(1000 * (time.perf_counter() - start))
        p95 = percentile(page_times, 95)
        worst = max(worst, p95)
        print(f"| {label} | {rows} | {statistics.median(page_times):.1f} / {p95:.1f} | "
              f"{statistics.median(bare_times):.1f} / {percentile(bare_times, 95):.1f} | "
              f"{p95 / max(percentile(bare_times, 95), 0.001):.1f} |")
    print(f"\nworst page p95: {worst:.1f} ms (target: under 300 ms)")
    # Where a page's time goes beyond its SELECT: the queue counts, one scan of the viewer's reports.
    for email in ("pusat@lapor.go.id", "admin@kemenhub.go.id"):
        times = []
        for _ in range(50):
            start = time.perf_counter()
            with sessions() as session:
                counts_scope = report_scope(registry, viewers[email])
                columns = [func.count().filter(inbox.queue_condition(q, viewers[email], today))
                           for q in inbox.QUEUES]
                session.execute(select(*columns).select_from(Report).where(counts_scope)).one()
            times.append(1000 * (time.perf_counter() - start))
        print(f"queue counts alone ({email}): p50 {statistics.median(times):.1f} ms, "
              f"p95 {percentile(times, 95):.1f} ms")
    with sessions() as session:
        viewer = viewers["pusat@lapor.go.id"]
        f = inbox.Filters()
        query = inbox.ordered(inbox.filtered(f, viewer, today, "ID"), f).limit(51)
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        plan = session.execute(text(f"EXPLAIN {compiled}")).scalars().all()
        print("\nplan of the central inbox's first page:\n  " + "\n  ".join(plan))
    set_settings(None)


if __name__ == "__main__":
    main()
