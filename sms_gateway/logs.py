"""Logging set-up: one format for every process, phone numbers masked by the callers."""

from __future__ import annotations

import logging

_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once (idempotent)."""
    root = logging.getLogger()
    if getattr(root, "_sms_gateway_configured", False):
        root.setLevel(level.upper())
        return
    logging.basicConfig(level=level.upper(), format=_FORMAT)
    # Alembic announces each of its plugins at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    root._sms_gateway_configured = True  # type: ignore[attr-defined]
