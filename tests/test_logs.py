"""LOG_LEVEL per logger; third-party loggers quiet unless named."""

from __future__ import annotations

import logging

import pytest
import rq.worker  # noqa: F401 - sets rq.worker to INFO when imported, as in a worker process

from sms_gateway.logs import configure_logging, parse_levels


def test_levels_per_logger() -> None:
    assert parse_levels("INFO,rq.worker=DEBUG, sms_gateway.jobs=warning") == (
        "INFO", {"rq.worker": "DEBUG", "sms_gateway.jobs": "WARNING"})
    with pytest.raises(ValueError, match="'rq=LOUD' is not a level"):
        parse_levels("INFO,rq=LOUD")


def test_third_party_loggers_are_quiet_unless_named() -> None:
    configure_logging("INFO")
    assert logging.getLogger("rq.worker").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("twilio.http_client").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("sms_gateway.jobs").getEffectiveLevel() == logging.INFO
    configure_logging("WARNING,rq.worker=DEBUG")
    assert logging.getLogger("rq.worker").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("sms_gateway.jobs").getEffectiveLevel() == logging.WARNING
    configure_logging("INFO")
