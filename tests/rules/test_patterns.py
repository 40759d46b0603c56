"""Issue 15's patterns, one table each: kinds from the text, places, unknown codes, typos, CEK in a sentence, junk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sms_gateway import gsm
from sms_gateway.config import PROJECT_ROOT
from sms_gateway.parsing import parse
from sms_gateway.registry import Registry, parse_registry
from sms_gateway.rules.classify import classify
from sms_gateway.tracking import damm

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return parse_registry(PROJECT_ROOT / "prefixes.yaml")


def valid(body: str) -> str:
    return body + str(damm(body))


NUMBER = valid("2700551")  # 27005518
WRONG = NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10)


# --------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(("text", "kind", "by"), [
    ("gimana cara pindah faskes bpjs lewat hp?", "info", "text"),
    ("syarat bikin kk baru apa aja ya", "info", "text"),
    ("apakah sim yg mati bisa diperpanjang?", "info", "text"),
    ("dimana lokasi vaksin booster utk lansia?", "info", "text"),
    ("mau tanya jadwal krl ke cikarang", "info", "text"),
    ("mohon jadwal krl ditambah pas jam pulang kerja", "aspirasi", "text"),
    ("sebaiknya gerbang tol ditambah petugas saat mudik", "aspirasi", "text"),
    ("terima kasih pln, listrik cepat nyala lagi", "aspirasi", "text"),
    ("salut sama nakes puskesmas yg melayani sampai malam", "aspirasi", "text"),
    # complaints that ask, thank or propose in passing stay complaints
    ("kenapa listrik mati terus? sudah 3 hari belum nyala", "aduan", "text"),
    ("jalan rusak parah, tolong diperbaiki. terima kasih", "aduan", "text"),
    ("bansos sy belum cair, kok bisa?", "aduan", "text"),
    ("listrik padam di rumah sy", "aduan", "default"),  # nothing says otherwise
    # a keyword decides; a prefix without keyword means aduan, as the format says
    ("SARAN tambah jadwal krl", "aspirasi", "keyword"),
    ("LAPOR INFO cara klaim jht gmn", "info", "keyword"),
    ("POLRI mohon info apakah SIKM berlaku?", "aduan", "format"),
])
def test_the_kind_is_read_from_the_text_when_no_keyword_says_it(registry: Registry, text: str, kind: str,
                                                                 by: str) -> None:
    result = classify(text, registry, AT)
    assert (result["kind"], result["kind_by"]) == (kind, by), result["kind_cues"]
    if by == "text":
        assert result["kind_cues"], "the evidence says why"


# --------------------------------------------------------------------------- places


@pytest.mark.parametrize(("text", "agency", "unit"), [
    ("puskesmas jatiasih menolak pasien lansia", "PEMKOTBEKASI", "DINKESBEKASI"),
    ("puskesmas di desa kami tutup terus", "KEMENKES", None),  # no place: the ministry
    ("sampah numpuk di kel. margahayu bekasi timur", "PEMKOTBEKASI", "DLHBEKASI"),
    ("jalan berlubang di jl. kh noer ali dekat pintu air", "PEMKOTBEKASI", "DBMSDABEKASI"),
    ("lampu merah mati di simpang summarecon bekasi", "PEMKOTBEKASI", "DISHUBBEKASI"),
    ("pkl tutup trotoar di kranji", "PEMKOTBEKASI", "SATPOLPPBEKASI"),
    ("got mampet di pondokgede tiap hujan", "PEMKOTBEKASI", "DBMSDABEKASI"),  # written as one word
    ("sdn di jatisampurna minta uang buku", "PEMKOTBEKASI", "DISDIKBEKASI"),
    ("sampah numpuk di jatiasihh", "PEMKOTBEKASI", "DLHBEKASI"),  # a typo in the place
    # an ambiguous name alone is no proof: Jl. Ahmad Yani is in every city
    ("lampu jalan mati di jl. ahmad yani dekat perempatan", None, None),
    ("lampu jalan mati di jl. ahmad yani bekasi", "PEMKOTBEKASI", "DISHUBBEKASI"),
    # Kabupaten Bekasi shares the name, not the government
    ("jalan rusak parah di tambun selatan kabupaten bekasi", None, None),
    ("sampah numpuk di pasar cikarang", None, None),
])
def test_a_local_complaint_in_a_named_place_reaches_the_citys_unit(registry: Registry, text: str,
                                                                     agency: str | None, unit: str | None) -> None:
    result = classify(text, registry, AT)
    assert (result["agency"], result["unit"]) == (agency, unit), (result["reason"], result["places"])


def test_the_evidence_names_the_place_and_why_an_ambiguous_one_did_not_count(registry: Registry) -> None:
    found = classify("puskesmas jatiasih menolak pasien", registry, AT)["places"]
    assert any(p.startswith("Jatiasih (") and p.endswith("-> PEMKOTBEKASI") for p in found), found
    alone = classify("lampu jalan mati di jl. ahmad yani", registry, AT)["places"]
    assert alone == ["Ahmad Yani (ambiguous, alone: not counted)"]
    away = classify("jalan rusak di cikarang bekasi", registry, AT)["places"]
    assert "Cikarang (not PEMKOTBEKASI: elsewhere)" in away


# --------------------------------------------------------------------------- unknown codes


@pytest.mark.parametrize(("text", "code", "kind", "agency"), [
    ("DISHUB ADUAN angkot ngetem di depan stasiun bekasi", "DISHUB", "aduan", "PEMKOTBEKASI"),
    ("PUPR ADUAN jembatan di desa kami putus", "PUPR", "aduan", None),
    ("DINSOS aspirasi bansos dibagikan lewat rekening", "DINSOS", "aspirasi", "KEMENSOS"),
    ("IMIGRASI INFO berapa biaya paspor", "IMIGRASI", "info", None),  # a word, but written as a code
    ("PEMKAB BEKASI ADUAN jalan rusak di cikarang", "PEMKAB BEKASI", "aduan", None),
    ("PLNN ADUAN listrik padam 2 hari", "PLNN", "aduan", "PLN"),  # short codes are never guessed
])
def test_an_unknown_code_keeps_the_written_kind_and_is_routed_by_content(registry: Registry, text: str, code: str,
                                                                          kind: str, agency: str | None) -> None:
    result = classify(text, registry, AT)
    assert (result["unknown_code"], result["kind"], result["agency"]) == (code, kind, agency)


@pytest.mark.parametrize("text", [
    "mau aduan listrik padam",  # ordinary words before a keyword are no code
    "saya aduan jalan rusak",
    "KEMENHUB ADUAN bus masih angkut pemudik",  # registered
    "LAPOR ADUAN listrik padam",  # the generic prefix
])
def test_ordinary_words_and_registered_names_are_not_unknown_codes(registry: Registry, text: str) -> None:
    assert classify(text, registry, AT)["unknown_code"] is None


def test_the_unknown_code_replies_fit_one_sms_with_the_longest_code(registry: Registry) -> None:
    for template in ("ack_unknown_code", "ack_unknown_code_central"):
        for agency in registry.agencies.values():
            text = registry.render(template, code="K" * 12, tracking="99999999", agency=agency.code,
                                   agency_name=agency.name, kind="aspirasi", short_code="1708")
            assert gsm.measure(text).segments == 1, text
            assert "BANTUAN" in text and "KKKKKKKKKKKK" in text


# --------------------------------------------------------------------------- typos in content words


@pytest.mark.parametrize(("text", "agency", "typed", "read"), [
    ("lstrk mati dr pagi", "PLN", "lstrk", "listrik"),  # vowels left out
    ("bnsos blm cair", "KEMENSOS", "bnsos", "bansos"),
    ("l1str1k padam terus", "PLN", "l1str1k", "listrik"),  # digits for letters
    ("s3kolah minta uang s3ragam", "KEMENDIKBUD", "s3kolah", "sekolah"),
    ("faksin di klinik disuruh bayar", "KEMENKES", "faksin", "vaksin"),  # spelled by ear
    ("termnal bis penuh calo", "KEMENHUB", "termnal", "terminal"),  # one letter missing
    ("pemadman listrik 12 jam", "PLN", "pemadman", "pemadaman"),
])
def test_misspelled_keywords_still_match_and_the_evidence_says_how_they_were_read(
        registry: Registry, text: str, agency: str, typed: str, read: str) -> None:
    result = classify(text, registry, AT)
    assert result["agency"] == agency, result["reason"]
    assert f"{typed} -> {read}" in result["corrections"]


@pytest.mark.parametrize(("text", "agency"), [
    ("puskesmass tutup trs, dokterr gk ada", "KEMENKES"),  # letters doubled
    ("listriiik mati lagiii", "PLN"),  # elongation
])
def test_doubled_and_stretched_letters_are_undone(registry: Registry, text: str, agency: str) -> None:
    assert classify(text, registry, AT)["agency"] == agency


@pytest.mark.parametrize("text", [
    "bekas luka di kaki",  # a dictionary word one letter from bekasi is never corrected
    "pasar malam ramai",  # pasar stays pasar (pagar, pasir are words too)
    "bis",  # short words are never guessed at
    "tol",
])
def test_real_words_and_short_words_are_never_corrected(registry: Registry, text: str) -> None:
    assert classify(text, registry, AT)["corrections"] == []


# --------------------------------------------------------------------------- CEK inside a sentence


@pytest.mark.parametrize("text", [
    f"pak mau cek laporan sy no {NUMBER[:4]} {NUMBER[4:]}",
    f"status laporan {NUMBER[:2]}.{NUMBER[2:5]}.{NUMBER[5:]} gmn ya?",
    f"laporan no. {NUMBER[:4]}-{NUMBER[4:]} sdh sampai mana ya pak",
    f"tolong dicek nomor laporan sy {NUMBER}, blm ada kabar",
    NUMBER,  # the number alone
    f"CEK {NUMBER[:4]} {NUMBER[4:]}",
    f"laporan saya nomor {NUMBER[:2]} {NUMBER[2:4]} {NUMBER[4:6]} {NUMBER[6:]} kok blm ditindaklanjuti",
])
def test_a_valid_tracking_number_in_a_sentence_is_a_status_request(registry: Registry, text: str) -> None:
    parsed = parse(text, registry)
    assert (parsed.command, parsed.tracking) == ("status", NUMBER)


@pytest.mark.parametrize("text", [
    f"tolong dicek nomor laporan sy {WRONG}",  # the check digit is wrong: not ours to guess
    f"bansos dipotong Rp {NUMBER[:2]}.{NUMBER[2:5]}.{NUMBER[5:]} dari anggaran desa",  # money
    f"uang ganti rugi {NUMBER[:2]}.{NUMBER[2:5]}.{NUMBER[5:]} rupiah blm dibayar laporan",
    f"listrik padam, id pelanggan 5321{NUMBER}, tolong dicek",  # a longer number
    f"sy sdh lapor dgn nomor {NUMBER} tp jalan di depan rumah makin rusak parah, lubangnya makin besar "
    "dan dalam, sudah ada tiga motor jatuh minggu ini, tolong segera diperbaiki",  # a report that mentions one
])
def test_numbers_that_are_not_a_status_request(registry: Registry, text: str) -> None:
    assert parse(text, registry).command is None


def test_cek_with_a_grouped_number_with_a_wrong_check_digit_is_answered_as_invalid(registry: Registry) -> None:
    parsed = parse(f"CEK {WRONG[:4]} {WRONG[4:]}", registry)
    assert (parsed.command, parsed.tracking) == ("status", WRONG)


# --------------------------------------------------------------------------- junk


@pytest.mark.parametrize("text", [
    "test", "tes tes 123", "testing sms 1708", "coba", "nyoba sms", "asdfghjkl", "qwertyuiop", "wkwkwkwk",
    "jdjdjdjdjd", "123456", "sjsjsjs hshshs", "zzzzzzz",
])
def test_junk_makes_no_report_and_says_so(registry: Registry, text: str) -> None:
    result = classify(text, registry, AT)
    assert (result["kind"], result["junk"], result["agency"]) == ("unknown", True, None), result
    assert result["reason"].startswith("junk")


@pytest.mark.parametrize(("text", "kind"), [
    ("Selamat pagi pak, sy mau lapor", "unknown"),  # a greeting: asked for the content, not junk
    ("banjir 😭", "aduan"),  # one real word is enough
    ("lstrik mati 😡😡", "aduan"),
    ("tolong ada maling!!!", "aduan"),
    ("test jalan rusak depan rumah", "aduan"),  # a test word beside content is content
])
def test_anything_with_a_real_word_is_kept(registry: Registry, text: str, kind: str) -> None:
    result = classify(text, registry, AT)
    assert (result["kind"], result["junk"]) == (kind, False)
