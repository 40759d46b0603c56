"""prefixes.yaml: validation that names file and line, and hot reload that keeps the last good file."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.config import PROJECT_ROOT
from sms_gateway.registry import RegistryError, RegistryHolder, parse_registry

SHIPPED = (PROJECT_ROOT / "prefixes.yaml").read_text()
REFERENCE_AGENCIES = PROJECT_ROOT / "tests" / "data" / "agencies.tsv"  # copy of shared/reference (tests/data/README.md)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "prefixes.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError) as info:
        parse_registry(path)
    return [p.render() for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def test_shipped_file_is_valid_and_has_every_reference_agency() -> None:
    registry = parse_registry(PROJECT_ROOT / "prefixes.yaml")
    rows = REFERENCE_AGENCIES.read_text().splitlines()[1:]
    codes = {"KEMENHUB", "KEMENKES", "POLRI", "PLN", "KAI", "BPJSKES", "SATPOLPPBEKASI"}
    assert codes <= set(registry.agencies)
    assert len(rows) >= len(codes)
    for line in rows:
        code, name, aliases, parent = [*line.split("\t"), "", "", ""][:4]
        agency = registry.agencies[code]
        assert agency.name == name
        assert agency.parent == (parent or None)
        for alias in filter(None, (a.strip() for a in aliases.split(";"))):
            assert registry.names[alias.replace(" ", "")] == code


def test_duplicate_agency_is_reported_with_its_line(tmp_path: Path) -> None:
    text = SHIPPED + "  PLN:\n    name: Lagi\n"
    problems = problems_of(tmp_path, text)
    assert problems == [f"{tmp_path}/prefixes.yaml:{len(text.splitlines()) - 1}: "
                        f"duplicate key 'PLN' (first on line {line_of(SHIPPED, '  PLN:')})"]


def test_alias_colliding_with_another_agency_or_a_command(tmp_path: Path) -> None:
    text = SHIPPED.replace("aliases: [DEPHUB, PERHUBUNGAN]", "aliases: [DEPHUB, PERHUBUNGAN, POLISI, CEK]")
    problems = problems_of(tmp_path, text)
    n = line_of(text, "POLISI, CEK")
    assert f"{tmp_path}/prefixes.yaml:{n}: 'CEK' of agency KEMENHUB collides with command status" in \
        " ".join(problems)
    assert any(p.startswith(f"{tmp_path}/prefixes.yaml:") and "'POLISI'" in p and "collides" in p
               for p in problems)


def test_template_over_one_segment_is_rejected(tmp_path: Path) -> None:
    shipped_ack = SHIPPED[SHIPPED.index("  ack: >-"):SHIPPED.index("  ack_central:")]
    long_ack = ('  ack: "Laporan Anda diterima dan diteruskan ke {agency_name} dengan nomor {tracking}. '
                'Cek status: kirim CEK {tracking} ke {short_code}. Terima kasih."\n')
    text = SHIPPED.replace(shipped_ack, long_ack)
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1
    assert f"prefixes.yaml:{line_of(text, '  ack: ')}: reply ack:" in problems[0]
    assert "for agency KEMENPANRB" in problems[0]  # the longest official name
    assert "over one SMS" in problems[0]


def test_non_gsm_character_and_unknown_placeholder(tmp_path: Path) -> None:
    text = SHIPPED.replace("Terima kasih telah menggunakan", "Terima kasih “telah” menggunakan")
    assert "is not GSM-7" in problems_of(tmp_path, text)[0]
    text = SHIPPED.replace("Laporan nomor {tracking} tidak", "Laporan nomor {nomor} tidak")
    assert "unknown placeholder {nomor}" in problems_of(tmp_path, text)[0]


def test_unknown_keys_and_yaml_syntax(tmp_path: Path) -> None:
    text = SHIPPED.replace("  PLN:\n    name:", "  PLN:\n    nama: x\n    name:")
    problem = problems_of(tmp_path, text)[0]
    assert problem.startswith(f"{tmp_path}/prefixes.yaml:{line_of(text, 'nama: x')}: agency PLN: unknown key 'nama'")
    text = SHIPPED + "bogus: [\n"
    problem = problems_of(tmp_path, text)[0]
    # The flow sequence opened on the last line is still open where the file ends, one line further.
    end_of_file = len(text.splitlines()) + 1
    assert problem.startswith(f"{tmp_path}/prefixes.yaml:{end_of_file}: ")
    assert "expected the node content" in problem


def test_prefixes_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["prefixes", "check", str(PROJECT_ROOT / "prefixes.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "ok (23 agencies" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED.replace("  KAI:\n", "  KAI:\n    parent: NOWHERE\n"))
    result = runner.invoke(main, ["prefixes", "check", str(bad)])
    assert result.exit_code == 1
    line = line_of(bad.read_text(), "parent: NOWHERE")
    assert f"{bad}:{line}: agency KAI: parent 'NOWHERE' is not a registered agency" in result.output


def test_holder_reloads_and_keeps_the_last_good_registry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "prefixes.yaml"
    path.write_text(SHIPPED)
    holder = RegistryHolder(path, check_interval=0)
    first = holder.get()
    assert "KAI" in first.agencies

    def write(text: str) -> None:
        path.write_text(text)
        stamp = time.time() + 2  # make sure the mtime moves even on coarse filesystems
        os.utime(path, (stamp, stamp))

    write(SHIPPED.replace("aliases: [PTKAI]", "aliases: [PTKAI, KERETA]"))
    second = holder.get()
    assert second.names["KERETA"] == "KAI"
    assert second.version != first.version

    with caplog.at_level(logging.ERROR):
        write(SHIPPED.replace("  KAI:\n", "  KAI:\n  KAI:\n"))
        third = holder.get()
    assert third is second  # broken edit: the last good registry stays in force
    assert "keeping version" in caplog.text and "prefixes.yaml:" in caplog.text
    assert holder.last_error is not None
