"""Backtest of an edited prefixes.yaml over 50,000 stored texts, with its baselines in the same run.

The subject is ``rules.backtest.run``, exactly what the RQ job and ``sms-gateway
rules backtest`` call: count the window, stream the texts (one query,
server-side cursor), decide every distinct text with the rules in force and
with the proposed file, count the moves, score the labelled examples and the
shipped sets with both. Baselines, same data, same run:

- reading alone: the same streamed query, rows fetched and dropped;
- the rules in force alone: every distinct text decided once, one process
  (what any backtest must at least do, half of the deciding);
- the subject on one process (``MAX_PROCESSES = 1``), forced onto one forked
  process per CPU, and with the default (one per idle CPU, at most 4).

    .venv/bin/python bench/backtest.py [--texts 50000] [--distinct 0.8] [--postgres-url URL]

A PostgreSQL database of its own (``bench_backtest_<pid>``) is created on the
server of ``--postgres-url`` (default: the local one) and dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from bench.scratch import DEFAULT_SERVER, scratch_database  # noqa: E402
from sms_gateway import tracking  # noqa: E402
from sms_gateway.cli import upgrade_database  # noqa: E402
from sms_gateway.config import Settings, set_settings  # noqa: E402
from sms_gateway.db import session_factory  # noqa: E402
from sms_gateway.models import InboundMessage, LabelledExample, Report  # noqa: E402
from sms_gateway.registry import parse_registry  # noqa: E402
from sms_gateway.rules import backtest  # noqa: E402
from sms_gateway.rules.evaluation import SHIPPED_SETS, shipped_cases  # noqa: E402
from sms_gateway.rules.examples import labelled  # noqa: E402

TAILS = ("", "", "tolong", "mohon ditindak", "sudah 3 hari", "di jl. ahmad yani", "pak", "segera",
         "dekat pasar", "gmn ini", "parah bgt", "kami warga rt 05", "sejak kemarin", "tiap malam")
EDIT = (
    ("  PLN:\n    name: PT PLN (Persero)\n    rules:\n",
     "      - name: sampah\n        weight: 9\n        keywords: [sampah]\n"),
    ("  KAI:\n    name: PT Kereta Api Indonesia (Persero)\n    aliases: [PTKAI]\n    rules:\n",
     "      - name: kucing liar\n        weight: 2\n        keywords: [kucing liar, anjing liar]\n"),
)


def proposed(base: str) -> str:
    """An edit that moves texts: a keyword taken over by another agency, a new rule, one keyword dropped."""
    for anchor, rule in EDIT:
        base = base.replace(anchor, anchor + rule)
    return base.replace("damri, ojol, taksi online", "damri, taksi online")


def seed(url: str, n: int, distinct: float, now: datetime) -> int:
    """``n`` stored texts over the last 30 days (a share ``distinct`` of them new), 500 labelled reports."""
    rng = random.Random(1708)
    cases = [c for name in SHIPPED_SETS for c in shipped_cases(name)]
    bases = [c.text for c in cases]
    engine = create_engine(url)
    rows: list[dict[str, Any]] = []
    made: list[str] = []
    for i in range(n):
        if made and rng.random() > distinct:
            body = rng.choice(made)  # the same text again: a surge repeats itself
        else:
            body = f"{rng.choice(bases)} {rng.choice(TAILS)} {rng.randrange(1, 10**6)}".strip()
            made.append(body)
        rows.append({"channel": "kannel", "external_id": f"b{i}", "sender": f"+62812{i:08d}", "recipient": "1708",
                     "text": body, "received_at": now - timedelta(seconds=rng.randrange(30 * 86400)),
                     "state": "processed", "incomplete": False})
        if len(rows) == 10_000:
            with engine.begin() as conn:
                conn.execute(insert(InboundMessage), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(InboundMessage), rows)
    with engine.begin() as conn:
        reports = [{"tracking_number": f"{2_000_000 + i}{tracking.damm(str(2_000_000 + i))}", "channel": "kannel",
                    "agency": None, "kind": "aduan", "text": c.text, "reporter": "+6281200000000",
                    "status": "diterima", "confidential": False, "anonymous": False, "special": False,
                    "repeats": 0, "created_at": now, "updated_at": now} for i, c in enumerate(cases[:500])]
        conn.execute(insert(Report), reports)
        ids = [r[0] for r in conn.execute(text("SELECT id FROM reports ORDER BY id"))]
        conn.execute(insert(LabelledExample), [
            {"report_id": rid, "text": c.text, "agency": c.agency or "KEMENHUB", "source": "disposition",
             "actor": "bench", "created_at": now} for rid, c in zip(ids, cases[:500], strict=False) if c.agency])
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return len(set(made))


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, fn: Any) -> tuple[str, float, float, Any]:
    """(label, wall seconds, CPU seconds of this process and its forked children, result)."""
    started, cpu = time.perf_counter(), _cpu()
    out = fn()
    return label, time.perf_counter() - started, _cpu() - cpu, out


def run(args: argparse.Namespace, url: str) -> None:
    settings = Settings({"DATABASE_URL": url, "PREFIXES_FILE": str(ROOT / "prefixes.yaml"), "LOG_LEVEL": "WARNING"})
    set_settings(settings)
    upgrade_database(settings)
    now = datetime.now(UTC)
    started = time.perf_counter()
    distinct = seed(url, args.texts, args.distinct, now)
    print(f"seeded {args.texts:,} stored texts ({distinct:,} distinct) in {time.perf_counter() - started:.0f} s; "
          f"CPUs for this process: {len(os.sched_getaffinity(0))}")
    base_text = (ROOT / "prefixes.yaml").read_text(encoding="utf-8")
    before = parse_registry(ROOT / "prefixes.yaml", base_text)
    after = parse_registry(ROOT / "prefixes.yaml", proposed(base_text))
    window = backtest.Window(now - timedelta(days=31), now + timedelta(seconds=1))
    sessions = session_factory(url)
    backtest.engine_for(before), backtest.engine_for(after)

    def read_only() -> int:
        with sessions() as session:
            return sum(len(rows) for rows in backtest.read_texts(session, window))

    def current_alone() -> int:
        with sessions() as session:
            texts = {t for rows in backtest.read_texts(session, window) for _i, t, _a, _n in rows}
        for t in texts:
            backtest.outcome(t, before)
        return len(texts)

    def subject() -> dict[str, Any]:
        with sessions() as session:
            return backtest.run(session, before, after, window, examples=labelled(session))

    load = os.getloadavg()
    results = [timed("reading alone (streamed query)", read_only),
               timed("rules in force alone, distinct texts, 1 process", current_alone)]
    default, choose = backtest.MAX_PROCESSES, backtest._processes
    backtest.MAX_PROCESSES = 1
    results.append(timed("backtest, 1 process", subject))
    backtest.MAX_PROCESSES = default
    backtest._processes = lambda total: min(default, len(os.sched_getaffinity(0)))  # type: ignore[assignment]
    results.append(timed(f"backtest, forced {backtest._processes(args.texts)} processes", subject))
    backtest._processes = choose
    results.append(timed(f"backtest, default (chose {choose(args.texts)} at load {os.getloadavg()[0]:.1f})",
                         subject))
    print(f"\nload average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f} (2 cores: above 2, the "
          f"machine is shared and wall time stretches)")
    print("\n| run | wall s | CPU s | texts/s (wall) |\n| --- | ---: | ---: | ---: |")
    for label, seconds, cpu, _out in results:
        print(f"| {label} | {seconds:.2f} | {cpu:.2f} | {args.texts / seconds:,.0f} |")
    result = results[-1][3]
    acc = result["accuracy"]
    print(f"\nresult: {result['texts']:,} texts, {result['distinct']:,} distinct, {result['changed']:,} changed "
          f"{result['totals']}; labelled {acc['labelled']['before']['right']}->{acc['labelled']['after']['right']}"
          f"/{acc['labelled']['before']['total']}, shipped {acc['shipped']['before']['right']}->"
          f"{acc['shipped']['after']['right']}/{acc['shipped']['before']['total']}")
    print(f"backtest (default) {'UNDER' if results[-1][1] < 10 else 'OVER'} the 10 s target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--distinct", type=float, default=0.8, help="share of texts not seen before")
    parser.add_argument("--postgres-url", default=DEFAULT_SERVER)
    args = parser.parse_args()
    with scratch_database("bench_backtest", args.postgres_url) as url:
        run(args, url)


if __name__ == "__main__":
    main()
