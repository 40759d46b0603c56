"""Gazetteers: the shipped one for Kota Bekasi, an admin's own for a new city, checked with file:line."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from sms_gateway.cli import main
from sms_gateway.config import PROJECT_ROOT
from sms_gateway.registry import RegistryError, RegistryHolder, parse_registry
from sms_gateway.rules.classify import classify
from sms_gateway.yamlfile import load

SHIPPED = (PROJECT_ROOT / "prefixes.yaml").read_text()
BEKASI = PROJECT_ROOT / "sms_gateway" / "data" / "gazetteer" / "bekasi.yaml"
AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

# A new city as an admin would add it: the city agency with its gazetteer, one unit with a local rule.
DEPOK_AGENCIES = """\
  PEMKOTDEPOK:
    name: Pemerintah Kota Depok
    aliases: [DEPOK]
    gazetteer: gazetteer/depok.yaml
  DLHDEPOK:
    name: Dinas Lingkungan Hidup Kota Depok
    parent: PEMKOTDEPOK
    rules:
      - name: sampah kota
        weight: 4
        local: true
        keywords: [sampah, tpa]
"""
DEPOK = """\
city: [Depok, Kota Depok]
elsewhere: [Depok Sleman]
kecamatan:
  Cimanggis: [Cisalak Pasar, Curug, Harjamukti, Mekarsari, Pasir Gunung Selatan, Tugu]
  Sawangan: [Bedahan, Cinangka, Kedaung, Pasir Putih, Pengasinan, Sawangan Baru, Sawangan Lama]
places: [Margonda, Jl. Margonda Raya, TPA Cipayung]
ambiguous: [Curug, Tugu, Kedaung, Pengasinan]
"""


def with_depok(tmp_path: Path, gazetteer: str = DEPOK) -> Path:
    (tmp_path / "gazetteer").mkdir(exist_ok=True)
    (tmp_path / "gazetteer" / "depok.yaml").write_text(gazetteer)
    path = tmp_path / "prefixes.yaml"
    path.write_text(SHIPPED.rstrip("\n") + "\n" + DEPOK_AGENCIES)
    return path


def test_the_shipped_gazetteer_has_the_12_kecamatan_and_56_kelurahan_of_kota_bekasi() -> None:
    data = load(BEKASI)
    kecamatan = data["kecamatan"]
    assert len(kecamatan) == 12
    assert sum(len(k) for k in kecamatan.values()) == 56
    assert kecamatan["Jatiasih"] == ["Jatiasih", "Jatikramat", "Jatiluhur", "Jatimekar", "Jatirasa", "Jatisari"]
    assert "Jatimulya" in data["elsewhere"]  # Tambun Selatan, Kabupaten Bekasi
    registry = parse_registry(PROJECT_ROOT / "prefixes.yaml")
    kinds = {p.kind for p in registry.gazetteers["PEMKOTBEKASI"].places}
    assert kinds == {"city", "kecamatan", "kelurahan", "place", "elsewhere"}


def test_an_admin_adds_a_city_with_its_own_gazetteer(tmp_path: Path) -> None:
    registry = parse_registry(with_depok(tmp_path))
    assert str(tmp_path / "gazetteer" / "depok.yaml") in registry.files
    routed = classify("sampah numpuk di jl. margonda raya", registry, AT)
    assert (routed["agency"], routed["unit"]) == ("PEMKOTDEPOK", "DLHDEPOK")
    # Pengasinan is a kelurahan of both cities: alone it proves neither
    alone = classify("sampah numpuk di pengasinan", registry, AT)
    assert alone["agency"] is None
    assert classify("sampah numpuk di pengasinan sawangan", registry, AT)["agency"] == "PEMKOTDEPOK"
    assert classify("sampah numpuk di pengasinan rawalumbu", registry, AT)["agency"] == "PEMKOTBEKASI"


def test_prefixes_check_shows_a_broken_gazetteer_with_its_own_file_and_line(tmp_path: Path) -> None:
    broken = DEPOK.replace("places: [Margonda,", "plaecs: [Margonda,").replace(
        "ambiguous: [Curug,", "ambiguous: [Beji, Curug,").replace("Tugu]\n", "Tugu, Curug]\n")
    path = with_depok(tmp_path, broken)
    result = CliRunner().invoke(main, ["prefixes", "check", str(path)])
    assert result.exit_code == 1
    gz = tmp_path / "gazetteer" / "depok.yaml"
    assert f"{gz}:4: 'Curug' is listed twice (first on line 4)" in result.output
    assert f"{gz}:6: unknown key 'plaecs'" in result.output
    assert f"{gz}:7: ambiguous: 'beji' is not a kecamatan, kelurahan or place of this gazetteer" in result.output


@pytest.mark.parametrize(("gazetteer_line", "problem"), [
    ("    gazetteer: gazetteer/nowhere.yaml\n", "cannot read the gazetteer of PEMKOTDEPOK"),
    ("    gazetteer: 12\n", "agency PEMKOTDEPOK: gazetteer must name a shipped gazetteer"),
])
def test_a_gazetteer_that_cannot_be_read_refuses_the_edit(tmp_path: Path, gazetteer_line: str, problem: str) -> None:
    path = with_depok(tmp_path)
    path.write_text(path.read_text().replace("    gazetteer: gazetteer/depok.yaml\n", gazetteer_line))
    with pytest.raises(RegistryError) as info:
        parse_registry(path)
    assert any(problem in p.render() for p in info.value.problems), info.value


def test_a_local_rule_without_a_gazetteer_is_refused_with_its_line(tmp_path: Path) -> None:
    path = with_depok(tmp_path)
    text = path.read_text().replace("    gazetteer: gazetteer/depok.yaml\n", "")
    path.write_text(text)
    with pytest.raises(RegistryError) as info:
        parse_registry(path)
    line = text.splitlines().index("      - name: sampah kota") + 1
    assert f"{path}:{line}: DLHDEPOK rule 1 (sampah kota): local: true needs a gazetteer: on PEMKOTDEPOK" in str(
        info.value)


def test_editing_a_gazetteer_reloads_the_registry_and_a_broken_edit_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = with_depok(tmp_path)
    holder = RegistryHolder(path, check_interval=0)
    first = holder.get()
    assert classify("sampah numpuk di beji", first, AT)["agency"] is None
    gz = tmp_path / "gazetteer" / "depok.yaml"
    time.sleep(0.01)
    gz.write_text(DEPOK.replace("places: [Margonda,", "places: [Beji, Margonda,") + "\n")
    second = holder.get()
    assert second.version != first.version
    assert classify("sampah numpuk di beji", second, AT)["agency"] == "PEMKOTDEPOK"
    gz.write_text("city: [Depok\n")  # broken YAML
    assert holder.get() is second and holder.last_error is not None
    assert str(gz) in str(holder.last_error)
