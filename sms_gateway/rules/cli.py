"""``sms-gateway classify`` and ``sms-gateway rules eval|suggest``: the rules, for admins editing them."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .evaluation import LabelledText


@click.command("classify")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--jsonl", is_flag=True, help="Classify every line of standard input; print one JSON object per line.")
@click.option("--at", "received_at", type=click.DateTime(), default=None,
              help="Receipt time for the deadlines (ISO, UTC; default now).")
@click.argument("text", required=False)
def classify_cmd(as_json: bool, jsonl: bool, received_at: datetime | None, text: str | None) -> None:
    """Show where TEXT would go: agency, kind, category, special, matched keywords, rule, deadlines."""
    from ..config import get_settings
    from ..registry import registry_for
    from .classify import classify

    registry = registry_for(get_settings())
    when = received_at.replace(tzinfo=UTC) if received_at else datetime.now(UTC)
    if jsonl:
        for line in sys.stdin:
            result = classify(line.rstrip("\r\n"), registry, when)
            click.echo(json.dumps(result, ensure_ascii=False))
        return
    if text is None:
        raise click.UsageError("give TEXT or --jsonl")
    result = classify(text, registry, when)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        if key == "matched":
            value = ", ".join(f"{m['keyword']} ({m['for']} +{m['weight']})" for m in value) or "-"
        elif isinstance(value, list):
            value = ", ".join(value) or "-"
        click.echo(f"{key:16} {'-' if value is None else value}")


@click.group("rules")
def rules_group() -> None:
    """How well the rules route: labelled examples, shipped cases, keyword proposals."""


def _since(value: datetime | None) -> datetime | None:
    """A --since date as the start of that day in Jakarta (like the API's since)."""
    if value is None:
        return None
    from ..deadlines import JAKARTA

    return value.replace(tzinfo=JAKARTA).astimezone(UTC)


def _labelled(since: datetime | None) -> list[LabelledText]:
    from ..config import get_settings
    from ..db import session_factory
    from .examples import labelled

    with session_factory(get_settings().DATABASE_URL)() as session:
        return labelled(session, since=since)


@rules_group.command("eval")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Only examples labelled since this day (YYYY-MM-DD, Jakarta).")
@click.option("--misses/--no-misses", default=True, show_default=True, help="List every text the rules get wrong.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: every set's results.")
def eval_cmd(since: datetime | None, misses: bool, as_json: bool) -> None:
    """Accuracy of the rules in force on re-routed reports and on the shipped cases, per agency."""
    from ..config import get_settings
    from ..registry import registry_for
    from .evaluation import SHIPPED_SETS, evaluate, render, shipped_cases

    registry = registry_for(get_settings())
    examples = _labelled(_since(since))
    sets = [(f"re-routed reports{' since ' + since.date().isoformat() if since else ''} "
             f"({len(examples)} labelled by people)", examples)]
    sets += [(f"shipped {name}", shipped_cases(name)) for name in SHIPPED_SETS]
    results = [(title, evaluate(registry, rows)) for title, rows in sets]
    if as_json:
        click.echo(json.dumps({"registry_version": registry.version,
                               "sets": [{"title": t, **r.to_dict()} for t, r in results]}, ensure_ascii=False))
        return
    click.echo(f"rules of {registry.path} (version {registry.version})")
    for title, result in results:
        if not result.overall.total:
            click.echo(f"{title}: nothing to evaluate yet (every disposition adds one)")
            continue
        for line in render(result, title, misses=misses):
            click.echo(line)


@rules_group.command("suggest")
@click.argument("agency")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Only examples labelled since this day (YYYY-MM-DD, Jakarta).")
@click.option("--limit", default=15, show_default=True, help="Proposals to show.")
@click.option("--min-count", default=2, show_default=True, help="Texts of the agency a stem must be in.")
def suggest_cmd(agency: str, since: datetime | None, limit: int, min_count: int) -> None:
    """Propose keywords for AGENCY from the texts people re-routed to it (never edits prefixes.yaml)."""
    from ..config import get_settings
    from ..registry import registry_for
    from .evaluation import SHIPPED_SETS, shipped_cases
    from .examples import suggest

    registry = registry_for(get_settings())
    agency = agency.upper()
    if agency not in registry.agencies:
        raise click.UsageError(f"unknown agency {agency!r} (registered: {', '.join(registry.agencies)})")
    examples = _labelled(_since(since))
    background = [row for name in SHIPPED_SETS for row in shipped_cases(name)]
    mine, rest, proposals = suggest(registry, examples, agency, background=background, limit=limit,
                                    min_count=min_count)
    click.echo(f"{mine} texts re-routed to {agency}, compared with {rest} others "
               f"(other re-routed reports and the shipped cases)")
    if not proposals:
        click.echo(f"no stem is in at least {min_count} of them and more frequent there than elsewhere")
        return
    click.echo(f"{'stem':16} {agency + ' texts':>14} {'others':>7} {'score':>6}  written as; already a keyword of")
    for p in proposals:
        also = f"; keyword of {', '.join(p.keyword_of)}" if p.keyword_of else ""
        click.echo(f"{p.stem:16} {p.count:>14} {p.elsewhere:>7} {p.score:>6.2f}  {', '.join(p.forms)}{also}")
    click.echo("\nTo use them, review and add to prefixes.yaml (then `sms-gateway prefixes check` and "
               "`sms-gateway rules eval`), for example:")
    click.echo(f"  {agency}:\n    rules:\n      - name: from re-routed reports\n        weight: 2\n"
               f"        keywords: [{', '.join(p.stem for p in proposals if not p.keyword_of)}]")


@rules_group.command("backtest")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660),
              help="Stored texts received in the last DAYS days.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
def backtest_cmd(file: str, days: int, as_json: bool) -> None:
    """What FILE (an edited prefixes.yaml) would change: texts that move, become unrouted, accuracy.

    Every stored text of the last DAYS days is decided by the rules in force and
    by FILE; the labelled examples (re-routed reports) and the shipped sets are
    scored with both. Nothing is written. Exit 2 when FILE has problems.
    """
    from ..config import get_settings
    from ..db import session_factory
    from ..registry import RegistryError, parse_registry, registry_for
    from .backtest import Window, render, run
    from .examples import labelled

    settings = get_settings()
    try:
        proposed = parse_registry(file)
    except RegistryError as exc:
        click.echo(f"{file} is not a valid prefixes file:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem.render()}", err=True)
        sys.exit(2)
    current = registry_for(settings)
    with session_factory(settings.DATABASE_URL)() as session:
        result = run(session, current, proposed, Window.last_days(days), examples=labelled(session))
    result["file"] = file
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"backtest of {file} against {current.path}, last {days} days")
    for line in render(result):
        click.echo(line)
