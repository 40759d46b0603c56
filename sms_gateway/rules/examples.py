"""Labelled examples: the texts people re-routed, and what they teach the rules.

Every time a person gives a report to another agency (the API's disposition
today, the workspace and the central desk later: all through
``agencies.lifecycle.dispose``), ``record`` stores the report's text and the
agency it went to, in the same transaction. ``labelled`` reads them back as
``LabelledText`` — the latest label of each report — for
``evaluation.evaluate`` (``sms-gateway rules eval``, a backtest of an edited
registry) and for ``suggest`` (``sms-gateway rules suggest AGENCY``), which
proposes keywords from the texts re-routed to an agency: stems found in more of
its texts than in the rest, with the counts, for an admin to review. Nothing
here edits ``prefixes.yaml``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import LabelledExample, Report, utcnow
from ..registry import Registry
from .engine import engine_for
from .evaluation import LabelledText

SOURCE_DISPOSITION = "disposition"
SUGGEST_MIN_COUNT = 2  # a stem must be in at least this many of the agency's texts
SUGGEST_MIN_LENGTH = 3


def record(session: Session, report: Report, agency: str, *, previous: str | None, actor: str,
           source: str = SOURCE_DISPOSITION, now: datetime | None = None) -> LabelledExample:
    """Store ``report``'s text as an example of ``agency`` (not committed: the caller's transaction)."""
    evidence = report.evidence or {}
    rules = evidence.get("rules") or {}
    example = LabelledExample(
        report_id=report.id, text=report.text, agency=agency, previous_agency=previous,
        decided_by=evidence.get("decided_by"), rules_agency=rules.get("unit") or rules.get("agency"),
        source=source, actor=actor, created_at=now or utcnow())
    session.add(example)
    return example


def labelled(session: Session, *, since: datetime | None = None) -> list[LabelledText]:
    """The latest label of every re-routed report (labelled since ``since``), oldest first."""
    latest = (select(LabelledExample.report_id, func.max(LabelledExample.id).label("id"))
              .group_by(LabelledExample.report_id).subquery())
    query = (select(LabelledExample, Report.tracking_number)
             .join(latest, LabelledExample.id == latest.c.id)
             .join(Report, Report.id == LabelledExample.report_id)
             .order_by(LabelledExample.id))
    if since is not None:
        query = query.where(LabelledExample.created_at >= since)
    return [LabelledText(text=example.text, agency=example.agency, source=f"report {number}",
                         group=example.source)
            for example, number in session.execute(query)]


@dataclass(frozen=True)
class Suggestion:
    """A stem over-represented in the texts re-routed to an agency."""

    stem: str
    count: int  # texts of the agency that have it
    elsewhere: int  # other texts that have it
    score: float  # smoothed log ratio of the two shares
    forms: tuple[str, ...]  # how citizens wrote it, most frequent first
    keyword_of: tuple[str, ...]  # agencies whose rules already have it


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from Sastrawi.StopWordRemover.StopWordRemoverFactory import StopWordRemoverFactory

    return frozenset(StopWordRemoverFactory().get_stop_words())


def suggest(registry: Registry, examples: Sequence[LabelledText], agency: str, *,
            background: Iterable[LabelledText] = (), limit: int = 15,
            min_count: int = SUGGEST_MIN_COUNT) -> tuple[int, int, list[Suggestion]]:
    """(texts of ``agency``, other texts, keyword proposals) from labelled ``examples``.

    The other texts are the examples labelled for other agencies plus ``background``
    (the shipped labelled sets, those of other agencies only, so a handful of
    re-routings can already be compared with something). Stems the agency's rules already have, stopwords, greetings
    (``no_content``) and numbers are left out.
    """
    engine = engine_for(registry)
    normalizer, ruleset = engine.normalizer, engine.ruleset
    skip = ruleset.no_content | ruleset.junk | _stopwords()
    owners: dict[str, set[str]] = {}
    for rule in ruleset.rules:
        if rule.for_category or rule.for_kind:
            continue
        for phrase in rule.keywords:
            words = phrase.key.split()
            if len(words) == 1:
                owners.setdefault(words[0].lstrip("="), set()).add(rule.owner)

    mine: Counter[str] = Counter()
    rest: Counter[str] = Counter()
    forms: dict[str, Counter[str]] = {}
    n_mine = n_rest = 0
    texts = [*examples, *(b for b in background if b.agency != agency)]  # the agency's own: re-routed only
    for example in texts:
        words, stems = normalizer.analyse(example.text)
        seen = set()
        for word, stem in zip(words, stems, strict=True):
            if len(stem) < SUGGEST_MIN_LENGTH or not stem.isalpha() or stem in skip or word in skip:
                continue
            seen.add(stem)
            if example.agency == agency:
                forms.setdefault(stem, Counter())[word] += 1
        if example.agency == agency:
            n_mine += 1
            mine.update(seen)
        else:
            n_rest += 1
            rest.update(seen)

    out = []
    for stem, count in mine.items():
        if count < min_count or agency in owners.get(stem, set()):
            continue
        score = math.log((count + 0.5) / (n_mine + 1)) - math.log((rest[stem] + 0.5) / (n_rest + 1))
        if score <= 0:
            continue
        out.append(Suggestion(stem, count, rest[stem], score,
                              tuple(w for w, _n in forms[stem].most_common(3)),
                              tuple(sorted(owners.get(stem, set())))))
    out.sort(key=lambda s: (-s.score, -s.count, s.stem))
    return n_mine, n_rest, out[:limit]
