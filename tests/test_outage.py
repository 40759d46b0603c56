"""One log line when an outage starts, one when it ends, and the backoff between attempts."""

from __future__ import annotations

import logging

import pytest

from sms_gateway.outage import Outage


def test_one_line_per_outage_and_a_capped_doubling_backoff(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("Redis", logging.getLogger("test.outage"), max_delay=3)
    with caplog.at_level(logging.INFO, logger="test.outage"):
        delays = [outage.down(ConnectionError("refused")) for _ in range(6)]
        outage.up()
        outage.up()  # already up: nothing to say
        assert outage.down(ConnectionError("again")) == 0.5  # a new outage starts from the first delay
    assert delays == [0.5, 1.0, 2.0, 3, 3, 3]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("Redis unreachable (ConnectionError: refused)")
    assert lines[1].startswith("Redis back after ")
    assert lines[2].startswith("Redis unreachable (ConnectionError: again)")
    assert outage.count == 2 and outage.active
