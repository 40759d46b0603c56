"""Numbers that sent BERHENTI/STOP and get no status notifications: listed and lifted by operators.

A citizen resumes with MULAI/START/DAFTAR (``jobs``); an operator lists and
removes opt-outs with ``sms-gateway optout`` or ``/api/v1/optouts`` (central admin).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import phone
from .models import OptOut

log = logging.getLogger(__name__)


def normalize(number: str, region: str = "ID") -> str:
    """The number as opt-outs are stored (E.164), from any way an operator types it."""
    return phone.normalize(number, region)


def listing(session: Session, number: str | None = None, limit: int = 100) -> list[OptOut]:
    """Opt-outs, newest first; only ``number``'s when given."""
    query = select(OptOut).order_by(OptOut.created_at.desc(), OptOut.recipient).limit(limit)
    if number:
        query = query.where(OptOut.recipient == number)
    return list(session.scalars(query))


def remove(session: Session, number: str, by: str) -> bool:
    """Lift ``number``'s opt-out (not committed); False when it had none."""
    row = session.get(OptOut, number)
    if row is None:
        return False
    session.delete(row)
    log.info("opt-out of %s lifted by %s", phone.mask(number), by)
    return True


def as_dict(row: OptOut) -> dict[str, Any]:
    """An opt-out as the CLI and the API show it."""
    from .agencies.views import iso

    return {"number": row.recipient, "since": iso(row.created_at)}
