"""`prefixes check` on the rules: the shipped file passes; broken rules are named with file and line."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.config import PROJECT_ROOT
from sms_gateway.registry import RegistryError, RegistryHolder, parse_registry
from sms_gateway.rules import engine_for

SHIPPED = (PROJECT_ROOT / "prefixes.yaml").read_text()


def edited(old: str, new: str) -> str:
    assert SHIPPED.count(old) == 1, old
    return SHIPPED.replace(old, new)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "prefixes.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError) as info:
        parse_registry(path)
    return [p.render().removeprefix(f"{path}:") for p in info.value.problems]


def test_shipped_file_passes_prefixes_check() -> None:
    result = CliRunner().invoke(main, ["prefixes", "check", str(PROJECT_ROOT / "prefixes.yaml")])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_shipped_rules_cover_every_reference_agency_and_the_special_categories() -> None:
    registry = parse_registry(PROJECT_ROOT / "prefixes.yaml")
    engine = engine_for(registry)
    owners = {r.owner for r in engine.ruleset.rules}
    reference = PROJECT_ROOT / "tests" / "data" / "agencies.tsv"
    codes = {line.split("\t")[0] for line in reference.read_text().splitlines()[1:]}
    assert len(codes) > 10
    assert codes <= owners
    categories = engine.ruleset.categories
    assert categories["LARANGAN MUDIK ASN"].special and categories["LARANGAN MUDIK ASN"].days == (1, 2)
    assert categories["COVID-19"].special and categories["COVID-19"].days == (1, 2)


def test_prefixes_check_names_the_line_of_a_broken_rule_and_fails(tmp_path: Path) -> None:
    text = edited("keywords: [padam, mati lampu,", "keywords: [padam, terminal, mati lampu,")
    path = tmp_path / "prefixes.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["prefixes", "check", str(path)])
    assert result.exit_code == 1
    kemenhub = line_of(text, "keywords: [terminal, bus, tiket bus")
    assert f"{path}:{line_of(text, 'keywords: [padam, terminal')}: PLN rule 2 (gangguan): keyword 'terminal' " \
           f"collides with KEMENHUB rule 3 (terminal dan tiket) (line {kemenhub}) at the same weight 2 and " \
           "priority 0" in result.output


@pytest.mark.parametrize(("old", "new", "needle", "problem"), [
    # a keyword its own veto always cancels
    ("keywords: [bpjs, iuran,", "keywords: [bpjs, klaim jht, iuran,", "keywords: [bpjs, klaim jht", None),
    # the same keyword twice after normalisation (pemudik is mudik)
    ("keywords: [padam, mati lampu,", "keywords: [padam, pemadaman, mati lampu,", "keywords: [padam, pemadaman",
     "PLN rule 2 (gangguan): keyword 'pemadaman' is already in PLN rule 1 (listrik)"),
    ("keywords: [padam, mati lampu,", "keywords: [padam, '!!!', mati lampu,", "keywords: [padam, '!!!'",
     "agency PLN rule 2 keywords: '!!!' has no letters or digits and can never match"),
    ("keywords: [padam, mati lampu,", "keywords: [padam, padamnya, mati lampu,", "keywords: [padam, padamnya",
     "PLN rule 2 (gangguan): keyword 'padamnya' repeats 'padam'"),
    ("  KAI:\n", "  XYZ:\n    name: Contoh\n    rules:\n      - keywords: [zzz]\n  KAI:\n", "      - keywords: [zzz]",
     "agency XYZ: its rules can never win: all their keywords together score 1, below the 2 needed"),
    ("        veto: [ketenagakerjaan, jht]", "        veto: [ketenagakerjaan, jht]\n        wieght: 3", "wieght",
     "BPJSKES rule 2: unknown key 'wieght'"),
    ("        veto: [ketenagakerjaan, jht]", "        veto: [ketenagakerjaan, jht]\n        priority: tinggi",
     "priority: tinggi", "agency BPJSKES rule 2: priority must be an integer"),
    ("    min_score: 2", "    min_score: -1", "min_score: -1", "settings.rules: min_score must be a number above 0"),
    ("  sikm: surat izin keluar masuk", "  sikm: surat izin keluar masuk\n  s i k m: surat", "s i k m",
     "slang: 's i k m' must be one word of letters or digits"),
])
def test_rule_problems_name_their_line(tmp_path: Path, old: str, new: str, needle: str, problem: str | None) -> None:
    text = edited(old, new)
    problems = problems_of(tmp_path, text)
    line = line_of(text, needle)
    if problem is None:
        problem = ("BPJSKES rule 2 (bpjs): keyword 'klaim jht' can never count: it contains its own veto 'jht' "
                   f"(line {line_of(text, 'veto: [ketenagakerjaan, jht]')})")
    assert any(p.startswith(f"{line}: ") and problem in p for p in problems), problems


def test_category_problems(tmp_path: Path) -> None:
    start = line_of(SHIPPED, "  LARANGAN MUDIK ASN:")
    text = edited("    special: true\n    rules:\n      - name: larangan mudik",
                  "    special: ya\n    followup_days: 0\n    urgent: true\n    rules:\n      - name: larangan mudik")
    problems = problems_of(tmp_path, text)
    assert f"{start + 2}: category LARANGAN MUDIK ASN: special must be true or false" in problems
    assert f"{start + 3}: category LARANGAN MUDIK ASN: followup_days must be an integer above 0" in problems
    assert any(p.startswith(f"{start + 4}: category LARANGAN MUDIK ASN: unknown key 'urgent'") for p in problems)


def test_a_broken_rule_edit_keeps_the_rules_in_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "prefixes.yaml"
    path.write_text(SHIPPED)
    holder = RegistryHolder(path, check_interval=0)
    good = holder.get()
    path.write_text(edited("keywords: [padam, mati lampu,", "keywords: [padam, terminal, mati lampu,"))
    time.sleep(0.01)
    with caplog.at_level(logging.ERROR):
        assert holder.get() is good
    assert "collides with KEMENHUB" in caplog.text
    assert engine_for(holder.get()).evaluate("listrik padam di rumah").agency == "PLN"
