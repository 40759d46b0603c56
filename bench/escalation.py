"""Deadline watch cost: one escalation run over many overdue reports, next to the scan it cannot avoid.

The periodic job must finish well inside ESCALATION_INTERVAL whatever the
backlog. Baseline: selecting the overdue reports (the same query, the ORM rows
the job needs). Subjects, on the same data: the first run (records one or two
escalations per overdue report, one savepoint each, and the notifications),
and a steady-state rerun that finds everything recorded already (the cost of
every later run). Baseline and subjects alternate in each round; medians.

    .venv/bin/python bench/escalation.py [--reports 20000] [--rounds 3] [--database-url URL]

The default database is a scratch SQLite file; a PostgreSQL URL is emptied
(schema dropped) before use, so give it a scratch database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, delete, insert, select, text  # noqa: E402

from sms_gateway.agencies import escalation  # noqa: E402
from sms_gateway.agencies.statuses import overdue_clause  # noqa: E402
from sms_gateway.cli import upgrade_database  # noqa: E402
from sms_gateway.config import Settings, set_settings  # noqa: E402
from sms_gateway.db import session_factory  # noqa: E402
from sms_gateway.models import Escalation, Report  # noqa: E402
from sms_gateway.registry import registry_for  # noqa: E402

WIB = ZoneInfo("Asia/Jakarta")
AGENCIES = ["KEMENHUB", "KEMENKES", "POLRI", "PLN", "BPJSKES", "DISHUBBEKASI", None]


def seed(url: str, n: int, today: date) -> int:
    """n reports received over the last 30 days; returns how many are overdue today."""
    rows = []
    for i in range(n):
        received = datetime.combine(today - timedelta(days=i % 30), datetime.min.time(), WIB) + timedelta(hours=9)
        rows.append({
            "tracking_number": str(10_000_000 + i), "channel": "twilio", "agency": AGENCIES[i % len(AGENCIES)],
            "kind": "aduan", "text": "bench", "reporter": f"+62812{i:08d}", "confidential": False,
            "anonymous": False, "status": "diterima" if i % 4 else "ditindaklanjuti", "special": i % 5 == 0,
            "disposition_due": (received + timedelta(days=3)).date(),
            "followup_due": (received + timedelta(days=7)).date(),
            "created_at": received, "updated_at": received,
        })
    engine = create_engine(url)
    with engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(insert(Report), rows[start:start + 5000])
    engine.dispose()
    with session_factory(url)() as session:
        return len(session.execute(select(Report.id).where(overdue_clause(today))).all())


def timed(func) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-escalation-")
    url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    settings = Settings({"DATABASE_URL": url, "PREFIXES_FILE": str(ROOT / "prefixes.yaml"),
                         "HOLIDAYS_OVERRIDE_FILE": str(ROOT / "holidays_override.yaml")})
    set_settings(settings)
    upgrade_database(settings)
    today = date(2026, 11, 27)
    overdue = seed(url, args.reports, today)
    registry = registry_for(settings)
    sessions = session_factory(url)
    now = datetime.now(WIB)

    def baseline() -> None:
        with sessions() as session:
            session.scalars(select(Report).where(overdue_clause(today)).order_by(Report.id)).all()

    def run() -> int:
        with sessions() as session:
            created = escalation.record(session, settings, today, now)
            escalation.notify(session, settings, registry, created)
            session.commit()
            return len(created)

    def reset() -> None:
        with sessions() as session:
            session.execute(delete(Escalation))
            session.commit()

    results: dict[str, list[float]] = {"baseline": [], "first": [], "rerun": []}
    recorded = 0
    for _ in range(args.rounds):
        results["baseline"].append(timed(baseline))
        reset()
        start = time.perf_counter()
        recorded = run()
        results["first"].append(time.perf_counter() - start)
        results["rerun"].append(timed(run))
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"{backend}: {args.reports} reports, {overdue} overdue, {recorded} escalations recorded per first run, "
          f"{args.rounds} rounds (medians)")
    print("| run | seconds | per overdue report (ms) |")
    print("| --- | ---: | ---: |")
    for name, label in (("baseline", "baseline: select the overdue reports"),
                        ("first", "first run: record escalations + notify + commit"),
                        ("rerun", "rerun: everything already recorded")):
        median = statistics.median(results[name])
        print(f"| {label} | {median:.2f} | {1000 * median / max(overdue, 1):.3f} |")
    set_settings(None)


if __name__ == "__main__":
    main()
