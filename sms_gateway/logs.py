"""Logging set-up: one format for every process, phone numbers masked by the callers.

``LOG_LEVEL`` is a level for the gateway, optionally followed by levels for named
loggers: ``INFO,rq.worker=DEBUG,sms_gateway.jobs=WARNING``. Third-party loggers
that talk at INFO on every job or send (RQ, the Twilio client, urllib3) are at
WARNING unless LOG_LEVEL names them.
"""

from __future__ import annotations

import logging

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
    """Configure the root logger once, and the per-logger levels every time (idempotent)."""
    root_level, levels = parse_levels(spec)
    root = logging.getLogger()
    if not getattr(root, "_sms_gateway_configured", False):
        logging.basicConfig(level=root_level, format=_FORMAT)
        root._sms_gateway_configured = True  # type: ignore[attr-defined]
    root.setLevel(root_level)
    for name, level in {**QUIET_BY_DEFAULT, **levels}.items():
        logging.getLogger(name).setLevel(level)
