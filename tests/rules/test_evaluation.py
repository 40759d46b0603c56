"""The evaluation API and the issue-15 evaluation set's floors.

The set (sms_gateway/data/cases/eval_dev.tsv and eval_test.tsv, 339 texts) was
written before any rule was changed for it; the rules were tuned on the
development half only. Baseline (the rules before issue 15) and after, all
three right (agency with unit, kind): development 50.0 % -> 91.3 %, test 56.3 %
-> 92.8 % (docs/BENCHMARKS.md). The floors below are a few texts under the
test half's result: a change that loses five or six of them fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sms_gateway.config import PROJECT_ROOT
from sms_gateway.registry import Registry, parse_registry
from sms_gateway.rules.evaluation import LabelledText, evaluate, read_cases, shipped_cases

TEST_FLOOR = {"all": 0.90, "agency": 0.92, "kind": 0.95}
DEV_FLOOR = {"all": 0.88, "agency": 0.90, "kind": 0.95}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return parse_registry(PROJECT_ROOT / "prefixes.yaml")


@pytest.mark.parametrize(("name", "floor"), [("eval_test.tsv", TEST_FLOOR), ("eval_dev.tsv", DEV_FLOOR)])
def test_the_evaluation_set_stays_above_its_floor(registry: Registry, name: str, floor: dict[str, float]) -> None:
    rows = shipped_cases(name)
    result = evaluate(registry, rows)
    o = result.overall
    misses = "\n".join(m.render() for m in result.misses)
    assert o.total == len(rows) and o.kind_total == len(rows)
    assert o.accuracy >= floor["all"], misses
    assert o.agency_accuracy >= floor["agency"], misses
    assert o.kind_accuracy >= floor["kind"], misses


def test_the_halves_do_not_share_a_text_and_cover_every_style() -> None:
    dev, test = shipped_cases("eval_dev.tsv"), shipped_cases("eval_test.tsv")
    assert len(dev) + len(test) >= 300
    assert not {r.text for r in dev} & {r.text for r in test}
    groups = {"vocabulary", "slang", "code-mixing", "question", "suggestion", "praise", "bekasi-place", "ambiguous",
              "typo", "unknown-prefix", "junk", "cek-sentence"}
    assert {r.group for r in dev} == {r.group for r in test} == groups


def test_evaluate_counts_agency_unit_and_kind_per_agency_and_group(registry: Registry) -> None:
    rows = [
        LabelledText("sampah numpuk di jatiasih", "PEMKOTBEKASI", "aduan", unit="DLHBEKASI", group="a"),
        LabelledText("sampah numpuk di jatiasih", "DLHBEKASI", group="b"),  # a unit label: its parent + the unit
        LabelledText("sampah numpuk di jatiasih", "DBMSDABEKASI", group="b"),  # right city, wrong unit
        LabelledText("listrik padam", "PLN", "info", group="a"),  # agency right, kind wrong
        LabelledText("halo pak", None, "unknown", group="a"),
    ]
    result = evaluate(registry, rows)
    assert (result.overall.total, result.overall.agency_right, result.overall.kind_right,
            result.overall.kind_total, result.overall.right) == (5, 4, 2, 3, 3)
    assert result.by_agency["PEMKOTBEKASI/DBMSDABEKASI"].agency_right == 0
    assert result.by_agency["PEMKOTBEKASI/DLHBEKASI"].agency_right == 2
    assert (result.by_group["a"].total, result.by_group["b"].agency_right) == (3, 1)
    assert result.precision("PEMKOTBEKASI") == 1.0 and result.precision("PLN") == 1.0
    [wrong_unit, wrong_kind] = result.misses
    assert "agency PEMKOTBEKASI/DLHBEKASI (want PEMKOTBEKASI/DBMSDABEKASI)" in wrong_unit.problems
    assert wrong_kind.problems == ("kind aduan (want info)",)
    assert result.to_dict()["overall"]["right"] == 3


def test_read_cases_names_the_line_of_a_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("# comment\ntext\tagency\nbus\tKEMENHUB\n")
    with pytest.raises(ValueError, match=r"x.tsv:2: the header must name text, agency and kind"):
        read_cases(path)
    path.write_text("text\tagency\tkind\n#BEKASI aduan got mampet\tPEMKOTBEKASI\taduan\n")
    [row] = read_cases(path)
    assert (row.text, row.agency, row.source) == ("#BEKASI aduan got mampet", "PEMKOTBEKASI", "x.tsv:2")
