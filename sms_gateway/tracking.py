"""Tracking numbers: random digits plus a Damm check digit.

Random, so numbers reveal nothing about volume and cannot be enumerated; a
Damm check digit, so any single mistyped digit and any swap of two adjacent
digits is recognised as invalid instead of pointing at somebody else's report.
"""

from __future__ import annotations

import re
import secrets

BODY_DIGITS = 7  # plus one check digit: 8-digit tracking numbers

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

_SHAPE = re.compile(r"^[1-9][0-9]{6,8}$")
# The number help texts show ("CEK 12345671"): valid, so a citizen who copies it learns
# the format, and never issued, so it never shows anybody's report.
EXAMPLE = "12345671"


def damm(digits: str) -> int:
    """Damm check digit of a string of digits."""
    interim = 0
    for d in digits:
        interim = _DAMM[interim][int(d)]
    return interim


def generate() -> str:
    """A new random tracking number (first digit never 0: it survives being read as an int)."""
    while True:
        body = str(secrets.randbelow(9 * 10 ** (BODY_DIGITS - 1)) + 10 ** (BODY_DIGITS - 1))
        number = body + str(damm(body))
        if number != EXAMPLE:
            return number


def is_valid(number: str) -> bool:
    """True for a well-formed number (7–9 digits) whose check digit is right."""
    return bool(_SHAPE.match(number)) and damm(number) == 0
