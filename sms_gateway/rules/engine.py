"""Scoring a message against the rules: which agency, which category, and why.

For every rule whose keywords are found (and none of its vetoes, and one of the
phrases it requires, if any), each distinct keyword found adds the rule's
weight to its agency. A unit with a ``parent`` (Dinas Perhubungan Kota
Bekasi) scores for the agency that receives its reports (Pemerintah Kota
Bekasi), which disposes the report to it: the unit is kept as a suggestion.

An agency wins when it reaches ``min_score`` and is strictly ahead of the next
one on (score, highest priority of its matched rules); anything else — nothing
found, too little, a tie nobody breaks — leaves the report to the central queue.
Categories score the same way against ``category_min_score``; among those
that reach it a special category comes first, then the higher score, then the
one written first in the file.

A rule written ``local: true`` counts only when the text names a place of its
city (the gazetteer of the agency receiving its reports): a puskesmas in
Jatiasih is Dinas Kesehatan Kota Bekasi's, a puskesmas nowhere in particular
is not. A name the gazetteer marks ambiguous (``Perwira``, ``Jl. Ahmad Yani``)
counts only beside another name of the same city, and a name the gazetteer
lists as elsewhere (``Cikarang``: Kabupaten Bekasi) cancels the city.

Kinds are scored the same way from the ``kinds:`` cues (and a question mark,
for ``info``): the kind that reaches ``kind_min_score`` ahead of every other is
the kind the text reads as; the decision uses it only when no keyword said it.

A text is junk when no word of it is a word of the language (the stemmer's
dictionary, a known inflection, slang, the rules' words) other than the test
words of ``settings.rules.junk``, and no rule matched: keyboard mash, "test",
digits alone. Junk makes no report; the citizen gets the help text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .gazetteer import Place
from .matcher import Matcher
from .normalize import exact_key, phrase_key
from .schema import Category, Phrase, Rule, RuleSet

_KEYWORD, _VETO, _REQUIRES, _PLACE = 0, 1, 2, 3
_SCORES_SHOWN = 5  # runner-up scores kept in the evidence


@dataclass(frozen=True)
class Match:
    """A keyword found in the text, and what it counted for."""

    keyword: str
    owner: str  # agency code or category name
    rule: str  # rule label
    weight: float
    line: int

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {"keyword": self.keyword, "for": self.owner, "rule": self.rule,
                "weight": _num(self.weight), "line": self.line}


@dataclass
class Verdict:
    """What the rules say about one text."""

    agency: str | None = None  # None: no confident rule
    unit: str | None = None  # a unit of ``agency`` the report should be disposed to
    score: float = 0.0
    rule: str | None = None  # the winning agency's strongest rule
    reason: str = "no rule matched"
    category: str | None = None
    special: bool = False
    days: tuple[int, int] | None = None  # the category's working days, if any
    category_score: float = 0.0
    category_rule: str | None = None
    has_content: bool = True  # False: greetings and "I want to report" only
    junk: bool = False  # no word of the language at all, or only test words: no report, the help text
    kind: str | None = None  # the kind the text reads as (info, aspirasi), None: nothing says
    kind_scores: dict[str, float] = field(default_factory=dict)
    kind_hits: list[tuple[Rule | None, str]] = field(default_factory=list)  # (cue rule, phrase); None: "?"
    places: list[str] = field(default_factory=list)  # "Jatiasih (kecamatan) -> PEMKOTBEKASI"
    corrections: list[tuple[str, str]] = field(default_factory=list)  # (typed, read as)
    scores: dict[str, float] = field(default_factory=dict)  # agency -> score, best first
    vetoed: list[str] = field(default_factory=list)  # "RULE by 'phrase'"
    needs_context: list[str] = field(default_factory=list)  # rules found without what they require
    hits: list[tuple[Rule, Phrase]] = field(default_factory=list)  # keywords that counted

    @property
    def kind_cues(self) -> list[str]:
        """The cues of the kind found: ``cara (info +2)``, ``? (info +1)``."""
        return [f"{text} ({rule.owner} +{rule.weight:g})" if rule else text for rule, text in self.kind_hits]

    @property
    def matched(self) -> list[Match]:
        """The keywords that counted, in the order of the rules."""
        return [Match(p.text, r.owner, r.label, r.weight, p.line) for r, p in self.hits]

    def evidence(self) -> dict[str, Any]:
        """JSON-ready explanation stored with the report."""
        return {
            "agency": self.agency,
            "unit": self.unit,
            "score": _num(self.score),
            "rule": self.rule,
            "reason": self.reason,
            "category": self.category,
            "category_score": _num(self.category_score),
            "category_rule": self.category_rule,
            "matched": [m.to_dict() for m in self.matched],
            "scores": {k: _num(v) for k, v in self.scores.items()},
            "vetoed": self.vetoed,
            "needs_context": self.needs_context,
            "content": self.has_content,
            "junk": self.junk,
            "kind": self.kind,
            "kind_scores": {k: _num(v) for k, v in self.kind_scores.items()},
            "kind_cues": self.kind_cues,
            "places": self.places,
            "corrections": [f"{typed} -> {read}" for typed, read in self.corrections],
        }


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


class Engine:
    """The rules of one registry version, compiled into one automaton."""

    def __init__(self, ruleset: RuleSet, version: str = "") -> None:
        self.ruleset = ruleset
        self.version = version
        self.normalizer = ruleset.normalizer
        self._rules = ruleset.rules
        # Where each rule's points go: its category, or the agency receiving its owner's reports.
        self._dest = [r.owner if r.for_category else ruleset.destination.get(r.owner, r.owner)
                      for r in ruleset.rules]
        self._index: dict[str, list[tuple[int, int, Phrase]]] = {}
        for rule_id, rule in enumerate(ruleset.rules):
            for role, phrases in ((_KEYWORD, rule.keywords), (_VETO, rule.veto), (_REQUIRES, rule.requires)):
                for phrase in phrases:
                    self._index.setdefault(phrase.key, []).append((rule_id, role, phrase))
        self._places = ruleset.places
        for place_id, (_city, _place, phrase) in enumerate(self._places):
            self._index.setdefault(phrase.key, []).append((place_id, _PLACE, phrase))
        self.matcher = Matcher(self._index)
        # Only pay for a second, unstemmed copy of each text when some keyword or place needs it.
        self._exact = any(p.exact for entries in self._index.values() for _r, _role, p in entries)

    @property
    def rule_count(self) -> int:
        """Number of rules (agencies' and categories')."""
        return len(self._rules)

    def evaluate(self, text: str) -> Verdict:
        """Score ``text`` against every rule in one pass."""
        verdict = Verdict()
        words, stems = self.normalizer.analyse(text, verdict.corrections)
        padded = phrase_key(stems)
        if self._exact:
            padded += exact_key(words)[1:]
        found = self.matcher.find(padded)
        self._content(verdict, words, stems)
        question = "?" in text and self.ruleset.question_mark > 0
        if not found and not question:
            return verdict

        hits: dict[int, list[Phrase]] = {}
        vetoes: dict[int, Phrase] = {}
        context: set[int] = set()
        places: list[int] = []
        index = self._index
        for key in found:
            for rule_id, role, phrase in index[key]:
                if role == _PLACE:
                    places.append(rule_id)
                elif role == _KEYWORD:
                    if rule_id in hits:
                        hits[rule_id].append(phrase)
                    else:
                        hits[rule_id] = [phrase]
                elif role == _VETO:
                    vetoes.setdefault(rule_id, phrase)
                else:
                    context.add(rule_id)

        rules, dests = self._rules, self._dest
        cities = self._cities(verdict, places) if places else set()
        agency_points: dict[str, float] = {}
        category_points: dict[str, float] = {}
        kind_points: dict[str, float] = {}
        agency_priority: dict[str, int] = {}
        category_priority: dict[str, int] = {}
        rule_points: dict[int, float] = {}
        for rule_id in sorted(hits):  # file order: evidence reads like the rules
            rule = rules[rule_id]
            if rule_id in vetoes:
                verdict.vetoed.append(f"{rule.label} by {vetoes[rule_id].text!r}")
                continue
            if rule.requires and rule_id not in context:
                verdict.needs_context.append(rule.label)
                continue
            if rule.local and dests[rule_id] not in cities:
                verdict.needs_context.append(f"{rule.label}: no place of {dests[rule_id]} named")
                continue
            phrases = hits[rule_id]
            points = rule.weight * len(phrases)
            if rule.for_kind:
                kind_points[rule.owner] = kind_points.get(rule.owner, 0.0) + points
                verdict.kind_hits.extend((rule, p.text) for p in phrases)
                continue
            rule_points[rule_id] = points
            verdict.hits.extend((rule, p) for p in phrases)
            dest = dests[rule_id]
            if rule.for_category:
                table, priority = category_points, category_priority
            else:
                table, priority = agency_points, agency_priority
            table[dest] = table.get(dest, 0.0) + points
            if dest not in priority or rule.priority > priority[dest]:
                priority[dest] = rule.priority

        # A keyword that counted is content even if admins also list its word as empty.
        verdict.has_content = verdict.has_content or bool(verdict.hits)
        verdict.junk = verdict.junk and not verdict.has_content
        if question:
            kind_points["info"] = kind_points.get("info", 0.0) + self.ruleset.question_mark
            verdict.kind_hits.append((None, f"? (info +{self.ruleset.question_mark:g})"))
        self._choose_kind(verdict, kind_points)
        self._choose_agency(verdict, agency_points, agency_priority, rule_points)
        if category_points:
            self._choose_category(verdict, category_points, category_priority, rule_points)
        return verdict

    def _content(self, verdict: Verdict, words: list[str], stems: list[str]) -> None:
        """Whether the text says anything (has_content) and whether it is junk."""
        no_content, junk, real = self.ruleset.no_content, self.ruleset.junk, self.normalizer.is_real
        any_real = test_word = False
        for word, stem in zip(words, stems, strict=True):
            if word in junk or stem in junk:
                test_word = True
            elif real(word):
                any_real = True
                if stem not in no_content:
                    verdict.has_content = True
                    return
        verdict.has_content = False
        verdict.junk = test_word or not any_real

    def _cities(self, verdict: Verdict, place_ids: list[int]) -> set[str]:
        """Cities whose places the text names (ambiguous names only beside another; none if elsewhere)."""
        found: dict[str, list[Place]] = {}
        for place_id in dict.fromkeys(place_ids):
            city, place, _phrase = self._places[place_id]
            found.setdefault(city, []).append(place)
        cities = set()
        for city, places in found.items():
            away = [p for p in places if p.kind == "elsewhere"]
            if away:
                verdict.places.extend(f"{p.name} (not {city}: elsewhere)" for p in away)
                continue
            sure = [p for p in places if not p.ambiguous]
            if not sure:
                verdict.places.extend(f"{p.name} (ambiguous, alone: not counted)" for p in places)
                continue
            cities.add(city)
            verdict.places.extend(f"{p.describe()} -> {city}" for p in places)
        return cities

    def _choose_kind(self, verdict: Verdict, points: dict[str, float]) -> None:
        if not points:
            return
        verdict.kind_scores = dict(sorted(points.items(), key=lambda kv: kv[1], reverse=True))
        ranked = list(verdict.kind_scores.items())
        best, score = ranked[0]
        if score < self.ruleset.kind_min_score or (len(ranked) > 1 and ranked[1][1] == score):
            return
        verdict.kind = best

    def _choose_agency(self, verdict: Verdict, points: dict[str, float], priority: dict[str, int],
                       rule_points: dict[int, float]) -> None:
        ranked = sorted(points, key=lambda a: (points[a], priority[a]), reverse=True)
        verdict.scores = {a: points[a] for a in ranked[:_SCORES_SHOWN]}
        if not ranked:
            if verdict.vetoed or verdict.needs_context:
                verdict.reason = "every rule found was vetoed or lacked the context it requires"
            return
        best = ranked[0]
        verdict.score = points[best]
        if points[best] < self.ruleset.min_score:
            verdict.reason = f"best score {points[best]:g} ({best}) is below min_score {self.ruleset.min_score:g}"
            return
        if len(ranked) > 1:
            second = ranked[1]
            if (points[second], priority[second]) == (points[best], priority[best]):
                tied = [a for a in ranked if (points[a], priority[a]) == (points[best], priority[best])]
                verdict.reason = f"tie at score {points[best]:g} between {', '.join(tied)}"
                return
        verdict.agency = best
        verdict.reason = "confident"
        # Which of the agency's units the points came from: a disposition hint. The agency's
        # own words ("jalan", "pasar") say where, its units' words say which service.
        units: dict[str, float] = {}
        for rule_id, p in rule_points.items():
            rule = self._rules[rule_id]
            if not rule.for_category and self._dest[rule_id] == best and rule.owner != best:
                units[rule.owner] = units.get(rule.owner, 0.0) + p
        if units:
            top = max(units.values())
            leaders = [u for u, p in units.items() if p == top]
            if len(leaders) == 1:
                verdict.unit = leaders[0]
        verdict.rule = self._strongest(best, rule_points, category=False)

    def _choose_category(self, verdict: Verdict, points: dict[str, float], priority: dict[str, int],
                         rule_points: dict[int, float]) -> None:
        categories = self.ruleset.categories
        # A report that qualifies for a special category must get the faster deadlines.
        ranked = sorted((c for c in points if points[c] >= self.ruleset.category_min_score),
                        key=lambda c: (categories[c].special, points[c], priority[c], -categories[c].order),
                        reverse=True)
        if not ranked:
            return
        best: Category = categories[ranked[0]]
        verdict.category = best.name
        verdict.special = best.special
        verdict.days = best.days
        verdict.category_score = points[best.name]
        verdict.category_rule = self._strongest(best.name, rule_points, category=True)

    def _strongest(self, owner: str, rule_points: dict[int, float], *, category: bool) -> str:
        """Label of the rule that gave ``owner`` (an agency with its units, or a category) most points."""
        candidates = [(points, -rule_id) for rule_id, points in rule_points.items()
                      if self._dest[rule_id] == owner and self._rules[rule_id].for_category == category]
        _points, neg_id = max(candidates)
        rule = self._rules[-neg_id]
        return f"{rule.label}, {self.ruleset.path}:{rule.line}"


_CACHE: OrderedDict[str, Engine] = OrderedDict()
_CACHE_SIZE = 4  # the version in force plus a few recent ones (tests, `prefixes check`)
_LOCK = threading.Lock()


def build(path: str, raw: dict[str, Any], parents: dict[str, str | None], version: str = "",
          gazetteers: dict[str, Any] | None = None) -> Engine:
    """Compile an engine from registry data; raise ``ValueError`` listing the problems."""
    from .schema import load_ruleset

    ruleset, problems = load_ruleset(path, raw, parents, gazetteers)
    if problems:
        raise ValueError("\n".join(p.render() for p in problems))
    return Engine(ruleset, version)


def engine_for(registry: Any) -> Engine:
    """The engine of a registry version, built once and kept while that version is in use."""
    key = f"{registry.path}\0{registry.version}"
    with _LOCK:
        engine = _CACHE.get(key)
        if engine is not None:
            _CACHE.move_to_end(key)
            return engine
        parents = {code: agency.parent for code, agency in registry.agencies.items()}
        engine = build(registry.path, registry.raw, parents, registry.version, registry.gazetteers)
        _CACHE[key] = engine
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return engine
