"""SMS length: what a citizen's phone and the operator bill as one SMS."""

from __future__ import annotations

import gammu
import pytest

from sms_gateway import gsm


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", "gsm7", 0, 1),
    ("a" * 160, "gsm7", 160, 1),
    ("a" * 161, "gsm7", 161, 2),
    ("a" * 306, "gsm7", 306, 2),
    ("a" * 307, "gsm7", 307, 3),
    ("€" * 80, "gsm7", 160, 1),  # extension characters cost two
    ("a" * 159 + "€", "gsm7", 161, 2),
    ("[x]{y}|~^\\", "gsm7", 18, 1),
    ("Laporan Anda diterima @ £ $ ¥ è é ù ì ò Ç Ø ø Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ Æ æ ß É ¤ ¡ Ä Ö Ñ Ü § ¿ ä ö ñ ü à",
     "gsm7", 105, 1),
    ("terima kasih 🙏", "ucs2", 15, 1),  # an emoji is a surrogate pair: two units
    ("“kutip”" + "a" * 63, "ucs2", 70, 1),
    ("“kutip”" + "a" * 64, "ucs2", 71, 2),
    ("ç" * 70, "ucs2", 70, 1),  # lower-case c-cedilla is not GSM-7 (only Ç is)
    ("🙏" * 35, "ucs2", 70, 1),
    ("🙏" * 36, "ucs2", 72, 2),
])
def test_measure(text: str, encoding: str, units: int, segments: int) -> None:
    assert gsm.measure(text) == gsm.Length(encoding, units, segments)


@pytest.mark.parametrize("text", [
    "a" * 400,
    "€" * 200,
    "a" * 152 + "€" + "b" * 10,  # the escape pair would straddle the 153rd septet
    "🙏" * 100,
    "a" * 66 + "🙏" + "b" * 10,  # the surrogate pair would straddle the 67th unit
    "Laporan “bus” " * 20,
])
def test_split_never_cuts_a_pair_and_matches_gammu(text: str) -> None:
    parts = gsm.split(text)
    assert "".join(parts) == text
    length = gsm.measure(text)
    limit = gsm.GSM7_PART if length.encoding == "gsm7" else gsm.UCS2_PART
    for part in parts:
        assert gsm.measure(part).units <= limit
    assert len(parts) == length.segments or len(parts) == length.segments + 1
    # Gammu's own encoder, the reference: same number of parts.
    encoded = gammu.EncodeSMS({"Class": -1, "Unicode": length.encoding == "ucs2",
                               "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]})
    assert len(encoded) == len(parts)


def test_fit_one_segment_shortens_with_a_suffix() -> None:
    long = "Jawaban instansi: " + "jalan sudah diperbaiki " * 20
    short = gsm.fit_one_segment(long, " Selengkapnya: lapor.go.id")
    assert gsm.measure(short).segments == 1
    assert short.endswith("... Selengkapnya: lapor.go.id")
    assert gsm.fit_one_segment("pendek", " x") == "pendek x"
