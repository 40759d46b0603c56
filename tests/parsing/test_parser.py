"""How citizens' texts are read: prefixes, keywords, separators, typos, commands, flags."""

from __future__ import annotations

import time

import pytest

from sms_gateway.config import PROJECT_ROOT
from sms_gateway.parsing import is_vowel_drop, parse, within_one_edit
from sms_gateway.registry import Registry, parse_registry

REGISTRY = parse_registry(PROJECT_ROOT / "prefixes.yaml")

# text, agency, kind, body
REPORTS = [
    ("KEMENHUB ADUAN bus masih angkut pemudik", "KEMENHUB", "aduan", "bus masih angkut pemudik"),
    ("kemenhub aduan bus", "KEMENHUB", "aduan", "bus"),
    ("Kemenhub   Aduan   bus", "KEMENHUB", "aduan", "bus"),
    ("#KEMENHUB #ADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB\nADUAN\nbus di terminal", "KEMENHUB", "aduan", "bus di terminal"),
    ("KEMENHUB.ADUAN.bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB,ADUAN,bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB:ADUAN: bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB;ADUAN;bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB-ADUAN-bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB/ADUAN/bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUBADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB bus tanpa kata kunci", "KEMENHUB", "aduan", "bus tanpa kata kunci"),
    ("KEMENHUB PENGADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB KELUHAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB ASPIRASI posko", "KEMENHUB", "aspirasi", "posko"),
    ("KEMENHUB SARAN posko", "KEMENHUB", "aspirasi", "posko"),
    ("KEMENHUB USUL posko", "KEMENHUB", "aspirasi", "posko"),
    ("KEMENHUB USULAN posko", "KEMENHUB", "aspirasi", "posko"),
    ("KEMENHUB INFO jadwal", "KEMENHUB", "info", "jadwal"),
    ("KEMENHUB INFORMASI jadwal", "KEMENHUB", "info", "jadwal"),
    ("KEMENHUB TANYA jadwal", "KEMENHUB", "info", "jadwal"),
    ("kemenkes info dmn vaksin?", "KEMENKES", "info", "dmn vaksin?"),
    ("DEPHUB aduan bus", "KEMENHUB", "aduan", "bus"),
    ("PERHUBUNGAN aduan bus", "KEMENHUB", "aduan", "bus"),
    ("BPJS KES ADUAN RS menolak", "BPJSKES", "aduan", "RS menolak"),
    ("bpjs kesehatan info faskes", "BPJSKES", "info", "faskes"),
    ("BPJSKESINFO faskes", "BPJSKES", "info", "faskes"),
    ("PEMKOT BEKASI ASPIRASI lampu", "PEMKOTBEKASI", "aspirasi", "lampu"),
    ("kota bekasi aduan sampah", "PEMKOTBEKASI", "aduan", "sampah"),
    ("KEMENPAN RB aduan asn mudik", "KEMENPANRB", "aduan", "asn mudik"),
    ("PLN ADUAN listrik mati", "PLN", "aduan", "listrik mati"),
    ("pln listrik mati", "PLN", "aduan", "listrik mati"),
    ("KAI info jadwal kereta", "KAI", "info", "jadwal kereta"),
    ("Polri: mhn info SIKM", "POLRI", "aduan", "mhn info SIKM"),
    ("Kemenkes.aduan RSUD tdk mau", "KEMENKES", "aduan", "RSUD tdk mau"),
    ("ＫＥＭＥＮＨＵＢ ＡＤＵＡＮ bus", "KEMENHUB", "aduan", "bus"),  # full-width letters (NFKC)
    # one small typo in a long enough prefix or keyword
    ("KEMNEHUB ADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUP ADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHB ADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUBB ADUAN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB ADUN bus", "KEMENHUB", "aduan", "bus"),
    ("KEMENHUB ASPRASI posko", "KEMENHUB", "aspirasi", "posko"),
    ("kmnhub aduan bus", "KEMENHUB", "aduan", "bus"),  # vowels left out, as SMS writers do
    ("KEMENDIKBUT aduan seragam", "KEMENDIKBUD", "aduan", "seragam"),
    ("JASAMRGA aduan tol macet", "JASAMARGA", "aduan", "tol macet"),
]


@pytest.mark.parametrize(("text", "agency", "kind", "body"), REPORTS)
def test_reports_are_read_with_their_agency_kind_and_text(text: str, agency: str, kind: str, body: str) -> None:
    parsed = parse(text, REGISTRY)
    assert (parsed.agency, parsed.kind, parsed.body, parsed.command) == (agency, kind, body, None)


@pytest.mark.parametrize("text", [
    "PLM ADUAN listrik mati",  # PLN is too short to guess at
    "KIA ADUAN kereta",  # KAI likewise
    "bekas galian jalan blm ditutup",  # BEKASI is one letter away from an ordinary word
    "ADUAN jalan rusak",  # a keyword is not a prefix
    "Selamat pagi pak",
    "KEMENXXHUB aduan bus",  # two edits away
])
def test_no_guessing_when_it_is_not_safe(text: str) -> None:
    parsed = parse(text, REGISTRY)
    assert parsed.agency is None
    assert parsed.body == text  # the whole text is kept for the central queue
    assert parsed.kind == "aduan"


def test_ambiguous_typo_is_not_guessed() -> None:
    # KEMENSES is one substitution from KEMENKES and one from KEMENSOS.
    assert parse("KEMENSES aduan x", REGISTRY).agency is None
    assert parse("KEMENSES aduan x", REGISTRY).body == "KEMENSES aduan x"


def test_generic_prefix_goes_to_the_central_queue_with_its_text() -> None:
    parsed = parse("LAPOR ada ASN mudik pakai mobil dinas", REGISTRY)
    assert parsed.agency is None
    assert parsed.prefix_match == "generic"
    assert parsed.body == "ada ASN mudik pakai mobil dinas"
    assert parse("LAPOR ASPIRASI tambah lampu", REGISTRY).kind == "aspirasi"


@pytest.mark.parametrize(("text", "tracking"), [
    ("CEK 4521873", "4521873"),
    ("cek #4521873", "4521873"),
    ("Cek: 45218736", "45218736"),
    ("STATUS 4521873", "4521873"),
    ("status laporan 1234567", "1234567"),
    ("status laporan sy 4521873 gmn? sdh seminggu blm ada jawaban", "4521873"),
    ("CEK", None),
    ("cek laporan sy", None),
])
def test_status_commands(text: str, tracking: str | None) -> None:
    parsed = parse(text, REGISTRY)
    assert (parsed.command, parsed.kind, parsed.tracking) == ("status", "status", tracking)
    assert not parsed.is_report


@pytest.mark.parametrize("text", ["BANTUAN", "bantuan", "HELP", "help me", "FORMAT", "?", "??", "", "   ",
                                  "...", "format sms lapor gmn ya? mau lapor jalan rusak"])
def test_help_requests(text: str) -> None:
    parsed = parse(text, REGISTRY)
    assert (parsed.command, parsed.kind, parsed.agency) == ("help", "help", None)


@pytest.mark.parametrize(("text", "agency"), [("KEMENHUB", "KEMENHUB"), ("kemenhub aduan", "KEMENHUB"),
                                              ("PLN", "PLN"), ("BPJS KES", "BPJSKES"), ("LAPOR", None)])
def test_prefix_without_text_asks_for_help_for_that_agency(text: str, agency: str | None) -> None:
    parsed = parse(text, REGISTRY)
    assert (parsed.command, parsed.agency) == ("help", agency)


def test_ordinary_words_that_are_commands_only_in_short_messages() -> None:
    long_text = "bantuan sosial BST bulan ini blm diterima pdhl nama sdh terdaftar"
    assert parse(long_text, REGISTRY).command is None
    assert parse(long_text, REGISTRY).body == long_text
    assert parse("stop pungli di pos penyekatan kedungwaringin tiap malam", REGISTRY).command is None
    assert parse("STOP", REGISTRY).command == "stop"
    assert parse("berhenti", REGISTRY).command == "stop"


@pytest.mark.parametrize(("text", "confidential", "anonymous"), [
    ("POLRI ADUAN oknum minta uang 100rb. RAHASIA", True, False),
    ("rahasia: POLRI ADUAN oknum", True, False),
    ("pns kantor kecamatan mudik. anonim ya", False, True),
    ("KEMENPANRB ADUAN asn mudik ANONIM RAHASIA", True, True),
    ("KEMENHUB ADUAN bus", False, False),
])
def test_confidential_and_anonymous_flags(text: str, confidential: bool, anonymous: bool) -> None:
    parsed = parse(text, REGISTRY)
    assert (parsed.confidential, parsed.anonymous) == (confidential, anonymous)


def test_edit_distance_and_vowel_drop() -> None:
    assert within_one_edit("KEMNEHUB", "KEMENHUB")  # transposition
    assert within_one_edit("KEMENHB", "KEMENHUB")  # deletion
    assert within_one_edit("KEMENHUBB", "KEMENHUB")  # insertion
    assert not within_one_edit("KMNHB", "KEMENHUB")
    assert is_vowel_drop("KMNHUB", "KEMENHUB")
    assert not is_vowel_drop("KMNHXB", "KEMENHUB")
    assert not is_vowel_drop("KEMENHUB", "KEMENHUB")


@pytest.mark.parametrize("text", ["a" * 65536, "7" * 65536, "KEMENHUB ADUAN " + "ab" * 32760,
                                  "kmnhub" + "x" * 65530])
def test_a_64_kb_token_is_read_in_linear_time(text: str, monkeypatch) -> None:
    """The long-token guard: no word longer than a registered name is expanded into its deletions."""
    from sms_gateway import parsing

    registry: Registry = REGISTRY
    longest = max(len(name) for name in registry.names) + 1
    expanded: list[int] = []
    real = parsing._deletions
    monkeypatch.setattr(parsing, "_deletions", lambda word: expanded.append(len(word)) or real(word))
    parsed = parse(text, registry)
    assert all(n <= longest for n in expanded), max(expanded)
    assert parsed.body or parsed.command or parsed.kind  # still read: nothing lost

    # And the time grows like the text, not like its square: 8x the text, well under 64x the time.
    def seconds(t: str) -> float:
        start = time.perf_counter()
        for _ in range(3):
            parse(t, registry)
        return time.perf_counter() - start

    short = text[:8192]
    assert seconds(text) < 20 * seconds(short) + 0.05
