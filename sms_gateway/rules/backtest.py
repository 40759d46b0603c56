"""Backtest: what a proposed ``prefixes.yaml`` would change, before it goes live.

Every stored inbound text of the last N days is decided twice, by the rules in
force and by the proposed file, with the pipeline's own functions
(``parsing.parse`` then ``decision.decide``): nothing here re-implements a
rule. The differences are counted — reports that would move to another agency
(from → to), become unrouted (central queue), become routed, change unit hint,
category or kind — with examples, and both registries are scored on the
labelled examples people made by re-routing reports (``examples.labelled``)
and on the shipped sets (``evaluation.evaluate``), with the texts each change
fixes and breaks.

One function, ``run``, serves the CLI (``sms-gateway rules backtest``) and the
RQ job behind the rules page (``jobs.run_backtest``). The texts are read in one
streamed query (server-side cursor on PostgreSQL) and each distinct text is
decided once per registry; with more than one CPU the deciding is spread over
forked processes (one per idle CPU), which inherit both compiled engines.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..decision import Decision, decide
from ..models import InboundMessage, InboundState, Report
from ..parsing import ParsedSMS, parse
from ..registry import Registry
from .classify import COMMAND_KINDS
from .engine import engine_for
from .evaluation import RECEIVED_AT, SHIPPED_SETS, Evaluation, LabelledText, evaluate, shipped_cases

log = logging.getLogger(__name__)

CENTRAL = "central"  # the central queue, as results name it
NO_REPORT = "no report"  # commands, junk, greetings only: nothing to route
EXAMPLES_KEPT = 20  # examples kept per from → to pair
CHUNK = 2000  # texts per progress step (and per task of a worker process)
READ_BATCH = 5000  # rows fetched per round trip
MAX_PROCESSES = 4
PARALLEL_MIN = 4 * CHUNK  # below this, forking costs more than it saves

Progress = Callable[[int, int], None]


class Outcome(NamedTuple):
    """Where one text goes under one registry: a tuple, cheap to compare and to send between processes."""

    report: bool  # False: a command, junk, or no content
    agency: str | None  # receiving agency, None: central queue
    unit: str | None  # the rules' disposition hint (a unit of ``agency``)
    kind: str
    category: str | None
    special: bool

    @property
    def destination(self) -> str:
        """``KEMENHUB``, ``central`` or ``no report``."""
        if not self.report:
            return NO_REPORT
        return self.agency or CENTRAL


def decide_text(text: str, registry: Registry, received_at: datetime = RECEIVED_AT) -> tuple[ParsedSMS,
                                                                                         Decision | None]:
    """The pipeline's reading of ``text``: the parse, and the decision unless it is a command."""
    parsed = parse(text, registry)
    if parsed.command:
        return parsed, None
    return parsed, decide(parsed, registry, received_at)


def outcome(text: str, registry: Registry, parsed: ParsedSMS | None = None) -> Outcome:
    """``decide_text`` reduced to what a backtest compares (``parsed``: the parse, when already made)."""
    if parsed is None:
        parsed = parse(text, registry)
    decision = None if parsed.command else decide(parsed, registry, RECEIVED_AT, explain=False)
    if decision is None:
        return Outcome(False, None, None, COMMAND_KINDS.get(parsed.command or "", "help"), None, False)
    unit = decision.evidence["rules"].get("unit") if decision.evidence["decided_by"] == "rules" else None
    return Outcome(decision.kind != "unknown", decision.agency, unit, decision.kind, decision.category,
                   decision.special)


# --------------------------------------------------------------------------- deciding, maybe in parallel

_POOL_REGISTRIES: tuple[Registry, Registry] | None = None  # set before forking: the children inherit it


def same_parser(a: Registry, b: Registry) -> bool:
    """Whether ``parsing.parse`` reads every text the same way under both: it depends on these alone."""
    return (a.names, a.keywords, a.commands, a.generic, a.flags, a.short_only) == \
        (b.names, b.keywords, b.commands, b.generic, b.flags, b.short_only)


def _decide_pair(texts: Sequence[str]) -> list[tuple[Outcome, Outcome]]:
    assert _POOL_REGISTRIES is not None
    before, after = _POOL_REGISTRIES
    if same_parser(before, after):  # a change of rules only (the usual surge edit): parse once
        out = []
        for t in texts:
            parsed = parse(t, before)
            out.append((outcome(t, before, parsed), outcome(t, after, parsed)))
        return out
    return [(outcome(t, before), outcome(t, after)) for t in texts]


def _processes(total: int) -> int:
    """Processes to decide ``total`` texts: one per idle CPU (at most MAX_PROCESSES), else this one alone.

    Forking pays only when cores are idle: on a busy machine (bench/backtest.py on
    2 cores at load 5–6) two processes took longer than one.
    """
    if total < PARALLEL_MIN or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    idle = round(cpus - os.getloadavg()[0])
    return max(1, min(MAX_PROCESSES, cpus, idle))


def decide_all(before: Registry, after: Registry, chunks: Iterable[list[str]],
               total: int) -> Iterator[list[tuple[Outcome, Outcome]]]:
    """(before, after) outcome of every text of every chunk, chunk by chunk, in order."""
    global _POOL_REGISTRIES
    engine_for(before), engine_for(after)  # compiled once, before any fork
    _POOL_REGISTRIES = (before, after)
    processes = _processes(total)
    try:
        if processes == 1:
            for chunk in chunks:
                yield _decide_pair(chunk)
            return
        # fork: the children share the compiled engines copy-on-write and never touch the database;
        # the chunks are read (by the pool's feeder thread) while the children decide.
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            yield from pool.imap(_decide_pair, chunks)
    finally:
        _POOL_REGISTRIES = None


# --------------------------------------------------------------------------- the texts

@dataclass(frozen=True)
class Window:
    """The stored texts a backtest reads: received in [since, until)."""

    since: datetime
    until: datetime

    @classmethod
    def last_days(cls, days: int, now: datetime | None = None) -> Window:
        """The last ``days`` days up to ``now``."""
        until = now or datetime.now(UTC)
        return cls(until - timedelta(days=days), until)


def _texts_query(window: Window) -> Any:
    # state IN (every state) lets PostgreSQL use ix_inbound_state_received for the time range.
    return (select(InboundMessage.id, InboundMessage.text, InboundMessage.received_at, Report.tracking_number)
            .outerjoin(Report, Report.inbound_id == InboundMessage.id)
            .where(InboundMessage.state.in_([s.value for s in InboundState]),
                   InboundMessage.received_at >= window.since, InboundMessage.received_at < window.until)
            .order_by(InboundMessage.id))


def count_texts(session: Session, window: Window) -> int:
    """How many stored texts the window holds."""
    return session.scalar(select(func.count()).select_from(InboundMessage).where(
        InboundMessage.state.in_([s.value for s in InboundState]),
        InboundMessage.received_at >= window.since, InboundMessage.received_at < window.until)) or 0


def read_texts(session: Session, window: Window) -> Iterator[list[tuple[int, str, datetime, str | None]]]:
    """(inbound id, text, received at, tracking number) of the window, in batches, from one streamed query."""
    result = session.execute(_texts_query(window).execution_options(yield_per=READ_BATCH))
    for rows in result.partitions():
        yield [(r[0], r[1] or "", r[2], r[3]) for r in rows]


# --------------------------------------------------------------------------- comparing

@dataclass
class _Pair:
    count: int = 0
    examples: list[dict[str, Any]] | None = None


class _Diff:
    """Counts of (from, to) for one aspect, with the first examples of each pair."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], _Pair] = {}

    def add(self, old: str, new: str, example: dict[str, Any]) -> None:
        pair = self.pairs.setdefault((old, new), _Pair(0, []))
        pair.count += 1
        assert pair.examples is not None
        if len(pair.examples) < EXAMPLES_KEPT:
            pair.examples.append(example)

    def rows(self, kind_of: Callable[[str, str], str] | None = None) -> list[dict[str, Any]]:
        ordered = sorted(self.pairs.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return [{"from": old, "to": new, "count": p.count, "examples": p.examples,
                 **({"type": kind_of(old, new)} if kind_of else {})} for (old, new), p in ordered]


def move_type(old: str, new: str) -> str:
    """moved (agency → agency), unrouted (→ central), routed (central →), report, no_report."""
    if old == NO_REPORT:
        return "report"
    if new == NO_REPORT:
        return "no_report"
    if new == CENTRAL:
        return "unrouted"
    if old == CENTRAL:
        return "routed"
    return "moved"


def _accuracy(before: Registry, after: Registry, examples: list[LabelledText]) -> dict[str, Any]:
    """Both registries on ``examples``: tallies, and the texts the change fixes and breaks."""
    old, new = evaluate(before, examples), evaluate(after, examples)

    def tally(e: Evaluation) -> dict[str, Any]:
        o = e.overall
        return {"total": o.total, "agency_right": o.agency_right, "kind_right": o.kind_right,
                "kind_total": o.kind_total, "right": o.right,
                "accuracy": round(o.accuracy, 4), "agency_accuracy": round(o.agency_accuracy, 4)}

    def missed(e: Evaluation) -> dict[tuple[str, str], Any]:
        return {(m.example.source, m.example.text): m for m in e.misses}

    old_misses, new_misses = missed(old), missed(new)
    fixed = [{"text": m.example.text, "source": m.example.source, "was": "; ".join(m.problems)}
             for key, m in old_misses.items() if key not in new_misses]
    broken = [{"text": m.example.text, "source": m.example.source, "now": "; ".join(m.problems)}
              for key, m in new_misses.items() if key not in old_misses]
    return {"before": tally(old), "after": tally(new), "fixed": fixed, "broken": broken}


def run(session: Session, before: Registry, after: Registry, window: Window, *,
        examples: list[LabelledText] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The backtest of ``after`` against ``before`` over ``window``: a JSON-ready result."""
    started = time.perf_counter()
    total = count_texts(session, window)
    if progress:
        progress(0, total)
    agencies, units, categories, kinds = _Diff(), _Diff(), _Diff(), _Diff()
    seen = done_rows = 0
    distinct: dict[str, None] = {}
    # (rows, their texts not seen in an earlier chunk): filled as chunks are read, emptied as they are decided.
    pending: list[tuple[list[tuple[int, str, datetime, str | None]], list[str]]] = []

    def chunks() -> Iterator[list[str]]:
        # Each distinct text is decided once: a surge repeats the same texts many times.
        for rows in read_texts(session, window):
            for start in range(0, len(rows), CHUNK):
                part = rows[start:start + CHUNK]
                fresh = list(dict.fromkeys(text for _id, text, _at, _n in part if text not in distinct))
                distinct.update(dict.fromkeys(fresh))
                pending.append((part, fresh))
                yield fresh

    decided: dict[str, tuple[Outcome, Outcome]] = {}
    for pairs in decide_all(before, after, chunks(), total):
        part, fresh = pending.pop(0)
        decided.update(zip(fresh, pairs, strict=True))
        for inbound_id, text, received_at, number in part:
            old, new = decided[text]
            seen += 1
            if old == new:
                continue
            example = {"inbound_id": inbound_id, "tracking": number, "text": text[:300],
                       "received_at": received_at.isoformat()}
            if old.destination != new.destination:
                agencies.add(old.destination, new.destination, example)
            elif old.report and old.agency and old.unit != new.unit:
                units.add(f"{old.agency}/{old.unit or '-'}", f"{new.agency}/{new.unit or '-'}", example)
            if old.report and new.report:
                if old.category != new.category:
                    categories.add(_category(old), _category(new), example)
                if old.kind != new.kind:
                    kinds.add(old.kind, new.kind, example)
        done_rows += len(part)
        if progress:
            progress(min(done_rows, total), total)

    moves = agencies.rows(move_type)
    totals = Counter({"moved": 0, "unrouted": 0, "routed": 0, "report": 0, "no_report": 0})
    for row in moves:
        totals[row["type"]] += row["count"]
    labelled = examples or []
    shipped = [row for name in SHIPPED_SETS for row in shipped_cases(name)]
    return {
        "window": {"since": window.since.isoformat(), "until": window.until.isoformat()},
        "before_version": before.version, "after_version": after.version,
        "texts": seen, "distinct": len(distinct),
        "changed": sum(row["count"] for row in moves),
        "totals": dict(totals),
        "moves": moves,
        "units": units.rows(),
        "categories": categories.rows(),
        "kinds": kinds.rows(),
        "accuracy": {"labelled": _accuracy(before, after, labelled),
                     "shipped": _accuracy(before, after, shipped)},
        "seconds": round(time.perf_counter() - started, 2),
    }


def _category(o: Outcome) -> str:
    if o.category is None:
        return "-"
    return f"{o.category} (special)" if o.special else o.category


# --------------------------------------------------------------------------- for a terminal

def render(result: dict[str, Any]) -> list[str]:
    """The result as lines for a terminal (``sms-gateway rules backtest``)."""
    t = result["totals"]
    lines = [f"{result['texts']} stored texts ({result['distinct']} distinct) received "
             f"{result['window']['since'][:16]} … {result['window']['until'][:16]} UTC, "
             f"rules {result['before_version']} -> {result['after_version']}:",
             f"  {result['changed']} would go elsewhere: {t['moved']} to another agency, "
             f"{t['unrouted']} unrouted (central queue), {t['routed']} routed from the central queue, "
             f"{t['report']} become reports, {t['no_report']} no longer reports"]
    if result["moves"]:
        lines.append(f"  {'from':24} {'to':24} {'texts':>6}  type")
        lines.extend(f"  {m['from']:24} {m['to']:24} {m['count']:>6}  {m['type']}" for m in result["moves"])
    for key, title in (("units", "unit hint"), ("categories", "category"), ("kinds", "kind")):
        rows = result[key]
        if rows:
            lines.append(f"  {title} changes: {sum(r['count'] for r in rows)}")
            lines.extend(f"    {r['from']:22} -> {r['to']:22} {r['count']:>6}" for r in rows)
    for key, title in (("labelled", "labelled examples (re-routed by people)"),
                       ("shipped", "shipped labelled sets")):
        acc = result["accuracy"][key]
        b, a = acc["before"], acc["after"]
        if not b["total"]:
            lines.append(f"  accuracy on {title}: none yet")
            continue
        lines.append(f"  accuracy on {title}: {b['right']}/{b['total']} = {100 * b['accuracy']:.1f}% before, "
                     f"{a['right']}/{a['total']} = {100 * a['accuracy']:.1f}% after "
                     f"({len(acc['fixed'])} fixed, {len(acc['broken'])} broken)")
        lines.extend(f"    fixed  {f['text']!r} ({f['source']})" for f in acc["fixed"][:10])
        lines.extend(f"    broken {f['text']!r} ({f['source']}): {f['now']}" for f in acc["broken"][:10])
    return lines


# --------------------------------------------------------------------------- stored backtests (the rules page)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_DAYS = 366
PROGRESS_EVERY = 0.25  # seconds between progress writes
JOB_TIMEOUT = 3 * 3600


class BacktestError(ValueError):
    """A backtest or an apply refused; ``problems`` are the loader's ``file:line: problem`` when the file is bad."""

    def __init__(self, reason: str, problems: Sequence[str] = (), status: int = 422) -> None:
        self.reason = reason
        self.problems = list(problems)
        self.status = status
        super().__init__("\n".join([reason, *self.problems]))


def _parse(path: str, text: str) -> Registry:
    from ..registry import RegistryError, parse_registry

    try:
        return parse_registry(path, text)
    except RegistryError as exc:
        raise BacktestError("invalid", [p.render() for p in exc.problems]) from None


def _read_in_force(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BacktestError("unreadable", [f"{path}: {exc}"]) from None


def create(session: Session, settings: Any, text: str, *, actor: str, days: int, filename: str = "",
           now: datetime | None = None) -> Any:
    """Validate a proposed file with the registry's loader and store a queued backtest (not committed)."""
    from ..models import RuleBacktest

    path = str(settings.PREFIXES_FILE)
    if not 1 <= days <= MAX_DAYS:
        raise BacktestError("days")
    text = text.replace("\r\n", "\n")
    proposed = _parse(path, text)  # problems are named as lines of the file it would replace
    base_text = _read_in_force(path)
    base = _parse(path, base_text)
    window = Window.last_days(days, now)
    row = RuleBacktest(actor=actor, created_at=now or datetime.now(UTC), filename=filename[:255], rules_text=text,
                       base_text=base_text, base_version=base.version, version=proposed.version,
                       params={"days": days, "since": window.since.isoformat(), "until": window.until.isoformat()},
                       state=QUEUED, done=0, total=0)
    session.add(row)
    session.flush()
    return row


def enqueue(settings: Any, backtest_id: int) -> None:
    """Hand the backtest to a worker (job ``backtest-<id>``); raises if Redis is unreachable."""
    from .. import queue

    # RQ's default 180 s would kill a year of a national surge (millions of texts) halfway.
    queue.enqueue(settings, queue.DEFAULT, queue.JOBS + "run_backtest", backtest_id, job_id=f"backtest-{backtest_id}",
                  timeout=JOB_TIMEOUT)


def execute(settings: Any, backtest_id: int) -> str:
    """Run stored backtest ``backtest_id`` (the job's body). Done already: nothing; a failure raises after
    marking the row, so RQ retries it, and a retry starts over (the window is fixed in the row)."""
    from ..db import session_factory
    from ..models import RuleBacktest, utcnow
    from .examples import labelled

    maker = session_factory(settings.DATABASE_URL)
    with maker() as session:
        row = session.get(RuleBacktest, backtest_id)
        if row is None:
            return "missing"
        if row.state == DONE:
            return "already done"
        row.state, row.started_at, row.error, row.done = RUNNING, utcnow(), None, 0
        session.commit()
        base_text, rules_text, params = row.base_text, row.rules_text, dict(row.params)
    last = 0.0

    def progress(done: int, total: int) -> None:
        # Its own short transaction: the reading session holds a streaming cursor.
        nonlocal last
        now = time.monotonic()
        if done not in (0, total) and now - last < PROGRESS_EVERY:
            return
        last = now
        with maker() as s:
            s.query(RuleBacktest).filter_by(id=backtest_id).update({"done": done, "total": total})
            s.commit()

    try:
        # Both files were valid when stored; a gazetteer file they name may have changed since.
        path = str(settings.PREFIXES_FILE)
        before, after = _parse(path, base_text), _parse(path, rules_text)
        window = Window(datetime.fromisoformat(params["since"]), datetime.fromisoformat(params["until"]))
        with maker() as session:
            result = run(session, before, after, window, examples=labelled(session), progress=progress)
    except Exception as exc:
        with maker() as session:
            session.query(RuleBacktest).filter_by(id=backtest_id).update(
                {"state": FAILED, "error": f"{type(exc).__name__}: {exc}"[:2000], "finished_at": utcnow()})
            session.commit()
        raise
    with maker() as session:
        row = session.get(RuleBacktest, backtest_id)
        assert row is not None
        row.result, row.state, row.finished_at = result, DONE, utcnow()
        row.done = row.total = result["texts"]
        session.commit()
    log.info("backtest #%s of %s's rules: %s texts, %s would go elsewhere, %.1f s", backtest_id, row.actor,
             result["texts"], result["changed"], result["seconds"])
    return "done"


def diff(row: Any, current_text: str | None = None) -> str:
    """Unified diff from the file in force (now, or when the backtest was asked for) to the proposed file."""
    import difflib

    base = row.base_text if current_text is None else current_text
    return "".join(difflib.unified_diff(base.splitlines(keepends=True), row.rules_text.splitlines(keepends=True),
                                        "prefixes.yaml (in force)", f"prefixes.yaml (backtest #{row.id})"))


# --------------------------------------------------------------------------- applying (RULES_EDITABLE=1)

def apply(session: Session, settings: Any, row: Any, *, actor: str, name: str = "",
          now: datetime | None = None) -> Any:
    """Write the backtested file to PREFIXES_FILE: validated, the previous version kept beside it
    (``prefixes.yaml.<UTC time>.bak`` and in the ``rule_changes`` row), replaced atomically, logged.

    Refused unless RULES_EDITABLE is on, the backtest is done, and the file on disk is still the one
    the backtest compared with (someone else's edit in between means: backtest again). Every running
    process reloads it within a second, as after any edit of the file. Commits the row.
    """
    import fcntl

    from ..models import RuleChange

    if not settings.RULES_EDITABLE:
        raise BacktestError("not_editable", status=403)
    if row.state != DONE:
        raise BacktestError("not_done", status=409)
    path = Path(str(settings.PREFIXES_FILE))
    proposed = _parse(str(path), row.rules_text)
    now = now or datetime.now(UTC)
    # One writer at a time, across processes: the check of the file in force and the write are one step.
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _read_in_force(str(path))
        if current != row.base_text:
            raise BacktestError("changed", status=409)
        backup = path.with_name(f"{path.name}.{now:%Y%m%dT%H%M%S%fZ}.bak")
        try:
            _write(path, backup, current, row.rules_text)
        except OSError as exc:  # a read-only volume, a full disk: said, not a 500
            raise BacktestError("unwritable", [f"{path}: {exc.strerror or exc}"], status=409) from None
        change = RuleChange(backtest_id=row.id, actor=actor, path=str(path), backup_path=str(backup),
                            version_before=row.base_version, version_after=proposed.version,
                            previous_text=current, created_at=now)
        session.add(change)
        session.commit()
    log.warning("%s written from the rules page by %s <%s> (backtest #%s): version %s -> %s; previous version "
                "kept in %s", path, name or actor, actor, row.id, row.base_version, proposed.version, backup)
    return change


def _write(path: Path, backup: Path, current: str, new: str) -> None:
    """Keep ``current`` in ``backup``, then replace ``path`` by ``new`` atomically (temp file, fsync, rename)."""
    with open(backup, "x", encoding="utf-8") as f:
        f.write(current)
    mode = path.stat().st_mode & 0o777
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
