"""The rules sections of ``prefixes.yaml``, read and checked with line numbers.

Shape (see the comments in the shipped prefixes.yaml)::

    settings:
      rules:
        min_score: 2             # score an agency needs to receive a report without prefix
        category_min_score: 2    # score a category needs
        no_content: [selamat, pagi, pak, saya, mau, lapor, ...]
        kind_min_score: 2        # score a kind (info, aspirasi) needs to be read from the text
        question_mark: 1         # points a "?" gives the kind info
        junk: [test, tes, coba]  # words that make a text with nothing else a test message
    slang:                       # additions to sms_gateway/data/slang.tsv
      bks: bekasi
    kinds:                       # cues of the kind when no keyword says it
      info:
        - keywords: [gimana cara, syarat]
          weight: 2
    categories:
      COVID-19:
        special: true            # deadlines 1 and 2 working days unless given:
        disposition_days: 1
        followup_days: 2
        rules: [...]             # same shape as an agency's rules
    agencies:
      KEMENHUB:
        rules:
          - name: angkutan darat
            weight: 2            # points per keyword found (default 1)
            priority: 0          # breaks a tie between agencies (default 0)
            keywords: [terminal, bus akap, travel gelap, =dirumahkan]   # "=": this form only
            veto: [tol]          # any of these in the text cancels this rule
            requires: [bekasi]   # the rule counts only if one of these is in the text
            local: true          # counts only when the text names a place of the city (gazetteer)

Problems are reported as ``YamlProblem`` (``file:line: problem``); the
registry loader refuses a file that has any, so a broken edit never replaces
the rules in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import deadlines
from ..yamlfile import LineDict, LineList, YamlProblem, unknown_keys
from . import normalize
from .gazetteer import Gazetteer, Place

RULE_KEYS = {"name", "keywords", "weight", "priority", "veto", "requires", "local"}
CATEGORY_KEYS = {"special", "disposition_days", "followup_days", "rules", "description"}
SETTINGS_KEYS = {"min_score", "category_min_score", "no_content", "kind_min_score", "question_mark", "junk"}
KIND_NAMES = ("aduan", "aspirasi", "info")
CATEGORY_NAME_MAX = 64  # reports.category column

DEFAULT_MIN_SCORE = 2.0
DEFAULT_CATEGORY_MIN_SCORE = 2.0
DEFAULT_KIND_MIN_SCORE = 2.0
DEFAULT_QUESTION_MARK = 1.0
# Working days (disposition, follow-up) when a category does not give its own.
SPECIAL_DAYS = deadlines.SPECIAL
ORDINARY_DAYS = deadlines.ORDINARY


@dataclass(frozen=True)
class Phrase:
    """A keyword as the admin wrote it and as the matcher sees it."""

    text: str
    key: str  # normalize.phrase_key of its stems, or exact_key of its words for "=word"
    line: int
    exact: bool = False


@dataclass(frozen=True)
class Rule:
    """Keywords that count for one agency or category."""

    owner: str  # agency code or category name
    for_category: bool
    number: int  # 1-based position in the owner's rules
    name: str | None
    line: int
    weight: float
    priority: int
    keywords: tuple[Phrase, ...]
    veto: tuple[Phrase, ...] = ()
    requires: tuple[Phrase, ...] = ()
    local: bool = False  # counts only when the text names a place of its city
    for_kind: bool = False  # a cue of the kind (info, aspirasi, aduan), not of an agency

    label: str = field(init=False, compare=False)  # KEMENHUB rule 2 (angkutan darat)

    def __post_init__(self) -> None:
        name = f" ({self.name})" if self.name else ""
        owner = f"kind {self.owner}" if self.for_kind else self.owner
        object.__setattr__(self, "label", f"{owner} rule {self.number}{name}")


@dataclass(frozen=True)
class Category:
    """A category of reports; special ones are handled faster."""

    name: str
    special: bool
    days: tuple[int, int]  # working days to disposition, to follow-up
    line: int
    order: int  # position in the file: breaks ties between categories


@dataclass
class RuleSet:
    """Everything the engine needs from one registry version."""

    path: str
    rules: list[Rule]
    categories: dict[str, Category]
    destination: dict[str, str]  # agency -> the agency that receives its reports
    normalizer: normalize.Normalizer
    min_score: float = DEFAULT_MIN_SCORE
    category_min_score: float = DEFAULT_CATEGORY_MIN_SCORE
    no_content: frozenset[str] = field(default_factory=frozenset)  # stems
    kind_min_score: float = DEFAULT_KIND_MIN_SCORE
    question_mark: float = DEFAULT_QUESTION_MARK
    junk: frozenset[str] = field(default_factory=frozenset)  # words and stems of test words
    # Place names: (city agency, place, phrase) for every name of every gazetteer.
    places: list[tuple[str, Place, Phrase]] = field(default_factory=list)


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[YamlProblem] = []

    def add(self, line: int | None, problem: str) -> None:
        self.problems.append(YamlProblem(self.path, line, problem))

    def number(self, node: LineDict, key: str, default: float, what: str, *,
               integer: bool = False, positive: bool = True) -> float:
        value = node.get(key, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer:
            ok = isinstance(value, int)
        if ok and positive:
            ok = value > 0
        if not ok:
            kind = "an integer" if integer else "a number"
            self.add(node.line_of(key), f"{what}: {key} must be {kind}{' above 0' if positive else ''}")
            return default
        return float(value) if not integer else value

    def texts(self, node: Any, line: int, what: str) -> list[tuple[str, int]]:
        """A list of keywords/phrases as (text, line)."""
        if node is None:
            return []
        if not isinstance(node, list):
            self.add(line, f"{what} must be a list of words or phrases")
            return []
        out = []
        for i, item in enumerate(node):
            item_line = node.line_of(i) if isinstance(node, LineList) else line
            if isinstance(item, bool) or not isinstance(item, str | int | float) or not str(item).strip():
                self.add(item_line, f"{what}: {item!r} is not a word or phrase")
                continue
            out.append((str(item).strip(), item_line))
        return out


def _destinations(parents: Mapping[str, str | None], reader: _Reader,
                  lines: Mapping[str, int]) -> dict[str, str]:
    """Agency -> its top ancestor: units receive reports by disposition from their parent."""
    out: dict[str, str] = {}
    for code in parents:
        seen = [code]
        current = code
        while parents.get(current) and parents.get(current) in parents:
            current = parents[current]  # type: ignore[assignment]
            if current in seen:
                reader.add(lines.get(code), f"agency {code}: parent chain loops ({' -> '.join([*seen, current])})")
                break
            seen.append(current)
        out[code] = current
    return out


def load_ruleset(path: str, data: Mapping[str, Any], parents: Mapping[str, str | None],
                 gazetteers: Mapping[str, Gazetteer] | None = None) -> tuple[RuleSet, list[YamlProblem]]:
    """Read settings, slang, kinds, categories and agency rules; return them and every problem found.

    ``gazetteers`` maps a city agency to its places (read by the registry).
    """
    r = _Reader(path)
    top = data if isinstance(data, LineDict) else LineDict(data)
    if not isinstance(data, LineDict):
        top.key_lines = {}

    # settings.rules
    min_score, category_min_score = DEFAULT_MIN_SCORE, DEFAULT_CATEGORY_MIN_SCORE
    kind_min_score, question_mark = DEFAULT_KIND_MIN_SCORE, DEFAULT_QUESTION_MARK
    no_content_words: list[tuple[str, int]] = []
    junk_words: list[tuple[str, int]] = []
    settings = top.get("settings")
    if settings is not None and not isinstance(settings, LineDict):
        r.add(top.line_of("settings"), "settings: must be a mapping")
    elif isinstance(settings, LineDict) and "rules" in settings:
        node = settings["rules"]
        if not isinstance(node, LineDict):
            r.add(settings.line_of("rules"), "settings.rules: must map min_score, category_min_score, no_content")
        else:
            for key_line, problem in unknown_keys(node, SETTINGS_KEYS, "settings.rules"):
                r.add(key_line, problem)
            min_score = r.number(node, "min_score", DEFAULT_MIN_SCORE, "settings.rules")
            category_min_score = r.number(node, "category_min_score", DEFAULT_CATEGORY_MIN_SCORE,
                                          "settings.rules")
            no_content_words = r.texts(node.get("no_content"), node.line_of("no_content"),
                                       "settings.rules.no_content")
            kind_min_score = r.number(node, "kind_min_score", DEFAULT_KIND_MIN_SCORE, "settings.rules")
            question_mark = r.number(node, "question_mark", DEFAULT_QUESTION_MARK, "settings.rules", positive=False)
            junk_words = r.texts(node.get("junk"), node.line_of("junk"), "settings.rules.junk")

    # slang: shipped dictionary, then the admins' additions and overrides
    slang = normalize.shipped_slang()
    snode = top.get("slang")
    if snode is not None:
        if not isinstance(snode, LineDict):
            r.add(top.line_of("slang"), "slang: must map typed forms to what they stand for (jln: jalan)")
        else:
            for form, expansion in snode.items():
                line = snode.line_of(form)
                words = normalize.split_words(str(form))
                if len(words) != 1:
                    r.add(line, f"slang: {form!r} must be one word of letters or digits")
                elif not isinstance(expansion, str | int) or not normalize.split_words(str(expansion)):
                    r.add(line, f"slang: {form!r} needs an expansion of one or more words")
                else:
                    slang[words[0]] = str(expansion)
    normalizer = normalize.Normalizer(slang)

    def phrases(node: Any, line: int, what: str) -> tuple[Phrase, ...]:
        out = []
        for text, item_line in r.texts(node, line, what):
            exact = text.startswith("=")
            words, stems = normalizer.analyse(text[1:] if exact else text)
            if not stems:
                r.add(item_line, f"{what}: {text!r} has no letters or digits and can never match")
                continue
            key = normalize.exact_key(words) if exact else normalize.phrase_key(stems)
            out.append(Phrase(text, key, item_line, exact))
        return tuple(out)

    vocabulary: set[str] = set()

    def phrase_words(text: str) -> None:
        vocabulary.update(w for w in normalizer.words(text.lstrip("=")) if w.isalpha())

    def read_rules(owner: str, node: Any, line: int, for_category: bool, for_kind: bool = False) -> list[Rule]:
        what = f"kind {owner}" if for_kind else f"category {owner}" if for_category else f"agency {owner}"
        if node is None:
            return []
        if not isinstance(node, list):
            r.add(line, f"{what}: rules must be a list of rules (- keywords: [...])")
            return []
        out = []
        for i, spec in enumerate(node, start=1):
            spec_line = node.line_of(i - 1) if isinstance(node, LineList) else line
            if not isinstance(spec, LineDict):
                r.add(spec_line, f"{what} rule {i}: expected keywords:, and optionally weight:, "
                      "priority:, veto:, requires:, name:")
                continue
            for key_line, problem in unknown_keys(spec, RULE_KEYS, f"{what} rule {i}"):
                r.add(key_line, problem)
            name = spec.get("name")
            if name is not None and not isinstance(name, str):
                r.add(spec.line_of("name"), f"{what} rule {i}: name must be a text")
                name = None
            label = f"{what} rule {i}"
            weight = r.number(spec, "weight", 1, label)
            priority = int(r.number(spec, "priority", 0, label, integer=True, positive=False))
            keywords = phrases(spec.get("keywords"), spec.line_of("keywords"), f"{label} keywords")
            if not keywords and "keywords" in spec:
                continue  # each bad keyword was reported
            if not keywords:
                r.add(spec.line, f"{label}: keywords are required")
                continue
            local = spec.get("local", False)
            if not isinstance(local, bool) or (local and (for_category or for_kind)):
                r.add(spec.line_of("local"), f"{label}: local must be true or false, and only on an agency's rule")
                local = False
            rule = Rule(owner, for_category, i, name, spec.line, weight, priority, keywords,
                        phrases(spec.get("veto"), spec.line_of("veto"), f"{label} veto"),
                        phrases(spec.get("requires"), spec.line_of("requires"), f"{label} requires"),
                        local, for_kind)
            _check_rule(rule, r)
            for phrase in (*rule.keywords, *rule.veto, *rule.requires):
                phrase_words(phrase.text)
            out.append(rule)
        return out

    rules: list[Rule] = []

    knode = top.get("kinds")
    if knode is not None and not isinstance(knode, LineDict):
        r.add(top.line_of("kinds"), "kinds: must map info, aspirasi, aduan to their cue rules")
    elif isinstance(knode, LineDict):
        for kind, spec in knode.items():
            if kind not in KIND_NAMES:
                r.add(knode.line_of(kind), f"kinds: unknown kind {kind!r} (expected {', '.join(KIND_NAMES)})")
                continue
            rules.extend(read_rules(kind, spec, knode.line_of(kind), False, for_kind=True))

    categories: dict[str, Category] = {}
    cnode = top.get("categories")
    if cnode is not None and not isinstance(cnode, LineDict):
        r.add(top.line_of("categories"), "categories: must map category names to their rules")
    elif isinstance(cnode, LineDict):
        for order, (name, spec) in enumerate(cnode.items()):
            line = cnode.line_of(name)
            if len(name) > CATEGORY_NAME_MAX:
                r.add(line, f"category {name!r}: names are at most {CATEGORY_NAME_MAX} characters")
                continue
            if not isinstance(spec, LineDict):
                r.add(line, f"category {name}: expected special:, rules:")
                continue
            for key_line, problem in unknown_keys(spec, CATEGORY_KEYS, f"category {name}"):
                r.add(key_line, problem)
            special = spec.get("special", False)
            if not isinstance(special, bool):
                r.add(spec.line_of("special"), f"category {name}: special must be true or false")
                special = False
            default_days = SPECIAL_DAYS if special else ORDINARY_DAYS
            disposition = int(r.number(spec, "disposition_days", default_days[0], f"category {name}",
                                       integer=True))
            followup = int(r.number(spec, "followup_days", default_days[1], f"category {name}", integer=True))
            if followup < disposition:
                r.add(spec.line_of("followup_days"),
                      f"category {name}: followup_days ({followup}) comes before disposition_days ({disposition})")
            category_rules = read_rules(name, spec.get("rules"), spec.line_of("rules"), True)
            if not category_rules and "rules" not in spec:
                r.add(line, f"category {name}: rules are required (a category without keywords never applies)")
            categories[name] = Category(name, special, (disposition, followup), line, order)
            rules.extend(category_rules)

    anode = top.get("agencies")
    agency_lines: dict[str, int] = {}
    if isinstance(anode, LineDict):
        for code, spec in anode.items():
            agency_lines[code] = anode.line_of(code)
            if isinstance(spec, LineDict) and "rules" in spec:
                rules.extend(read_rules(code, spec["rules"], spec.line_of("rules"), False))
    destination = _destinations(parents, r, agency_lines)
    gazetteers = gazetteers or {}
    for rule in rules:
        city = destination.get(rule.owner, rule.owner)
        if rule.local and city not in gazetteers:
            r.add(rule.line, f"{rule.label}: local: true needs a gazetteer: on {city} (the agency that "
                  "receives its reports), naming the places of its city")

    places: list[tuple[str, Place, Phrase]] = []
    for city, gazetteer in gazetteers.items():
        for place in gazetteer.places:
            words = [w for w in normalizer.words(place.name) if w]
            vocabulary.update(w for w in words if w.isalpha())
            spellings = {tuple(words)}
            if len(words) > 1 and all(w.isalpha() for w in words):
                spellings.add(("".join(words),))  # pondokgede, bantargebang
                vocabulary.add("".join(words))
            for spelling in spellings:
                places.append((city, place, Phrase(place.name, normalize.exact_key(spelling), place.line, True)))

    no_content = set()
    for text, _line in no_content_words:
        no_content.update(normalizer.stems(text))
    junk = set()
    for text, _line in junk_words:
        words, stems = normalizer.analyse(text)
        junk.update(words)
        junk.update(stems)
    normalizer.set_vocabulary(vocabulary)

    ruleset = RuleSet(path, rules, categories, destination, normalizer, min_score,
                      category_min_score, frozenset(no_content), kind_min_score, question_mark,
                      frozenset(junk), places)
    _check_reachable(ruleset, r, anode if isinstance(anode, LineDict) else None, cnode)
    _check_collisions(ruleset, r)
    return ruleset, r.problems


def _check_rule(rule: Rule, r: _Reader) -> None:
    """Keywords the rule's own veto always cancels; duplicates; requirements that are vetoed."""
    seen: dict[str, Phrase] = {}
    for phrase in rule.keywords:
        if phrase.key in seen:
            r.add(phrase.line, f"{rule.label}: keyword {phrase.text!r} repeats {seen[phrase.key].text!r} "
                  f"(line {seen[phrase.key].line}) after normalisation")
            continue
        seen[phrase.key] = phrase
        for veto in rule.veto:
            if veto.key in phrase.key:
                r.add(phrase.line, f"{rule.label}: keyword {phrase.text!r} can never count: it contains "
                      f"its own veto {veto.text!r} (line {veto.line})")
                break
    if rule.requires and all(any(v.key in q.key for v in rule.veto) for q in rule.requires):
        r.add(rule.line, f"{rule.label} can never count: every phrase it requires contains one of its vetoes")


def _check_reachable(rs: RuleSet, r: _Reader, agencies: LineDict | None, categories: Any) -> None:
    """Owners whose rules, all matching at once, still stay below the score they need."""
    most: dict[tuple[bool, str], float] = {}
    first: dict[tuple[bool, str], Rule] = {}
    for rule in rs.rules:
        if rule.for_kind:
            continue  # a kind that is not read from the text is simply aduan
        usable = [k for k in rule.keywords if not any(v.key in k.key for v in rule.veto)]
        owner = rule.owner if rule.for_category else rs.destination.get(rule.owner, rule.owner)
        most[(rule.for_category, owner)] = most.get((rule.for_category, owner), 0) + rule.weight * len(usable)
        first.setdefault((rule.for_category, owner), rule)
    for (for_category, owner), total in most.items():
        needed = rs.category_min_score if for_category else rs.min_score
        if total < needed:
            rule = first[(for_category, owner)]
            what = "category" if for_category else "agency"
            r.add(rule.line, f"{what} {owner}: its rules can never win: all their keywords together score "
                  f"{total:g}, below the {needed:g} needed (settings.rules)")


def _check_collisions(rs: RuleSet, r: _Reader) -> None:
    """The same keyword for two agencies with equal weight and priority: a tie nobody breaks."""
    seen: dict[str, list[tuple[str, Rule, Phrase]]] = {}
    for rule in rs.rules:
        if rule.for_category or rule.for_kind:
            continue  # categories tie-break by their order in the file; kinds fall back to aduan
        dest = rs.destination.get(rule.owner, rule.owner)
        for phrase in rule.keywords:
            earlier = seen.setdefault(phrase.key, [])
            for other_dest, other_rule, other_phrase in earlier:
                if other_rule.owner == rule.owner and other_rule is not rule:
                    r.add(phrase.line, f"{rule.label}: keyword {phrase.text!r} is already in "
                          f"{other_rule.label} (line {other_phrase.line})")
                    break
                # A local rule needs a place of its city too: a report with only the keyword never
                # reaches it, so two cities may share their units' words.
                if other_dest != dest and (other_rule.weight, other_rule.priority) == (rule.weight, rule.priority) \
                        and not (rule.local or other_rule.local):
                    r.add(phrase.line, f"{rule.label}: keyword {phrase.text!r} collides with {other_rule.label} "
                          f"(line {other_phrase.line}) at the same weight {rule.weight:g} and priority "
                          f"{rule.priority}: a report with only this keyword would tie; give one rule a "
                          "higher weight or priority, or drop the keyword from one")
                    break
            earlier.append((dest, rule, phrase))
