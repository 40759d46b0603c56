"""The final decision: prefix or rules or central queue, kind, category, deadlines, evidence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.config import PROJECT_ROOT, Settings, set_settings
from sms_gateway.deadlines import add_working_days
from sms_gateway.decision import decide
from sms_gateway.parsing import parse
from sms_gateway.registry import Registry, parse_registry
from sms_gateway.rules.classify import classify
from sms_gateway.rules.evaluation import evaluate, read_cases

SAMPLE = PROJECT_ROOT / "tests" / "data" / "sample_sms.tsv"  # copy of shared/reference (tests/data/README.md)
CASES = PROJECT_ROOT / "sms_gateway" / "data" / "cases" / "cases.tsv"
AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # a Tuesday morning in Jakarta


@pytest.fixture(scope="module")
def registry() -> Registry:
    return parse_registry(PROJECT_ROOT / "prefixes.yaml")


@pytest.mark.parametrize("path", [
    pytest.param(SAMPLE, id="shared-sample"),
    pytest.param(CASES, id="harder-cases"),
])
def test_labelled_messages_are_all_decided_right(registry: Registry, path: Path) -> None:
    rows = read_cases(path)  # both files ship with the repository: nothing to skip
    if path == SAMPLE:  # every line is a message, even "#BEKASI aduan ..."
        assert len(rows) == len(path.read_text().splitlines()) - 1
    result = evaluate(registry, rows)
    assert [m.render() for m in result.misses] == []
    assert result.overall.total == len(rows)


def test_the_prefix_decides_the_agency_the_rules_the_category(registry: Registry) -> None:
    decision = decide(parse("KEMENHUB ADUAN pns dishub mudik pakai mobil dinas", registry), registry, AT)
    assert (decision.agency, decision.kind, decision.category, decision.special) == \
        ("KEMENHUB", "aduan", "LARANGAN MUDIK ASN", True)
    assert decision.evidence["decided_by"] == "prefix"
    assert decision.evidence["rules"]["agency"] == "KEMENPANRB"  # what the rules alone would have said
    # the special category's deadlines: 1 and 2 working days
    assert (decision.disposition_due, decision.followup_due) == (add_working_days(AT, 1), add_working_days(AT, 2))


def test_rules_decide_without_a_prefix_and_say_why(registry: Registry) -> None:
    decision = decide(parse("LAPOR tiang listrik miring mau roboh di depan SD", registry), registry, AT)
    assert (decision.agency, decision.kind, decision.category, decision.special) == ("PLN", "aduan", None, False)
    evidence = decision.evidence
    assert evidence["decided_by"] == "rules" and evidence["prefix_match"] == "generic"
    assert evidence["rules"]["rule"].startswith("PLN rule 1 (listrik), ")
    assert {m["keyword"] for m in evidence["rules"]["matched"]} == {"tiang listrik", "listrik"}
    assert evidence["rules"]["score"] == 6
    json.dumps(evidence)  # stored in a JSON column
    assert (decision.disposition_due, decision.followup_due) == (add_working_days(AT, 3), add_working_days(AT, 5))
    assert decision.followup_due > add_working_days(AT, 2)


def test_a_unit_is_kept_as_the_disposition_hint(registry: Registry) -> None:
    decision = decide(parse("sampah numpuk di jl. kh noer alie bekasi", registry), registry, AT)
    assert decision.agency == "PEMKOTBEKASI"
    assert decision.evidence["rules"]["unit"] == "DLHBEKASI"


@pytest.mark.parametrize(("text", "reason"), [
    ("jalan rusak parah, tlg diperbaiki", "every rule found was vetoed or lacked the context it requires"),
    ("XYZABC aduan lampu jalan mati sudah sebulan", "every rule found was vetoed or lacked"),
    ("tetangga sy berisik tiap malam", "no rule matched"),
    ("guru sy naik bus", "tie at score 2 between KEMENHUB, KEMENDIKBUD"),
])
def test_no_confident_rule_goes_to_the_central_queue(registry: Registry, text: str, reason: str) -> None:
    decision = decide(parse(text, registry), registry, AT)
    assert decision.agency is None and decision.kind == "aduan"
    assert decision.evidence["decided_by"] == "central"
    assert decision.evidence["rules"]["reason"].startswith(reason), decision.evidence["rules"]["reason"]


@pytest.mark.parametrize(("text", "kind"), [
    ("Selamat pagi pak, sy mau lapor", "unknown"),
    ("KEMENHUB ADUAN tolong pak", "unknown"),  # a prefix and nothing to report
    ("saran: tambah jadwal krl", "aspirasi"),  # keyword first, no prefix
    ("Info dong jadwal krl", "info"),
    ("keluhan: krl telat", "aduan"),
    ("mhn info jadwal krl", "info"),  # not a keyword here (only as the first word), but the text asks
    ("krl telat terus, kapan diperbaiki?", "aduan"),  # a question that complains
])
def test_kind(registry: Registry, text: str, kind: str) -> None:
    assert decide(parse(text, registry), registry, AT).kind == kind


def test_classify_json_has_the_decision_and_its_evidence(registry: Registry) -> None:
    result = classify("Dipungut 50rb di pos penyekatan sama oknum", registry, AT)
    assert {k: result[k] for k in ("agency", "kind", "category", "special", "decided_by")} == \
        {"agency": "POLRI", "kind": "aduan", "category": "LARANGAN MUDIK ASN", "special": True, "decided_by": "rules"}
    assert {"keyword": "penyekatan", "for": "LARANGAN MUDIK ASN", "weight": 3} in result["matched"]
    assert result["disposition_due"] == add_working_days(AT, 1).isoformat()
    commands = {t: classify(t, registry, AT) for t in ("CEK 12345678", "BERHENTI", "?", "PLN")}
    assert [(r["agency"], r["kind"], r["command"]) for r in commands.values()] == [
        (None, "status", "status"), (None, "help", "stop"), (None, "help", "help"), ("PLN", "help", "help")]


@pytest.fixture
def cli_settings(tmp_path: Path):
    set_settings(Settings({"PREFIXES_FILE": str(PROJECT_ROOT / "prefixes.yaml")}))
    yield
    set_settings(None)


def test_classify_command(cli_settings) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["classify", "--json", "--at", "2026-11-24T03:00:00",
                                  "listrik padam seharian di kel. jatimulya"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["agency"], out["kind"], out["category"], out["special"]) == ("PLN", "aduan", None, False)
    assert out["matched"] == [{"keyword": "listrik", "for": "PLN", "weight": 3},
                              {"keyword": "padam", "for": "PLN", "weight": 2}]
    text = runner.invoke(main, ["classify", "halo min"])
    assert text.exit_code == 0 and "kind             unknown" in text.output
    assert runner.invoke(main, ["classify"]).exit_code == 2


def test_classify_jsonl_answers_every_line_in_order(cli_settings) -> None:
    lines = ["CEK 4521873", "", "bansos blm cair", "Selamat pagi pak, sy mau lapor", "Kemenhub"]
    result = CliRunner().invoke(main, ["classify", "--jsonl"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o["text"] for o in out] == lines
    assert [(o["agency"], o["kind"]) for o in out] == [
        (None, "status"), (None, "help"), ("KEMENSOS", "aduan"), (None, "unknown"), ("KEMENHUB", "help")]
