"""Where a report goes: the prefix decides, or the rules engine, or the central queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from . import deadlines
from .parsing import ParsedSMS
from .registry import Registry


@dataclass
class Decision:
    """The routing of one report and why."""

    agency: str | None  # None: central queue
    kind: str
    category: str | None = None
    special: bool = False
    disposition_due: date | None = None
    followup_due: date | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def decide(parsed: ParsedSMS, registry: Registry, received_at: datetime) -> Decision:
    """Route a parsed report: its prefix when it names an agency, else the central queue."""
    evidence: dict[str, Any] = {
        "prefix": parsed.prefix,
        "prefix_match": parsed.prefix_match,
        "matched_alias": parsed.matched_alias,
        "keyword": parsed.keyword,
        "registry_version": registry.version,
        "decided_by": "prefix" if parsed.agency else "central",
    }
    disposition, followup = deadlines.due_dates(received_at, special=False)
    return Decision(agency=parsed.agency, kind=parsed.kind, evidence=evidence,
                    disposition_due=disposition, followup_due=followup)
