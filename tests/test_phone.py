"""Phone numbers: E.164 as phonenumbers reads them, whatever shortcut the common case takes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sms_gateway.phone import _parsed, normalize

DIGITS = st.text(alphabet="0123456789", max_size=20)


def test_local_and_international_forms_become_e164() -> None:
    assert normalize("081234567890") == "+6281234567890"
    assert normalize(" 6281234567890 ") == "+6281234567890"
    assert normalize("+62 812-3456-7890") == "+6281234567890"
    assert normalize("+6281234567890") == "+6281234567890"
    assert normalize("TELKOMSEL") == "TELKOMSEL"  # not a number: kept to answer it


@settings(max_examples=1000, deadline=None)
@given(st.one_of(DIGITS.map(lambda d: "+62" + d), DIGITS.map(lambda d: "62" + d), DIGITS.map(lambda d: "0" + d),
                 st.from_regex(r"\A0[0-9]{5,17}\Z"),
                 st.text(alphabet="+0123456789 -()", max_size=20), st.text(max_size=20)))
def test_the_shortcut_answers_as_phonenumbers_does(raw: str) -> None:
    value = raw.strip()
    if value:
        assert normalize(raw) == _parsed(value, "ID")
