"""Phone numbers: E.164 normalisation and masking for logs."""

from __future__ import annotations

import re

import phonenumbers

# "+62" and digits, not a trunk 0: phonenumbers gives it back unchanged, as
# E.164 or, when it is no possible number, as given. Most senders look like
# this, and parsing costs the web process 4 % of its CPU per webhook.
_INDONESIAN_E164 = re.compile(r"\+62[1-9][0-9]*")
# A national number with its trunk 0 (how Kannel's %p usually gives a sender):
# from Indonesia phonenumbers makes it +62 and the rest, for 8 to 15 digits
# (property-tested against it in tests/test_phone.py).
_INDONESIAN_NATIONAL = re.compile(r"0[1-9][0-9]{6,13}")


def normalize(raw: str, region: str = "ID") -> str:
    """E.164 form of ``raw`` (``081234567890`` → ``+6281234567890``).

    A sender that is not a phone number (an alphanumeric sender id, a short
    code) is kept as given, stripped: we must still be able to answer it.
    """
    value = raw.strip()
    if not value or _INDONESIAN_E164.fullmatch(value):
        return value
    if region == "ID" and _INDONESIAN_NATIONAL.fullmatch(value):
        return "+62" + value[1:]
    return _parsed(value, region)


def _parsed(value: str, region: str) -> str:
    """``normalize`` by phonenumbers."""
    candidate = value
    # Twilio and Kannel sometimes give 628… without the plus.
    if candidate.isdigit() and candidate.startswith("62") and len(candidate) >= 10:
        candidate = "+" + candidate
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_possible_number(number):
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(number: str | None) -> str:
    """Number for logs: country and operator prefix plus the last two digits."""
    if not number:
        return "-"
    if len(number) <= 5:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 7) + number[-2:]


def can_receive_replies(number: str) -> bool:
    """False for senders no SMS can answer: alphanumeric sender ids (``TELKOMSEL``) and
    short codes (``1708``, ``3636``), which are often other machines answering back."""
    digits = number[1:] if number.startswith("+") else number
    return digits.isdigit() and len(digits) >= 8
