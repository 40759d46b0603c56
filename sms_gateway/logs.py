"""Logging set-up: one format for every process, levels per logger, phone numbers masked in every record.

``LOG_LEVEL`` is a level for the gateway, optionally followed by levels for named
loggers: ``INFO,rq.worker=DEBUG,sms_gateway.jobs=WARNING``. Third-party loggers
that talk at INFO on every job or send (RQ, the Twilio client, urllib3) are at
WARNING unless LOG_LEVEL names them.

Masking is one filter applied where every record is made (the log record
factory), not on our handlers: records of third-party loggers (RQ, gunicorn,
SQLAlchemy, psycopg), exceptions and their tracebacks (a PostgreSQL error
quotes the row it refused: ``CONTEXT: JSON data … "sender": "+62…"``) and
records sent to handlers configured by someone else are all masked the same way.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .phone import mask

_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

QUIET_BY_DEFAULT = {
    "rq": "WARNING",  # "Job OK", "Result is kept…" for each job
    # rq.worker sets its own level to INFO when imported: name it and its siblings explicitly.
    "rq.worker": "WARNING",
    "rq.scheduler": "WARNING",
    "rq.job": "WARNING",
    "rq.cron": "WARNING",
    "twilio": "WARNING",  # the request and response headers of every send
    "urllib3": "WARNING",
    "alembic.runtime.plugins": "WARNING",  # each plugin announced on every start
}

# A phone number as it appears in logs: 10 to 15 digits, maybe with a leading +
# (E.164 +62…, national 08…, 62… without the plus). Not inside a word, an id
# with dashes (a UUID's last group) or a decimal number, and never one already masked.
PHONE_NUMBER = re.compile(r"(?<![\w.*+-])\+?\d{10,15}(?![\w*-])")


def mask_numbers(text: str) -> str:
    """``text`` with every phone number masked like ``phone.mask`` (``+6281*******90``)."""
    return PHONE_NUMBER.sub(lambda m: mask(m.group(0)), text)


class PhoneNumberFilter(logging.Filter):
    """Masks phone numbers in a record's message, exception text and stack."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad arguments: logging reports it when the record is emitted
            return True
        masked = mask_numbers(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is masked once, here.
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_numbers(record.stack_info)
        return True


_FILTER = PhoneNumberFilter()


def _install_masking() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_masks_phone_numbers", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _FILTER.filter(record)
        return record

    factory._masks_phone_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def parse_levels(spec: str) -> tuple[str, dict[str, str]]:
    """``INFO,rq.worker=DEBUG`` → ("INFO", {"rq.worker": "DEBUG"}); ValueError naming the bad part."""
    root, loggers = "INFO", {}
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        name, _, level = part.rpartition("=")
        level = level.strip().upper()
        if level not in _LEVELS:
            raise ValueError(f"{part!r} is not a level (expected {', '.join(_LEVELS)}, "
                             "optionally as logger=LEVEL)")
        if name.strip():
            loggers[name.strip()] = level
        else:
            root = level
    return root, loggers


def configure_logging(spec: str = "INFO") -> None:
    """Configure the root logger once, the per-logger levels every time (idempotent), and mask
    phone numbers in every record from then on."""
    root_level, levels = parse_levels(spec)
    _install_masking()
    root = logging.getLogger()
    if not getattr(root, "_sms_gateway_configured", False):
        logging.basicConfig(level=root_level, format=_FORMAT)
        root._sms_gateway_configured = True  # type: ignore[attr-defined]
    root.setLevel(root_level)
    for name, level in {**QUIET_BY_DEFAULT, **levels}.items():
        logging.getLogger(name).setLevel(level)
