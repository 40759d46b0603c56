"""Indonesian SMS text as the rules see it: normalisation, slang, repeated letters, stemming."""

from __future__ import annotations

import pytest

from sms_gateway.rules.normalize import Normalizer, exact_key, phrase_key, read_slang_tsv, shipped_slang, split_words
from sms_gateway.rules.stemming import is_root_word, stem


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer(shipped_slang())


@pytest.mark.parametrize(("text", "words"), [
    # NFKC: full-width letters and digits, ligatures; case folding; accents dropped
    ("ＫＥＭＥＮＨＵＢ ａｄｕａｎ", ["kemenhub", "aduan"]),
    ("ﬁlm", ["film"]),
    ("JALAN Rusak", ["jalan", "rusak"]),
    ("café Pasar Baru", ["cafe", "pasar", "baru"]),
    # punctuation separates words, digits and letters part
    ("jl.kh noer-alie,no.5", ["jl", "kh", "noer", "alie", "no", "5"]),
    ("350rb", ["350", "rb"]),
    ("covid-19 / covid19", ["covid", "19", "covid", "19"]),
    ("1,5jt!!!", ["1", "5", "jt"]),
    ("#BEKASI:aduan", ["bekasi", "aduan"]),
    # SMS reduplication
    ("anak2 sekolah", ["anak", "anak", "sekolah"]),
    ("hati2 ya", ["hati", "hati", "ya"]),
    ("tgl 22 mei", ["tgl", "22", "mei"]),
    ("", []),
    ("?!...", []),
])
def test_split_words(text: str, words: list[str]) -> None:
    assert split_words(text) == words


@pytest.mark.parametrize(("text", "words"), [
    # slang and abbreviations, one word to one or several
    ("sy gk bs dtg krn blm ada angkot", ["saya", "tidak", "bisa", "datang", "karena", "belum", "ada",
                                         "angkutan", "kota"]),
    ("tdk dgn sdh udh utk tp jg dr lg org kmrn skrg mhn tlg",
     ["tidak", "dengan", "sudah", "sudah", "untuk", "tapi", "juga", "dari", "lagi", "orang", "kemarin",
      "sekarang", "mohon", "tolong"]),
    ("Jln rusak di kec. Bekasi Timur kel. Margahayu", ["jalan", "rusak", "di", "kecamatan", "bekasi", "timur",
                                                       "kelurahan", "margahayu"]),
    ("bayar 300rb, 1jt", ["bayar", "300", "ribu", "1", "juta"]),
    ("dmn lokasinya", ["di", "mana", "lokasinya"]),
    # letters repeated for emphasis: the spelling the dictionaries know wins
    ("tolooong rusaaak bangeeet", ["tolong", "rusak", "sekali"]),
    ("maaaaaf", ["maaf"]),
    ("mudikk pagii", ["mudik", "pagii"]),  # pagii stems to pagi anyway (see below)
    ("maaf saat taat", ["maaf", "saat", "taat"]),  # real double letters stay
    ("gkkkk", ["tidak"]),  # squeezed to a slang form
    # words we do not know pass through
    ("bpjs dtks ppkm", ["bpjs", "dtks", "ppkm"]),
])
def test_words_after_slang_and_repeats(normalizer: Normalizer, text: str, words: list[str]) -> None:
    assert normalizer.words(text) == words


@pytest.mark.parametrize(("word", "root"), [
    ("pemudik", "mudik"),
    ("mudiknya", "mudik"),
    ("pemudiknya", "mudik"),
    ("dipungut", "pungut"),
    ("pungutan", "pungut"),
    ("penyekatan", "sekat"),
    ("disekat", "sekat"),
    ("kebanjiran", "banjir"),
    ("berlubang", "lubang"),
    ("ditilang", "tilang"),
    ("pelayanan", "layan"),
    ("kerumunan", "kerumun"),
    ("berkerumun", "kerumun"),
    # roots, abbreviations, names and numbers are left alone
    ("mudik", "mudik"),
    ("antigen", "antigen"),
    ("bpjs", "bpjs"),
    ("pns", "pns"),
    ("kranji", "kranji"),
    ("350", "350"),
    ("di", "di"),
])
def test_stem(word: str, root: str) -> None:
    assert stem(word) == root


def test_root_words_come_from_sastrawis_dictionary() -> None:
    assert is_root_word("maaf") and is_root_word("mudik")
    assert not is_root_word("maf") and not is_root_word("pemudik")


@pytest.mark.parametrize(("text", "stems"), [
    ("Pemudiknya DIPUNGUT 50rb di pos Penyekatan!!", ["mudik", "pungut", "50", "ribu", "di", "pos", "sekat"]),
    ("sdh diputar balik", ["sudah", "putar", "balik"]),
    ("pagii", ["pagi"]),
])
def test_stems_of_a_message(normalizer: Normalizer, text: str, stems: list[str]) -> None:
    assert normalizer.stems(text) == stems


def test_keys_match_whole_words_only(normalizer: Normalizer) -> None:
    text = phrase_key(normalizer.stems("pos penyekatan kedungwaringin"))
    assert phrase_key(normalizer.stems("sekat")) in text
    assert phrase_key(normalizer.stems("pos sekat")) in text
    assert phrase_key(["seka"]) not in text
    assert exact_key(["penyekatan"]) == " =penyekatan "


def test_admin_slang_overrides_the_shipped_dictionary() -> None:
    assert Normalizer({**shipped_slang(), "sy": "kami"}).words("sy") == ["kami"]


def test_slang_file_problems_have_lines() -> None:
    entries, problems = read_slang_tsv("# comment\nsy\tsaya\nbad line\njl x\tjalan\nsy\tsaya lagi\n", "x.tsv")
    assert entries == {"sy": "saya"}
    assert [line for line, _ in problems] == [3, 4, 5]
    assert "twice" in problems[2][1]


def test_shipped_slang_file_is_clean() -> None:
    slang = shipped_slang()
    assert {"yg", "gk", "ga", "gak", "tdk", "dgn", "sdh", "udh", "blm", "utk", "krn", "tp", "jg", "sy", "dr",
            "lg", "bs", "org", "kmrn", "skrg", "mhn", "tlg", "jln", "jl", "kec", "kel", "rb", "jt"} <= set(slang)
    # ambiguous forms stay out: they name schools, a police unit, a family card
    assert not {"sma", "smp", "pp", "kk", "rt", "rw"} & set(slang)
