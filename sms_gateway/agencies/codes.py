"""Agency codes that reports hold but ``prefixes.yaml`` no longer has (a rename, a removal).

``prefixes check`` (when a database is configured) and every reload warn about
them; ``sms-gateway reports move OLD NEW`` moves the reports to the new code,
with a history entry on each.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import Report, ReportEvent, utcnow
from ..registry import Registry
from .statuses import OPEN

log = logging.getLogger(__name__)

RENAMED = "agency_renamed"


def orphaned(session: Session, registry: Registry) -> dict[str, int]:
    """Open reports per agency code the registry does not know, e.g. {"DISHUBKOTA": 12}."""
    rows = session.execute(select(Report.agency, func.count()).where(
        Report.agency.is_not(None), Report.status.in_(OPEN)).group_by(Report.agency)).all()
    return {code: count for code, count in rows if code is not None and code not in registry.agencies}


def describe(codes: dict[str, int]) -> list[str]:
    """One warning line per unknown code, saying how to fix it."""
    return [f"{count} open report(s) are routed to {code}, which prefixes.yaml no longer has: "
            f"move them with `sms-gateway reports move {code} NEWCODE` (or register {code} again)"
            for code, count in sorted(codes.items())]


def move(session: Session, registry: Registry, old: str, new: str, actor: str) -> int:
    """Move every report of agency ``old`` to ``new`` (not committed); return how many moved."""
    if new not in registry.agencies:
        raise ValueError(f"{new} is not an agency in {registry.path}")
    ids = list(session.scalars(select(Report.id).where(Report.agency == old)))
    if not ids:
        return 0
    session.execute(update(Report).where(Report.id.in_(ids)).values(agency=new, updated_at=utcnow()))
    statuses = dict(session.execute(select(Report.id, Report.status).where(Report.id.in_(ids))).all())
    session.add_all(ReportEvent(report_id=report_id, status=statuses[report_id], action=RENAMED,
                                note=f"{old} → {new}", actor=actor, agency=new) for report_id in ids)
    log.info("moved %s report(s) from %s to %s (%s)", len(ids), old, new, actor)
    return len(ids)
