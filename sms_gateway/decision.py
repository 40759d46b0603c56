"""Where a report goes: the prefix decides, or the rules engine, or the central queue."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from . import deadlines
from .parsing import ParsedSMS
from .registry import Registry, compact
from .rules import engine_for

_FIRST_WORD = re.compile(r"[^\s.,:;#\-/]+")


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


def decide(parsed: ParsedSMS, registry: Registry, received_at: datetime, *, explain: bool = True) -> Decision:
    """Route a parsed report.

    The prefix decides the agency when it names one; otherwise (no prefix, an
    unknown one, or the generic LAPOR) the rules engine does, and without a
    confident rule the report goes to the central queue. The category, and with
    it the deadlines, always come from the rules. A text with nothing but
    greetings and "I want to report" becomes kind ``unknown``: no report, the
    citizen is asked for the content; so does junk (``evidence["junk"]``), which
    is answered with the help text.

    The kind is the keyword's; without one, a text with no agency prefix is
    read for it (a question is ``info``, a proposal or a thank-you ``aspirasi``),
    and the evidence says why. A prefix without a keyword means ``aduan``, as
    the format says.

    ``explain=False`` (bulk callers: the rules backtest) decides the same and
    skips what only explains it: the rules' evidence is only the unit, and
    there are no deadlines.
    """
    verdict = engine_for(registry).evaluate(parsed.body)
    kind, kind_by = parsed.kind, "keyword" if parsed.keyword else "format" if parsed.agency else "default"
    if parsed.agency is None and parsed.keyword is None:
        leading = _leading_keyword(parsed.body, registry)
        if leading:
            kind, kind_by = leading, "keyword"
        elif verdict.kind:
            kind, kind_by = verdict.kind, "text"
    if not verdict.has_content:
        kind, kind_by = "unknown", "junk" if verdict.junk else "no content"
    if parsed.agency:
        agency, decided_by = parsed.agency, "prefix"
    elif verdict.agency:
        agency, decided_by = verdict.agency, "rules"
    else:
        agency, decided_by = None, "central"
    evidence: dict[str, Any] = {
        "prefix": parsed.prefix,
        "prefix_match": parsed.prefix_match,
        "matched_alias": parsed.matched_alias,
        "keyword": parsed.keyword,
        "unknown_code": parsed.prefix if parsed.prefix_match == "unknown" else None,
        "registry_version": registry.version,
        "decided_by": decided_by,
        "kind_by": kind_by,
        "junk": verdict.junk and kind == "unknown",
        "rules": verdict.evidence() if explain else {"unit": verdict.unit},
    }
    if not explain:
        return Decision(agency=agency, kind=kind, category=verdict.category, special=verdict.special,
                        evidence=evidence)
    if verdict.days is not None:
        disposition = deadlines.add_working_days(received_at, verdict.days[0])
        followup = deadlines.add_working_days(received_at, verdict.days[1])
    else:
        disposition, followup = deadlines.due_dates(received_at, special=False)
    return Decision(agency=agency, kind=kind, category=verdict.category, special=verdict.special,
                    evidence=evidence, disposition_due=disposition, followup_due=followup)


def _leading_keyword(body: str, registry: Registry) -> str | None:
    """Kind of a report that starts with its keyword but no prefix ("SARAN tambah halte …")."""
    match = _FIRST_WORD.match(body)
    return registry.keywords.get(compact(match.group())) if match else None
