"""Tracking numbers: random, 8 digits, and a mistyped one is recognised as invalid."""

from __future__ import annotations

import itertools

from sms_gateway import tracking


def test_generated_numbers_are_valid_eight_digits_and_not_sequential() -> None:
    numbers = [tracking.generate() for _ in range(2000)]
    assert all(len(n) == 8 and n[0] != "0" and tracking.is_valid(n) for n in numbers)
    assert len(set(numbers)) > 1990
    ints = sorted(int(n) for n in numbers)
    gaps = {b - a for a, b in itertools.pairwise(ints)}
    assert len(gaps) > 100  # no fixed step between consecutive numbers


def test_every_single_digit_error_and_adjacent_swap_is_detected() -> None:
    for _ in range(200):
        number = tracking.generate()
        for i in range(len(number)):
            for d in "0123456789":
                if d != number[i]:
                    typo = number[:i] + d + number[i + 1:]
                    assert not tracking.is_valid(typo), (number, typo)
        for i in range(len(number) - 1):
            if number[i] != number[i + 1]:
                swapped = number[:i] + number[i + 1] + number[i] + number[i + 2:]
                assert not tracking.is_valid(swapped), (number, swapped)


def test_shape() -> None:
    assert not tracking.is_valid("")
    assert not tracking.is_valid("123")
    assert not tracking.is_valid("1234567890")
    assert not tracking.is_valid("0" + tracking.generate()[1:])
