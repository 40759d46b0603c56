"""The coordinators' board over 100,000 reports and 25 agencies: server time of ``/board`` and of an
agency's drill-down, next to a baseline in the same run.

Each subject is a real request through the whole app in-process (Flask's test
client: the session cookie checked against its row, the scope applied by the
session, the figures' GROUP BY queries, the template): the server's time
without the network. Baselines, alternating with the subjects: the inbox's
first page for the same central admin (a page that issue 10 measured), and a
bare ``SELECT count(*) FROM reports`` through SQLAlchemy. p50 and p95 over
``--requests`` each, after a warm-up. The board is measured for the 7-, 30-
and 90-day periods (the medians cover more reports as the period grows).

    .venv/bin/python bench/board.py [--reports 100000] [--requests 100] [--postgres-url URL]

A PostgreSQL database of its own (``bench_board_<pid>``) is created on the
server of ``--postgres-url`` (default: the local one) and dropped at the end.
The shipped prefixes.yaml has 23 agencies; two more are added to a copy so the
board has 25 agencies and the central queue.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
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
from sms_gateway.models import Escalation, Report  # noqa: E402
from sms_gateway.registry import registry_for  # noqa: E402
from sms_gateway.workspace import accounts  # noqa: E402

PASSWORD = "bench-password-123"
STATUSES = ("diterima", "diterima", "diverifikasi", "didisposisikan", "ditindaklanjuti", "selesai", "diarsipkan")
EXTRA_AGENCIES = """
  BENCHSATU:
    name: Instansi Uji Satu
    aliases: [UJISATU]
  BENCHDUA:
    name: Instansi Uji Dua
    aliases: [UJIDUA]
"""


def prefixes_with_25_agencies(folder: Path) -> Path:
    """A copy of prefixes.yaml with two more agencies (23 + 2)."""
    source = (ROOT / "prefixes.yaml").read_text()
    at = source.index("\nagencies:\n") + len("\nagencies:\n")
    path = folder / "prefixes.yaml"
    path.write_text(source[:at] + EXTRA_AGENCIES.lstrip("\n") + source[at:])
    return path


def seed(url: str, n: int, agencies: list[str], today: date) -> None:
    """n reports over the last 120 days across the agencies and the central queue, with escalations."""
    rng = random.Random(1708)
    rows: list[dict[str, Any]] = []
    engine = create_engine(url)

    def flush() -> None:
        with engine.begin() as conn:
            ids = list(conn.scalars(insert(Report).returning(Report.id, sort_by_parameter_order=True), rows))
            late = [dict(report_id=i, agency=r["agency"], deadline="disposition", level=1 + (rng.random() < .3),
                         due=r["disposition_due"], created_at=r["created_at"] + timedelta(days=3))
                    for i, r in zip(ids, rows, strict=True) if r["status"] == "diterima" and rng.random() < .5]
            if late:
                conn.execute(insert(Escalation), late)

    for i in range(n):
        received = datetime.combine(today - timedelta(days=rng.randrange(120)), datetime.min.time(),
                                    deadlines.JAKARTA) + timedelta(hours=rng.randrange(7, 20))
        special = rng.random() < 0.2
        disposition_due, followup_due = deadlines.due_dates(received, special)
        status = rng.choice(STATUSES)
        agency = None if rng.random() < 0.04 else rng.choice(agencies)
        disposed = status != "diterima" and agency is not None
        followed = status in ("ditindaklanjuti", "selesai")
        rows.append({
            "tracking_number": f"{1_000_000 + i}{tracking.damm(str(1_000_000 + i))}",
            "channel": "kannel", "agency": agency, "kind": "aduan", "text": "laporan uji papan pantau",
            "reporter": f"+62812{i:08d}", "confidential": False, "anonymous": False,
            "status": status, "special": special, "category": None,
            "disposition_due": disposition_due, "followup_due": followup_due,
            "disposed_at": received + timedelta(hours=rng.randrange(1, 72)) if disposed else None,
            "followed_up_at": received + timedelta(hours=rng.randrange(12, 200)) if followed else None,
            "response_due": (received + timedelta(days=14)).date() if status == "ditindaklanjuti" else None,
            "created_at": received.astimezone(UTC), "updated_at": received.astimezone(UTC),
        })
        if len(rows) == 10_000:
            flush()
            rows = []
    if rows:
        flush()
    # What autovacuum does after a bulk load: statistics, and the visibility map for index-only scans.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER)
    args = parser.parse_args()

    with scratch_database("bench_board", args.postgres_url) as url:
        with tempfile.TemporaryDirectory() as folder:
            run(args, url, prefixes_with_25_agencies(Path(folder)))


def run(args: argparse.Namespace, url: str, prefixes: Path) -> None:
    settings = Settings({"DATABASE_URL": url, "PREFIXES_FILE": str(prefixes),
                         "HOLIDAYS_OVERRIDE_FILE": str(ROOT / "holidays_override.yaml"),
                         "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
                         "SECRET_KEY": "bench-" + "k" * 40, "LOG_LEVEL": "WARNING"})
    set_settings(settings)
    upgrade_database(settings)
    registry = registry_for(settings)
    agencies = sorted(registry.agencies)
    assert len(agencies) == 25, len(agencies)
    today = deadlines.today()
    started = time.perf_counter()
    seed(url, args.reports, agencies, today)
    print(f"seeded {args.reports:,} reports over {len(agencies)} agencies + the central queue "
          f"in {time.perf_counter() - started:.0f} s")

    from sms_gateway.web import create_app

    app = create_app(settings)
    with session_factory(url)() as session:
        for email, code, role in (("pusat@lapor.go.id", None, "central"),
                                  ("ombudsman@lapor.go.id", "OMBUDSMAN", "coordinator")):
            user = accounts.create_user(session, registry, email=email, name="", role=role, agency=code,
                                        created_by="bench")
            accounts.set_password(session, user, PASSWORD, PASSWORD)
        session.commit()

    def client(email: str) -> Any:
        c = app.test_client()
        page = c.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        assert c.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD}).status_code == 302
        return c

    central, ombudsman = client("pusat@lapor.go.id"), client("ombudsman@lapor.go.id")
    sessions = session_factory(url)
    busiest = "KEMENHUB"  # any agency: the reports are spread evenly

    def page(c: Any, path: str) -> Callable[[], int]:
        def go() -> int:
            response = c.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return len(response.get_data())
        return go

    def count() -> int:
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Report)) or 0)

    baselines = [("inbox, first page (central admin)", page(central, "/")),
                 ("bare SELECT count(*) FROM reports", count)]
    cases = [("/board?days=7 (central admin)", page(central, "/board?days=7")),
             ("/board?days=30 (central admin)", page(central, "/board?days=30")),
             ("/board?days=90 (central admin)", page(central, "/board?days=90")),
             ("/board?days=90 (coordinator watching *)", page(ombudsman, "/board?days=90")),
             (f"/board/{busiest} (drill-down, up to 500 overdue)", page(central, f"/board/{busiest}"))]
    print(f"\n{args.requests} requests per case after 10 warm-up; server time in-process (Flask test client); "
          "each case alternates with the baselines\n")
    print("| case | p50 ms | p95 ms |")
    print("| --- | ---: | ---: |")
    timings: dict[str, list[float]] = {label: [] for label, _ in [*cases, *baselines]}
    for _ in range(10):
        for _label, go in [*cases, *baselines]:
            go()
    for _ in range(args.requests):
        for label, go in [*cases, *baselines]:
            start = time.perf_counter()
            go()
            timings[label].append(1000 * (time.perf_counter() - start))
    for label, values in timings.items():
        print(f"| {label} | {statistics.median(values):.1f} | {percentile(values, 95):.1f} |")
    worst = max(percentile(timings[label], 95) for label, _ in cases)
    print(f"\nworst board p95: {worst:.1f} ms (target: under 500 ms)")


if __name__ == "__main__":
    main()
