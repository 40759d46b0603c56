"""``sms-gateway classify``: the final decision on a text, for admins editing rules."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click


@click.command("classify")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--jsonl", is_flag=True, help="Classify every line of standard input; print one JSON object per line.")
@click.option("--at", "received_at", type=click.DateTime(), default=None,
              help="Receipt time for the deadlines (ISO, UTC; default now).")
@click.argument("text", required=False)
def classify_cmd(as_json: bool, jsonl: bool, received_at: datetime | None, text: str | None) -> None:
    """Show where TEXT would go: agency, kind, category, special, matched keywords, rule, deadlines."""
    from ..config import get_settings
    from ..jobs import registry_for
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
