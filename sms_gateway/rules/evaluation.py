"""How well a registry routes labelled texts: accuracy per agency and per group, with every miss.

One function, ``evaluate(registry, examples)``, serves every caller: the
shipped labelled sets (``sms_gateway/data/cases/*.tsv``), the examples people
labelled by re-routing reports (``sms_gateway/rules/examples.py``), and a
backtest of an edited ``prefixes.yaml`` against either. A label names the
agency a text should reach; a unit (``DLHBEKASI``) counts as its parent
agency (``PEMKOTBEKASI``, which receives the report) plus the unit the report
should be disposed to, so "right" means the engine found both.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ..registry import Registry
from .classify import classify

NONE_LABELS = {"", "none", "null", "-"}
CENTRAL = "NONE"  # how the central queue is shown in results
# A fixed Tuesday that is a working day, so deadlines do not depend on today.
RECEIVED_AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
SHIPPED_SETS = ("cases.tsv", "eval_dev.tsv", "eval_test.tsv")


@dataclass(frozen=True)
class LabelledText:
    """A text and where it should go: agency (None: central queue), unit, kind, group."""

    text: str
    agency: str | None
    kind: str | None = None  # None: not checked
    unit: str | None = None  # None: not checked
    category: str | None = None
    check_category: bool = False
    group: str | None = None  # None: from how the parser reads the text
    source: str = ""  # file:line, or the report's tracking number


@dataclass
class Tally:
    """Right answers out of a total, for the agency (with unit) and the kind."""

    total: int = 0
    agency_right: int = 0
    kind_total: int = 0
    kind_right: int = 0
    right: int = 0  # agency, kind and category all right

    def add(self, agency_ok: bool, kind_ok: bool | None, all_ok: bool) -> None:
        """Count one text."""
        self.total += 1
        self.agency_right += agency_ok
        if kind_ok is not None:
            self.kind_total += 1
            self.kind_right += kind_ok
        self.right += all_ok

    @property
    def agency_accuracy(self) -> float:
        """Share of texts whose agency (and unit) was right."""
        return self.agency_right / self.total if self.total else 0.0

    @property
    def kind_accuracy(self) -> float:
        """Share of texts whose kind was right, among those with a kind label."""
        return self.kind_right / self.kind_total if self.kind_total else 0.0

    @property
    def accuracy(self) -> float:
        """Share of texts right in every labelled respect."""
        return self.right / self.total if self.total else 0.0


@dataclass(frozen=True)
class Miss:
    """A text the registry got wrong, and what it did instead."""

    example: LabelledText
    group: str
    problems: tuple[str, ...]
    matched: str
    reason: str

    def render(self) -> str:
        """One line for a terminal."""
        where = f" ({self.example.source})" if self.example.source else ""
        return (f"[{self.group}] {self.example.text!r}{where}: {'; '.join(self.problems)}; "
                f"matched {self.matched}; {self.reason}")


@dataclass
class Evaluation:
    """Results of one registry on one list of labelled texts."""

    overall: Tally = field(default_factory=Tally)
    by_agency: dict[str, Tally] = field(default_factory=dict)  # expected agency (or AGENCY/UNIT)
    by_group: dict[str, Tally] = field(default_factory=dict)
    chosen: dict[str, list[int]] = field(default_factory=dict)  # agency -> [rightly chosen, chosen]
    misses: list[Miss] = field(default_factory=list)

    def precision(self, agency: str) -> float | None:
        """Of the texts routed to ``agency`` (units count for their parent), the share that belonged there."""
        right, chosen = self.chosen.get(agency, (0, 0))
        return right / chosen if chosen else None

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        def tally(t: Tally) -> dict[str, Any]:
            return {"total": t.total, "agency_right": t.agency_right, "kind_right": t.kind_right,
                    "kind_total": t.kind_total, "right": t.right}
        return {"overall": tally(self.overall),
                "by_agency": {k: tally(v) for k, v in sorted(self.by_agency.items())},
                "by_group": {k: tally(v) for k, v in sorted(self.by_group.items())},
                "misses": [{"text": m.example.text, "source": m.example.source, "group": m.group,
                            "problems": list(m.problems), "matched": m.matched, "reason": m.reason}
                           for m in self.misses]}


def label(raw: str | None) -> str | None:
    """A label as the classifier reports it (NONE, empty -> None)."""
    return None if raw is None or raw.strip().lower() in NONE_LABELS else raw.strip()


def read_cases(path: str | Path, text: str | None = None) -> list[LabelledText]:
    """Rows of a labelled TSV (header: text, agency, kind; optional unit, category, group).

    Lines starting with ``#`` and holding no tab are comments (a text may itself
    start with ``#``: "#BEKASI aduan ..." is a row).
    """
    path = Path(path)
    if text is None:
        text = path.read_text(encoding="utf-8")
    numbered = [(n, line) for n, line in enumerate(text.splitlines(keepends=True), start=1)
                if line.strip() and not (line.startswith("#") and "\t" not in line)]
    if not numbered:
        return []
    reader = csv.DictReader([line for _n, line in numbered], delimiter="\t", quoting=csv.QUOTE_NONE)
    if not {"text", "agency", "kind"} <= set(reader.fieldnames or ()):
        raise ValueError(f"{path}:{numbered[0][0]}: the header must name text, agency and kind")
    out = []
    for (number, _line), row in zip(numbered[1:], reader, strict=True):
        category_raw = row.get("category")
        out.append(LabelledText(
            text=row["text"], agency=label(row["agency"]), kind=label(row["kind"]),
            unit=label(row.get("unit")), category=label(category_raw),
            check_category=bool(category_raw and category_raw.strip()),
            group=label(row.get("group")), source=f"{path.name}:{number}"))
    return out


def shipped_cases(name: str) -> list[LabelledText]:
    """A labelled set shipped with the gateway (``sms_gateway/data/cases/NAME``)."""
    text = resources.files("sms_gateway.data").joinpath("cases").joinpath(name).read_text(encoding="utf-8")
    return read_cases(Path(name), text)


def group_of(result: dict[str, Any]) -> str:
    """Which group a text belongs to, from how the parser read it."""
    if result["command"]:
        return "commands"
    match = result["prefix_match"]
    if match in ("exact", "glued"):
        return "prefixed"
    if match in ("typo", "abbreviation"):
        return "typo'd prefix"
    return "unprefixed"


def route(registry: Registry, agency: str | None, unit: str | None = None) -> tuple[str | None, str | None]:
    """(receiving agency, unit) of a label or an answer: a unit is reached through its top parent."""
    if agency is None or agency not in registry.agencies:
        return agency, unit
    top = agency
    seen = {top}
    while registry.agencies[top].parent and registry.agencies[top].parent in registry.agencies:
        top = registry.agencies[top].parent  # type: ignore[assignment]
        if top in seen:
            break
        seen.add(top)
    if top != agency:
        return top, agency
    return agency, unit


def evaluate(registry: Registry, examples: Iterable[LabelledText], *,
             received_at: datetime = RECEIVED_AT) -> Evaluation:
    """Classify every example with ``registry``; tally agency and kind per agency and per group."""
    out = Evaluation()
    for example in examples:
        result = classify(example.text, registry, received_at)
        group = example.group or group_of(result)
        want_agency, want_unit = route(registry, example.agency, example.unit)
        got_agency, got_unit = route(registry, result["agency"], result["unit"])
        agency_ok = got_agency == want_agency and (want_unit is None or got_unit == want_unit)
        kind_ok = None if example.kind is None else result["kind"] == example.kind
        category_ok = not example.check_category or result["category"] == example.category
        problems = []
        if not agency_ok:
            want = f"{want_agency or CENTRAL}{'/' + want_unit if want_unit else ''}"
            got = f"{got_agency or CENTRAL}{'/' + got_unit if got_unit else ''}"
            problems.append(f"agency {got} (want {want})")
        if kind_ok is False:
            problems.append(f"kind {result['kind']} (want {example.kind})")
        if not category_ok:
            problems.append(f"category {result['category'] or CENTRAL} (want {example.category or CENTRAL})")
        all_ok = not problems
        key = f"{want_agency or CENTRAL}{'/' + want_unit if want_unit else ''}"
        for tally in (out.overall, out.by_agency.setdefault(key, Tally()), out.by_group.setdefault(group, Tally())):
            tally.add(agency_ok, kind_ok, all_ok)
        chosen = out.chosen.setdefault(got_agency or CENTRAL, [0, 0])
        chosen[0] += got_agency == want_agency
        chosen[1] += 1
        if problems:
            matched = ", ".join(f"{m['keyword']}->{m['for']}" for m in result["matched"]) or "nothing"
            out.misses.append(Miss(example, group, tuple(problems), matched,
                                   result["reason"] or result["decided_by"] or ""))
    return out


def render(evaluation: Evaluation, title: str, groups: Sequence[str] = (), *, misses: bool = True) -> list[str]:
    """Lines for a terminal: overall, per group, per agency, then the misses."""
    o = evaluation.overall
    lines = [f"{title}: {o.right}/{o.total} right = {100 * o.accuracy:.1f}% "
             f"(agency {o.agency_right}/{o.total} = {100 * o.agency_accuracy:.1f}%, "
             f"kind {o.kind_right}/{o.kind_total} = {100 * o.kind_accuracy:.1f}%)"]
    if evaluation.by_group:
        lines.append(f"  {'group':16} {'agency':>14} {'kind':>14} {'all':>14}")
        ordered = [g for g in groups if g in evaluation.by_group]
        ordered += sorted(set(evaluation.by_group) - set(ordered))
        for group in ordered:
            t = evaluation.by_group[group]
            lines.append(f"  {group:16} {_cell(t.agency_right, t.total)} {_cell(t.kind_right, t.kind_total)} "
                         f"{_cell(t.right, t.total)}")
    lines.append(f"  {'expected agency[/unit]':28} {'right':>14} {'precision':>10}")
    for agency, t in sorted(evaluation.by_agency.items()):
        precision = None if "/" in agency else evaluation.precision(agency)
        shown = "" if "/" in agency else "-" if precision is None else f"{100 * precision:.0f}%"
        lines.append(f"  {agency:28} {_cell(t.agency_right, t.total)} {shown:>10}")
    if misses:
        lines.extend(f"  MISS {m.render()}" for m in evaluation.misses)
    return lines


def _cell(right: int, total: int) -> str:
    if not total:
        return f"{'-':>14}"
    return f"{right:>4}/{total:<4} {100 * right / total:4.0f}%"
