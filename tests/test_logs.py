"""Logging: LOG_LEVEL per logger, third-party loggers quiet unless named, and phone numbers
masked in every record, whoever logs it, and on the console channel."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime

import pytest
import rq.worker  # noqa: F401 - sets rq.worker to INFO when imported, as in a worker process

from sms_gateway import ingest
from sms_gateway.channels.base import OutgoingSMS
from sms_gateway.channels.console import ConsoleChannel
from sms_gateway.logs import configure_logging, mask_numbers, parse_levels

NUMBER = "+6281234567890"


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


@pytest.mark.parametrize(("text", "expected"), [
    ("from +6281234567890 ok", "from +6281*******90 ok"),
    ("from 081234567890.", "from 08123*****90."),
    ('"sender": "6281234567890"', '"sender": "62812******90"'),
    ("report 27005518 #12 at 2026-11-30 00:18:19", "report 27005518 #12 at 2026-11-30 00:18:19"),
    ("kannel id 550e8400-e29b-41d4-a716-446655440000", "kannel id 550e8400-e29b-41d4-a716-446655440000"),
    ("already +6281*******90", "already +6281*******90"),
])
def test_mask_numbers(text: str, expected: str) -> None:
    assert mask_numbers(text) == expected


def test_every_logger_and_traceback_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    configure_logging("INFO,rq.worker=INFO")
    with caplog.at_level(logging.INFO):
        logging.getLogger("rq.worker").info("job for %s", NUMBER)  # a third-party logger, args formatted late
        try:
            raise ValueError(f"refused row sender={NUMBER}")
        except ValueError:
            logging.getLogger("gunicorn.error").exception("failed for 081234567890")
    assert NUMBER not in caplog.text and "081234567890" not in caplog.text
    assert "job for +6281*******90" in caplog.text
    assert "ValueError: refused row sender=+6281*******90" in caplog.text  # the traceback too
    configure_logging("INFO")


def test_a_real_postgresql_error_quoting_the_row_is_masked(settings, caplog: pytest.LogCaptureFixture) -> None:
    if not settings.DATABASE_URL.startswith("postgresql"):
        pytest.skip("the CONTEXT: JSON data excerpt is PostgreSQL's")
    configure_logging("INFO")
    row = {"channel": "twilio", "external_id": "SMctx", "sender": NUMBER, "recipient": "\x00",
           "text": "PLN ADUAN", "received_at": datetime.now(UTC), "provider_time": None,
           "incomplete": False, "state": "received", "meta": {}}
    with pytest.raises(Exception) as refused:  # the raw row, without ingest's clean-up: PostgreSQL refuses NUL
        ingest._store(settings.DATABASE_URL, [row])
    assert NUMBER in str(refused.value)  # PostgreSQL quotes the JSON it choked on, number included
    with caplog.at_level(logging.ERROR):
        logging.getLogger("psycopg").error("store failed: %s", refused.value)
        logging.getLogger("sms_gateway.ingest").error("store failed", exc_info=refused.value)
    assert "CONTEXT" in caplog.text or "JSON" in caplog.text
    assert NUMBER not in caplog.text


def test_console_channel_prints_a_masked_number() -> None:
    out = io.StringIO()
    ConsoleChannel(stream=out).send(OutgoingSMS(outbound_id=1, recipient=NUMBER, text="Laporan diterima"))
    assert "[SMS to +6281*******90 · 1 SMS gsm7] Laporan diterima" in out.getvalue()
    assert NUMBER not in out.getvalue()
