"""Scoring: weights, vetoes, required context, ties and their tie-break, units, categories, fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sms_gateway.rules.engine import Engine
from sms_gateway.rules.schema import load_ruleset
from sms_gateway.yamlfile import load

RULES = """
settings:
  rules:
    min_score: 2
    category_min_score: 2
    no_content: [halo, selamat, pagi, pak, saya, mau, lapor, tolong]
slang:
  krl: kereta
categories:
  MUDIK:
    special: true
    rules:
      - keywords: [mudik, penyekatan]
        weight: 2
  PUNGLI:
    rules:
      - keywords: [pungli, minta uang]
        weight: 3
  BANJIR:
    disposition_days: 2
    followup_days: 4
    rules:
      - keywords: [banjir]
        weight: 3
agencies:
  HUB:
    rules:
      - name: angkutan
        weight: 2
        keywords: [bus, terminal, travel gelap]
      - keywords: [tiket]
  TRAIN:
    rules:
      - name: kereta
        weight: 3
        keywords: [kereta]
      - keywords: [stasiun]
  POL:
    rules:
      - name: kejahatan
        weight: 3
        keywords: [pungli, begal]
      - name: lalu lintas
        weight: 2
        keywords: [penyekatan]
        veto: [bus]
  CITY:
    rules:
      - weight: 2
        requires: [bekasi, kranji]
        keywords: [pasar]
  ROADS:
    rules:
      - weight: 3
        requires: [bekasi, kranji]
        veto: [tol]
        keywords: [jalan rusak, lubang]
  GARBAGE:
    rules:
      - weight: 3
        requires: [bekasi, kranji]
        keywords: [sampah]
  TOLL:
    rules:
      - weight: 2
        keywords: [tol]
      - weight: 1
        keywords: [=dirumahkan]
  SCHOOL:
    rules:
      - weight: 2
        priority: 1
        keywords: [seragam]
  SHOP:
    rules:
      - weight: 2
        keywords: [seragam]
"""
PARENTS = {"HUB": None, "TRAIN": None, "POL": None, "CITY": None, "ROADS": "CITY", "GARBAGE": "CITY",
           "TOLL": None, "SCHOOL": None, "SHOP": None}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES)
    ruleset, problems = load_ruleset(str(path), load(path), PARENTS)
    assert problems == []
    return Engine(ruleset)


@pytest.mark.parametrize(("text", "agency", "reason"), [
    # weights add up per distinct keyword; the best agency at or above min_score wins
    ("bus di terminal penuh", "HUB", "confident"),
    ("bus bus bus", "HUB", "confident"),  # one keyword counts once
    ("KRL telat lagi", "TRAIN", "confident"),  # admin slang: krl -> kereta
    ("tiket dan stasiun", None, "best score 1"),  # 1 each, below min_score
    # not enough evidence: the central queue
    ("tiket hilang", None, "best score 1 (HUB) is below min_score 2"),
    ("lampu jalan mati", None, "no rule matched"),
    # a tie nobody breaks goes to the central queue
    ("begal, tiket bus", None, "tie at score 3 between HUB, POL"),
    ("begal di terminal", "POL", "confident"),
    # priority breaks a tie at equal score
    ("beli seragam", "SCHOOL", "confident"),
    # veto cancels one rule, not the agency's others
    ("penyekatan bus", "HUB", "confident"),
    ("pungli di penyekatan bus", "POL", "confident"),
    ("penyekatan", "POL", "confident"),
    # required context: the city's rules count only with one of its places
    ("jalan rusak di kranji", "CITY", "confident"),
    ("jalan rusak", None, "every rule found was vetoed or lacked the context it requires"),
    ("jalan rusak dekat pintu tol bekasi", "TOLL", "confident"),  # ROADS vetoed by tol
    # exact keywords match their form only
    ("karyawan dirumahkan sejak maret, tol", "TOLL", "confident"),
])
def test_agency(engine: Engine, text: str, agency: str | None, reason: str) -> None:
    verdict = engine.evaluate(text)
    assert verdict.agency == agency, verdict
    assert verdict.reason.startswith(reason)


def test_units_score_for_their_parent_which_gets_the_report(engine: Engine) -> None:
    verdict = engine.evaluate("jalan rusak dan lubang di bekasi, sampah juga")
    assert (verdict.agency, verdict.unit, verdict.score) == ("CITY", "ROADS", 9)
    assert verdict.scores == {"CITY": 9}
    # a unit and its parent never tie with each other: they share the report
    verdict = engine.evaluate("sampah di pasar kranji")
    assert (verdict.agency, verdict.unit) == ("CITY", "GARBAGE")
    verdict = engine.evaluate("pasar bekasi")
    assert (verdict.agency, verdict.unit) == ("CITY", None)


def test_exact_keyword_does_not_match_the_root(engine: Engine) -> None:
    assert engine.evaluate("rumah saya").scores == {}
    assert engine.evaluate("dirumahkan").scores == {"TOLL": 1}


def test_evidence_names_keywords_rules_lines_and_vetoes(engine: Engine) -> None:
    verdict = engine.evaluate("pungli di penyekatan bus")
    assert verdict.rule is not None and verdict.rule.startswith("POL rule 1 (kejahatan), ")
    assert verdict.rule.endswith(f":{RULES.splitlines().index('      - name: kejahatan') + 1}")
    assert verdict.vetoed == ["POL rule 2 (lalu lintas) by 'bus'"]
    evidence = verdict.evidence()
    assert {(m["keyword"], m["for"], m["weight"]) for m in evidence["matched"]} == {
        ("pungli", "POL", 3), ("bus", "HUB", 2), ("pungli", "PUNGLI", 3), ("penyekatan", "MUDIK", 2)}
    assert evidence["scores"] == {"POL": 3, "HUB": 2}
    line = RULES.splitlines().index("      - keywords: [pungli, minta uang]") + 1
    assert {"keyword": "pungli", "for": "PUNGLI", "rule": "PUNGLI rule 1", "weight": 3, "line": line} \
        in evidence["matched"]
    assert engine.evaluate("jalan rusak").needs_context == ["ROADS rule 1"]


@pytest.mark.parametrize(("text", "category", "special", "days"), [
    ("pemudik diputar balik di penyekatan", "MUDIK", True, (1, 2)),  # affixed forms match their root
    ("oknum minta uang", "PUNGLI", False, (3, 5)),
    ("banjir lagi", "BANJIR", False, (2, 4)),  # own deadlines
    ("mudik", "MUDIK", True, (1, 2)),
    ("halo", None, False, None),
    # a special category wins over an ordinary one with more points
    ("pungli dan minta uang saat mudik", "MUDIK", True, (1, 2)),
    # between ordinary ones: the higher score, then the first written
    ("banjir, pungli, minta uang", "PUNGLI", False, (3, 5)),
    ("banjir dan pungli", "PUNGLI", False, (3, 5)),
])
def test_category(engine: Engine, text: str, category: str | None, special: bool,
                  days: tuple[int, int] | None) -> None:
    verdict = engine.evaluate(text)
    assert (verdict.category, verdict.special, verdict.days) == (category, special, days)


@pytest.mark.parametrize(("text", "content"), [
    ("Selamat pagi pak, saya mau lapor", False),
    ("halo!!!", False),
    ("", False),
    ("tolong pak, jalan rusak", True),  # words we do not list as empty are content
    ("tolong pak, bus", True),
    ("halo 12 jalan", True),  # a real word beside a greeting is content: never drop what might be a report
    ("halo 12", False),  # a greeting and a number: nothing to route; the citizen is asked for the content
])
def test_content(engine: Engine, text: str, content: bool) -> None:
    assert engine.evaluate(text).has_content is content


def test_no_rules_at_all_sends_everything_to_the_central_queue(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("agencies:\n  HUB:\n    name: Hub\n")
    ruleset, problems = load_ruleset(str(path), load(path), {"HUB": None})
    assert problems == []
    verdict = Engine(ruleset).evaluate("bus di terminal")
    assert (verdict.agency, verdict.category, verdict.has_content) == (None, None, True)
