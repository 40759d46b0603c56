"""Shared budget of the fuzz tests: a fixed, derandomized number of examples, so CI is repeatable."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# FUZZ_EXAMPLES raises the budget for a longer local run (e.g. FUZZ_EXAMPLES=500).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))

FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                # One app and database per test, shared by its examples: that is the point.
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much, HealthCheck.data_too_large])


def server_error(response) -> str | None:  # type: ignore[no-untyped-def]
    """A description of ``response`` when it is a 5xx, for the assertion message."""
    if response.status_code < 500:
        return None
    return f"{response.status_code}: {response.get_data(as_text=True)[:300]}"
